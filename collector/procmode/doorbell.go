package procmode

import (
	"os"
	"sync/atomic"
	"syscall"
)

// doorbell lets other goroutines wake the tracer while it blocks in wait4.
// wait4 returns only for a tracee or a child of the waiting thread, and the
// runtime restarts it after any signal, so the doorbell is such a child: a
// copy of the sensor's own executable started with PTRACE_TRACEME, which
// stops before its first instruction and stays stopped. Ringing kills it;
// its death ends the wait, and the tracer starts a new one. It never runs:
// it dies with the tracer thread (Pdeathsig), and the kernel would kill it
// rather than let it run if that thread died (it is a child of the thread).
//
// Blocking in wait4 wakes the tracer straight from the kernel; the
// alternative, SIGCHLD forwarded by the runtime to a channel, costs two
// more thread hops per ptrace stop.
type doorbell struct {
	// proc is the current doorbell, nil between one's death and the next
	// one's start. Signal goes through a pidfd, so a ring that arrives
	// late cannot hit a process that reused the pid.
	proc atomic.Pointer[os.Process]
	// pid is proc's pid, for the tracer thread's own use.
	pid int
}

// start starts a doorbell. It must run on the tracer thread, so that the
// doorbell is that thread's child.
func (d *doorbell) start() error {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()
	p, err := os.StartProcess("/proc/self/exe", []string{"vigil-tracer-doorbell"}, &os.ProcAttr{
		Dir:   "/",
		Env:   []string{},
		Files: []*os.File{devnull, devnull, devnull},
		Sys:   &syscall.SysProcAttr{Ptrace: true, Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		return err
	}
	d.pid = p.Pid
	d.proc.Store(p)
	return nil
}

// ring wakes the tracer. Any goroutine may call it; a ring while no
// doorbell exists is lost, which is why the tracer looks at its channels
// after starting a new doorbell and before it blocks.
func (d *doorbell) ring() {
	if p := d.proc.Load(); p != nil {
		_ = p.Signal(os.Kill)
	}
}

// gone records the doorbell's death, reaped by the tracer's wait.
func (d *doorbell) gone() {
	if p := d.proc.Swap(nil); p != nil {
		p.Release()
	}
	d.pid = 0
}

// stop kills and reaps the doorbell (on the tracer thread).
func (d *doorbell) stop() {
	if d.pid == 0 {
		return
	}
	pid := d.pid
	d.ring()
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, syscall.WALL, nil)
		if err != syscall.EINTR {
			break
		}
	}
	d.gone()
}
