package proctable

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

const testBootID = "0f3a5b6c-1d2e-4f50-8a9b-c0d1e2f3a4b5"

// sleepBin is sleep's real path: /proc shows executables with symlinks
// resolved, and /bin is a link to /usr/bin on merged-usr systems.
var sleepBin = func() string {
	p, err := filepath.EvalSymlinks("/bin/sleep")
	if err != nil {
		return "/bin/sleep"
	}
	return p
}()

// fakeClock is a settable clock for expiry tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTable(t testing.TB, cfg Config) *Table {
	t.Helper()
	tb, err := New(cfg, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tb
}

// syntheticTable is a table over an empty /proc, so only the records the
// test feeds exist.
func syntheticTable(t testing.TB, cfg Config) *Table {
	t.Helper()
	cfg.ProcRoot = t.TempDir()
	cfg.BootID = testBootID
	cfg.SweepInterval = -1
	return newTable(t, cfg)
}

// startChild runs a long sleep and returns it with its /proc data; the
// child is killed when the test ends.
func startChild(t *testing.T, path string, args ...string) (*exec.Cmd, procInfo) {
	t.Helper()
	cmd := exec.Command(path, args...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	pid := uint32(cmd.Process.Pid)
	// Until the child has exec'd, /proc shows the forked Go image.
	var info procInfo
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		info, err = readProc("/proc", pid, 4096)
		if err == nil && len(info.args) > 0 && info.args[0] == path {
			return cmd, info
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d never showed its exec in /proc (last: %+v, %v)", pid, info, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func execInfoFrom(info procInfo) ExecInfo {
	return ExecInfo{
		Pid: info.pid, Ppid: info.ppid, NsPid: info.nsPid,
		// Anywhere inside the tick: the probe's ns value truncates to it.
		StartTime: info.startTicks*TickNanos + TickNanos - 1,
		Comm:      info.comm, ExePath: info.exe, Args: info.args, Cwd: info.cwd,
		Uid: info.uid, Gid: info.gid, Euid: info.euid, Egid: info.egid,
		LoginUID: info.loginuid, Sid: info.sid, Tty: info.tty,
		ExeInode: info.inode, ExeDev: info.dev, MntNs: info.mntNs,
	}
}

func TestSeedGivesThisProcessItsParentAndLineage(t *testing.T) {
	tb := newTable(t, Config{})
	if err := tb.Seed(context.Background()); err != nil {
		t.Fatalf("Seed: %v", err)
	}
	self := tb.Lookup(uint32(os.Getpid()))
	if self == nil {
		t.Fatal("this process is not in the seeded table")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	parent := tb.Lookup(uint32(os.Getppid()))
	if parent == nil {
		t.Fatal("the parent is not in the seeded table")
	}
	cases := []struct {
		name      string
		got, want any
	}{
		{"the exe path is the test binary", self.ExePath, exe},
		{"the args are os.Args", fmt.Sprint(self.Args), fmt.Sprint(os.Args)},
		{"the ppid is the real parent", self.Ppid, uint32(os.Getppid())},
		{"the parent exec id links to the parent's entry", self.ParentExecId, parent.ExecId},
		{"the nearest ancestor is the parent", self.Lineage[0].ExecId, parent.ExecId},
		{"the nearest ancestor carries its args", fmt.Sprint(self.Lineage[0].Args), fmt.Sprint(parent.Args)},
		{"the uid is ours", self.Uid, uint32(os.Getuid())},
		{"the cwd is ours", self.Cwd, mustGetwd(t)},
		{"the exec id is 22 base64url characters", len(self.ExecId), 22},
		{"the lineage ends at pid 1 or the depth bound", lineageEnd(self), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %v, want %v", c.got, c.want)
			}
		})
	}
	if u, err := user.LookupId(strconv.Itoa(os.Getuid())); err == nil && self.UserName != u.Username {
		t.Errorf("user name %q, want %q", self.UserName, u.Username)
	}
	if g, err := user.LookupGroupId(strconv.Itoa(os.Getgid())); err == nil && self.GroupName != g.Name {
		t.Errorf("group name %q, want %q", self.GroupName, g.Name)
	}
	if os.Geteuid() == 0 && self.CapEffective == 0 {
		t.Error("root's effective capabilities are empty")
	}
	var st unix.Stat_t
	if err := unix.Stat(exe, &st); err != nil {
		t.Fatal(err)
	}
	if self.ExeInode != st.Ino || self.ExeDev != kernelDev(st.Dev) {
		t.Errorf("exe inode/dev %d/%d, want %d/%d", self.ExeInode, self.ExeDev, st.Ino, kernelDev(st.Dev))
	}
	if got := self.ExeMtime.AsTime(); !got.Equal(time.Unix(st.Mtim.Unix())) {
		t.Errorf("exe mtime %v, want %v", got, time.Unix(st.Mtim.Unix()))
	}
}

func lineageEnd(p *vigilv1.Process) bool {
	l := p.Lineage
	return len(l) == 8 || l[len(l)-1].Pid == 1 || l[len(l)-1].Pid == 2
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

func TestProbeAndProcStartTimesGiveTheSameExecID(t *testing.T) {
	tb := newTable(t, Config{})
	_, info := startChild(t, sleepBin, "30")
	seeded := tb.Lookup(info.pid)
	if seeded == nil {
		t.Fatal("child not found through /proc")
	}
	base := info.startTicks * TickNanos
	cases := []struct {
		name    string
		startNs uint64
		same    bool
	}{
		{"the first ns of the tick maps to the seeded id", base, true},
		{"the middle of the tick maps to the seeded id", base + TickNanos/2, true},
		{"the last ns of the tick maps to the seeded id", base + TickNanos - 1, true},
		{"the next tick is another process", base + TickNanos, false},
		{"the previous tick is another process", base - 1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := tb.ExecID(info.pid, c.startNs) == seeded.ExecId; got != c.same {
				t.Errorf("ExecID(%d, %d) == seeded id: %v, want %v", info.pid, c.startNs, got, c.same)
			}
		})
	}
}

func TestForkThenExecOfARealChild(t *testing.T) {
	tb := newTable(t, Config{})
	self := tb.Lookup(uint32(os.Getpid()))
	if self == nil {
		t.Fatal("no entry for this process")
	}
	_, info := startChild(t, sleepBin, "30")
	procReads := counterValue(tb.m.lookupProc)
	forked := tb.OnFork(uint32(os.Getpid()), info.pid, info.startTicks*TickNanos)
	execd := tb.OnExec(execInfoFrom(info))
	cases := []struct {
		name      string
		got, want any
	}{
		{"the fork copies the parent's image", forked.ExePath, self.ExePath},
		{"the fork's parent is this process", forked.ParentExecId, self.ExecId},
		{"exec keeps the fork's exec id", execd.ExecId, forked.ExecId},
		{"exec keeps the parent link", execd.ParentExecId, self.ExecId},
		{"exec sets the new image", execd.ExePath, sleepBin},
		{"exec sets the new args", fmt.Sprint(execd.Args), fmt.Sprint([]string{sleepBin, "30"})},
		{"the lineage starts with this process", execd.Lineage[0].ExecId, self.ExecId},
		{"the lineage continues with this process's parent", execd.Lineage[1].ExecId, self.Lineage[0].ExecId},
		{"lookup returns the exec'd process", tb.Lookup(info.pid), execd},
		{"the fork message was not modified by the exec", fmt.Sprint(forked.Args), fmt.Sprint(self.Args)},
		{"no /proc read was needed for the child", counterValue(tb.m.lookupProc), procReads},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %v, want %v", c.got, c.want)
			}
		})
	}
}

