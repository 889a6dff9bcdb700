package collector

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/vigilsec/vigil/internal/testutil"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// ringWithWriter returns a ring buffer map and a program that writes one
// 8-byte record into it, waking readers or not, as the probes' submit does.
func ringWithWriter(t *testing.T, wake bool) (*ebpf.Map, *ebpf.Program) {
	t.Helper()
	testutil.RequirePrivileged(t)
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 4096})
	if err != nil {
		t.Fatalf("ring buffer map: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	flags := int32(1) // BPF_RB_NO_WAKEUP
	if wake {
		flags = 2 // BPF_RB_FORCE_WAKEUP
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.SocketFilter,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, 7),
			asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -8),
			asm.Mov.Imm(asm.R3, 8),
			asm.Mov.Imm(asm.R4, flags),
			asm.FnRingbufOutput.Call(),
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		},
	})
	if err != nil {
		t.Fatalf("writer program: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	return m, prog
}

func TestRingWaiter(t *testing.T) {
	const poll = 300 * time.Millisecond
	never := func() bool { return false }
	cases := []struct {
		name    string
		wake    bool
		write   bool
		ready   func() bool
		closeIt bool
		min     time.Duration
		max     time.Duration
		err     error
	}{
		{name: "with nothing written the wait lasts the poll interval", ready: never, min: poll - 20*time.Millisecond, max: 5 * poll},
		{name: "a record submitted without a wakeup does not end the wait", write: true, ready: never, min: poll - 20*time.Millisecond, max: 5 * poll},
		{name: "a record submitted with a wakeup ends the wait early", write: true, wake: true, ready: never, max: poll / 2},
		{name: "enough pending data ends the wait at once", ready: func() bool { return true }, max: poll / 2},
		{name: "closing the waiter ends the wait with ErrClosed", ready: never, closeIt: true, max: poll / 2, err: os.ErrClosed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, prog := ringWithWriter(t, c.wake)
			w, err := newRingWaiter(m)
			if err != nil {
				t.Fatalf("newRingWaiter: %v", err)
			}
			defer w.Close()
			acted := make(chan struct{})
			defer func() { <-acted }()
			if !c.write && !c.closeIt {
				close(acted)
			} else {
				go func() {
					defer close(acted)
					time.Sleep(50 * time.Millisecond)
					if c.closeIt {
						w.Close()
						return
					}
					if _, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 14)}); err != nil {
						t.Errorf("run writer: %v", err)
					}
				}()
			}
			start := time.Now()
			err = w.wait(poll, c.ready)
			took := time.Since(start)
			if c.err == nil && err != nil || c.err != nil && !errors.Is(err, c.err) {
				t.Fatalf("wait = %v, want %v", err, c.err)
			}
			if took < c.min || took > c.max {
				t.Errorf("wait took %v, want between %v and %v", took, c.min, c.max)
			}
		})
	}
}

// TestReaderDeliversAndStopsWithAndWithoutAWaiter runs the real probes
// with the reader waiting in the network poller and, as on a runtime that
// cannot poll the ring buffer, blocking in it: both deliver an exec and
// stop promptly when their context ends.
func TestReaderDeliversAndStopsWithAndWithoutAWaiter(t *testing.T) {
	testutil.RequirePrivileged(t)
	cases := []struct {
		name     string
		blocking bool
	}{
		{"the reader waiting in the network poller delivers and stops", false},
		{"the reader blocking in the ring buffer delivers and stops", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Config{EnabledEvents: []string{"exec", "fork", "exit"}, IncludeSelf: true}, nil, nil)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			c.blockingReader = tc.blocking
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := make(chan *vigilv1.Event, 4096)
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx, out) }()
			deadline := time.Now().Add(30 * time.Second)
			for live, _ := c.procs.Len(); live == 0; live, _ = c.procs.Len() {
				if time.Now().After(deadline) {
					t.Fatal("collector did not start within 30s")
				}
				time.Sleep(20 * time.Millisecond)
			}
			cmd := exec.Command("/bin/true")
			if err := cmd.Run(); err != nil {
				t.Fatal(err)
			}
			pid := uint32(cmd.Process.Pid)
			timeout := time.After(10 * time.Second)
		wait:
			for {
				select {
				case ev := <-out:
					if ev.GetExec() != nil && ev.Process.GetPid() == pid {
						break wait
					}
				case <-timeout:
					t.Fatal("no exec event within 10s")
				}
			}
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
				if took := time.Since(start); took > 2*time.Second {
					t.Errorf("Run took %v to stop", took)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not stop within 10s of its context ending")
			}
		})
	}
}
