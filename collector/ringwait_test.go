package collector

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/vigilsec/vigil/internal/testutil"
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
			if c.write || c.closeIt {
				go func() {
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
