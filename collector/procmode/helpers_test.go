package procmode

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/testutil/uring"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// Helper processes: the test binary re-executes itself with
// VIGIL_PROCMODE_HELPER set to do what a shell cannot (exec from a
// secondary thread, a TCP connection held open, a reverse shell).
func TestMain(m *testing.M) {
	switch os.Getenv("VIGIL_PROCMODE_HELPER") {
	case "":
		os.Exit(m.Run())
	case "thread-exec":
		helperThreadExec()
	case "threads-wait-exec":
		helperThreadsWaitExec(os.Args[1])
	case "spawn":
		helperSpawn()
	case "unix-pair":
		helperUnixPair(os.Args[1])
	case "tcp-pair":
		helperTCPPair()
	case "revshell":
		helperReverseShell(os.Args[1])
	case "uring":
		helperURing()
	default:
		fmt.Fprintln(os.Stderr, "unknown helper")
	}
	os.Exit(2)
}

// helperThreadExec execs /bin/echo from a thread that is not the thread
// group leader, so the kernel gives the exec'ing thread the leader's tid.
func helperThreadExec() {
	pid := unix.Getpid()
	done := make(chan struct{})
	var try func()
	try = func() {
		runtime.LockOSThread() // never unlocked: a leader-thread try keeps its thread
		if unix.Gettid() == pid {
			go try()
			<-done
			return
		}
		fmt.Printf("pid=%d tid=%d\n", pid, unix.Gettid())
		os.Stdout.Sync()
		fail(unix.Exec("/bin/echo", []string{"/bin/echo", "thread-exec-done"}, os.Environ()))
	}
	go try()
	<-done
}

// helperThreadsWaitExec starts threads, says it is ready, waits for the
// file gate to appear, then execs from a secondary thread: a multi-threaded
// process that was running before the collector attached.
func helperThreadsWaitExec(gate string) {
	for range 3 {
		go func() {
			runtime.LockOSThread()
			select {}
		}()
	}
	time.Sleep(50 * time.Millisecond) // let the threads start
	fmt.Printf("helper=%d\n", unix.Getpid())
	os.Stdout.Sync()
	for {
		if _, err := os.Stat(gate); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	helperThreadExec()
}

// helperSpawn starts /bin/echo the way Go does, with clone(CLONE_VFORK |
// CLONE_VM), which the tracer sees as a vfork, and exits with its status.
func helperSpawn() {
	fmt.Printf("helper=%d\n", unix.Getpid())
	cmd := exec.Command("/bin/echo", "spawned")
	cmd.Stdout = os.Stdout
	if err := cmd.Run(); err != nil {
		fail(err)
	}
	os.Exit(0)
}

// helperUnixPair listens on a unix socket at path, connects to it,
// accepts, and holds both ends until it exits.
func helperUnixPair(path string) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		fail(err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		fail(err)
	}
	s, err := ln.Accept()
	if err != nil {
		fail(err)
	}
	fmt.Println("unix-ok")
	// Held past a poll, and still open at exit: on a loaded machine the
	// exit-time poll is the one that sees them.
	time.Sleep(600 * time.Millisecond)
	_, _, _ = c, s, ln
	os.Exit(0)
}

// helperTCPPair listens on a loopback port, connects to it, accepts, and
// holds both ends until it exits.
func helperTCPPair() {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		fail(err)
	}
	s, err := ln.Accept()
	if err != nil {
		fail(err)
	}
	fmt.Printf("port=%d client=%d\n", port, c.LocalAddr().(*net.TCPAddr).Port)
	// Held past a poll, and still open at exit: on a loaded machine the
	// exit-time poll is the one that sees them.
	time.Sleep(600 * time.Millisecond)
	_, _ = s, ln
	os.Exit(0)
}

// helperReverseShell connects to addr, duplicates the socket onto fds 0-2
// and execs a shell, as a reverse shell does.
func helperReverseShell(addr string) {
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		fail(err)
	}
	f, err := c.(*net.TCPConn).File()
	if err != nil {
		fail(err)
	}
	for i := 0; i < 3; i++ {
		if err := unix.Dup2(int(f.Fd()), i); err != nil {
			fail(err)
		}
	}
	fail(unix.Exec("/bin/sh", []string{"/bin/sh", "-c", "exit 0"}, nil))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "helper:", err)
	os.Exit(3)
}

// workload is a shell script run as the root of a traced tree. Its
// launcher (a shell the test starts and waits for) is never traced, since
// a process is never traced by its own parent; the script is the
// launcher's child and waits on its stdin for the collector to attach.
type workload struct {
	pid      int
	launcher *exec.Cmd
	gate     *os.File
	outPath  string
	dir      string
}

