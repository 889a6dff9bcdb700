package proctable

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// goneBase is the first of the pids these tests use for processes that do
// not exist (above any pid this machine hands out in a test run): an exec
// record for one can only be answered from the cache or through the
// parent's root.
const goneBase = 4_100_000

// withFacts adds the exec record's inode facts of st to info, as the
// collector does from a probe record; ctimeExtra is added to the ctime (the
// multigrain flag a raw read of i_ctime_nsec may carry).
func withFacts(info ExecInfo, st *unix.Stat_t, ctimeExtra int64) ExecInfo {
	info.ExeInode, info.ExeDev = st.Ino, kernelDev(st.Dev)
	info.ExeSize = st.Size
	info.ExeMtime = time.Unix(0, st.Mtim.Nano())
	info.ExeCtime = time.Unix(0, st.Ctim.Nano()+ctimeExtra)
	return info
}

func statFile(t *testing.T, path string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

func errorCount(tb *Table, reason string) float64 {
	return counterValue(tb.m.hashErrors.WithLabelValues(reason))
}

func TestExecOfACachedFileVersionNeedsNoSystemCall(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sleeper-facts")
	copyFile(t, sleepBin, bin, 0o755)
	want := fileSHA256(t, bin)
	st := statFile(t, bin)
	tb := newTable(t, Config{})

	_, info := startChild(t, bin, "30")
	first := tb.OnExec(withFacts(execInfoFrom(info), st, 0))
	if first.ExeSha256 != "" {
		t.Fatalf("first exec of a new file has digest %q before anything read it", first.ExeSha256)
	}
	if !tsIs(first.ExeMtime, st.Mtim.Nano()) || !tsIs(first.ExeCtime, st.Ctim.Nano()) {
		t.Errorf("first exec times %v %v, want the record's", first.ExeMtime, first.ExeCtime)
	}
	if sum, err := tb.HashNow(info.pid); err != nil || sum != want {
		t.Fatalf("HashNow = %q, %v; want %s", sum, err, want)
	}

	cases := []struct {
		name  string
		extra int64
	}{
		{"an exec record with the ctime as stat reports it is answered from the cache", 0},
		{"an exec record whose ctime carries the multigrain flag is answered from the cache", ctimeQueried},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.extra != 0 {
				// The flagged key is new: one live process confirms it
				// (a stat, no read: the digest is cached under the
				// stat's facts).
				_, info2 := startChild(t, bin, "31")
				misses := counterValue(tb.m.hashMiss)
				tb.OnExec(withFacts(execInfoFrom(info2), st, c.extra))
				if sum, err := tb.HashNow(info2.pid); err != nil || sum != want {
					t.Fatalf("HashNow with a flagged ctime = %q, %v; want %s", sum, err, want)
				}
				if got := tb.Lookup(info2.pid).ExeCtime; !tsIs(got, st.Ctim.Nano()) {
					t.Errorf("published ctime %v, want the stat's %d without the flag", got, st.Ctim.Nano())
				}
				if counterValue(tb.m.hashMiss) != misses {
					t.Error("the file was read again for a ctime that only differs by the flag")
				}
			}
			opens := errorCount(tb, "open")
			pid := uint32(goneBase + i)
			p := tb.OnExec(withFacts(ExecInfo{Pid: pid, StartTime: TickNanos, ExePath: bin}, st, c.extra))
			if p.ExeSha256 != want {
				t.Errorf("digest %q, want %s from the cache", p.ExeSha256, want)
			}
			if !tsIs(p.ExeCtime, st.Ctim.Nano()) || !tsIs(p.ExeMtime, st.Mtim.Nano()) {
				t.Errorf("times %v %v, want the stat's", p.ExeMtime, p.ExeCtime)
			}
			if sum, err := tb.HashNow(pid); err != nil || sum != want {
				t.Errorf("HashNow of a process that never existed = %q, %v; want the cached %s", sum, err, want)
			}
			if errorCount(tb, "open") != opens {
				t.Error("the table tried to open the executable of a cached file version")
			}
		})
	}
}