func TestPidReuseGivesANewExecID(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	tb := syntheticTable(t, Config{Now: clock.Now})
	tb.OnExec(ExecInfo{Pid: 100, Ppid: 0, StartTime: 5 * TickNanos, ExePath: "/bin/first"})
	first := tb.OnExec(ExecInfo{Pid: 4000, Ppid: 100, StartTime: 10 * TickNanos, ExePath: "/bin/old"})
	tb.OnExit(4000)
	second := tb.OnExec(ExecInfo{Pid: 4000, Ppid: 100, StartTime: 900 * TickNanos, ExePath: "/bin/new"})
	cases := []struct {
		name      string
		got, want any
	}{
		{"the reused pid gets another exec id", first.ExecId != second.ExecId, true},
		{"lookup by pid returns the new process", tb.Lookup(4000), second},
		{"the old process still resolves by exec id", tb.LookupExecID(first.ExecId), first},
		{"both have the same parent", first.ParentExecId == second.ParentExecId, true},
		{"the reuse is counted", counterValue(tb.m.pidReuse), 1.0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %v, want %v", c.got, c.want)
			}
		})
	}
}

func TestLiveProcessWithReusedPidRetiresTheOld(t *testing.T) {
	tb := syntheticTable(t, Config{})
	old := tb.OnExec(ExecInfo{Pid: 4001, StartTime: 10 * TickNanos, ExePath: "/bin/old"})
	// The old process's exit record was lost.
	newer := tb.OnExec(ExecInfo{Pid: 4001, StartTime: 20 * TickNanos, ExePath: "/bin/new"})
	if tb.Lookup(4001) != newer {
		t.Error("lookup does not return the newer process")
	}
	if tb.LookupExecID(old.ExecId) != old {
		t.Error("the retired process no longer resolves by exec id")
	}
	if _, exited := tb.Len(); exited != 1 {
		t.Errorf("exited entries %d, want 1", exited)
	}
}

