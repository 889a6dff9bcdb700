package detect

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

const dropExecRule = `
- sequence: New binary executed in a container
  desc: a file written in a container is then executed
  by: container
  within: 10m
  steps:
    - name: write
      condition: evt.type in (open, openat, openat2) and evt.is_open_write = true
      capture: {file: fd.name}
    - name: exec
      condition: evt.type in (execve, execveat) and proc.exepath = $file
  output: "%proc.exepath was written and executed (file=$file)"
  priority: CRITICAL
  finding:
    type: Execution:Runtime/NewBinaryExecuted
    severity: 8
    tactics: [TA0002]
    techniques: [T1105]
    context: {filePath: $file}
`

func inCtr(id string) evOpt {
	return func(e *vigilv1.Event) { e.Container = &vigilv1.Container{Id: id, Image: "alpine"} }
}

func TestSequence(t *testing.T) {
	writer := mkProc("curl", "/usr/bin/curl")
	write := func(path, ctr string, d time.Duration) *vigilv1.Event {
		return openEv(writer, path, oWronly|0o100, inCtr(ctr), at(d))
	}
	run := func(path, ctr string, d time.Duration) *vigilv1.Event {
		return execEv(mkProc("payload", path), inCtr(ctr), at(d))
	}
	cases := []struct {
		name   string
		events []*vigilv1.Event
		fires  int
	}{
		{"the steps in order within the window fire once", []*vigilv1.Event{
			write("/tmp/x", "c1", 0), run("/tmp/x", "c1", time.Minute), run("/tmp/x", "c1", 2*time.Minute)}, 1},
		{"the steps outside the window do not fire", []*vigilv1.Event{
			write("/tmp/x", "c1", 0), run("/tmp/x", "c1", 11*time.Minute)}, 0},
		{"the steps in the wrong order do not fire", []*vigilv1.Event{
			run("/tmp/x", "c1", 0), write("/tmp/x", "c1", time.Minute)}, 0},
		{"the steps under different keys do not fire", []*vigilv1.Event{
			write("/tmp/x", "c1", 0), run("/tmp/x", "c2", time.Minute)}, 0},
		{"a different file than the captured one does not fire", []*vigilv1.Event{
			write("/tmp/x", "c1", 0), run("/tmp/y", "c1", time.Minute)}, 0},
		{"two files written then both executed fire twice", []*vigilv1.Event{
			write("/tmp/x", "c1", 0), write("/tmp/y", "c1", time.Second),
			run("/tmp/y", "c1", time.Minute), run("/tmp/x", "c1", time.Minute)}, 2},
		{"a rewrite of the same file restarts the window and still fires once", []*vigilv1.Event{
			write("/tmp/x", "c1", 0), write("/tmp/x", "c1", 9*time.Minute), run("/tmp/x", "c1", 15*time.Minute),
			run("/tmp/x", "c1", 16*time.Minute)}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := engineFor(t, dropExecRule)
			as := fired(e, tc.events...)
			if len(as) != tc.fires {
				t.Fatalf("got %d alerts, want %d", len(as), tc.fires)
			}
		})
	}
}

func TestSequenceEvidence(t *testing.T) {
	e := engineFor(t, dropExecRule)
	w := openEv(mkProc("curl", "/usr/bin/curl"), "/tmp/x", oWronly, inCtr("c1"), at(0))
	x := execEv(mkProc("payload", "/tmp/x"), inCtr("c1"), at(time.Minute))
	as := fired(e, w, x)
	if len(as) != 1 {
		t.Fatalf("got %d alerts", len(as))
	}
	a := as[0]
	if len(a.Events) != 2 || a.Events[0] != w || a.Events[1] != x {
		t.Fatalf("evidence must be every step's event, oldest first: %v", a.Events)
	}
	if a.Captures["file"] != "/tmp/x" || a.Context["filePath"] != "/tmp/x" {
		t.Fatalf("captures %v context %v", a.Captures, a.Context)
	}
	if a.Output != "/tmp/x was written and executed (file=/tmp/x)" {
		t.Fatalf("output %q", a.Output)
	}
	if a.Rule.Kind != "sequence" || a.Rule.FindingType != "Execution:Runtime/NewBinaryExecuted" || !a.Time.Equal(t0.Add(time.Minute)) {
		t.Fatalf("rule info %+v time %v", a.Rule, a.Time)
	}
}

