package findings_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilsec/vigil/detect"
	"github.com/vigilsec/vigil/findings"
	"github.com/vigilsec/vigil/findings/export"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// engineRules are two rules of different tactics, in the Falco syntax the
// detection engine loads.
const engineRules = `
- rule: Shell with socket stdio
  desc: A shell whose standard input and output are a network socket.
  condition: evt.type = execve and proc.name in (bash, sh, b4sh) and proc.args contains "-i"
  output: "reverse shell %proc.exepath (parent=%proc.pname)"
  priority: WARNING
  finding: {type: "Execution:Runtime/ReverseShell", severity: 8, tactics: [TA0002], techniques: [T1059.004]}
- rule: Docker socket from a container
  desc: A container process connects to the Docker socket.
  condition: evt.type = connect and container.id != "" and fd.name contains "docker.sock"
  output: "docker socket %fd.name by %proc.name"
  priority: WARNING
  finding: {type: "PrivilegeEscalation:Runtime/DockerSocketAccessed", severity: 5, tactics: [TA0004], techniques: [T1611]}
`

// TestPipelineWithDetectionEngine runs sensor batches through the real
// detection engine, the SQLite store and the webhook exporter: two rules of
// different tactics on one container make an attack sequence, and every
// new or updated finding reaches the webhook in Falco's format.
func TestPipelineWithDetectionEngine(t *testing.T) {
	ctx := context.Background()
	rs, errs := detect.LoadRules(fstest.MapFS{"rules.yaml": {Data: []byte(engineRules)}}, "")
	if detect.HasErrors(errs) {
		t.Fatalf("rules: %v", errs)
	}
	engine := detect.NewEngine(detect.EngineConfig{}, nil, nil)
	engine.SetRules(rs)

	var mu sync.Mutex
	posted := map[string]int{} // finding type -> posts
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev export.FalcoEvent
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		posted[ev.OutputFields["vigil.finding.type"].(string)]++
		mu.Unlock()
	}))
	defer hook.Close()
	wh, err := export.NewWebhook(export.WebhookConfig{URL: hook.URL})
	if err != nil {
		t.Fatal(err)
	}
	disp := export.NewDispatcher(export.Config{InitialBackoff: time.Millisecond}, []export.Exporter{wh}, nil, nil)
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	go disp.Run(dctx)

	store, err := findings.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "vigil.db"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	p := findings.NewPipeline(store, engine, disp, nil, nil)
	host := &vigilv1.Host{Hostname: "node-1", BootId: "boot-1"}
	if err := p.RecordHealth(ctx, &vigilv1.Hello{SensorId: "s1", BootId: "boot-1", Host: host}, nil); err != nil {
		t.Fatal(err)
	}
	container := &vigilv1.Container{Id: "4f1c0c4e8a9b4f1c0c4e8a9b4f1c0c4e8a9b4f1c0c4e8a9b4f1c0c4e8a9b4f1c", Name: "web", Image: "nginx:1.27", Runtime: "containerd"}
	now := time.Now()
	shell := &vigilv1.Event{Time: timestamppb.New(now), Syscall: "execve", Container: container,
		Process: &vigilv1.Process{ExecId: "e1", Pid: 10, Comm: "b4sh", ExePath: "/tmp/b4sh", Args: []string{"b4sh", "-i"},
			Lineage: []*vigilv1.Ancestor{{ExecId: "e0", Comm: "nginx", ExePath: "/usr/sbin/nginx"}}},
		Kind: &vigilv1.Event_Exec{Exec: &vigilv1.Exec{Filename: "/tmp/b4sh"}}}
	sock := &vigilv1.Event{Time: timestamppb.New(now.Add(time.Minute)), Syscall: "connect", Container: container,
		Process: &vigilv1.Process{ExecId: "e2", Pid: 11, Comm: "nc", ExePath: "/usr/bin/nc", Args: []string{"nc", "-U", "/var/run/docker.sock"}},
		Kind:    &vigilv1.Event_Connect{Connect: &vigilv1.Connect{Protocol: "unix", Remote: &vigilv1.SocketAddress{Family: "unix", Path: "/var/run/docker.sock"}}}}
	batches := []*vigilv1.Batch{
		{SensorId: "s1", BootId: "boot-1", Sequence: 1, Events: []*vigilv1.Event{shell}},
		{SensorId: "s1", BootId: "boot-1", Sequence: 2, Events: []*vigilv1.Event{sock}},
	}
	for _, b := range batches {
		if _, err := p.Ingest(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	// A replay changes nothing.
	if dup, err := p.Ingest(ctx, batches[1]); err != nil || !dup {
		t.Fatalf("replay: dup %v err %v", dup, err)
	}
	all, _, err := store.ListFindings(ctx, findings.Query{})
	if err != nil {
		t.Fatal(err)
	}
	byType := map[string]*vigilv1.Finding{}
	for _, f := range all {
		byType[f.Type] = f
	}
	seq := byType[findings.AttackSequenceWorkload]
	sockF := byType["PrivilegeEscalation:Runtime/DockerSocketAccessed"]
	checks := []struct {
		name string
		ok   bool
	}{
		{"the reverse shell became a finding", byType["Execution:Runtime/ReverseShell"] != nil},
		{"the docker socket access became a finding with its socket path", sockF.GetService().GetRuntimeDetails().GetContext().GetSocketPath() == "/var/run/docker.sock"},
		{"the findings carry the container and host", sockF.GetResource().GetContainerDetails().GetName() == "web" && sockF.GetResource().GetHostname() == "node-1"},
		{"the two tactics on one container made a Critical attack sequence", seq.GetSeverityLabel() == "Critical" && len(seq.GetEvidence().GetRelatedFindingIds()) == 2},
		{"the members name their sequence", sockF.GetAttackSequenceId() != "" && sockF.GetAttackSequenceId() == seq.GetId()},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !c.ok {
				t.Errorf("not so; findings: %d", len(all))
			}
		})
	}
	t.Run("every finding reached the webhook", func(t *testing.T) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			n := len(posted)
			mu.Unlock()
			if n == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("webhook got %v, want the three finding types", posted)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}
