package procmode

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilsec/vigil/collector/proctable"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// traceOptions are the ptrace options every tracee gets. No TRACESYSGOOD
// and no PTRACE_SYSCALL: stopping at every system call would cost the
// workload several times its run time. No EXITKILL: tracees must outlive
// the sensor.
const traceOptions = unix.PTRACE_O_TRACEEXEC | unix.PTRACE_O_TRACEFORK | unix.PTRACE_O_TRACEVFORK |
	unix.PTRACE_O_TRACECLONE | unix.PTRACE_O_TRACEEXIT

// waitFlags: every tracee (threads included) but only this thread's: a
// child that another goroutine of the sensor started and waits for is never
// reaped here.
const waitFlags = unix.WALL | unix.WNOTHREAD

// tracee is one traced thread.
type tracee struct {
	tid, tgid uint32
	// announced is set once the fork that made this process was
	// reported: at its parent's fork event or at its own first stop,
	// whichever the kernel reports first.
	announced bool
}

// tracer owns every ptrace call. All its methods run on one OS thread.
type tracer struct {
	c   *Collector
	cfg Config
	// tracees are the traced threads by tid.
	tracees map[uint32]*tracee
	// seize carries candidate pids from the scanner, who rings bell.
	seize chan []uint32
	bell  doorbell
	// tid is the tracer thread's, as TracerPid shows it in /proc.
	tid uint32
}

func newTracer(c *Collector, cfg Config) *tracer {
	return &tracer{
		c:       c,
		cfg:     cfg,
		tracees: make(map[uint32]*tracee),
		seize:   make(chan []uint32, 1),
	}
}

// run is the tracer loop, on an OS thread that has no children of its own
// (see lockChildlessThread). It never unlocks that thread: if the loop
// returned with tracees still attached (a detach that timed out), the
// thread exits with the goroutine and the kernel detaches whatever is left,
// which is the safe outcome.
func (t *tracer) run(ctx context.Context) error {
	return t.lockChildlessThread(ctx, 0)
}

// maxThreadMoves bounds the search for a childless thread.
const maxThreadMoves = 16

// lockChildlessThread locks the goroutine to its thread and runs the loop
// there if the thread has no children. The tracer waits for "any tracee of
// this thread", and the kernel counts a thread's own children among them:
// a process that another goroutine of the sensor started on this thread
// before it was locked would be reaped here, and its Wait would fail. A
// thread with children is kept locked by a parked goroutine while a new
// goroutine, which then cannot land on it, tries again.
func (t *tracer) lockChildlessThread(ctx context.Context, moves int) error {
	runtime.LockOSThread()
	if moves < maxThreadMoves && threadHasChildren() {
		done := make(chan error, 1)
		go func() { done <- t.lockChildlessThread(ctx, moves+1) }()
		err := <-done
		runtime.UnlockOSThread()
		return err
	}
	if moves > 0 {
		t.c.log.Debug("tracer moved to a thread without children", "moves", moves)
	}
	return t.loop(ctx)
}

// threadHasChildren reports whether the calling thread has child
// processes (/proc/thread-self/children; false when the kernel lacks it).
func threadHasChildren() bool {
	b, err := os.ReadFile("/proc/thread-self/children")
	return err == nil && len(strings.TrimSpace(string(b))) > 0
}

func (t *tracer) loop(ctx context.Context) error {
	t.tid = uint32(unix.Gettid())
	t.seizeCandidates(t.c.candidates(t.cfg))
	if err := t.bell.start(); err != nil {
		t.c.log.Info("tracer doorbell unavailable; waking on SIGCHLD", "error", err)
		return t.loopOnSignals(ctx)
	}
	stop := context.AfterFunc(ctx, t.bell.ring)
	defer stop()
	for {
		// Channels first, then block: a ring that comes after this
		// look finds the doorbell alive and ends the wait below.
		select {
		case <-ctx.Done():
			t.bell.stop()
			t.detachAll()
			return nil
		case pids := <-t.seize:
			t.seizeCandidates(pids)
		default:
		}
		var ws unix.WaitStatus
		wtid, err := unix.Wait4(-1, &ws, waitFlags, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			// No child at all: the doorbell is gone without a report.
			t.bell.gone()
			if err := t.bell.start(); err != nil {
				t.c.log.Info("tracer doorbell unavailable; waking on SIGCHLD", "error", err)
				return t.loopOnSignals(ctx)
			}
			continue
		}
		if wtid == t.bell.pid {
			if ws.Exited() || ws.Signaled() {
				t.bell.gone()
				if err := t.bell.start(); err != nil {
					t.c.log.Info("tracer doorbell unavailable; waking on SIGCHLD", "error", err)
					return t.loopOnSignals(ctx)
				}
			}
			// Its stop before its first instruction: it stays there.
			continue
		}
		t.handle(uint32(wtid), ws)
	}
}