func TestSequenceReverseShellByProcess(t *testing.T) {
	e := engineFor(t, `
- sequence: Reverse shell
  desc: connect, dup the socket onto stdio, exec a shell
  by: process
  within: 1m
  steps:
    - name: connect
      condition: evt.type = connect and fd.typechar in (4, 6)
      capture: {remote: fd.sip}
    - name: dup
      condition: evt.type in (dup, dup2, dup3) and evt.rawres in (0, 1) and fd.sip = $remote
    - name: shell
      condition: evt.type = execve and proc.name in (sh, bash)
  output: "reverse shell to $remote by %proc.name"
  priority: CRITICAL
`)
	p := mkProc("python3", "/usr/bin/python3")
	other := mkProc("python3", "/usr/bin/python3")
	other.ExecId = "other"
	conn := connectEv(p, "203.0.113.7", 4444, at(0))
	dup := mk(p, "dup2", result(0, ""), at(time.Second))
	dup.Kind = &vigilv1.Event_Dup{Dup: &vigilv1.Dup{OldFd: 3, NewFd: 0, OldFdKind: "socket",
		Remote: &vigilv1.SocketAddress{Family: "inet", Ip: "203.0.113.7", Port: 4444}}}
	sh := mkProc("sh", "/bin/sh")
	sh.ExecId = p.ExecId // exec keeps the process (same exec_id chain in our table)
	shell := execEv(sh, at(2*time.Second))
	otherShell := execEv(other, at(2*time.Second))
	otherShell.Process.Comm = "sh"

	if as := fired(e, conn, dup, otherShell); len(as) != 0 {
		t.Fatalf("a shell in another process fired: %v", ruleNames(as))
	}
	as := fired(e, shell)
	if len(as) != 1 || len(as[0].Events) != 3 || as[0].Output != "reverse shell to 203.0.113.7 by sh" {
		t.Fatalf("got %d alerts %+v", len(as), as)
	}
}

func TestSequenceProcessTree(t *testing.T) {
	e := engineFor(t, `
- sequence: Download then run below one process
  desc: d
  by: process_tree
  within: 5m
  steps:
    - condition: evt.type = connect
    - condition: evt.type = execve and proc.name = chmod
  output: o
  priority: WARNING
`)
	parent := mkProc("bash", "/bin/bash")
	child := withParents(mkProc("chmod", "/bin/chmod"), "bash")
	child.Lineage[0].ExecId = parent.ExecId
	stranger := mkProc("chmod", "/bin/chmod")
	stranger.ExecId = "stranger"
	if n := len(fired(e, connectEv(parent, "203.0.113.1", 80), execEv(stranger, at(time.Second)))); n != 0 {
		t.Fatalf("a process outside the tree fired %d", n)
	}
	if n := len(fired(e, execEv(child, at(2*time.Second)))); n != 1 {
		t.Fatalf("a descendant did not fire (%d)", n)
	}
}

// scanExecRule is dropExecRule with a second step no lookup can serve
// (endswith), so its partial matches are kept per key and scanned.
var scanExecRule = strings.Replace(dropExecRule, "proc.exepath = $file", "proc.exepath endswith $file", 1)

func TestSequenceStateBounds(t *testing.T) {
	reg := prometheus.NewRegistry()
	rs, _ := loadYAML(t, scanExecRule)
	e := NewEngine(EngineConfig{MaxSequenceKeys: 2, MaxPartialsPerKey: 2}, nil, reg)
	e.SetRules(rs)
	w := mkProc("curl", "/usr/bin/curl")
	// Three containers: the first is evicted.
	fired(e, openEv(w, "/a", oWronly, inCtr("c1")), openEv(w, "/a", oWronly, inCtr("c2")), openEv(w, "/a", oWronly, inCtr("c3")))
	// Three files in one container: the oldest partial is evicted.
	fired(e, openEv(w, "/b1", oWronly, inCtr("c3")), openEv(w, "/b2", oWronly, inCtr("c3")))
	if got := metricValue(t, e.m.seqEvictions); got != 2 {
		t.Fatalf("evictions = %v, want 2", got)
	}
	if n := len(fired(e, execEv(mkProc("a", "/a"), inCtr("c1")))); n != 0 {
		t.Fatal("an evicted key still fired")
	}
	if n := len(fired(e, execEv(mkProc("a", "/b2"), inCtr("c3")))); n != 1 {
		t.Fatal("a kept partial did not fire")
	}
}

func TestSequenceStateSurvivesReload(t *testing.T) {
	e := engineFor(t, dropExecRule)
	fired(e, openEv(mkProc("curl", "/usr/bin/curl"), "/tmp/x", oWronly, inCtr("c1")))
	// Reload the same rule plus another: the partial match is kept.
	rs, _ := loadYAML(t, dropExecRule+"\n- rule: other\n  desc: d\n  condition: evt.type = bind\n  output: o\n  priority: INFO\n")
	e.SetRules(rs)
	if n := len(fired(e, execEv(mkProc("x", "/tmp/x"), inCtr("c1"), at(time.Minute)))); n != 1 {
		t.Fatalf("partial match lost across an unchanged reload (%d alerts)", n)
	}
	// A changed sequence starts from scratch.
	fired(e, openEv(mkProc("curl", "/usr/bin/curl"), "/tmp/y", oWronly, inCtr("c1")))
	rs2, _ := loadYAML(t, replaceOnce(dropExecRule, "within: 10m", "within: 20m"))
	e.SetRules(rs2)
	if n := len(fired(e, execEv(mkProc("y", "/tmp/y"), inCtr("c1"), at(time.Minute)))); n != 0 {
		t.Fatal("state of a changed rule was kept")
	}
}