func TestExitedEntriesExpire(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	tb := syntheticTable(t, Config{Now: clock.Now, ExitedTTL: 30 * time.Second})
	p := tb.OnExec(ExecInfo{Pid: 4100, StartTime: 10 * TickNanos, ExePath: "/bin/x"})
	if got := tb.OnExit(4100); got != p {
		t.Fatalf("OnExit returned %v, want the process", got)
	}
	steps := []struct {
		name    string
		advance time.Duration
		present bool
	}{
		{"an exited process resolves right after its exit", 0, true},
		{"it still resolves just before the ttl", 29 * time.Second, true},
		{"it is gone after the ttl", 2 * time.Second, false},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clock.Advance(s.advance)
			tb.Expire()
			if got := tb.Lookup(4100) != nil; got != s.present {
				t.Errorf("lookup by pid present=%v, want %v", got, s.present)
			}
			if got := tb.LookupExecID(p.ExecId) != nil; got != s.present {
				t.Errorf("lookup by exec id present=%v, want %v", got, s.present)
			}
		})
	}
	if got := counterValue(tb.m.evictTTL); got != 1 {
		t.Errorf("ttl evictions %v, want 1", got)
	}
}

func TestExitedEntriesAreBounded(t *testing.T) {
	tb := syntheticTable(t, Config{MaxExited: 10})
	for pid := uint32(5000); pid < 5100; pid++ {
		tb.OnExec(ExecInfo{Pid: pid, StartTime: uint64(pid) * TickNanos})
		tb.OnExit(pid)
	}
	if _, exited := tb.Len(); exited != 10 {
		t.Errorf("exited entries %d, want 10", exited)
	}
	if tb.Lookup(5099) == nil || tb.Lookup(5000) != nil {
		t.Error("want the newest exited kept and the oldest evicted")
	}
	if got := counterValue(tb.m.evictCapacity); got != 90 {
		t.Errorf("capacity evictions %v, want 90", got)
	}
}

