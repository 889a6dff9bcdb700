package export

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// FalcoEvent is one finding in Falco's JSON output format, which
// falcosidekick and Falco's own http_output consumers read.
type FalcoEvent struct {
	Output       string         `json:"output"`
	Priority     string         `json:"priority"`
	Rule         string         `json:"rule"`
	Time         string         `json:"time"`
	OutputFields map[string]any `json:"output_fields"`
	Source       string         `json:"source"`
	Tags         []string       `json:"tags"`
	Hostname     string         `json:"hostname"`
	UUID         string         `json:"uuid,omitempty"`
}

// FalcoPriority maps a finding's severity to a Falco priority name.
func FalcoPriority(sev float64) string {
	switch {
	case sev >= 9:
		return "Critical"
	case sev >= 7:
		return "Error"
	case sev >= 4:
		return "Warning"
	default:
		return "Notice"
	}
}

// ToFalco renders a finding as a Falco event: output_fields carry Falco's
// field names where one exists and vigil.* names for the finding itself.
func ToFalco(f *vigilv1.Finding) FalcoEvent {
	ev := f.GetEvidence()
	proc := f.GetService().GetRuntimeDetails().GetProcess()
	res := f.GetResource()
	at := f.GetService().GetEventLastSeen().AsTime()
	if f.GetService().GetEventLastSeen() == nil {
		at = f.GetUpdatedAt().AsTime()
	}
	fields := map[string]any{
		"vigil.finding.id":       f.GetId(),
		"vigil.finding.type":     f.GetType(),
		"vigil.finding.severity": f.GetSeverity(),
		"vigil.finding.count":    f.GetService().GetCount(),
		"vigil.finding.title":    f.GetTitle(),
		"evt.time":               at.UnixNano(),
	}
	set := func(k, v string) {
		if v != "" {
			fields[k] = v
		}
	}
	set("proc.name", proc.GetName())
	set("proc.exepath", proc.GetExecutablePath())
	set("proc.cmdline", proc.GetCommandLine())
	set("proc.cwd", proc.GetPwd())
	set("user.name", proc.GetUser())
	if proc != nil {
		fields["proc.pid"] = proc.GetPid()
		fields["user.uid"] = proc.GetUserId()
	}
	if l := proc.GetLineage(); len(l) > 0 {
		set("proc.pname", l[0].GetName())
		set("proc.pexepath", l[0].GetExecutablePath())
	}
	c := res.GetContainerDetails()
	set("container.id", shortID(c.GetId()))
	set("container.full_id", c.GetId())
	set("container.name", c.GetName())
	set("container.image", c.GetImage())
	if repo, tag, ok := splitImage(c.GetImage()); ok {
		set("container.image.repository", repo)
		set("container.image.tag", tag)
	}
	w := res.GetKubernetesDetails().GetKubernetesWorkloadDetails()
	set("k8s.ns.name", w.GetNamespace())
	set("k8s.pod.name", w.GetName())
	set("k8s.pod.uid", w.GetUid())
	ecs := res.GetEcsClusterDetails()
	set("ecs.cluster", ecs.GetName())
	set("ecs.task.arn", ecs.GetTaskDetails().GetArn())
	set("ecs.task.family", ecs.GetTaskDetails().GetFamily())
	set("host.instance_id", res.GetInstanceDetails().GetInstanceId())
	for k, v := range ev.GetFields() {
		if _, taken := fields[k]; !taken {
			fields[k] = v
		}
	}
	tags := append([]string{f.GetType()}, f.GetMitreTactics()...)
	tags = append(tags, f.GetMitreTechniques()...)
	output := ev.GetOutput()
	if output == "" {
		output = f.GetTitle()
	}
	rule := ev.GetRule()
	if rule == "" {
		rule = f.GetType()
	}
	return FalcoEvent{
		Output:       at.UTC().Format("15:04:05.000000000") + ": " + FalcoPriority(f.GetSeverity()) + " " + output,
		Priority:     FalcoPriority(f.GetSeverity()),
		Rule:         rule,
		Time:         at.UTC().Format(time.RFC3339Nano),
		OutputFields: fields,
		Source:       "syscall",
		Tags:         tags,
		Hostname:     res.GetHostname(),
		UUID:         f.GetId(),
	}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// splitImage splits "repo:tag" (not a registry port) into its parts.
func splitImage(image string) (string, string, bool) {
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return "", "", false
	}
	return image[:i], image[i+1:], true
}

// WebhookConfig configures the Falco-format webhook.
type WebhookConfig struct {
	// URL receives one POST per finding (as Falco's http_output sends),
	// for example falcosidekick's http://falcosidekick:2801/.
	URL string
	// Headers are added to every request (an Authorization header, ...).
	Headers map[string]string
	// Client sends the requests; default a client with a 10s timeout.
	Client *http.Client
}

// Webhook posts findings as Falco events.
type Webhook struct {
	cfg WebhookConfig
}

// NewWebhook builds the webhook exporter.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	if !strings.HasPrefix(cfg.URL, "http://") && !strings.HasPrefix(cfg.URL, "https://") {
		return nil, fmt.Errorf("webhook url %q: want http:// or https://", cfg.URL)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	return &Webhook{cfg: cfg}, nil
}

// Name implements Exporter.
func (w *Webhook) Name() string { return "webhook" }

// MaxBatch implements Exporter: Falco consumers expect one event per
// request.
func (w *Webhook) MaxBatch() int { return 20 }

// Export implements Exporter, posting each finding in turn.
func (w *Webhook) Export(ctx context.Context, fs []*vigilv1.Finding) error {
	for _, f := range fs {
		body, err := json.Marshal(ToFalco(f))
		if err != nil {
			return fmt.Errorf("webhook: encode: %w: %w", err, ErrPermanent)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("webhook: %w: %w", err, ErrPermanent)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "vigil")
		for k, v := range w.cfg.Headers {
			req.Header.Set(k, v)
		}
		resp, err := w.cfg.Client.Do(req)
		if err != nil {
			return fmt.Errorf("webhook: post: %w", err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		switch {
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
			return fmt.Errorf("webhook: status %s", strconv.Itoa(resp.StatusCode))
		default:
			return fmt.Errorf("webhook: status %d: %w", resp.StatusCode, ErrPermanent)
		}
	}
	return nil
}
