package proctable

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/timestamppb"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// ctimeQueried is the flag kernels with multigrain timestamps (6.13 and
// later) keep in bit 31 of inode->i_ctime_nsec once something has read the
// ctime. A probe that reads the field raw reports the ctime 2^31 ns late
// until the next change clears it, so a ctime from the kernel matches a
// stat's either as is or with the flag added.
const ctimeQueried = 1 << 31

// exeFacts identify one version of one executable file, as the exec
// record reports it from the inode: device (kernel encoding), inode, size,
// and mtime and ctime in ns since the epoch. A rewrite changes the size or
// the mtime; one that resets the mtime (touch -d) still changes the ctime,
// which no system call can set; a replacement changes the inode. They are
// the digest cache's key, so an exec of a cached file costs no system call.
type exeFacts struct {
	dev, ino         uint64
	size             int64
	mtimeNs, ctimeNs int64
}

// known says whether the facts came with the record (probes and /proc
// seeding report them; a zero size means they were not read: an empty file
// cannot be executed).
func (f exeFacts) known() bool { return f.ino != 0 && f.size > 0 }

// factsOf returns the facts of a stat result.
func factsOf(st *unix.Stat_t) exeFacts {
	return exeFacts{dev: kernelDev(st.Dev), ino: st.Ino, size: st.Size, mtimeNs: st.Mtim.Nano(), ctimeNs: st.Ctim.Nano()}
}

// matches says whether st is the file version f describes. The device is
// not compared: btrfs subvolumes and overlayfs report an st_dev other than
// the super block's s_dev the probe reads.
func (f exeFacts) matches(st *unix.Stat_t) bool {
	c := st.Ctim.Nano()
	return st.Ino == f.ino && st.Size == f.size && st.Mtim.Nano() == f.mtimeNs &&
		(f.ctimeNs == c || f.ctimeNs == c+ctimeQueried)
}

// sameVersion says whether a and b describe the same file version, allowing
// for the multigrain flag on either ctime.
func sameVersion(a, b exeFacts) bool {
	if a.dev != b.dev || a.ino != b.ino || a.size != b.size || a.mtimeNs != b.mtimeNs {
		return false
	}
	d := a.ctimeNs - b.ctimeNs
	return d == 0 || d == ctimeQueried || d == -ctimeQueried
}

// hashItem is what the cache knows about one file version: its digest
// ("" when it was not hashed: hashing off, or too large) and its ctime as
// stat reports it (without the multigrain flag).
type hashItem struct {
	key     exeFacts
	sum     string
	ctimeNs int64
}

// hashCache is a bounded LRU of executable digests and verified times.
type hashCache struct {
	mu  sync.Mutex
	max int
	ll  *list.List
	m   map[exeFacts]*list.Element
}

func newHashCache(max int) *hashCache {
	return &hashCache{max: max, ll: list.New(), m: make(map[exeFacts]*list.Element)}
}

func (c *hashCache) get(k exeFacts) (hashItem, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[k]
	if !ok {
		return hashItem{}, false
	}
	c.ll.MoveToFront(el)
	return *el.Value.(*hashItem), true
}

// put stores a file version's digest and ctime and reports whether an older
// entry was evicted for it. An empty digest does not replace a known one.
func (c *hashCache) put(k exeFacts, sum string, ctimeNs int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[k]; ok {
		it := el.Value.(*hashItem)
		if sum != "" {
			it.sum = sum
		}
		it.ctimeNs = ctimeNs
		c.ll.MoveToFront(el)
		return false
	}
	c.m[k] = c.ll.PushFront(&hashItem{key: k, sum: sum, ctimeNs: ctimeNs})
	if c.ll.Len() <= c.max {
		return false
	}
	last := c.ll.Back()
	c.ll.Remove(last)
	delete(c.m, last.Value.(*hashItem).key)
	return true
}

// hashJob asks the worker for an entry's executable digest and verified
// inode times (hash) and/or user and group names (user), for image
// generation gen.
type hashJob struct {
	e        *entry
	gen      uint64
	pid      uint32
	exe      exeFacts
	uid, gid uint32
	mntNs    uint64
	hash     bool
	user     bool
	// ppid and exePath let the worker reach the file through the parent's
	// root when the process has already exited.
	ppid    uint32
	exePath string
}

// needsExeJob says whether the worker has something left to learn about
// e's executable: times not yet confirmed by a stat, or a digest that is
// wanted and within the size limit.
func (t *Table) needsExeJob(e *entry) bool {
	if e.proc.ExePath == "" {
		return false
	}
	if !e.timesOK {
		return true
	}
	return e.proc.ExeSha256 == "" && !t.cfg.DisableHashing && !(e.exe.known() && e.exe.size > t.cfg.HashMaxBytes)
}