func TestLineageIsBoundedAndKeepsArgsOnlyNearby(t *testing.T) {
	cases := []struct {
		name              string
		depth, argsDepth  int
		chain             int
		wantLen, wantArgs int
	}{
		{"a deep chain is cut at the default depth of 8", 0, 0, 20, 8, 2},
		{"a short chain keeps every ancestor", 0, 0, 3, 3, 2},
		{"a configured depth of 3 is honoured", 3, 0, 20, 3, 2},
		{"a depth of 1 keeps only the parent", 1, 0, 20, 1, 1},
		{"args depth 4 keeps args on four ancestors", 0, 4, 20, 8, 4},
		{"negative args depth keeps no args", 0, -1, 20, 8, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb := syntheticTable(t, Config{LineageDepth: c.depth, LineageArgsDepth: c.argsDepth})
			var p *vigilv1.Process
			for i := range c.chain + 1 {
				pid := uint32(6000 + i)
				if i > 0 {
					tb.OnFork(pid-1, pid, uint64(pid)*TickNanos)
				}
				p = tb.OnExec(ExecInfo{Pid: pid, Ppid: pid - 1, StartTime: uint64(pid) * TickNanos,
					ExePath: fmt.Sprintf("/bin/p%d", i), Args: []string{fmt.Sprintf("p%d", i), "-x"}})
			}
			if len(p.Lineage) != c.wantLen {
				t.Fatalf("lineage length %d, want %d", len(p.Lineage), c.wantLen)
			}
			withArgs := 0
			for i, a := range p.Lineage {
				if want := p.Pid - uint32(i) - 1; a.Pid != want {
					t.Errorf("lineage[%d] pid %d, want %d (nearest first)", i, a.Pid, want)
				}
				if len(a.Args) > 0 {
					withArgs++
					if i >= c.wantArgs {
						t.Errorf("lineage[%d] has args beyond the args depth", i)
					}
				}
				if i > 0 && p.Lineage[i-1].ParentExecId != a.ExecId {
					t.Errorf("lineage[%d] is not the parent of lineage[%d]", i, i-1)
				}
			}
			if withArgs != c.wantArgs {
				t.Errorf("%d ancestors with args, want %d", withArgs, c.wantArgs)
			}
		})
	}
}

func TestResolvePath(t *testing.T) {
	tb := syntheticTable(t, Config{})
	tb.OnExec(ExecInfo{Pid: 7000, StartTime: TickNanos, Cwd: "/home/app"})
	cases := []struct {
		name        string
		pid         uint32
		chdir       string
		dirfd, path string
		want        string
	}{
		{"an absolute path is kept", 7000, "", "", "/etc/passwd", "/etc/passwd"},
		{"an absolute path is cleaned", 7000, "", "", "/etc/../etc//shadow", "/etc/shadow"},
		{"a relative path joins the cwd", 7000, "", "", "notes.txt", "/home/app/notes.txt"},
		{"dot-dot climbs out of the cwd", 7000, "", "", "../../etc/passwd", "/etc/passwd"},
		{"a dirfd path wins over the cwd", 7000, "", "/var/log", "syslog", "/var/log/syslog"},
		{"chdir moves the base", 7000, "/tmp", "", "x", "/tmp/x"},
		{"an unknown process leaves the path relative", 7999, "", "", "x/../y", "y"},
		{"an empty path names the dirfd itself", 7000, "", "/proc/self/fd/3", "", "/proc/self/fd/3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.chdir != "" {
				tb.OnChdir(c.pid, c.chdir)
			}
			if got := tb.ResolvePath(c.pid, c.dirfd, c.path); got != c.want {
				t.Errorf("ResolvePath(%d, %q, %q) = %q, want %q", c.pid, c.dirfd, c.path, got, c.want)
			}
		})
	}
}

