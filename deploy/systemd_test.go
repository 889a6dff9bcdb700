package deploy_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// unit is a parsed systemd unit file: section -> key -> values in order
// (keys such as LoadCredential and SystemCallFilter may repeat).
type unit map[string]map[string][]string

// parseUnit reads the unit syntax of systemd.syntax(7): [Section] headers,
// Key=Value lines, # and ; comments, and backslash line continuations.
func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	var pending string
	sc := bufio.NewScanner(f)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if pending != "" {
			line = pending + " " + strings.TrimSpace(line)
			pending = ""
		} else {
			line = strings.TrimSpace(line)
		}
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			pending = strings.TrimSuffix(line, "\\")
			continue
		}
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				t.Fatalf("%s:%d: bad section header %q", path, lineNo, line)
			}
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			t.Fatalf("%s:%d: not key=value inside a section: %q", path, lineNo, line)
		}
		key = strings.TrimSpace(key)
		u[section][key] = append(u[section][key], strings.TrimSpace(value))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if pending != "" {
		t.Fatalf("%s: file ends inside a continued line", path)
	}
	return u
}

func (u unit) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

func (u unit) execStartArgs(t *testing.T) []string {
	t.Helper()
	exec := strings.Fields(u.get("Service", "ExecStart"))
	if len(exec) == 0 {
		t.Fatal("no ExecStart")
	}
	return exec
}

func argValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
		if a == "--"+name {
			return "", true
		}
	}
	return "", false
}

func capSet(s string) []string {
	f := strings.Fields(s)
	sort.Strings(f)
	return f
}

// parseEnvFile reads an EnvironmentFile: KEY=VALUE lines, # comments.
func parseEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			t.Fatalf("%s:%d: not KEY=VALUE: %q", path, i+1, line)
		}
		env[k] = v
	}
	return env
}

// The flags of each binary, as the command-line contract names them; an
// environment file may set only VIGIL_<one of these> (plus the tokens).
var (
	sensorFlags  = []string{"backend", "ca", "insecure", "spool-dir", "spool-max-bytes", "btf", "config", "stdout", "metrics-listen", "mode"}
	backendFlags = []string{"grpc-listen", "http-listen", "store", "rules-dir", "tls-cert", "tls-key", "tls-client-ca", "insecure", "config"}
)

func envName(flag string) string {
	return "VIGIL_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func checkEnvKeys(t *testing.T, env map[string]string, flags []string, tokens ...string) {
	t.Helper()
	allowed := slices.Clone(tokens)
	for _, f := range flags {
		allowed = append(allowed, envName(f))
	}
	for k := range env {
		if !slices.Contains(allowed, k) {
			t.Errorf("env file sets %s, which the binary does not read", k)
		}
	}
}

var sensorUnitCaps = []string{"CAP_BPF", "CAP_DAC_READ_SEARCH", "CAP_PERFMON", "CAP_SYS_PTRACE", "CAP_SYS_RESOURCE"}