// queueLocked hands work for e to the worker without blocking; a full queue
// drops it (counted). Callers hold t.mu.
func (t *Table) queueLocked(e *entry, hash, user bool) {
	hash = hash && e.proc.ExePath != ""
	if !hash && !user {
		return
	}
	j := hashJob{e: e, gen: e.gen, pid: e.proc.Pid, exe: e.exe, uid: e.proc.Uid, gid: e.proc.Gid,
		mntNs: e.mntNs, hash: hash, user: user}
	if j.exe.ino == 0 {
		j.exe.ino = e.proc.ExeInode
	}
	if !e.proc.ExeFileless && j.exe.ino != 0 {
		j.ppid, j.exePath = e.proc.Ppid, e.proc.ExePath
	}
	select {
	case t.jobs <- j:
	default:
		t.m.hashDropped.Inc()
	}
}

func (t *Table) hashWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-t.jobs:
			t.runJob(j)
		}
	}
}

func (t *Table) runJob(j hashJob) {
	if j.hash {
		t.mu.RLock()
		done := j.e.gen != j.gen || !t.needsExeJob(j.e)
		t.mu.RUnlock()
		// The event path (HashNow at exec, the cache) may have done it
		// since the job was queued.
		j.hash = !done
	}
	var res exeResult
	var user, group string
	var userOK bool
	if j.hash {
		res, _ = t.hashExe(j.pid, j.exe, !t.cfg.DisableHashing, j.ppid, j.exePath, t.cfg.HashMaxBytes)
	}
	ns := j.mntNs
	if j.user {
		if ns == 0 {
			ns = readNsInode(filepath.Join(t.cfg.ProcRoot, itoa(j.pid), "ns/mnt"))
		}
		user, group, userOK = t.users.resolve(t, j.pid, ns, j.uid, j.gid)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := j.e
	if e.gen != j.gen {
		// The process exec'd again meanwhile; its new image has its own job.
		return
	}
	if e.mntNs == 0 {
		e.mntNs = ns
	}
	p := e.proc
	setUser := userOK && p.Uid == j.uid && p.Gid == j.gid && !e.userDone
	np := t.withExeResult(e, res)
	if !setUser {
		if np != nil {
			t.publishLocked(e, np)
		}
		return
	}
	if np == nil {
		np = shallowCopy(p)
	}
	np.UserName, np.GroupName = user, group
	e.userDone = true
	t.publishLocked(e, np)
}

// withExeResult returns a copy of e's process with the digest and verified
// times of res where they differ from the published ones, or nil when
// nothing changes. It marks e's times confirmed. Callers hold t.mu.
func (t *Table) withExeResult(e *entry, res exeResult) *vigilv1.Process {
	p := e.proc
	setSum := res.sum != "" && p.ExeSha256 != res.sum
	setTimes := res.timesOK && (!tsIs(p.ExeMtime, res.mtimeNs) || !tsIs(p.ExeCtime, res.ctimeNs))
	if res.timesOK {
		e.timesOK = true
	}
	if !setSum && !setTimes {
		return nil
	}
	np := shallowCopy(p)
	if setSum {
		np.ExeSha256 = res.sum
	}
	if setTimes {
		np.ExeMtime = nsTimestamp(res.mtimeNs)
		np.ExeCtime = nsTimestamp(res.ctimeNs)
	}
	return np
}

// tsIs says whether ts is the time ns nanoseconds after the epoch.
func tsIs(ts *timestamppb.Timestamp, ns int64) bool {
	return ts != nil && ts.Seconds*1e9+int64(ts.Nanos) == ns
}

// nsTimestamp converts ns since the epoch to a timestamp.
func nsTimestamp(ns int64) *timestamppb.Timestamp {
	return &timestamppb.Timestamp{Seconds: ns / 1e9, Nanos: int32(ns % 1e9)}
}

var (
	errTooLarge = errors.New("executable too large to hash")
	errChanged  = errors.New("executable changed since exec")
)

// exeResult is what hashExe learned: the digest (when it hashed) and the
// executable's times as stat reports them (timesOK).
type exeResult struct {
	sum              string
	mtimeNs, ctimeNs int64
	timesOK          bool
}

// hashExe returns the executable of pid's digest, when hash is set and the
// file is at most maxBytes (and the table's limit), and its times as stat
// reports them. When exe is known (the exec record's facts) the cache
// answers without a system call; only on a miss is the file opened, checked
// against exe, and read. The file is reached through /proc/PID/exe so that
// container files, memfds and deleted files hash right. When the process
// is already gone (a short-lived command, often the very one worth hashing)
// and exePath is set, the file is opened by path inside the parent's root
// instead; the facts (or, without them, the inode) make sure it is the file
// that was executed.
func (t *Table) hashExe(pid uint32, exe exeFacts, hash bool, ppid uint32, exePath string, maxBytes int64) (exeResult, error) {
	maxBytes = min(maxBytes, t.cfg.HashMaxBytes)
	if exe.known() {
		if it, ok := t.hashes.get(exe); ok {
			res := exeResult{mtimeNs: exe.mtimeNs, ctimeNs: it.ctimeNs, timesOK: true}
			switch {
			case !hash:
				return res, nil
			case it.sum != "":
				t.m.hashHit.Inc()
				res.sum = it.sum
				return res, nil
			case exe.size > maxBytes:
				return res, t.tooLarge(pid, exe.size)
			}
			// Times confirmed, digest never computed (hashing was off, or
			// the limit lower): read the file below.
		} else if hash && exe.size > maxBytes && maxBytes < t.cfg.HashMaxBytes {
			// A caller on the event path with a lower bound: leave the
			// file to the worker rather than open it here.
			return exeResult{}, t.tooLarge(pid, exe.size)
		}
	}
	var res exeResult
	f, err := os.Open(filepath.Join(t.cfg.ProcRoot, itoa(pid), "exe"))
	if err != nil && exePath != "" && exe.ino != 0 {
		var ferr error
		if f, ferr = t.openInRoot(ppid, exePath); ferr == nil {
			err = nil
		}
	}
	if err != nil {
		t.m.hashErrors.WithLabelValues("open").Inc()
		return res, fmt.Errorf("open exe of %d: %w", pid, err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.m.hashErrors.WithLabelValues("read").Inc()
		return res, fmt.Errorf("stat exe of %d: %w", pid, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.m.hashErrors.WithLabelValues("changed").Inc()
		return res, fmt.Errorf("exe of %d is not a regular file: %w", pid, errChanged)
	}
	if exe.known() && !exe.matches(&st) || exe.ino != 0 && st.Ino != exe.ino {
		t.m.hashErrors.WithLabelValues("changed").Inc()
		return res, fmt.Errorf("exe of %d: %w", pid, errChanged)
	}
	key := factsOf(&st)
	res = exeResult{mtimeNs: key.mtimeNs, ctimeNs: key.ctimeNs, timesOK: true}
	// put records the result under the file's stat facts and, when they
	// differ (the multigrain flag, another st_dev), under the record's.
	put := func(sum string) {
		if t.hashes.put(key, sum, key.ctimeNs) {
			t.m.hashEvict.Inc()
		}
		if exe.known() && exe != key && t.hashes.put(exe, sum, key.ctimeNs) {
			t.m.hashEvict.Inc()
		}
	}
	if !hash {
		put("")
		return res, nil
	}
	if st.Size > maxBytes {
		put("")
		return res, t.tooLarge(pid, st.Size)
	}
	if it, ok := t.hashes.get(key); ok && it.sum != "" {
		t.m.hashHit.Inc()
		res.sum = it.sum
		if exe.known() && exe != key {
			put(it.sum)
		}
		return res, nil
	}
	t.m.hashMiss.Inc()
	start := time.Now()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, t.cfg.HashMaxBytes+1))
	t.m.hashBytes.Add(float64(n))
	if err != nil {
		t.m.hashErrors.WithLabelValues("read").Inc()
		return res, fmt.Errorf("read exe of %d: %w", pid, err)
	}
	// A file reached by path is not being executed any more and may be
	// written while it is read: a digest of a moving target is dropped.
	var after unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &after); err != nil || factsOf(&after) != key {
		t.m.hashErrors.WithLabelValues("changed").Inc()
		return exeResult{}, fmt.Errorf("exe of %d changed while hashed: %w", pid, errChanged)
	}
	res.sum = hex.EncodeToString(h.Sum(nil))
	t.m.hashSeconds.Observe(time.Since(start).Seconds())
	put(res.sum)
	return res, nil
}

