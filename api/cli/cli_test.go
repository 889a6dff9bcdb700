package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilsec/vigil/api"
	"github.com/vigilsec/vigil/api/cli"
	"github.com/vigilsec/vigil/detect"
	"github.com/vigilsec/vigil/findings"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

const token = "cli-test-token-0123456789"

// server starts the real API on a real SQLite store holding three findings
// and one sensor, and returns its URL and the findings' ids by host.
func server(t *testing.T) (string, map[string]string) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	store, err := findings.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "vigil.db"), log, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv, err := api.NewServer(api.Config{APITokens: []string{token}}, api.Deps{Findings: store, Suppressions: store, Sensors: store}, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)

	ids := map[string]string{}
	base := time.Now().Add(-time.Hour)
	for i, a := range []struct {
		host, typ string
		sev       float64
		args      []string
	}{
		{"web-1", "Execution:Runtime/ReverseShell", 8, []string{"sh", "-i"}},
		{"web-2", "Execution:Runtime/SuspiciousTool", 5, []string{"nc", "-l", "4444"}},
		{"db-1", "Execution:Runtime/SuspiciousCommand", 3, []string{"sh", "-c", "printf '\x1b[2J\x1b[31mpwned\r'"}},
	} {
		ts := timestamppb.New(base.Add(time.Duration(i) * time.Minute))
		ev := &vigilv1.Event{Time: ts, Syscall: "execve", SensorId: "sensor-a", Host: &vigilv1.Host{Hostname: a.host},
			Process: &vigilv1.Process{ExecId: "e3", ParentExecId: "e2", Pid: 300, Comm: a.args[0], ExePath: "/bin/" + a.args[0], Args: a.args,
				Lineage: []*vigilv1.Ancestor{{ExecId: "e2", ParentExecId: "e1", Pid: 200, Comm: "bash", ExePath: "/bin/bash"}, {ExecId: "e1", Pid: 1, Comm: "systemd", ExePath: "/lib/systemd/systemd"}}},
			Kind: &vigilv1.Event_Exec{Exec: &vigilv1.Exec{Filename: "/bin/" + a.args[0]}}}
		alert := &detect.Alert{Rule: &detect.RuleInfo{Name: "rule " + a.host, Kind: "falco", FindingType: a.typ, Severity: a.sev},
			Time: ts.AsTime(), Output: "ran " + strings.Join(a.args, " "), Events: []*vigilv1.Event{ev}}
		changed, _, err := store.(findings.ChangeReporter).ApplyBatchChanges(t.Context(),
			findings.BatchKey{SensorID: "sensor-a", BootID: "b", Sequence: uint64(i + 1)}, 1, []*detect.Alert{alert})
		if err != nil {
			t.Fatal(err)
		}
		ids[a.host] = changed[0].GetId()
	}
	if err := store.RecordHealth(t.Context(), &vigilv1.Hello{SensorId: "sensor-a", Version: "v0.1.0", Host: &vigilv1.Host{Hostname: "web-1", Kernel: "6.1.0"}},
		&vigilv1.SensorHealth{SensorId: "sensor-a", Kernel: "6.1.0", Mode: "ebpf", LoadedProbes: []string{"a", "b"}, EventsTotal: 77}); err != nil {
		t.Fatal(err)
	}
	return hs.URL, ids
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := cli.Run(context.Background(), args, &out, &errOut)
	return out.String(), err
}

func TestFindingsList(t *testing.T) {
	url, ids := server(t)
	common := []string{"--server", url, "--token", token}
	tests := []struct {
		name    string
		args    []string
		want    []string
		notWant []string
	}{
		{"the table lists every active finding", nil, []string{"ID", "SEVERITY", ids["web-1"], ids["web-2"], ids["db-1"], "High 8.0", "host web-2"}, nil},
		{"a host filter narrows the table", []string{"--hostname", "web-2"}, []string{ids["web-2"]}, []string{ids["web-1"], ids["db-1"]}},
		{"a severity filter narrows the table", []string{"--severity-min", "7"}, []string{ids["web-1"]}, []string{ids["web-2"]}},
		{"a type prefix narrows the table", []string{"--type", "Execution:Runtime/Suspicious*", "--sort", "severity"}, []string{ids["web-2"], ids["db-1"]}, []string{ids["web-1"]}},
		{"a page smaller than the list says how to go on", []string{"--limit", "1"}, []string{"--next-token"}, nil},
		{"--all follows every page", []string{"--limit", "1", "--all"}, []string{ids["web-1"], ids["web-2"], ids["db-1"]}, []string{"--next-token"}},
		{"control characters from events are shown quoted, not sent to the terminal", nil, []string{ids["db-1"]}, []string{"\x1b", "\r"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, append(append([]string{"findings", "list"}, common...), tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Fatalf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Fatalf("output has %q:\n%s", w, out)
				}
			}
		})
	}
	t.Run("-o json prints findings for scripts", func(t *testing.T) {
		out, err := run(t, append([]string{"findings", "list", "-o", "json", "--sort", "severity"}, common...)...)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Findings []json.RawMessage }
		if err := json.Unmarshal([]byte(out), &body); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if len(body.Findings) != 3 {
			t.Fatalf("%d findings, want 3", len(body.Findings))
		}
		first := &vigilv1.Finding{}
		if err := protojson.Unmarshal(body.Findings[0], first); err != nil || first.GetId() != ids["web-1"] {
			t.Fatalf("first finding %v (err %v), want the most severe", first.GetId(), err)
		}
	})
}