// loopOnSignals is the tracer loop without a doorbell: it sleeps on
// SIGCHLD, which the kernel sends the tracer at each tracee stop and the
// runtime forwards (coalesced: one pending wakeup is enough, since each
// wakeup drains every ready tracee), with a timer as a safety net.
func (t *tracer) loopOnSignals(ctx context.Context) error {
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, syscall.SIGCHLD)
	defer signal.Stop(sigchld)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if t.drain() {
			// Stops keep coming (a fork storm): look at the other
			// channels without sleeping, then drain again.
			select {
			case <-ctx.Done():
				t.detachAll()
				return nil
			case pids := <-t.seize:
				t.seizeCandidates(pids)
			default:
			}
			continue
		}
		select {
		case <-ctx.Done():
			t.detachAll()
			return nil
		case <-sigchld:
		case <-tick.C:
		case pids := <-t.seize:
			t.seizeCandidates(pids)
		}
	}
}

// drainBatch bounds the stops loopOnSignals handles before it looks at its
// other channels, so that a workload forking without pause cannot hold off
// shutdown or new seizes.
const drainBatch = 256

// drain handles the tracees that are ready, without blocking, and reports
// whether it stopped at the batch bound with more possibly waiting.
func (t *tracer) drain() bool {
	for range drainBatch {
		var ws unix.WaitStatus
		tid, err := unix.Wait4(-1, &ws, unix.WNOHANG|waitFlags, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || tid <= 0 {
			return false
		}
		t.handle(uint32(tid), ws)
	}
	return true
}

// seizeCandidates traces each process not traced yet.
func (t *tracer) seizeCandidates(pids []uint32) {
	for _, pid := range pids {
		if _, ok := t.tracees[pid]; ok {
			continue
		}
		st, err := readStat(t.cfg.ProcRoot, pid)
		if err != nil || st.state == 'Z' || st.state == 'X' {
			continue
		}
		if t.c.isRefused(pid, st.startTicks) {
			continue
		}
		if err := t.seizeProcess(pid); err != nil {
			if errors.Is(err, unix.EPERM) && tracerOf(t.cfg.ProcRoot, pid) == t.tid {
				continue // a new child of a tracee, whose first stop is pending
			}
			t.c.refuse(pid, st.startTicks)
			t.c.seizeFailure.Add(1)
			reason := "PTRACE_SEIZE of pid " + strconv.FormatUint(uint64(pid), 10) + ": " + err.Error()
			if errors.Is(err, unix.EPERM) {
				reason += " (the sensor needs CAP_SYS_PTRACE: linuxParameters.capabilities.add SYS_PTRACE; or the process is traced already)"
			}
			t.c.seizeErr.Store(&reason)
			t.c.m.seizeFailed.Inc()
			t.c.log.Info("process not traced", "pid", pid, "comm", st.comm, "error", err)
			continue
		}
		ps := t.c.state(pid, true)
		ps.mu.Lock()
		ps.baseline = true
		ps.mu.Unlock()
		t.c.refreshCgroup(ps)
	}
}

// seizeProcess seizes every thread of pid. Threads created while it lists
// them are caught by listing again until a pass adds none.
func (t *tracer) seizeProcess(pid uint32) error {
	taskDir := pidDir(t.cfg.ProcRoot, pid) + "/task"
	for round := 0; round < 16; round++ {
		tids, err := listPids(taskDir)
		if err != nil {
			return err
		}
		added := 0
		for _, tid := range tids {
			if _, ok := t.tracees[tid]; ok {
				continue
			}
			_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, uintptr(tid), 0, traceOptions, 0, 0)
			if e == unix.ESRCH {
				continue // the thread exited meanwhile
			}
			if e != 0 {
				if round == 0 && added == 0 {
					return e
				}
				continue
			}
			t.add(tid, pid)
			added++
		}
		if added == 0 {
			return nil
		}
	}
	return nil
}

// tracerOf returns TracerPid from /proc/PID/status: the tid of the thread
// that traces pid, 0 when none.
func tracerOf(procRoot string, pid uint32) uint32 {
	b, err := readProcFile(pidDir(procRoot, pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "TracerPid:"); ok {
			return parseU32(strings.TrimSpace(v))
		}
	}
	return 0
}

func (t *tracer) add(tid, tgid uint32) *tracee {
	tr := &tracee{tid: tid, tgid: tgid}
	t.tracees[tid] = tr
	t.c.traced.Add(1)
	return tr
}

