package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/metricsdoc"
)

var update = flag.Bool("update", false, "rewrite the generated configuration reference")

// TestConfigurationReference keeps docs/config-backend.md generated from
// Config's doc comments and defaults.
func TestConfigurationReference(t *testing.T) {
	cfg := defaultConfig()
	got, err := config.Reference(&cfg, "Backend configuration")
	if err != nil {
		t.Fatal(err)
	}
	const path = "../../docs/config-backend.md"
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run: go test ./cmd/backend -run TestConfigurationReference -update)", err)
	}
	if string(want) != got {
		t.Errorf("%s is stale: run make generate", path)
	}
}

func TestConfigValidate(t *testing.T) {
	base := func() Config {
		c := defaultConfig()
		c.SensorToken, c.APIToken = "sensor-token-0123456789", "api-token-0123456789"
		c.Stream.Insecure = true
		return c
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		ok     bool
	}{
		{"a complete insecure configuration is valid", func(*Config) {}, true},
		{"a missing sensor token is refused", func(c *Config) { c.SensorToken = "" }, false},
		{"a missing API token is refused", func(c *Config) { c.APIToken = "" }, false},
		{"the same token for sensors and readers is refused", func(c *Config) { c.APIToken = c.SensorToken }, false},
		{"TLS without a certificate is refused", func(c *Config) { c.Stream.Insecure = false }, false},
		{"an unknown log format is refused", func(c *Config) { c.LogFormat = "xml" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mutate(&c)
			if err := c.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestMetricsReference keeps docs/metrics-backend.md generated from the
// metrics the assembled backend registers.
func TestMetricsReference(t *testing.T) {
	cfg := defaultConfig()
	cfg.Store = "sqlite://" + t.TempDir() + "/v.db"
	cfg.SensorToken, cfg.APIToken = "sensor-token-0123456789", "api-token-0123456789"
	cfg.Stream.Insecure = true
	reg := prometheus.NewRegistry()
	rec := metricsdoc.NewRecorder(reg)
	b, err := assemble(context.Background(), cfg, slog.New(slog.DiscardHandler), rec, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.store.Close()
	got := "# Backend metrics\n\nServed at `/metrics` on the HTTP port. Generated from the code (`make generate`).\n\n" +
		rec.Markdown("Backend", "vigil_")
	const path = "../../docs/metrics-backend.md"
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run: go test ./cmd/backend -run Reference -update)", err)
	}
	if string(want) != got {
		t.Errorf("%s is stale: run make generate", path)
	}
}