// startWorkload starts script, blocked until release. The script sees
// $DIR (a temporary directory) and $TESTBIN (this test binary). An
// environment entry VIGIL_PRE=... is a script run before the block, by the
// same shell.
func startWorkload(t testing.TB, script string, env ...string) *workload {
	t.Helper()
	dir := t.TempDir()
	gateR, gateW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pidR, pidW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outPath := filepath.Join(dir, "output")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c",
		`/bin/sh -c 'eval "$VIGIL_PRE"; read _go; eval "$VIGIL_SCRIPT"' <&3 3<&- 4>&- & echo $! >&4; exec 4>&- 3<&-; wait $!`)
	cmd.Env = append(os.Environ(), "VIGIL_SCRIPT="+script, "DIR="+dir, "TESTBIN="+self)
	cmd.Env = append(cmd.Env, env...)
	cmd.ExtraFiles = []*os.File{gateR, pidW}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	gateR.Close()
	pidW.Close()
	out.Close()
	line, err := bufio.NewReader(pidR).ReadString('\n')
	pidR.Close()
	if err != nil {
		t.Fatalf("read workload pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("workload pid %q: %v", line, err)
	}
	w := &workload{pid: pid, launcher: cmd, gate: gateW, outPath: outPath, dir: dir}
	t.Cleanup(func() {
		w.gate.Close()
		if cmd.ProcessState == nil {
			syscall.Kill(pid, syscall.SIGKILL)
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return w
}

// release lets the script run.
func (w *workload) release(t testing.TB) {
	t.Helper()
	if _, err := w.gate.WriteString("go\n"); err != nil {
		t.Fatalf("release workload: %v", err)
	}
	w.gate.Close()
}

// wait waits for the script to finish and returns its output.
func (w *workload) wait(t testing.TB, timeout time.Duration) string {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- w.launcher.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Logf("launcher: %v", err)
		}
	case <-time.After(timeout):
		t.Fatalf("workload did not finish in %s; output so far:\n%s", timeout, w.output(t))
	}
	return w.output(t)
}

func (w *workload) output(t testing.TB) string {
	b, err := os.ReadFile(w.outPath)
	if err != nil {
		t.Fatalf("read output: %v", err)
	}
	return string(b)
}

// outputValue returns the value of "key=value" in the output.
func outputValue(out, key string) string {
	for f := range strings.FieldsSeq(out) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// allThreadsTraced reports whether every thread of pid is traced by us.
func allThreadsTraced(pid int) bool {
	tids, err := listPids(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tids) == 0 {
		return false
	}
	for _, tid := range tids {
		if !tracedByUs(int(tid)) {
			return false
		}
	}
	return true
}

// tracerPid reads TracerPid from /proc/PID/status, -1 when pid is gone.
func tracerPid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "TracerPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return -1
}

// tracedByUs reports whether a thread of the test process traces pid
// (TracerPid names the tracer thread, not its process).
func tracedByUs(pid int) bool {
	tp := tracerPid(pid)
	if tp <= 0 {
		return false
	}
	_, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", os.Getpid(), tp))
	return err == nil
}

// procState returns the state letter of pid ("S", "T", "t", ...).
func procStateLetter(pid int) string {
	st, err := readStat("/proc", uint32(pid))
	if err != nil {
		return ""
	}
	return string(st.state)
}

// sink collects a collector's events.
type sink struct {
	mu  sync.Mutex
	evs []*vigilv1.Event
}

func (s *sink) all() []*vigilv1.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*vigilv1.Event(nil), s.evs...)
}

// waitFor returns the first event matching pred, failing after timeout.
func (s *sink) waitFor(t testing.TB, what string, timeout time.Duration, pred func(*vigilv1.Event) bool) *vigilv1.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, ev := range s.all() {
			if pred(ev) {
				return ev
			}
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, ev := range s.all() {
				fmt.Fprintf(&b, "  %s pid=%d %v\n", ev.Syscall, ev.GetProcess().GetPid(), ev.Kind)
			}
			t.Fatalf("no %s event within %s; events:\n%s", what, timeout, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// traced is a running collector tracing one workload.
type traced struct {
	c      *Collector
	reg    *prometheus.Registry
	sink   *sink
	cancel context.CancelFunc
	done   chan error
}

// traceWorkload starts a collector with cfg rooted at w and waits until w
// is traced.
func traceWorkload(t testing.TB, w *workload, cfg Config) *traced {
	t.Helper()
	cfg.RootPid = uint32(w.pid)
	reg := prometheus.NewRegistry()
	c, err := New(cfg, nil, reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan *vigilv1.Event, 1024)
	tr := &traced{c: c, reg: reg, sink: &sink{}, cancel: cancel, done: make(chan error, 1)}
	go func() { tr.done <- c.Run(ctx, out) }()
	go func() {
		for {
			select {
			case ev := <-out:
				tr.sink.mu.Lock()
				tr.sink.evs = append(tr.sink.evs, ev)
				tr.sink.mu.Unlock()
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { tr.stop(t) })
	deadline := time.Now().Add(10 * time.Second)
	for !tracedByUs(w.pid) {
		if time.Now().After(deadline) {
			t.Fatalf("workload %d not traced after 10s (TracerPid %d)", w.pid, tracerPid(w.pid))
		}
		time.Sleep(5 * time.Millisecond)
	}
	return tr
}

// hashesSettled waits until the process table has stopped hashing what it
// queued when it was seeded from /proc (every process on the machine), so a
// measurement does not include the sensor's start-up.
func (tr *traced) hashesSettled(t testing.TB) {
	t.Helper()
	read := func() float64 {
		mfs, err := tr.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var v float64
		for _, mf := range mfs {
			switch mf.GetName() {
			case "vigil_proctable_hash_read_bytes_total", "vigil_proctable_hash_cache_hits_total", "vigil_proctable_hash_errors_total":
				for _, m := range mf.GetMetric() {
					v += m.GetCounter().GetValue()
				}
			}
		}
		return v
	}
	last, still := read(), 0
	deadline := time.Now().Add(60 * time.Second)
	for still < 3 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		if v := read(); v == last {
			still++
		} else {
			last, still = v, 0
		}
	}
}

// stop cancels the collector and waits for Run to return.
func (tr *traced) stop(t testing.TB) {
	t.Helper()
	if tr.cancel == nil {
		return
	}
	tr.cancel()
	tr.cancel = nil
	select {
	case err := <-tr.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("Run did not return 15s after cancel")
	}
}

// helperURing sets up an io_uring, prints its descriptor and holds it past
// a poll.
func helperURing() {
	r, err := uring.New()
	if err != nil {
		fail(err)
	}
	fmt.Printf("ring=%d\n", r.FD())
	time.Sleep(600 * time.Millisecond)
	os.Exit(0)
}
