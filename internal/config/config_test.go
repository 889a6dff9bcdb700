package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type spoolSettings struct {
	// Dir is where batches wait while the backend is away.
	Dir string `yaml:"dir"`
	// MaxBytes bounds the spool.
	MaxBytes int64 `yaml:"max_bytes"`
}

type tlsSettings struct {
	// CAFile verifies the backend.
	CAFile string `yaml:"ca_file" flag:"ca"`
}

type testConfig struct {
	TLS tlsSettings `yaml:",inline"`
	// Backend is the address of the backend.
	Backend string `yaml:"backend" flag:"backend"`
	// Insecure allows plaintext.
	Insecure bool `yaml:"insecure"`
	// Delay is how long a batch may wait.
	Delay time.Duration `yaml:"delay"`
	// Ignored lists binaries.
	Ignored []string      `yaml:"ignored"`
	Spool   spoolSettings `yaml:"spool"`
	// Secret is only read from the file.
	Secret string `yaml:"secret" flag:"-"`
}

func defaults() *testConfig {
	return &testConfig{Backend: "localhost:7443", Delay: 100 * time.Millisecond, Spool: spoolSettings{MaxBytes: 1 << 20}}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(file, []byte("backend: file:1\nspool:\n  dir: /var/spool\n  max_bytes: 5\nsecret: s3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want func(*testing.T, *testConfig)
	}{
		{
			name: "defaults stand when nothing is given",
			want: func(t *testing.T, c *testConfig) {
				if c.Backend != "localhost:7443" || c.Delay != 100*time.Millisecond || c.Spool.MaxBytes != 1<<20 {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "the file overrides defaults, including nested sections and file-only keys",
			args: []string{"--config", file},
			want: func(t *testing.T, c *testConfig) {
				if c.Backend != "file:1" || c.Spool.Dir != "/var/spool" || c.Spool.MaxBytes != 5 || c.Secret != "s3" {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "the environment overrides the file",
			args: []string{"--config", file},
			env:  map[string]string{"VIGIL_SPOOL_MAX_BYTES": "7", "VIGIL_IGNORED": "/a,/b"},
			want: func(t *testing.T, c *testConfig) {
				if c.Spool.MaxBytes != 7 || strings.Join(c.Ignored, " ") != "/a /b" || c.Backend != "file:1" {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "flags override the environment",
			env:  map[string]string{"VIGIL_BACKEND": "env:2", "VIGIL_CONFIG": file},
			args: []string{"--backend", "flag:3", "--insecure", "--delay", "2s", "--ca", "/ca.pem", "rest"},
			want: func(t *testing.T, c *testConfig) {
				if c.Backend != "flag:3" || !c.Insecure || c.Delay != 2*time.Second || c.Spool.Dir != "/var/spool" || c.TLS.CAFile != "/ca.pem" {
					t.Errorf("got %+v", c)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c := defaults()
			rest, err := Load(c, "test", tt.args, nil)
			if err != nil {
				t.Fatal(err)
			}
			tt.want(t, c)
			if tt.name == "flags override the environment" && (len(rest) != 1 || rest[0] != "rest") {
				t.Errorf("rest = %v", rest)
			}
		})
	}
}

func TestLoadRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(file, []byte("backend: x\nbakend: typo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, want string
		env        map[string]string
		args       []string
	}{
		{name: "an unknown key in the file is named", args: []string{"--config", file}, want: "bakend"},
		{name: "a bad environment value names the variable", env: map[string]string{"VIGIL_DELAY": "soon"}, want: "VIGIL_DELAY"},
		{name: "a bad flag value names the flag", args: []string{"--spool-max-bytes", "many"}, want: "spool-max-bytes"},
		{name: "a missing config file is an error", args: []string{"--config", filepath.Join(dir, "nope.yaml")}, want: "nope.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := Load(defaults(), "test", tt.args, func(*flag.FlagSet) {})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestReferenceUsesDocComments(t *testing.T) {
	ref, err := Reference(defaults(), "Test configuration")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| `spool.max_bytes` | `--spool-max-bytes` | `VIGIL_SPOOL_MAX_BYTES` | `1048576` | MaxBytes bounds the spool. |",
		"| `backend` | `--backend` | `VIGIL_BACKEND` | `localhost:7443` | Backend is the address of the backend. |",
		"| `secret` |  |  |  | Secret is only read from the file. |",
	} {
		if !strings.Contains(ref, want) {
			t.Errorf("reference lacks %q:\n%s", want, ref)
		}
	}
}