func TestResolvePathOfARealChildUsesItsCwd(t *testing.T) {
	tb := newTable(t, Config{})
	dir := t.TempDir()
	cmd := exec.Command(sleepBin, "30")
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	want := filepath.Join(dir, "a.txt")
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := tb.ResolvePath(uint32(cmd.Process.Pid), "", "sub/../a.txt")
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ResolvePath = %q, want %q", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLookupMissReadsProcOnce(t *testing.T) {
	tb := newTable(t, Config{})
	_, info := startChild(t, sleepBin, "30")
	const gone = 4_194_000 // above any pid this machine hands out
	steps := []struct {
		name          string
		pid           uint32
		found         bool
		newReads      float64
		newFailedRead float64
	}{
		{"a running child is read from /proc", info.pid, true, 1, 0},
		{"the second lookup is a hit", info.pid, true, 0, 0},
		{"a pid that does not exist is a miss", gone, false, 0, 1},
		{"the miss is remembered and not read again", gone, false, 0, 0},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			// The child's read also reads its unknown ancestors (this
			// process and up) for the lineage; count the child's lookup.
			proc, failed := counterValue(tb.m.lookupProc), counterValue(tb.m.procReadErr)
			hits := counterValue(tb.m.lookupHit)
			p := tb.Lookup(s.pid)
			if (p != nil) != s.found {
				t.Fatalf("found %v, want %v", p != nil, s.found)
			}
			if s.found && p.ExePath != sleepBin {
				t.Errorf("exe %q, want %s", p.ExePath, sleepBin)
			}
			if got := counterValue(tb.m.procReadErr) - failed; got != s.newFailedRead {
				t.Errorf("failed /proc reads +%v, want +%v", got, s.newFailedRead)
			}
			if s.newReads == 0 && counterValue(tb.m.lookupProc) != proc {
				t.Error("a lookup read /proc again")
			}
			if s.newReads > 0 && counterValue(tb.m.lookupProc) <= proc {
				t.Error("the first lookup did not read /proc")
			}
			if s.found && s.newReads == 0 && counterValue(tb.m.lookupHit) != hits+1 {
				t.Error("the second lookup was not a hit")
			}
		})
	}
}

func TestLookupByThreadIDFindsTheProcess(t *testing.T) {
	tb := newTable(t, Config{})
	tids, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range tids {
		tid, _ := strconv.Atoi(d.Name())
		if tid == os.Getpid() {
			continue
		}
		p := tb.Lookup(uint32(tid))
		if p == nil || p.Pid != uint32(os.Getpid()) {
			t.Fatalf("Lookup(tid %d) = %v, want this process", tid, p)
		}
		return
	}
	t.Skip("this test process has no other threads")
}

func TestSweepRetiresProcessesWhoseExitWasLost(t *testing.T) {
	tb := newTable(t, Config{})
	cmd, info := startChild(t, sleepBin, "30")
	if tb.Lookup(info.pid) == nil {
		t.Fatal("child not found")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if n := tb.Sweep(); n < 1 {
		t.Fatalf("sweep retired %d, want at least the killed child", n)
	}
	if tb.Lookup(info.pid) == nil {
		t.Error("a retired process should still resolve until its ttl")
	}
	if self := tb.Lookup(uint32(os.Getpid())); self == nil {
		t.Error("the sweep retired a live process")
	}
}

func TestHashIsComputedOffThePathAndCached(t *testing.T) {
	tb := newTable(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = tb.Run(ctx) }()

	// A private copy so the digest is of a file we know.
	bin := filepath.Join(t.TempDir(), "sleeper")
	copyFile(t, sleepBin, bin, 0o755)
	want := fileSHA256(t, bin)

	_, info := startChild(t, bin, "30")
	p := tb.OnExec(execInfoFrom(info))
	got := waitFor(t, func() string { return tb.Lookup(info.pid).ExeSha256 })
	if got != want {
		t.Fatalf("published digest %s, want %s", got, want)
	}
	if p.ExeSha256 != "" && p.ExeSha256 != want {
		t.Errorf("the message returned by OnExec was changed to %q", p.ExeSha256)
	}
	if tb.Lookup(info.pid) == p {
		t.Error("the digest was not published as a new message")
	}
	if tb.Lookup(info.pid).ExeMtime == nil {
		t.Error("the worker did not fill in the executable's times")
	}
	if u, err := user.LookupId(strconv.Itoa(os.Getuid())); err == nil {
		if got := waitFor(t, func() string { return tb.Lookup(info.pid).UserName }); got != u.Username {
			t.Errorf("worker resolved user %q, want %q", got, u.Username)
		}
	}
	// A second process running the same file hashes from the cache.
	hits := counterValue(tb.m.hashHit)
	_, info2 := startChild(t, bin, "31")
	tb.OnExec(execInfoFrom(info2))
	if got := waitFor(t, func() string { return tb.Lookup(info2.pid).ExeSha256 }); got != want {
		t.Fatalf("second digest %s, want %s", got, want)
	}
	if counterValue(tb.m.hashHit) != hits+1 {
		t.Errorf("cache hits %v, want %v", counterValue(tb.m.hashHit), hits+1)
	}
	sum, err := tb.HashNow(info2.pid)
	if err != nil || sum != want {
		t.Errorf("HashNow = %q, %v; want %s", sum, err, want)
	}
}

func TestHashNowHashesSynchronously(t *testing.T) {
	tb := newTable(t, Config{})
	bin := filepath.Join(t.TempDir(), "sleeper2")
	copyFile(t, sleepBin, bin, 0o755)
	_, info := startChild(t, bin, "30")
	tb.OnExec(execInfoFrom(info))
	sum, err := tb.HashNow(info.pid)
	if err != nil {
		t.Fatalf("HashNow: %v", err)
	}
	if want := fileSHA256(t, bin); sum != want {
		t.Errorf("HashNow = %s, want %s", sum, want)
	}
	if tb.Lookup(info.pid).ExeSha256 != sum {
		t.Error("HashNow did not publish the digest")
	}
	if _, err := tb.HashNow(4_194_001); err == nil {
		t.Error("HashNow of a missing pid succeeded")
	}
}

func TestFilelessExecutableIsSeenAndHashed(t *testing.T) {
	fd, err := unix.MemfdCreate("vigil-test", 0)
	if err != nil {
		t.Skipf("memfd_create: %v", err)
	}
	f := os.NewFile(uintptr(fd), "memfd")
	defer f.Close()
	src, err := os.ReadFile(sleepBin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(src); err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), fd)
	_, info := startChild(t, path, "30")
	tb := newTable(t, Config{})
	p := tb.Lookup(info.pid)
	if p == nil {
		t.Fatal("memfd process not found")
	}
	if !p.ExeFileless {
		t.Errorf("exe %q not marked fileless", p.ExePath)
	}
	sum, err := tb.HashNow(info.pid)
	want := sha256.Sum256(src)
	if err != nil || sum != hex.EncodeToString(want[:]) {
		t.Errorf("HashNow = %q, %v; want the memfd's digest", sum, err)
	}
}

