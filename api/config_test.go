package api_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/api"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  api.Config
		want string // "" for valid
	}{
		{"one long API token is valid", api.Config{APITokens: []string{apiToken}}, ""},
		{"no API token is refused", api.Config{}, "at least one"},
		{"a short API token is refused", api.Config{APITokens: []string{"short"}}, "api token 1: needs at least 16"},
		{"an API token that is also a sensor token is refused", api.Config{APITokens: []string{apiToken}, SensorTokens: []string{apiToken}}, "is also a sensor token"},
		{"a default page above the maximum is refused", api.Config{APITokens: []string{apiToken}, DefaultPageSize: 5000}, "default page size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestNewServerRefusesMissingDeps(t *testing.T) {
	fx := newFixture(t)
	log := slog.New(slog.DiscardHandler)
	cfg := api.Config{APITokens: []string{apiToken}}
	full := api.Deps{Findings: fx.store, Suppressions: fx.store, Sensors: fx.store}
	tests := []struct {
		name string
		deps api.Deps
		reg  prometheus.Registerer
	}{
		{"a server without a findings store is refused", api.Deps{Suppressions: fx.store, Sensors: fx.store}, prometheus.NewRegistry()},
		{"a registerer that cannot be gathered needs an explicit Gatherer", full, prometheus.WrapRegistererWith(prometheus.Labels{"x": "y"}, prometheus.NewRegistry())},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := api.NewServer(cfg, tc.deps, log, tc.reg); err == nil {
				t.Fatal("no error")
			}
		})
	}
}