func (t *tracer) remove(tid uint32) {
	if _, ok := t.tracees[tid]; ok {
		delete(t.tracees, tid)
		t.c.traced.Add(-1)
	}
}

// lookup returns the tracee for tid; a tid it does not know is a new child
// or thread whose first stop came before its creator's event.
func (t *tracer) lookup(tid uint32) *tracee {
	if tr := t.tracees[tid]; tr != nil {
		return tr
	}
	tgid := tid
	st, err := readStat(t.cfg.ProcRoot, tid)
	if err == nil && readStatus(t.cfg.ProcRoot, tid, &st) == nil {
		tgid = st.tgid
	}
	tr := t.add(tid, tgid)
	if err == nil && tgid == tid {
		// A new process: report its fork now, so that what it does
		// before its parent's event is handled has a known process.
		if p := t.tracees[st.ppid]; p != nil {
			t.announce(p.tgid, p.tid, tr, &st)
		}
	}
	return tr
}

// handle reacts to one wait status and restarts the tracee.
func (t *tracer) handle(tid uint32, ws unix.WaitStatus) {
	start := time.Now()
	switch {
	case ws.Exited() || ws.Signaled():
		t.onDeath(tid, ws)
		return
	case !ws.Stopped():
		return
	}
	tr := t.lookup(tid)
	sig := ws.StopSignal()
	event := int(uint32(ws) >> 16)
	switch event {
	case 0:
		// Signal-delivery stop: deliver the signal as if untraced.
		t.c.m.stops.WithLabelValues("signal").Inc()
		t.cont(tid, int(sig))
		return
	case unix.PTRACE_EVENT_STOP:
		switch sig {
		case unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
			// Group stop: stay stopped until SIGCONT, but keep
			// reporting events (PTRACE_LISTEN, not PTRACE_CONT).
			t.c.m.stops.WithLabelValues("group_stop").Inc()
			if err := ptrace(unix.PTRACE_LISTEN, tid, 0); err != nil && err != unix.ESRCH {
				t.c.log.Debug("ptrace listen", "tid", tid, "error", err)
			}
			return
		}
		// The first stop of an auto-attached child or thread, or an
		// interrupt.
		t.c.m.stops.WithLabelValues("other").Inc()
		t.cont(tid, 0)
		return
	case unix.PTRACE_EVENT_FORK, unix.PTRACE_EVENT_VFORK, unix.PTRACE_EVENT_CLONE:
		t.c.m.stops.WithLabelValues("fork").Inc()
		if msg, err := unix.PtraceGetEventMsg(int(tid)); err == nil {
			t.onClone(tr, uint32(msg))
		}
	case unix.PTRACE_EVENT_EXEC:
		t.c.m.stops.WithLabelValues("exec").Inc()
		if msg, err := unix.PtraceGetEventMsg(int(tid)); err == nil && uint32(msg) != tid {
			// A thread other than the leader exec'd: it now has the
			// leader's tid, and its old tid is gone without a report.
			t.remove(uint32(msg))
		}
		tr.tgid = tid
		t.onExec(tid)
	case unix.PTRACE_EVENT_EXIT:
		t.c.m.stops.WithLabelValues("exit").Inc()
		if tr.tgid == tid {
			// Descriptors are still open at this stop: poll them once
			// more so what a short-lived process held is not missed.
			ps := t.c.state(tid, true)
			if cg, _ := ps.cgroupInfo(); cg == "" {
				t.c.refreshCgroup(ps)
			}
			t.c.pollProcess(ps, t.cfg.NetInterval > 0, t.cfg.FileInterval > 0)
		}
	default:
		t.c.m.stops.WithLabelValues("other").Inc()
	}
	t.cont(tid, 0)
	t.c.m.stopSeconds.Observe(time.Since(start).Seconds())
}

func (t *tracer) cont(tid uint32, sig int) {
	if err := unix.PtraceCont(int(tid), sig); err != nil && err != unix.ESRCH {
		t.c.log.Debug("ptrace cont", "tid", tid, "error", err)
	}
}

func ptrace(req int, tid uint32, data uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), 0, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// onClone records a new thread or process created by tr.
func (t *tracer) onClone(tr *tracee, child uint32) {
	thread := false
	if _, err := os.Lstat(pidDir(t.cfg.ProcRoot, tr.tgid) + "/task/" + strconv.FormatUint(uint64(child), 10)); err == nil {
		thread = true
	}
	ct := t.tracees[child]
	switch {
	case ct != nil && thread:
		ct.tgid = tr.tgid
	case ct != nil:
		ct.tgid = child
	case thread:
		ct = t.add(child, tr.tgid)
	default:
		ct = t.add(child, child)
	}
	if !thread {
		t.announce(tr.tgid, tr.tid, ct, nil)
	}
}