func TestSetIDCopiesOnWrite(t *testing.T) {
	tb := syntheticTable(t, Config{})
	before := tb.OnExec(ExecInfo{Pid: 7100, StartTime: TickNanos, Uid: 1000, Euid: 1000, Gid: 1000, Egid: 1000, CapEffective: 0x20})
	after := tb.OnSetID(7100, Creds{Uid: 1000, Euid: 0, Gid: 1000, Egid: 0})
	same := tb.OnSetID(7100, Creds{Uid: 1000, Euid: 0, Gid: 1000, Egid: 0})
	tb.OnExec(ExecInfo{Pid: 7200, StartTime: TickNanos, Uid: 5, Euid: 5, CapEffective: 0x20})
	capped := tb.OnSetID(7200, Creds{Uid: 5, Euid: 5, CapEffective: 0x1ff, CapsKnown: true})
	cases := []struct {
		name      string
		got, want any
	}{
		{"the earlier message keeps euid 1000", before.Euid, uint32(1000)},
		{"the new message has euid 0", after.Euid, uint32(0)},
		{"the exec id is unchanged", after.ExecId, before.ExecId},
		{"lookup returns the new message", tb.Lookup(7100), after},
		{"an unknown pid returns nil", tb.OnSetID(7199, Creds{}) == nil, true},
		{"creds without capabilities keep the known set", after.CapEffective, uint64(0x20)},
		{"unchanged creds return the same message", same, after},
		{"known capabilities are applied", capped.CapEffective, uint64(0x1ff)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %v, want %v", c.got, c.want)
			}
		})
	}
}

