package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/vigilsec/vigil/detect"
	"github.com/vigilsec/vigil/findings/export"
	"github.com/vigilsec/vigil/internal/logging"
	"github.com/vigilsec/vigil/stream"
)

// Config is the backend's configuration: YAML file (--config), then VIGIL_*
// variables, then flags. docs/configuration.md is generated from it.
type Config struct {
	// GRPCListen is the address sensors stream events to.
	GRPCListen string `yaml:"grpc_listen" flag:"grpc-listen"`
	// HTTPListen is the address of the REST API, the web page, /healthz and
	// /metrics.
	HTTPListen string `yaml:"http_listen" flag:"http-listen"`
	// Store is where findings live: sqlite:///path/vigil.db, sqlite:// (the
	// file vigil-data/vigil.db), or a postgres:// URL shared by several
	// backends.
	Store string `yaml:"store" flag:"store"`
	// RulesDir is the config map directory of rules, lists, overrides and the
	// collection policy, loaded after the built-in rules and watched for
	// changes. Empty: built-in rules only.
	RulesDir string `yaml:"rules_dir" flag:"rules-dir"`
	// Stream holds TLS, limits and keepalives of the sensor-facing gRPC
	// server.
	Stream stream.ServerConfig `yaml:",inline"`
	// SensorToken is the bearer token sensors present. Read it from the
	// environment or a file, never from the command line.
	SensorToken string `yaml:"sensor_token" flag:"-" env:"VIGIL_SENSOR_TOKEN"`
	// APIToken is the bearer token API, CLI and web readers present.
	APIToken string `yaml:"api_token" flag:"-" env:"VIGIL_API_TOKEN"`
	// Retention is how long findings are kept after their last update;
	// 0 keeps them forever.
	Retention time.Duration `yaml:"retention" flag:"retention"`
	// HealthWindow is how recently a sensor must have reported to count as
	// healthy.
	HealthWindow time.Duration `yaml:"health_window"`
	// CorrelationWindow is how close in time findings on one workload must be
	// to be linked into an attack sequence.
	CorrelationWindow time.Duration `yaml:"correlation_window"`
	// Engine bounds the detection engine's sequence and threshold state.
	Engine detect.EngineConfig `yaml:"engine"`
	// Export sends new and updated findings to a Falco-format webhook
	// (falcosidekick), AWS Security Hub and EventBridge.
	Export export.Settings `yaml:"export"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level" flag:"log-level"`
	// LogFormat is text or json.
	LogFormat string `yaml:"log_format" flag:"log-format"`
}

func defaultConfig() Config {
	return Config{
		GRPCListen:        ":7443",
		HTTPListen:        ":8080",
		Store:             "sqlite://",
		Stream:            stream.DefaultServerConfig(),
		Retention:         90 * 24 * time.Hour,
		HealthWindow:      2 * time.Minute,
		CorrelationWindow: time.Hour,
		LogLevel:          "info",
		LogFormat:         "text",
	}
}

// Validate says which key is wrong and why.
func (c *Config) Validate() error {
	var errs []error
	if c.SensorToken == "" {
		errs = append(errs, errors.New("sensor_token: required (set VIGIL_SENSOR_TOKEN)"))
	}
	if c.APIToken == "" {
		errs = append(errs, errors.New("api_token: required (set VIGIL_API_TOKEN)"))
	}
	if c.SensorToken != "" && c.SensorToken == c.APIToken {
		errs = append(errs, errors.New("api_token: must differ from the sensor token, or sensors could read findings"))
	}
	if !c.Stream.Insecure && (c.Stream.CertFile == "" || c.Stream.KeyFile == "") {
		errs = append(errs, errors.New("tls_cert/tls_key: required unless --insecure is given explicitly"))
	}
	if c.Retention < 0 {
		errs = append(errs, fmt.Errorf("retention: %s is negative", c.Retention))
	}
	if _, err := logging.New(c.LogLevel, c.LogFormat); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