// announce reports the fork of process ct by parentTgid (thread
// parentTid), once. st is the child's stat and status when the caller has
// read them already.
func (t *tracer) announce(parentTgid, parentTid uint32, ct *tracee, st *procStat) {
	if ct.announced {
		return
	}
	ct.announced = true
	child := ct.tid
	if st == nil {
		s, err := readStat(t.cfg.ProcRoot, child)
		if err != nil {
			return
		}
		_ = readStatus(t.cfg.ProcRoot, child, &s)
		st = &s
	}
	parent := t.c.state(parentTgid, true)
	ps := t.c.state(child, true)
	// The child starts with its parent's descriptors: they are not new.
	parent.mu.Lock()
	ps.mu.Lock()
	for fd, k := range parent.fds {
		ps.fds[fd] = k
	}
	for ino := range parent.socks {
		ps.socks[ino] = struct{}{}
	}
	ps.flags = parent.flags
	ps.cgroup, ps.cgroupID = parent.cgroup, parent.cgroupID
	ps.mu.Unlock()
	parent.mu.Unlock()
	if cg, _ := ps.cgroupInfo(); cg == "" {
		t.c.refreshCgroup(ps)
	}
	parentCgroup, parentCgroupID := parent.cgroupInfo()
	childProc := t.c.procs.OnForkInfo(proctable.ForkInfo{
		ParentPid: parentTgid, ChildPid: child, ChildNsPid: st.nsPid, ChildStart: st.startTicks * proctable.TickNanos,
	})
	f := &vigilv1.Fork{ChildPid: child}
	if childProc != nil {
		f.ChildExecId = childProc.ExecId
	}
	ev := &vigilv1.Event{
		Time:       timestamppb.Now(),
		Process:    t.c.procs.Lookup(parentTgid),
		Tid:        parentTid,
		CgroupId:   parentCgroupID,
		CgroupPath: parentCgroup,
		Syscall:    "clone",
		Kind:       &vigilv1.Event_Fork{Fork: f},
	}
	if ev.Process == nil {
		ev.Process = &vigilv1.Process{Pid: parentTgid}
	}
	t.c.emit("fork", ev)
}

// onExec reads the new image of pid from /proc and emits the exec.
func (t *tracer) onExec(pid uint32) {
	root := t.cfg.ProcRoot
	dir := pidDir(root, pid)
	st, err := readStat(root, pid)
	if err != nil {
		t.c.readErrors.Add(1)
		return
	}
	if err := readStatus(root, pid, &st); err != nil {
		t.c.readErrors.Add(1)
		return
	}
	info := proctable.ExecInfo{
		Pid: pid, Ppid: st.ppid, NsPid: st.nsPid, StartTime: st.startTicks * proctable.TickNanos,
		Comm: st.comm, Uid: st.uid, Gid: st.gid, Euid: st.euid, Egid: st.egid,
		LoginUID: readLoginUID(root, pid), Sid: st.sid, Tty: st.tty, CapEffective: st.capEff,
		MntNs: nsInode(root, pid, "mnt"),
	}
	if b, err := readProcFile(dir + "/cmdline"); err == nil {
		info.Args, info.ArgsTruncated = splitCmdline(b, t.cfg.ArgvBytes)
	}
	if exe, err := os.Readlink(dir + "/exe"); err == nil {
		if p, ok := strings.CutSuffix(exe, " (deleted)"); ok {
			exe, info.ExeFileless = p, true
		}
		if strings.HasPrefix(exe, "/memfd:") {
			info.ExeFileless = true
		}
		info.ExePath = exe
		var sx unix.Stat_t
		if unix.Stat(dir+"/exe", &sx) == nil {
			info.ExeInode, info.ExeDev = sx.Ino, kernelDev(sx.Dev)
			info.ExeCtime = time.Unix(sx.Ctim.Unix())
			info.ExeMtime = time.Unix(sx.Mtim.Unix())
		}
	}
	if cwd, err := os.Readlink(dir + "/cwd"); err == nil {
		info.Cwd = cwd
	}
	x := &vigilv1.Exec{Filename: info.ExePath}
	if env, err := readProcFile(dir + "/environ"); err == nil {
		x.LdPreload = envValue(env, "LD_PRELOAD")
		x.LdLibraryPath = envValue(env, "LD_LIBRARY_PATH")
	}
	x.Stdio, x.StdioRemote = t.stdio(pid)
	ps := t.c.state(pid, true)
	t.c.refreshCgroup(ps)
	proc := t.c.procs.OnExec(info)
	cg, cgID := ps.cgroupInfo()
	t.c.emit("exec", &vigilv1.Event{
		Time:       timestamppb.Now(),
		Process:    proc,
		Tid:        pid,
		CgroupId:   cgID,
		CgroupPath: cg,
		Syscall:    "execve",
		Kind:       &vigilv1.Event_Exec{Exec: x},
	})
}