func TestConcurrentLookupsDuringUpdates(t *testing.T) {
	tb := newTable(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = tb.Run(ctx) }()
	if err := tb.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	self := uint32(os.Getpid())
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if p := tb.Lookup(self); p == nil || p.ExecId == "" {
					t.Error("lookup of this process failed during updates")
					return
				}
				for pid := uint32(8000); pid < 8100; pid++ {
					if p := tb.Lookup(pid); p != nil {
						_ = len(p.Lineage) + len(p.ExeSha256)
					}
				}
			}
		})
	}
	for i := range 2000 {
		pid := uint32(8000 + i%100)
		start := uint64(1000+i) * TickNanos
		tb.OnFork(self, pid, start)
		tb.OnExec(ExecInfo{Pid: pid, Ppid: self, StartTime: start, ExePath: "/bin/true", Uid: uint32(i % 3)})
		tb.OnSetID(pid, Creds{Uid: 0})
		tb.OnExit(pid)
	}
	close(stop)
	wg.Wait()
}

func TestShallowCopyCopiesEveryField(t *testing.T) {
	p := &vigilv1.Process{}
	m := p.ProtoReflect()
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
			l := m.Mutable(fd).List()
			l.Append(protoreflect.ValueOfMessage((&vigilv1.Ancestor{ExecId: "a"}).ProtoReflect()))
		case fd.IsList():
			m.Mutable(fd).List().Append(protoreflect.ValueOfString("x"))
		case fd.Kind() == protoreflect.MessageKind:
			m.Set(fd, protoreflect.ValueOfMessage(timestamppb.New(time.Unix(1, 2)).ProtoReflect()))
		case fd.Kind() == protoreflect.StringKind:
			m.Set(fd, protoreflect.ValueOfString("s"+string(fd.Name())))
		case fd.Kind() == protoreflect.BoolKind:
			m.Set(fd, protoreflect.ValueOfBool(true))
		case fd.Kind() == protoreflect.Uint32Kind:
			m.Set(fd, protoreflect.ValueOfUint32(uint32(fd.Number())))
		case fd.Kind() == protoreflect.Uint64Kind:
			m.Set(fd, protoreflect.ValueOfUint64(uint64(fd.Number())))
		default:
			t.Fatalf("field %s has kind %s: teach this test and shallowCopy about it", fd.Name(), fd.Kind())
		}
	}
	if c := shallowCopy(p); !proto.Equal(c, p) {
		t.Errorf("shallowCopy misses a field of Process; add it to shallowCopy:\n got %v\nwant %v", c, p)
	}
}

func TestConfigValidateNamesTheKey(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		key  string
	}{
		{"a lineage depth above 64 is refused", Config{LineageDepth: 65}, "lineage_depth"},
		{"a negative ttl is refused", Config{ExitedTTL: -time.Second}, "exited_ttl"},
		{"a negative cache size is refused", Config{HashCacheSize: -1}, "hash_cache_size"},
		{"the zero config is valid", Config{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if c.key == "" {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), c.key+":") {
				t.Errorf("Validate = %v, want an error naming %s", err, c.key)
			}
		})
	}
}

func waitFor(t *testing.T, f func() string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if v := f(); v != "" {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// counterValue reads a counter's current value.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

func TestShortLivedProcessIsHashedThroughItsParentsRoot(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "quick")
	copyFile(t, "/bin/true", bin, 0o755)
	want := fileSHA256(t, bin)
	var st unix.Stat_t
	if err := unix.Stat(bin, &st); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		async bool
	}{
		{"HashNow finds the file of a process that has exited", false},
		{"the worker finds the file of a process that has exited", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb := newTable(t, Config{})
			cmd := exec.Command(bin)
			if err := cmd.Run(); err != nil {
				t.Fatal(err)
			}
			pid := uint32(cmd.Process.Pid)
			// The exec record arrives after the process is gone.
			tb.OnExec(ExecInfo{Pid: pid, Ppid: uint32(os.Getpid()), StartTime: 1, ExePath: bin,
				Args: []string{bin}, ExeInode: st.Ino, ExeDev: kernelDev(st.Dev)})
			tb.OnExit(pid)
			var got string
			if c.async {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				go func() { _ = tb.Run(ctx) }()
				got = waitFor(t, func() string { return tb.LookupExecID(tb.ExecID(pid, 1)).ExeSha256 })
			} else {
				var err error
				if got, err = tb.HashNow(pid); err != nil {
					t.Fatalf("HashNow: %v", err)
				}
			}
			if got != want {
				t.Errorf("digest %s, want %s", got, want)
			}
		})
	}
}