func TestSystemdUnits(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		check func(t *testing.T, u unit)
	}{
		{
			name: "the sensor unit bounds root to the eBPF capabilities and keeps the rest of the sandbox",
			file: "vigil-sensor.service",
			check: func(t *testing.T, u unit) {
				if got := capSet(u.get("Service", "CapabilityBoundingSet")); !slices.Equal(got, sensorUnitCaps) {
					t.Errorf("CapabilityBoundingSet = %v, want exactly %v", got, sensorUnitCaps)
				}
				if got := capSet(u.get("Service", "AmbientCapabilities")); !slices.Equal(got, sensorUnitCaps) {
					t.Errorf("AmbientCapabilities = %v, want %v", got, sensorUnitCaps)
				}
				want := map[string]string{
					"NoNewPrivileges":      "yes",
					"ProtectSystem":        "strict",
					"ProtectKernelModules": "yes",
					"PrivateTmp":           "yes",
					"LimitMEMLOCK":         "infinity",
					"StateDirectory":       "vigil-sensor",
					"EnvironmentFile":      "/etc/vigil/sensor.env",
					"Restart":              "on-failure",
				}
				for k, v := range want {
					if got := u.get("Service", k); got != v {
						t.Errorf("%s = %q, want %q", k, got, v)
					}
				}
				// These would break the probes; the unit explains why they are off.
				for _, k := range []string{"PrivateNetwork", "ProtectKernelTunables", "ProtectProc", "DynamicUser"} {
					if v := u.get("Service", k); v != "" && v != "no" {
						t.Errorf("%s=%s would stop the sensor from reading the host", k, v)
					}
				}
				if !slices.Contains(strings.Fields(u.get("Service", "ReadWritePaths")), "/sys/fs/bpf") {
					t.Error("/sys/fs/bpf must stay writable under ProtectSystem=strict")
				}
				args := u.execStartArgs(t)
				if args[0] != "/usr/local/bin/vigil-sensor" {
					t.Errorf("ExecStart runs %s", args[0])
				}
				spool, ok := argValue(args, "spool-dir")
				if !ok || !strings.HasPrefix(spool, "/var/lib/"+u.get("Service", "StateDirectory")+"/") {
					t.Errorf("--spool-dir %q is not inside StateDirectory, the only writable place", spool)
				}
				env := parseEnvFile(t, "systemd/sensor.env.example")
				for _, k := range []string{"VIGIL_BACKEND", "VIGIL_SENSOR_TOKEN"} {
					if env[k] == "" {
						t.Errorf("sensor.env.example does not show %s", k)
					}
				}
				checkEnvKeys(t, env, sensorFlags, "VIGIL_SENSOR_TOKEN")
				if u.get("Install", "WantedBy") != "multi-user.target" {
					t.Error("not enabled for multi-user.target")
				}
			},
		},
		{
			name: "the backend unit runs as a dynamic user with no capabilities and its data in StateDirectory",
			file: "vigil-backend.service",
			check: func(t *testing.T, u unit) {
				want := map[string]string{
					"DynamicUser":            "yes",
					"NoNewPrivileges":        "yes",
					"ProtectSystem":          "strict",
					"ProtectHome":            "yes",
					"PrivateTmp":             "yes",
					"PrivateDevices":         "yes",
					"ProtectKernelTunables":  "yes",
					"ProtectKernelModules":   "yes",
					"ProtectControlGroups":   "yes",
					"RestrictNamespaces":     "yes",
					"MemoryDenyWriteExecute": "yes",
					"CapabilityBoundingSet":  "",
					"StateDirectory":         "vigil-backend",
					"EnvironmentFile":        "/etc/vigil/backend.env",
				}
				for k, v := range want {
					vals, present := u["Service"][k]
					if !present {
						t.Errorf("%s is not set", k)
						continue
					}
					if got := vals[len(vals)-1]; got != v {
						t.Errorf("%s = %q, want %q", k, got, v)
					}
				}
				if !slices.Contains(u["Service"]["SystemCallFilter"], "@system-service") {
					t.Error("no SystemCallFilter=@system-service")
				}
				args := u.execStartArgs(t)
				if args[0] != "/usr/local/bin/vigil-backend" {
					t.Errorf("ExecStart runs %s", args[0])
				}
				if store, _ := argValue(args, "store"); !strings.HasPrefix(store, "sqlite:///var/lib/"+u.get("Service", "StateDirectory")+"/") {
					t.Errorf("--store %q is not in StateDirectory", store)
				}
				if dir, _ := argValue(args, "rules-dir"); !strings.HasPrefix(dir, "/etc/"+u.get("Service", "ConfigurationDirectory")+"/") {
					t.Errorf("--rules-dir %q is not under ConfigurationDirectory", dir)
				}
				creds := map[string]bool{}
				for _, c := range u["Service"]["LoadCredential"] {
					name, _, _ := strings.Cut(c, ":")
					creds[name] = true
				}
				for _, f := range []string{"tls-cert", "tls-key"} {
					v, _ := argValue(args, f)
					name, ok := strings.CutPrefix(v, "%d/")
					if !ok || !creds[name] {
						t.Errorf("--%s %q is not a LoadCredential the dynamic user can read", f, v)
					}
				}
				if _, ok := argValue(args, "insecure"); ok {
					t.Error("--insecure in a shipped unit")
				}
				env := parseEnvFile(t, "systemd/backend.env.example")
				for _, k := range []string{"VIGIL_SENSOR_TOKEN", "VIGIL_API_TOKEN"} {
					if env[k] == "" {
						t.Errorf("backend.env.example does not show %s", k)
					}
				}
				checkEnvKeys(t, env, backendFlags, "VIGIL_SENSOR_TOKEN", "VIGIL_API_TOKEN")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := parseUnit(t, filepath.Join("systemd", tt.file))
			for _, s := range []string{"Unit", "Service", "Install"} {
				if u[s] == nil {
					t.Fatalf("no [%s] section", s)
				}
			}
			if u.get("Unit", "Description") == "" || u.get("Unit", "Documentation") == "" {
				t.Error("Description and Documentation help an operator reading systemctl status")
			}
			tt.check(t, u)
		})
	}
}

// TestSystemdAcceptsTheUnits runs systemd's own parser over the units: an
// unknown directive or a value systemd cannot parse is reported there and
// fails here. The binaries are not installed in the test, so ExecStart points
// at /bin/true.
func TestSystemdAcceptsTheUnits(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd)")
	}
	dir := t.TempDir()
	for _, name := range []string{"vigil-sensor.service", "vigil-backend.service"} {
		t.Run(name+" passes systemd-analyze verify without warnings", func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("systemd", name))
			if err != nil {
				t.Fatal(err)
			}
			bin := "/usr/local/bin/" + strings.TrimSuffix(name, ".service")
			if !bytes.Contains(data, []byte(bin)) {
				t.Fatalf("ExecStart does not run %s", bin)
			}
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, bytes.ReplaceAll(data, []byte(bin), []byte("/bin/true")), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(analyze, "verify", "--man=no", path)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Fatalf("systemd-analyze verify: %v\n%s", err, out.String())
			}
			for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				if strings.Contains(line, name) {
					t.Errorf("systemd: %s", line)
				}
			}
		})
	}
}
