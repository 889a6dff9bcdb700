package collector

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

func TestConfigValidateNamesTheBadKey(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		key  string
	}{
		{"an empty config is valid", Config{}, ""},
		{"a ring buffer that is not a power of two is rejected", Config{RingBufferBytes: 3 << 20}, "ring_buffer_bytes"},
		{"a wakeup threshold above the ring buffer is rejected", Config{RingBufferBytes: 1 << 20, WakeupBytes: 2 << 20}, "wakeup_bytes"},
		{"an argv bound beyond the probes' limit is rejected", Config{ArgvBytes: 100000}, "argv_bytes"},
		{"an unknown event kind is rejected", Config{EnabledEvents: []string{"exec", "teleport"}}, "enabled_events"},
		{"a burst without a rate is rejected", Config{RateLimitBurst: 5}, "rate_limit_burst"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.key == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.key != "" && (err == nil || !strings.Contains(err.Error(), tc.key)):
				t.Fatalf("Validate = %v, want an error naming %s", err, tc.key)
			}
		})
	}
}

// TestJSONEncoderMatchesProtojson checks the fast encoder against the
// protobuf JSON mapping: protojson must read back every event unchanged.
func TestJSONEncoderMatchesProtojson(t *testing.T) {
	events := map[string]*vigilv1.Event{}
	d := Decoder{BootTime: testBoot}
	for name, raw := range samples(t) {
		var r Record
		if err := d.Decode(raw, &r); err != nil {
			t.Fatal(err)
		}
		events["the captured sample "+name] = r.Event
	}
	proc := &vigilv1.Process{ExecId: "x", Pid: 7, Args: []string{"sh", "-c", "echo \"hi\"\n\t\\ \x01"}, StartTime: timestamppb.New(time.Unix(1, 500)),
		Lineage: []*vigilv1.Ancestor{{ExecId: "p", Pid: 1, Args: []string{"init"}}}, CapEffective: 1 << 63}
	events["an event with every envelope field and shared context"] = &vigilv1.Event{
		Time: timestamppb.New(time.Unix(1700000000, 123)), Process: proc, Tid: 9, CgroupId: 1 << 40, CgroupPath: "/kubepods/x",
		Result: -2, Errno: "ENOENT", Syscall: "openat", SensorId: "s1",
		Container:  &vigilv1.Container{Id: "abc", Labels: map[string]string{"a": "1", "b\"": "2"}, Privileged: true},
		Kubernetes: &vigilv1.Kubernetes{PodName: "p", PodLabels: map[string]string{"app": "x"}},
		Ecs:        &vigilv1.Ecs{Cluster: "c"},
		Host:       &vigilv1.Host{Hostname: "h"},
		Kind:       &vigilv1.Event_Open{Open: &vigilv1.FileOpen{Path: "/tmp/ü", Flags: 577, Mode: 0o644, Fd: -1, Created: true, Inode: 1, Dev: 2, Fstype: "ext4", RequestedPath: "ü"}},
	}
	events["an event with a repeated and nested body"] = &vigilv1.Event{Process: proc, Kind: &vigilv1.Event_DnsAnswer{DnsAnswer: &vigilv1.DnsAnswer{
		Name: "a.example", Addresses: []string{"1.2.3.4", "::1"}, Server: &vigilv1.SocketAddress{Family: "inet", Ip: "127.0.0.1", Port: 53}}}}
	events["an event with no fields"] = &vigilv1.Event{}
	var enc JSONEncoder
	for name, ev := range events {
		t.Run(name, func(t *testing.T) {
			b := enc.AppendEvent(nil, ev)
			got := &vigilv1.Event{}
			if err := protojson.Unmarshal(b, got); err != nil {
				t.Fatalf("protojson cannot read %s: %v", b, err)
			}
			if !proto.Equal(got, ev) {
				t.Errorf("round trip differs:\n json %s\n  got %v\n want %v", b, got, ev)
			}
		})
	}
	t.Run("invalid UTF-8 in a path becomes U+FFFD", func(t *testing.T) {
		b := enc.AppendEvent(nil, &vigilv1.Event{Kind: &vigilv1.Event_Unlink{Unlink: &vigilv1.FileUnlink{Path: "/tmp/\xff\xfe"}}})
		got := &vigilv1.Event{}
		if err := protojson.Unmarshal(b, got); err != nil {
			t.Fatalf("protojson cannot read %s: %v", b, err)
		}
		if got.GetUnlink().Path != "/tmp/\ufffd\ufffd" {
			t.Errorf("path = %q", got.GetUnlink().Path)
		}
	})
}

// TestMissingTracepointIsSkippedByName attaches a probe group whose
// tracepoint does not exist: the probe is skipped and named, not fatal.
func TestMissingTracepointIsSkippedByName(t *testing.T) {
	cp := startCapture(t, Config{EnabledEvents: []string{"exec", "fork", "exit", "set_id"}})
	c := cp.c
	c.mu.Lock()
	progs := map[string]*ebpfProgram{
		"enter_vigil_no_such_call": c.coll.Programs["enter_setuid"],
		"exit_vigil_no_such_call":  c.coll.Programs["exit_setuid"],
		"enter_chmod":              c.coll.Programs["enter_chmod"],
		"exit_chmod":               c.coll.Programs["exit_chmod"],
	}
	ok, skipped := attachGroup(progs, nil, probeGroup{kind: "test", syscalls: []string{"vigil_no_such_call", "chmod"}})
	c.mu.Unlock()
	for _, a := range ok {
		a.close()
	}
	if len(ok) != 1 || ok[0].name != "chmod" {
		t.Errorf("attached %v, want chmod only", ok)
	}
	if len(skipped) != 1 || skipped[0].Name != "vigil_no_such_call" || !strings.Contains(skipped[0].Reason, "does not exist") {
		t.Fatalf("skipped = %v, want vigil_no_such_call with a reason", skipped)
	}

	// The kernel's own missing tracepoints show in the health report.
	var h vigilv1.SensorHealth
	c.Health(&h)
	if !slices.Contains(h.LoadedProbes, "sched_process_exec") || !slices.Contains(h.LoadedProbes, "setuid") || h.Mode != "ebpf" {
		t.Errorf("loaded probes = %v mode %q", h.LoadedProbes, h.Mode)
	}
	if slices.Contains(h.LoadedProbes, "openat") {
		t.Errorf("openat attached although open is not enabled: %v", h.LoadedProbes)
	}
}

