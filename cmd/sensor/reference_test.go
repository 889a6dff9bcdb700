package main

import (
	"flag"
	"log/slog"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/collector"
	"github.com/vigilsec/vigil/enrich"
	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/metricsdoc"
	"github.com/vigilsec/vigil/internal/testutil"
	"github.com/vigilsec/vigil/stream"
)

var update = flag.Bool("update", false, "rewrite the generated configuration reference")

// TestConfigurationReference keeps docs/config-sensor.md generated from
// Config's doc comments and defaults.
func TestConfigurationReference(t *testing.T) {
	cfg := defaultConfig()
	got, err := config.Reference(&cfg, "Sensor configuration")
	if err != nil {
		t.Fatal(err)
	}
	const path = "../../docs/config-sensor.md"
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run: go test ./cmd/sensor -run Reference -update)", err)
	}
	if string(want) != got {
		t.Errorf("%s is stale: run make generate", path)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		ok     bool
	}{
		{"stdout needs no backend or token", func(c *Config) { c.Stdout = true }, true},
		{"a backend with a token is valid", func(c *Config) { c.Stream.Backend, c.Token = "backend:7443", "sensor-token-0123456789" }, true},
		{"a backend without a token is refused", func(c *Config) { c.Stream.Backend = "backend:7443" }, false},
		{"no backend and no stdout is refused", func(c *Config) { c.Token = "sensor-token-0123456789" }, false},
		{"an unknown log level is refused", func(c *Config) { c.Stdout, c.LogLevel = true, "chatty" }, false},
		{"a negative max_procs is refused", func(c *Config) { c.Stdout, c.MaxProcs = true, -1 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultConfig()
			tt.mutate(&c)
			if err := c.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestMaxProcs(t *testing.T) {
	unset := func(string) string { return "" }
	set := func(k string) string {
		if k == "GOMAXPROCS" {
			return "4"
		}
		return ""
	}
	tests := []struct {
		name     string
		mode     string
		maxProcs int
		env      func(string) string
		cpus     int
		want     int
	}{
		{"ebpf mode runs on one core on a small host", "ebpf", 0, unset, 2, 1},
		{"one core carries up to 16 CPUs", "ebpf", 0, unset, 16, 1},
		{"a larger host gets a core per 16 CPUs", "ebpf", 0, unset, 64, 4},
		{"a part of 16 CPUs counts", "ebpf", 0, unset, 17, 2},
		{"the GOMAXPROCS variable is left to the runtime", "ebpf", 0, set, 64, 0},
		{"procfs mode keeps the runtime's choice", "procfs", 0, unset, 64, 0},
		{"max_procs wins over everything", "procfs", 3, set, 64, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultConfig()
			c.Mode, c.MaxProcs = tt.mode, tt.maxProcs
			if got := c.maxProcs(tt.env, tt.cpus); got != tt.want {
				t.Errorf("maxProcs(%d CPUs) = %d, want %d", tt.cpus, got, tt.want)
			}
		})
	}
}

// TestMetricsReference keeps docs/metrics-sensor.md generated from the
// metrics the sensor's stages register. Loading the probes needs root.
func TestMetricsReference(t *testing.T) {
	testutil.RequirePrivileged(t)
	reg := prometheus.NewRegistry()
	rec := metricsdoc.NewRecorder(reg)
	log := slog.New(slog.DiscardHandler)
	cfg := defaultConfig()
	if _, err := collector.New(cfg.Collector, log, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := enrich.New(cfg.Enrich, log, rec); err != nil {
		t.Fatal(err)
	}
	sc := cfg.Stream
	sc.Backend, sc.Insecure, sc.Token, sc.SpoolDir, sc.SensorID = "127.0.0.1:1", true, "sensor-token-0123456789", t.TempDir(), "metrics-doc"
	if _, err := stream.NewClient(sc, log, rec); err != nil {
		t.Fatal(err)
	}
	got := "# Sensor metrics\n\nServed at `/metrics` on `--metrics-listen` (default `:9090`). Generated from the code (`make generate`, as root).\n\n" +
		rec.Markdown("Sensor", "vigil_")
	const path = "../../docs/metrics-sensor.md"
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run: go test ./cmd/sensor -run Reference -update)", err)
	}
	if string(want) != got {
		t.Errorf("%s is stale: run make generate", path)
	}
}