func replaceOnce(s, old, repl string) string {
	for i := 0; i+len(old) <= len(s); i++ {
		if s[i:i+len(old)] == old {
			return s[:i] + repl + s[i+len(old):]
		}
	}
	return s
}

func TestSequenceErrors(t *testing.T) {
	cases := []struct{ name, rule, want string }{
		{"a capture used before it is made", `
- sequence: s
  by: process
  within: 1m
  steps:
    - condition: proc.name = $x
    - condition: proc.name = a
      capture: {x: proc.name}
  output: o
  priority: INFO`, "not captured by an earlier step"},
		{"one step is not a sequence", `
- sequence: s
  by: process
  within: 1m
  steps:
    - condition: proc.name = a
  output: o
  priority: INFO`, "at least two steps"},
		{"a bad window", `
- sequence: s
  by: process
  within: soon
  steps:
    - condition: proc.name = a
    - condition: proc.name = b
  output: o
  priority: INFO`, "within must be a positive duration"},
		{"an unknown key", `
- sequence: s
  by: nosuch
  within: 1m
  steps:
    - condition: proc.name = a
    - condition: proc.name = b
  output: o
  priority: INFO`, "use a field or one of process"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := LoadRules(mapFS("s.yaml", tc.rule), "")
			if !HasErrors(errs) || !containsReason(errs, tc.want) {
				t.Fatalf("errors %v, want %q", errs, tc.want)
			}
		})
	}
}

func containsReason(errs []LoadError, want string) bool {
	for _, e := range errs {
		if !e.Warning && contains(e.Error(), want) {
			return true
		}
	}
	return false
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// metricValue reads a counter or gauge.
func metricValue(t testing.TB, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

func TestSequenceSweepsExpiredPartials(t *testing.T) {
	reg := prometheus.NewRegistry()
	rs, _ := loadYAML(t, scanExecRule)
	e := NewEngine(EngineConfig{}, nil, reg)
	e.SetRules(rs)
	w := mkProc("curl", "/usr/bin/curl")
	// Partial matches in many containers that never see another event.
	for i := 0; i < 100; i++ {
		fired(e, openEv(w, "/a", oWronly, inCtr(fmt.Sprintf("idle-%d", i)), at(0)))
	}
	st := e.active.Load().states[0].(*sequenceState)
	if st.keys.len() != 100 {
		t.Fatalf("keys = %d", st.keys.len())
	}
	// Activity elsewhere, an hour later, eventually sweeps them.
	for i := 0; i < sweepEvery+1; i++ {
		fired(e, openEv(w, "/b", oWronly, inCtr("busy"), at(time.Hour)))
	}
	if st.keys.len() != 1 {
		t.Fatalf("keys after the sweep = %d, want 1", st.keys.len())
	}
	if got := metricValue(t, e.m.seqExpired); got != 100 {
		t.Fatalf("expired = %v", got)
	}
}

func TestSequenceCaptureInMacro(t *testing.T) {
	e := engineFor(t, `
- macro: runs_the_written_file
  condition: evt.type = execve and proc.exepath = $file
- sequence: s
  by: host
  within: 1m
  steps:
    - condition: evt.type = openat and evt.is_open_write = true
      capture: {file: fd.name}
    - condition: runs_the_written_file
  output: o
  priority: INFO
`)
	w := openEv(mkProc("curl", "/usr/bin/curl"), "/tmp/x", oWronly)
	if n := len(fired(e, w, execEv(mkProc("y", "/tmp/y")), execEv(mkProc("x", "/tmp/x")))); n != 1 {
		t.Fatalf("got %d alerts, want 1", n)
	}
}

func TestEmitMayReenterTheEngine(t *testing.T) {
	// emit runs outside the engine's locks: an alert handler that feeds
	// another event back in must not deadlock.
	e := engineFor(t, dropExecRule)
	fired(e, openEv(mkProc("curl", "/usr/bin/curl"), "/tmp/x", oWronly, inCtr("c1")))
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Process(execEv(mkProc("x", "/tmp/x"), inCtr("c1"), at(time.Second)), func(*Alert) {
			e.Process(openEv(mkProc("curl", "/usr/bin/curl"), "/tmp/z", oWronly, inCtr("c1")), func(*Alert) {})
		})
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("re-entrant emit deadlocked")
	}
}

func TestSequenceIndexedOnlyWhereALookupIsExact(t *testing.T) {
	for _, c := range []struct {
		name, second string
		capture      string
	}{
		{"one equality", "proc.exepath = $file", "file"},
		{"equality among other conjuncts", "evt.type = execve and proc.name != sh and proc.exepath = $file", "file"},
		{"every branch of an or compares the capture", "proc.exepath = $file or evt.arg.filename = $file or proc.argv[1] = $file", "file"},
		{"a branch without the capture", "proc.exepath = $file or proc.name = sh", ""},
		{"a branch comparing another way", "proc.exepath = $file or proc.args contains $file", ""},
		{"a negated equality", "not proc.exepath = $file", ""},
		{"a number compares by value", "proc.pid = $file", ""},
		{"a transformed field", "tolower(proc.exepath) = $file", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			rs, _ := loadYAML(t, strings.Replace(dropExecRule, "evt.type in (execve, execveat) and proc.exepath = $file", c.second, 1))
			var idx *captureIndex
			for _, r := range rs.rules {
				if r.seq != nil {
					idx = r.seq.index
				}
			}
			switch {
			case c.capture == "" && idx != nil:
				t.Errorf("indexed by $%s", idx.capture)
			case c.capture != "" && (idx == nil || idx.capture != c.capture):
				t.Errorf("index %v, want by $%s", idx, c.capture)
			}
		})
	}
}

