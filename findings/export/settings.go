package export

import (
	"context"
	"fmt"
	"log/slog"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/prometheus/client_golang/prometheus"
)

// Settings is the exporters' part of the backend configuration. An exporter
// is on when its destination is set.
type Settings struct {
	Webhook     WebhookSettings     `yaml:"webhook"`
	SecurityHub SecurityHubSettings `yaml:"securityhub"`
	EventBridge EventBridgeSettings `yaml:"eventbridge"`
	// QueueSize bounds the findings waiting per exporter (default 10000).
	QueueSize int `yaml:"queue_size"`
	// MaxAttempts is how often one batch is tried (default 6).
	MaxAttempts int `yaml:"max_attempts"`
}

// WebhookSettings configures the Falco-format webhook.
type WebhookSettings struct {
	// URL receives the findings (falcosidekick: http://falcosidekick:2801/).
	URL string `yaml:"url"`
	// Authorization is sent as the Authorization header, when set.
	Authorization string `yaml:"authorization" flag:"-" env:"VIGIL_EXPORT_WEBHOOK_AUTHORIZATION"`
}

// SecurityHubSettings configures the Security Hub exporter; credentials come
// from the AWS SDK's default chain (environment, instance or task role).
type SecurityHubSettings struct {
	// AccountID turns the exporter on: findings are imported into this
	// account's default product.
	AccountID string `yaml:"account_id"`
	// Region defaults to the SDK's (AWS_REGION, instance metadata).
	Region string `yaml:"region"`
	// Endpoint overrides the service endpoint (VPC endpoints, tests).
	Endpoint string `yaml:"endpoint"`
}

// EventBridgeSettings configures the EventBridge exporter.
type EventBridgeSettings struct {
	// Bus turns the exporter on: the event bus name or ARN ("default").
	Bus string `yaml:"bus"`
	// Source of the events; default "vigil.findings".
	Source string `yaml:"source"`
	// Region defaults to the SDK's.
	Region string `yaml:"region"`
	// Endpoint overrides the service endpoint.
	Endpoint string `yaml:"endpoint"`
}

// Enabled reports whether any exporter is configured.
func (s Settings) Enabled() bool {
	return s.Webhook.URL != "" || s.SecurityHub.AccountID != "" || s.EventBridge.Bus != ""
}

// NewFromSettings builds the dispatcher for the configured exporters, or
// returns nil when none is configured (pass it to findings.NewPipeline only
// when it is not nil). AWS credentials and Region are loaded once, and only
// when an AWS exporter is on.
func NewFromSettings(ctx context.Context, s Settings, log *slog.Logger, reg prometheus.Registerer) (*Dispatcher, error) {
	if !s.Enabled() {
		return nil, nil
	}
	var exporters []Exporter
	if s.Webhook.URL != "" {
		cfg := WebhookConfig{URL: s.Webhook.URL}
		if s.Webhook.Authorization != "" {
			cfg.Headers = map[string]string{"Authorization": s.Webhook.Authorization}
		}
		wh, err := NewWebhook(cfg)
		if err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		exporters = append(exporters, wh)
	}
	if s.SecurityHub.AccountID != "" || s.EventBridge.Bus != "" {
		awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("export: load aws config: %w", err)
		}
		if s.SecurityHub.AccountID != "" {
			sh, err := NewSecurityHub(SecurityHubConfig{AccountID: s.SecurityHub.AccountID, Region: s.SecurityHub.Region, Endpoint: s.SecurityHub.Endpoint}, awsCfg)
			if err != nil {
				return nil, fmt.Errorf("export: %w", err)
			}
			exporters = append(exporters, sh)
		}
		if s.EventBridge.Bus != "" {
			eb, err := NewEventBridge(EventBridgeConfig{EventBusName: s.EventBridge.Bus, Source: s.EventBridge.Source, Region: s.EventBridge.Region, Endpoint: s.EventBridge.Endpoint}, awsCfg)
			if err != nil {
				return nil, fmt.Errorf("export: %w", err)
			}
			exporters = append(exporters, eb)
		}
	}
	return NewDispatcher(Config{QueueSize: s.QueueSize, MaxAttempts: s.MaxAttempts}, exporters, log, reg), nil
}
