package main

import (
	"flag"
	"os"
	"testing"

	"github.com/vigilsec/vigil/internal/config"
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