func TestFindingsGetArchiveAndSensors(t *testing.T) {
	url, ids := server(t)
	t.Setenv("VIGIL_API_TOKEN", token)
	t.Setenv("VIGIL_SERVER", url)

	t.Run("get prints the finding with its lineage, oldest first", func(t *testing.T) {
		out, err := run(t, "findings", "get", ids["web-1"])
		if err != nil {
			t.Fatal(err)
		}
		sd, bash, sh := strings.Index(out, "systemd"), strings.Index(out, "bash (pid 200)"), strings.Index(out, "sh (pid 300)")
		if sd < 0 || bash < sd || sh < bash {
			t.Fatalf("lineage not in order:\n%s", out)
		}
		if !strings.Contains(out, "Execution:Runtime/ReverseShell") || !strings.Contains(out, "sh -i") {
			t.Fatalf("get output lacks type or command line:\n%s", out)
		}
	})
	t.Run("get -o json prints the finding as the API sends it, flags after the id", func(t *testing.T) {
		out, err := run(t, "findings", "get", ids["web-2"], "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		f := &vigilv1.Finding{}
		if err := protojson.Unmarshal([]byte(out), f); err != nil || f.GetId() != ids["web-2"] {
			t.Fatalf("got %v (err %v)", f.GetId(), err)
		}
	})
	t.Run("archive hides a finding from the default list and unarchive brings it back", func(t *testing.T) {
		if out, err := run(t, "findings", "archive", ids["web-1"]); err != nil || !strings.Contains(out, "archived "+ids["web-1"]) {
			t.Fatalf("archive: %q %v", out, err)
		}
		out, err := run(t, "findings", "list")
		if err != nil || strings.Contains(out, ids["web-1"]) {
			t.Fatalf("archived finding still listed (err %v):\n%s", err, out)
		}
		out, err = run(t, "findings", "list", "--archived", "true")
		if err != nil || !strings.Contains(out, ids["web-1"]) || !strings.Contains(out, "archived") {
			t.Fatalf("archived list lacks it (err %v):\n%s", err, out)
		}
		if _, err := run(t, "findings", "unarchive", ids["web-1"]); err != nil {
			t.Fatal(err)
		}
		if out, _ := run(t, "findings", "list"); !strings.Contains(out, ids["web-1"]) {
			t.Fatalf("unarchived finding missing:\n%s", out)
		}
	})
	t.Run("sensors prints each sensor's coverage", func(t *testing.T) {
		out, err := run(t, "sensors")
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range []string{"sensor-a", "web-1", "v0.1.0", "6.1.0", "ebpf", "2 loaded, 0 skipped  3 "} {
			if !strings.Contains(out, w) {
				t.Fatalf("sensors output lacks %q:\n%s", w, out)
			}
		}
	})
}

func TestErrors(t *testing.T) {
	url, _ := server(t)
	t.Setenv("VIGIL_API_TOKEN", "")
	tests := []struct {
		name  string
		args  []string
		usage bool
		want  string
	}{
		{"no token is a usage error", []string{"findings", "list", "--server", url}, true, "VIGIL_API_TOKEN"},
		{"a wrong token reports the server's refusal", []string{"findings", "list", "--server", url, "--token", "wrong-token-0123456789"}, false, "invalid token"},
		{"an unknown id reports not found", []string{"findings", "get", "nope", "--server", url, "--token", token}, false, "not found"},
		{"a bad filter names the parameter", []string{"findings", "list", "--severity-min", "11", "--server", url, "--token", token}, false, "parameter severityMin"},
		{"an unknown command is a usage error", []string{"finding", "list"}, true, "unknown command"},
		{"a bad output format is a usage error", []string{"sensors", "-o", "yaml", "--token", token}, true, "-o must be"},
		{"get without an id is a usage error", []string{"findings", "get", "--token", token}, true, "one finding id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(t, tc.args...)
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, cli.ErrUsage) != tc.usage || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q (usage=%v), want %q (usage=%v)", err, errors.Is(err, cli.ErrUsage), tc.want, tc.usage)
			}
		})
	}
}