func TestSequenceIndexedSurvivesADecoyFlood(t *testing.T) {
	e := engineFor(t, dropExecRule)
	w := mkProc("curl", "/usr/bin/curl")
	evs := []*vigilv1.Event{openEv(w, "/tmp/payload", oWronly, inCtr("c1"))}
	// Far more decoys than MaxPartialsPerKey, before the payload runs.
	for i := range 500 {
		evs = append(evs, openEv(w, fmt.Sprintf("/tmp/decoy-%d", i), oWronly, inCtr("c1"), at(time.Millisecond)))
	}
	if n := len(fired(e, evs...)); n != 0 {
		t.Fatalf("writes alone fired %d", n)
	}
	got := fired(e, execEv(mkProc("payload", "/tmp/payload"), inCtr("c1"), at(time.Second)))
	if len(got) != 1 || got[0].Captures["file"] != "/tmp/payload" || len(got[0].Events) != 2 {
		t.Fatalf("the payload's exec after 500 decoys fired %v", got)
	}
	// The same file in another container is another key.
	if n := len(fired(e, execEv(mkProc("decoy-1", "/tmp/decoy-1"), inCtr("c2"), at(time.Second)))); n != 0 {
		t.Fatal("a write in one container matched an exec in another")
	}
	// A partial match fires once.
	if n := len(fired(e, execEv(mkProc("payload", "/tmp/payload"), inCtr("c1"), at(2*time.Second)))); n != 0 {
		t.Fatal("the completed partial match fired again")
	}
}

func TestSequenceIndexedBoundsAndExpiry(t *testing.T) {
	reg := prometheus.NewRegistry()
	rs, _ := loadYAML(t, dropExecRule)
	e := NewEngine(EngineConfig{MaxIndexedPartials: 3}, nil, reg)
	e.SetRules(rs)
	w := mkProc("curl", "/usr/bin/curl")
	// Four files: the least recently seen, /a, is evicted; /b written again
	// is refreshed, so /c goes next.
	fired(e, openEv(w, "/a", oWronly, inCtr("c1")), openEv(w, "/b", oWronly, inCtr("c1")),
		openEv(w, "/c", oWronly, inCtr("c1")), openEv(w, "/d", oWronly, inCtr("c1")))
	fired(e, openEv(w, "/b", oWronly, inCtr("c1")), openEv(w, "/e", oWronly, inCtr("c1")))
	if got := metricValue(t, e.m.seqEvictions); got != 2 {
		t.Fatalf("evictions = %v, want 2", got)
	}
	for _, c := range []struct {
		file string
		want int
	}{{"/a", 0}, {"/c", 0}, {"/b", 1}, {"/d", 1}} {
		if n := len(fired(e, execEv(mkProc("x", c.file), inCtr("c1"), at(time.Second)))); n != c.want {
			t.Errorf("exec of %s fired %d, want %d", c.file, n, c.want)
		}
	}
	// Outside the window nothing fires, and the partial match is gone.
	if n := len(fired(e, execEv(mkProc("x", "/e"), inCtr("c1"), at(time.Hour)))); n != 0 {
		t.Fatal("an expired partial match fired")
	}
	st := e.active.Load().states[0].(*indexedSequenceState)
	if st.parts.len() != 0 {
		t.Fatalf("partial matches left: %d", st.parts.len())
	}
}
