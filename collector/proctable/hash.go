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

// hashKey identifies one version of one file: a rewrite changes mtime or
// size, a replacement changes the inode.
type hashKey struct {
	dev, ino uint64
	mtimeNs  int64
	size     int64
}

type hashItem struct {
	key hashKey
	sum string
}

// hashCache is a bounded LRU of executable digests.
type hashCache struct {
	mu  sync.Mutex
	max int
	ll  *list.List
	m   map[hashKey]*list.Element
}

func newHashCache(max int) *hashCache {
	return &hashCache{max: max, ll: list.New(), m: make(map[hashKey]*list.Element)}
}

func (c *hashCache) get(k hashKey) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[k]
	if !ok {
		return "", false
	}
	c.ll.MoveToFront(el)
	return el.Value.(*hashItem).sum, true
}

// put stores a digest and reports whether an older one was evicted for it.
func (c *hashCache) put(k hashKey, sum string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[k]; ok {
		el.Value.(*hashItem).sum = sum
		c.ll.MoveToFront(el)
		return false
	}
	c.m[k] = c.ll.PushFront(&hashItem{key: k, sum: sum})
	if c.ll.Len() <= c.max {
		return false
	}
	last := c.ll.Back()
	c.ll.Remove(last)
	delete(c.m, last.Value.(*hashItem).key)
	return true
}

// hashJob asks the worker for an entry's executable digest and inode times
// (hash) and/or user and group names (user), for image generation gen.
type hashJob struct {
	e        *entry
	gen      uint64
	pid      uint32
	ino      uint64
	uid, gid uint32
	mntNs    uint64
	hash     bool
	user     bool
	// ppid and exePath let the worker reach the file through the parent's
	// root when the process has already exited.
	ppid    uint32
	exePath string
}

