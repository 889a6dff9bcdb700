package collector

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ringWaiter parks the reader until the probes wake the ring buffer or the
// poll interval passes, in Go's network poller. The ring buffer reader's own
// wait is a blocking epoll_wait: a goroutine in it holds its P in a system
// call, so the runtime's sysmon thread never sleeps deeply, and every time
// that call lasts the 10 ms after which sysmon retakes the P, sysmon drops
// back to polling every 20 µs: thousands of wakeups a second, each one
// taking a core from the traced workload. Parked in the network poller, the
// reader holds nothing and an idle sensor is idle.
type ringWaiter struct {
	f      *os.File
	rc     syscall.RawConn
	closed atomic.Bool
}

// newRingWaiter watches the ring buffer map m through a duplicate of its
// file descriptor registered with the network poller. It fails when the
// runtime cannot poll it (the caller then blocks in the reader as before).
func newRingWaiter(m *ebpf.Map) (*ringWaiter, error) {
	fd, err := unix.FcntlInt(uintptr(m.FD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup ring buffer fd: %w", err)
	}
	// O_NONBLOCK is what makes os.NewFile register the descriptor with the
	// poller; map operations (bpf(2), mmap) ignore it.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ring buffer fd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "ringbuf")
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("ring buffer fd is not pollable: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("ring buffer fd: %w", err)
	}
	return &ringWaiter{f: f, rc: rc}, nil
}

// wait returns when the ring buffer is woken (the probes wake it when
// WakeupBytes become pending), when d has passed, or at once when ready
// says there is enough to read: a wakeup that came before the poller was
// armed is not seen again. It returns os.ErrClosed once Close was called.
func (w *ringWaiter) wait(d time.Duration, ready func() bool) error {
	if err := w.f.SetReadDeadline(time.Now().Add(d)); err != nil {
		if w.closed.Load() {
			return os.ErrClosed
		}
		return err
	}
	armed := false
	err := w.rc.Read(func(uintptr) bool {
		if armed {
			return true // woken
		}
		armed = true
		return ready()
	})
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil
	case err != nil && w.closed.Load():
		return os.ErrClosed
	}
	return err
}

// Close releases the descriptor and ends a wait in progress.
func (w *ringWaiter) Close() error {
	w.closed.Store(true)
	return w.f.Close()
}