// tooLarge returns errTooLarge for a file of size bytes, counting it when
// it is beyond the table's own limit (a caller hashing at exec asks for
// less, and the worker gets it later).
func (t *Table) tooLarge(pid uint32, size int64) error {
	if size > t.cfg.HashMaxBytes {
		t.m.hashErrors.WithLabelValues("too_large").Inc()
	}
	return fmt.Errorf("exe of %d (%d bytes): %w", pid, size, errTooLarge)
}

// openInRoot opens path as process pid sees it. RESOLVE_IN_ROOT keeps
// absolute symlinks inside that root (a plain open through /proc/PID/root
// would follow them into the sensor's own), O_NONBLOCK keeps a FIFO planted
// at the path from stalling the worker.
func (t *Table) openInRoot(pid uint32, path string) (*os.File, error) {
	root, err := os.Open(filepath.Join(t.cfg.ProcRoot, itoa(pid), "root"))
	if err != nil {
		return nil, err
	}
	defer root.Close()
	fd, err := unix.Openat2(int(root.Fd()), path, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOCTTY,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s in the root of %d: %w", path, pid, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// HashNow hashes pid's executable synchronously (from the cache when it
// can), publishes the digest on the process and returns it, for callers that
// need the digest of this very event.
func (t *Table) HashNow(pid uint32) (string, error) {
	return t.HashNowUpTo(pid, t.cfg.HashMaxBytes)
}

// HashNowUpTo is HashNow for executables of at most maxBytes (and the
// table's own limit); a larger one is left to the background worker. The
// times a stat confirmed are published with the digest.
func (t *Table) HashNowUpTo(pid uint32, maxBytes int64) (string, error) {
	e := t.entryFor(pid)
	if e == nil {
		return "", fmt.Errorf("hash exe of %d: %w", pid, errNoProcess)
	}
	t.mu.RLock()
	gen, exe, have := e.gen, e.exe, e.proc.ExeSha256
	if exe.ino == 0 {
		exe.ino = e.proc.ExeInode
	}
	ppid, exePath := e.proc.Ppid, e.proc.ExePath
	if e.proc.ExeFileless {
		exePath = ""
	}
	t.mu.RUnlock()
	if have != "" {
		return have, nil
	}
	res, err := t.hashExe(pid, exe, true, ppid, exePath, maxBytes)
	if res.timesOK || res.sum != "" {
		t.mu.Lock()
		if e.gen == gen {
			if np := t.withExeResult(e, res); np != nil {
				t.publishLocked(e, np)
			}
		}
		t.mu.Unlock()
	}
	if err != nil {
		return "", err
	}
	return res.sum, nil
}

// shallowCopy returns a new Process with p's fields; slices and nested
// messages are shared, which is safe because published messages are never
// modified. TestShallowCopyCopiesEveryField fails when a field is added to
// the proto and not here.
func shallowCopy(p *vigilv1.Process) *vigilv1.Process {
	return &vigilv1.Process{
		ExecId:         p.ExecId,
		ParentExecId:   p.ParentExecId,
		Pid:            p.Pid,
		Ppid:           p.Ppid,
		NsPid:          p.NsPid,
		Comm:           p.Comm,
		ExePath:        p.ExePath,
		Args:           p.Args,
		ArgsTruncated:  p.ArgsTruncated,
		Cwd:            p.Cwd,
		Uid:            p.Uid,
		Gid:            p.Gid,
		Euid:           p.Euid,
		Egid:           p.Egid,
		Loginuid:       p.Loginuid,
		Sid:            p.Sid,
		Tty:            p.Tty,
		StartTime:      p.StartTime,
		ExeSha256:      p.ExeSha256,
		ExeInode:       p.ExeInode,
		ExeDev:         p.ExeDev,
		ExeUpperLayer:  p.ExeUpperLayer,
		ExeFileless:    p.ExeFileless,
		ExeOutsideRoot: p.ExeOutsideRoot,
		Compat32:       p.Compat32,
		UserName:       p.UserName,
		Lineage:        p.Lineage,
		CapEffective:   p.CapEffective,
		GroupName:      p.GroupName,
		ExeCtime:       p.ExeCtime,
		ExeMtime:       p.ExeMtime,
	}
}

// ancestorOf returns p as a lineage element.
func ancestorOf(p *vigilv1.Process, withArgs bool) *vigilv1.Ancestor {
	a := &vigilv1.Ancestor{
		ExecId:       p.ExecId,
		ParentExecId: p.ParentExecId,
		Pid:          p.Pid,
		NsPid:        p.NsPid,
		Comm:         p.Comm,
		ExePath:      p.ExePath,
		Uid:          p.Uid,
		Euid:         p.Euid,
		StartTime:    p.StartTime,
	}
	if withArgs {
		a.Args = p.Args
	}
	return a
}

// stripArgs returns a copy of a without arguments.
func stripArgs(a *vigilv1.Ancestor) *vigilv1.Ancestor {
	return &vigilv1.Ancestor{
		ExecId:       a.ExecId,
		ParentExecId: a.ParentExecId,
		Pid:          a.Pid,
		NsPid:        a.NsPid,
		Comm:         a.Comm,
		ExePath:      a.ExePath,
		Uid:          a.Uid,
		Euid:         a.Euid,
		StartTime:    a.StartTime,
	}
}