// queueLocked hands work for e to the worker without blocking; a full queue
// drops it (counted). Callers hold t.mu.
func (t *Table) queueLocked(e *entry, hash, user bool) {
	hash = hash && e.proc.ExePath != ""
	if !hash && !user {
		return
	}
	j := hashJob{e: e, gen: e.gen, pid: e.proc.Pid, ino: e.proc.ExeInode, uid: e.proc.Uid, gid: e.proc.Gid,
		mntNs: e.mntNs, hash: hash, user: user}
	if !e.proc.ExeFileless && e.proc.ExeInode != 0 {
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
	var sum, user, group string
	var st unix.Stat_t
	var statOK, userOK bool
	if j.hash {
		s, stt, err := t.hashExe(j.pid, j.ino, !t.cfg.DisableHashing, j.ppid, j.exePath, t.cfg.HashMaxBytes)
		if err == nil {
			sum, st, statOK = s, stt, true
		}
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
	setSum := sum != "" && p.ExeSha256 != sum
	setTimes := statOK && p.ExeMtime == nil
	setUser := userOK && p.Uid == j.uid && p.Gid == j.gid && !e.userDone
	if !setSum && !setTimes && !setUser {
		return
	}
	np := shallowCopy(p)
	if setSum {
		np.ExeSha256 = sum
	}
	if setTimes {
		np.ExeCtime = timestamppb.New(time.Unix(st.Ctim.Unix()))
		np.ExeMtime = timestamppb.New(time.Unix(st.Mtim.Unix()))
	}
	if setUser {
		np.UserName, np.GroupName = user, group
		e.userDone = true
	}
	t.publishLocked(e, np)
}

var (
	errTooLarge = errors.New("executable too large to hash")
	errChanged  = errors.New("executable changed since exec")
)

// hashExe stats the file pid executes and, when hash is set, returns its
// hex SHA-256. It reads through /proc/PID/exe so that container files,
// memfds and deleted files hash right. wantIno, when not 0, is the inode the
// table recorded; another inode means the process has exec'd something else
// since. When the process is already gone (a short-lived command, often the
// very one worth hashing) and exePath is set, the file is opened by path
// inside the parent's root instead; the inode check makes sure it is the
// same file.
func (t *Table) hashExe(pid uint32, wantIno uint64, hash bool, ppid uint32, exePath string, maxBytes int64) (string, unix.Stat_t, error) {
	var st unix.Stat_t
	f, err := os.Open(filepath.Join(t.cfg.ProcRoot, itoa(pid), "exe"))
	if err != nil && exePath != "" && wantIno != 0 {
		var ferr error
		if f, ferr = t.openInRoot(ppid, exePath); ferr == nil {
			err = nil
		}
	}
	if err != nil {
		t.m.hashErrors.WithLabelValues("open").Inc()
		return "", st, fmt.Errorf("open exe of %d: %w", pid, err)
	}
	defer f.Close()
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.m.hashErrors.WithLabelValues("read").Inc()
		return "", st, fmt.Errorf("stat exe of %d: %w", pid, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.m.hashErrors.WithLabelValues("changed").Inc()
		return "", st, fmt.Errorf("exe of %d is not a regular file: %w", pid, errChanged)
	}
	if wantIno != 0 && st.Ino != wantIno {
		t.m.hashErrors.WithLabelValues("changed").Inc()
		return "", st, fmt.Errorf("exe of %d: %w", pid, errChanged)
	}
	if !hash {
		return "", st, nil
	}
	if st.Size > maxBytes {
		// Too large for this caller; counted only when beyond the table's
		// own limit (a caller hashing at exec asks for less).
		if st.Size > t.cfg.HashMaxBytes {
			t.m.hashErrors.WithLabelValues("too_large").Inc()
		}
		return "", st, fmt.Errorf("exe of %d (%d bytes): %w", pid, st.Size, errTooLarge)
	}
	key := hashKey{dev: st.Dev, ino: st.Ino, mtimeNs: st.Mtim.Nano(), size: st.Size}
	if sum, ok := t.hashes.get(key); ok {
		t.m.hashHit.Inc()
		return sum, st, nil
	}
	t.m.hashMiss.Inc()
	start := time.Now()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, t.cfg.HashMaxBytes+1))
	t.m.hashBytes.Add(float64(n))
	if err != nil {
		t.m.hashErrors.WithLabelValues("read").Inc()
		return "", st, fmt.Errorf("read exe of %d: %w", pid, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	t.m.hashSeconds.Observe(time.Since(start).Seconds())
	if t.hashes.put(key, sum) {
		t.m.hashEvict.Inc()
	}
	return sum, st, nil
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
// table's own limit); a larger one is left to the background worker.
func (t *Table) HashNowUpTo(pid uint32, maxBytes int64) (string, error) {
	e := t.entryFor(pid)
	if e == nil {
		return "", fmt.Errorf("hash exe of %d: %w", pid, errNoProcess)
	}
	t.mu.RLock()
	gen, ino, have := e.gen, e.proc.ExeInode, e.proc.ExeSha256
	ppid, exePath := e.proc.Ppid, e.proc.ExePath
	if e.proc.ExeFileless {
		exePath = ""
	}
	t.mu.RUnlock()
	if have != "" {
		return have, nil
	}
	sum, _, err := t.hashExe(pid, ino, true, ppid, exePath, min(maxBytes, t.cfg.HashMaxBytes))
	if err != nil {
		return "", err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if e.gen == gen && e.proc.ExeSha256 != sum {
		np := shallowCopy(e.proc)
		np.ExeSha256 = sum
		t.publishLocked(e, np)
	}
	return sum, nil
}

// shallowCopy returns a new Process with p's fields; slices and nested
// messages are shared, which is safe because published messages are never
// modified. TestShallowCopyCopiesEveryField fails when a field is added to
// the proto and not here.
func shallowCopy(p *vigilv1.Process) *vigilv1.Process {
	return &vigilv1.Process{
		ExecId:        p.ExecId,
		ParentExecId:  p.ParentExecId,
		Pid:           p.Pid,
		Ppid:          p.Ppid,
		NsPid:         p.NsPid,
		Comm:          p.Comm,
		ExePath:       p.ExePath,
		Args:          p.Args,
		ArgsTruncated: p.ArgsTruncated,
		Cwd:           p.Cwd,
		Uid:           p.Uid,
		Gid:           p.Gid,
		Euid:          p.Euid,
		Egid:          p.Egid,
		Loginuid:      p.Loginuid,
		Sid:           p.Sid,
		Tty:           p.Tty,
		StartTime:     p.StartTime,
		ExeSha256:     p.ExeSha256,
		ExeInode:      p.ExeInode,
		ExeDev:        p.ExeDev,
		ExeUpperLayer: p.ExeUpperLayer,
		ExeFileless:   p.ExeFileless,
		UserName:      p.UserName,
		Lineage:       p.Lineage,
		CapEffective:  p.CapEffective,
		GroupName:     p.GroupName,
		ExeCtime:      p.ExeCtime,
		ExeMtime:      p.ExeMtime,
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