func TestAFileRewrittenInPlaceIsNotTakenFromTheCache(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tool")
	v1, v2 := []byte("version one of the tool\n"), []byte("version two of the tool\n")
	if err := os.WriteFile(bin, v1, 0o755); err != nil {
		t.Fatal(err)
	}
	want1 := fileSHA256(t, bin)
	st1 := statFile(t, bin)
	tb := newTable(t, Config{})
	self := uint32(os.Getpid())
	// The exec records arrive after their processes are gone: the file is
	// reached by path through the parent's (this test's) root.
	exec := func(pid uint32, st *unix.Stat_t) ExecInfo {
		return withFacts(ExecInfo{Pid: pid, Ppid: self, StartTime: TickNanos, ExePath: bin, Args: []string{bin}}, st, 0)
	}
	tb.OnExec(exec(goneBase+10, st1))
	if sum, err := tb.HashNow(goneBase + 10); err != nil || sum != want1 {
		t.Fatalf("HashNow of version one = %q, %v; want %s", sum, err, want1)
	}

	// Same size, mtime put back: only the ctime tells the versions apart.
	time.Sleep(20 * time.Millisecond)
	if err := os.WriteFile(bin, v2, 0o755); err != nil {
		t.Fatal(err)
	}
	mtime := time.Unix(0, st1.Mtim.Nano())
	if err := os.Chtimes(bin, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	st2 := statFile(t, bin)
	if st2.Size != st1.Size || st2.Mtim != st1.Mtim || st2.Ctim == st1.Ctim {
		t.Fatalf("the rewrite did not keep size and mtime and change ctime: %+v -> %+v", st1, st2)
	}
	want2 := fileSHA256(t, bin)

	cases := []struct {
		name      string
		st        *unix.Stat_t
		want      string
		fromCache bool
	}{
		{"an exec of the rewritten file is not answered from the cache and gets the new digest", st2, want2, false},
		{"an exec record of the old version still gets the old version's digest from the cache", st1, want1, true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pid := uint32(goneBase + 20 + i)
			p := tb.OnExec(exec(pid, c.st))
			if c.fromCache {
				if p.ExeSha256 != c.want {
					t.Errorf("digest %q, want %s from the cache", p.ExeSha256, c.want)
				}
				return
			}
			if p.ExeSha256 != "" {
				t.Fatalf("exec of the rewritten file took digest %q from the cache", p.ExeSha256)
			}
			if sum, err := tb.HashNow(pid); err != nil || sum != c.want {
				t.Errorf("HashNow = %q, %v; want %s", sum, err, c.want)
			}
		})
	}

	t.Run("a file version the cache does not know is checked against the record before it is hashed", func(t *testing.T) {
		stale := *st1
		stale.Ctim.Nsec++ // a version that is not the file on disk
		pid := uint32(goneBase + 30)
		changed := errorCount(tb, "changed")
		tb.OnExec(exec(pid, &stale))
		if _, err := tb.HashNow(pid); !errors.Is(err, errChanged) {
			t.Errorf("HashNow of a stale record = %v, want errChanged", err)
		}
		if errorCount(tb, "changed") != changed+1 {
			t.Error("the mismatch was not counted")
		}
		if p := tb.Lookup(pid); p.ExeSha256 != "" {
			t.Errorf("a stale record got digest %q", p.ExeSha256)
		}
	})
}

func TestForkAndReExecKeepTheConfirmedDigest(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sleeper-fork")
	copyFile(t, sleepBin, bin, 0o755)
	want := fileSHA256(t, bin)
	st := statFile(t, bin)
	tb := newTable(t, Config{})
	_, info := startChild(t, bin, "30")
	tb.OnExec(withFacts(execInfoFrom(info), st, ctimeQueried))
	if _, err := tb.HashNow(info.pid); err != nil {
		t.Fatal(err)
	}
	child := tb.OnForkInfo(ForkInfo{ParentPid: info.pid, ChildPid: goneBase + 40, ChildStart: 5 * TickNanos})
	if child.ExeSha256 != want || !tsIs(child.ExeCtime, st.Ctim.Nano()) {
		t.Errorf("forked child digest %q ctime %v, want the parent's confirmed ones", child.ExeSha256, child.ExeCtime)
	}
	tb.mu.RLock()
	e := tb.byPid[goneBase+40]
	need := tb.needsExeJob(e)
	tb.mu.RUnlock()
	if need {
		t.Error("the child of a hashed parent still queues a hash job")
	}
	again := tb.OnExec(withFacts(ExecInfo{Pid: goneBase + 40, StartTime: 5 * TickNanos, ExePath: bin}, st, ctimeQueried))
	if again.ExeSha256 != want || !tsIs(again.ExeCtime, st.Ctim.Nano()) {
		t.Errorf("re-exec digest %q ctime %v, want the confirmed ones", again.ExeSha256, again.ExeCtime)
	}
}

func TestSiblingsShareOneLineageUntilTheParentChanges(t *testing.T) {
	tb := syntheticTable(t, Config{})
	tb.OnExec(ExecInfo{Pid: 10, StartTime: TickNanos, ExePath: "/bin/sh", Args: []string{"sh"}})
	a := tb.OnForkInfo(ForkInfo{ParentPid: 10, ChildPid: 11, ChildStart: 2 * TickNanos})
	b := tb.OnForkInfo(ForkInfo{ParentPid: 10, ChildPid: 12, ChildStart: 2 * TickNanos})
	if len(a.Lineage) == 0 || &a.Lineage[0] != &b.Lineage[0] {
		t.Fatal("siblings got separate lineage slices")
	}
	tb.OnChdir(10, "/tmp")
	c := tb.OnForkInfo(ForkInfo{ParentPid: 10, ChildPid: 13, ChildStart: 3 * TickNanos})
	if &c.Lineage[0] == &a.Lineage[0] {
		t.Error("a child forked after the parent changed got the old lineage")
	}
	if c.Lineage[0].ExecId != a.Lineage[0].ExecId || len(c.Lineage) != len(a.Lineage) {
		t.Errorf("lineage after the change %v, want the same ancestors as %v", c.Lineage, a.Lineage)
	}
}