// TestApplyPolicyChangesCaptureLive applies collection policies to a
// running collector: enabling a kind attaches its probes, an ignored binary
// and the rate limit drop events in the kernel, and exits are never rate
// limited.
func TestApplyPolicyChangesCaptureLive(t *testing.T) {
	cp := startCapture(t, Config{EnabledEvents: []string{"exec", "fork", "exit"}})
	dir := t.TempDir()
	unique := fmt.Sprintf("policy-%d-%d", os.Getpid(), time.Now().UnixNano())
	target := filepath.Join(dir, unique)
	if err := os.WriteFile(target, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cat := func(bin string) uint32 {
		cmd := exec.Command(bin, target)
		cmd.Env = testEnv
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", bin, err, out)
		}
		return uint32(cmd.Process.Pid)
	}
	opensOf := func(pid uint32) int {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		n := 0
		for _, ev := range cp.events {
			if ev.Process.GetPid() == pid && ev.GetOpen().GetPath() == target {
				n++
			}
		}
		return n
	}

	ring := newRing(t)
	me := uint32(os.Getpid())
	ringOpen := func() {
		fd, err := ring.Openat(target, os.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
	}

	t.Run("a disabled kind is not captured", func(t *testing.T) {
		ringOpen() // through an io_uring: the completion probe is always attached
		pid := cat("/bin/cat")
		cp.waitFor(t, "exit of cat", func(ev *vigilv1.Event) bool { return ev.GetExit() != nil && ev.Process.Pid == pid })
		if n := opensOf(pid) + opensOf(me); n != 0 {
			t.Errorf("%d open events while open is disabled", n)
		}
	})
	t.Run("enabling a kind attaches its probes", func(t *testing.T) {
		if err := cp.c.ApplyPolicy(&vigilv1.CollectionPolicy{Version: "1", EnabledEvents: []string{"exec", "fork", "exit", "open"}}); err != nil {
			t.Fatal(err)
		}
		var h vigilv1.SensorHealth
		cp.c.Health(&h)
		for _, p := range []string{"openat", "io_uring_complete", "io_uring_submit_req"} {
			if !slices.Contains(h.LoadedProbes, p) {
				t.Fatalf("%s not attached: %v", p, h.LoadedProbes)
			}
		}
		pid := cat("/bin/cat")
		cp.waitFor(t, "open by cat", func(ev *vigilv1.Event) bool { return ev.Process.GetPid() == pid && ev.GetOpen().GetPath() == target })
		ringOpen()
		cp.waitFor(t, "open through an io_uring", func(ev *vigilv1.Event) bool {
			return ev.IoUring && ev.Process.GetPid() == me && ev.GetOpen().GetPath() == target
		})
	})
	t.Run("an ignored binary's events are dropped in the kernel", func(t *testing.T) {
		ignored := filepath.Join(dir, "ignored-cat")
		data, err := os.ReadFile("/bin/cat")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(ignored, data, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := cp.c.ApplyPolicy(&vigilv1.CollectionPolicy{Version: "2", EnabledEvents: []string{"exec", "fork", "exit", "open", "a-kind-from-the-future"}, IgnoredBinaries: []string{ignored}}); err != nil {
			t.Fatal(err)
		}
		pid := cat(ignored)
		other := cat("/bin/cat") // after it, so its events show the ignored ones had time to arrive
		cp.waitFor(t, "open by the other cat", func(ev *vigilv1.Event) bool { return ev.Process.GetPid() == other && ev.GetOpen().GetPath() == target })
		if n := opensOf(pid); n != 0 {
			t.Errorf("%d open events from the ignored binary", n)
		}
	})
	t.Run("the rate limit drops a flood but never the exit", func(t *testing.T) {
		if err := cp.c.ApplyPolicy(&vigilv1.CollectionPolicy{Version: "3", RateLimitPerSecond: 5, RateLimitBurst: 5}); err != nil { // all kinds
			t.Fatal(err)
		}
		cmd := exec.Command("/bin/sh", "-c", `i=0; while [ $i -lt 300 ]; do read x < "$0"; i=$((i+1)); done`, target)
		cmd.Env = testEnv
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("flood: %v %s", err, out)
		}
		pid := uint32(cmd.Process.Pid)
		cp.waitFor(t, "exit of the flooding shell", func(ev *vigilv1.Event) bool { return ev.GetExit() != nil && ev.Process.Pid == pid })
		cp.mu.Lock()
		n := 0
		for _, ev := range cp.events {
			if ev.Process.GetPid() == pid && ev.GetExit() == nil && ev.GetFork() == nil {
				n++
			}
		}
		cp.mu.Unlock()
		if n == 0 || n > 50 {
			t.Errorf("%d events of a shell making 300 opens captured under a 5/s limit", n)
		}
		var h vigilv1.SensorHealth
		cp.c.Health(&h)
		if h.RateLimited < 250 {
			t.Errorf("rate_limited = %d, want the dropped opens counted", h.RateLimited)
		}
	})
}

type ebpfProgram = ebpf.Program