// stdio describes fds 0-2 of pid as the eBPF collector does, with the
// remote address of connected sockets.
func (t *tracer) stdio(pid uint32) (kinds, remotes []string) {
	kinds = make([]string, 3)
	var inos [3]uint64
	anySock := false
	dir := pidDir(t.cfg.ProcRoot, pid) + "/fd/"
	for i := range 3 {
		link, _ := os.Readlink(dir + strconv.Itoa(i))
		kinds[i], inos[i] = fdKind(link)
		anySock = anySock || inos[i] != 0
	}
	if !anySock {
		return kinds, nil
	}
	tab, err := readSockTable(t.cfg.ProcRoot, pid)
	if err != nil {
		return kinds, nil
	}
	var r [3]string
	anyRemote := false
	for i, ino := range inos {
		if s, ok := tab.byIno[ino]; ok && ino != 0 {
			r[i] = remoteString(s)
			anyRemote = anyRemote || r[i] != ""
		}
	}
	if anyRemote {
		remotes = r[:]
	}
	return kinds, remotes
}

// onDeath handles a tracee that is gone. The process's exit is reported
// when its leader is reaped: the kernel reports the leader last, with the
// status of the whole thread group.
func (t *tracer) onDeath(tid uint32, ws unix.WaitStatus) {
	tr := t.tracees[tid]
	t.remove(tid)
	if tr == nil || tr.tgid != tid {
		return
	}
	ps := t.c.state(tid, false)
	proc := t.c.procs.OnExit(tid)
	if proc == nil {
		proc = &vigilv1.Process{Pid: tid}
	}
	x := &vigilv1.Exit{Code: int32(ws)}
	if ws.Signaled() {
		x.Signal = int32(ws.Signal())
	}
	ev := &vigilv1.Event{
		Time:    timestamppb.Now(),
		Process: proc,
		Tid:     tid,
		Syscall: "procexit",
		Kind:    &vigilv1.Event_Exit{Exit: x},
	}
	if ps != nil {
		ev.CgroupPath, ev.CgroupId = ps.cgroupInfo()
	}
	t.c.emit("exit", ev)
	t.c.forget(tid)
}

// detachAll detaches every tracee so it runs on untraced. A running tracee
// must be stopped first (PTRACE_INTERRUPT); each one is then detached from
// whatever stop it reports, re-injecting a signal it was about to receive,
// and left group-stopped if it was.
func (t *tracer) detachAll() {
	for tid := range t.tracees {
		if err := unix.PtraceInterrupt(int(tid)); err == unix.ESRCH {
			t.remove(tid)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(t.tracees) > 0 && time.Now().Before(deadline) {
		var ws unix.WaitStatus
		wtid, err := unix.Wait4(-1, &ws, unix.WNOHANG|waitFlags, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			break // ECHILD: nothing left
		}
		if wtid == 0 {
			time.Sleep(200 * time.Microsecond)
			continue
		}
		tid := uint32(wtid)
		if ws.Exited() || ws.Signaled() {
			t.remove(tid)
			continue
		}
		if !ws.Stopped() {
			continue
		}
		sig := 0
		switch int(uint32(ws) >> 16) {
		case 0:
			sig = int(ws.StopSignal())
		case unix.PTRACE_EVENT_FORK, unix.PTRACE_EVENT_VFORK, unix.PTRACE_EVENT_CLONE:
			// The new child is traced too and will report a stop.
			if msg, err := unix.PtraceGetEventMsg(int(tid)); err == nil {
				if _, ok := t.tracees[uint32(msg)]; !ok {
					t.add(uint32(msg), uint32(msg))
				}
			}
		}
		if _, ok := t.tracees[tid]; !ok {
			// A new child's first stop before its parent's event.
			t.add(tid, tid)
		}
		if err := ptrace(unix.PTRACE_DETACH, tid, uintptr(sig)); err != nil && err != unix.ESRCH {
			t.c.log.Warn("ptrace detach", "tid", tid, "error", err)
		}
		t.remove(tid)
	}
	if n := len(t.tracees); n > 0 {
		t.c.log.Warn("tracees not detached in time; the kernel detaches them when the tracer thread exits", "count", n)
	}
}
