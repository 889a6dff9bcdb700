package proctable

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/timestamppb"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// TickNanos is the length of one clock tick (USER_HZ = 100) in nanoseconds:
// the unit /proc/PID/stat reports start times in, and the precision exec ids
// are computed at.
const TickNanos = 1_000_000_000 / 100

// negativeTTL is how long a failed /proc read for a pid is remembered, so a
// burst of events from a process that is already gone reads /proc once.
const negativeTTL = time.Second

// maxNegative bounds the negative cache; it is cleared when full.
const maxNegative = 4096

// Config configures a Table. Zero values take the documented defaults.
type Config struct {
	// ProcRoot is where procfs is mounted (default "/proc"). A sensor in a
	// container with the host's /proc mounted elsewhere sets it.
	ProcRoot string `yaml:"proc_root"`
	// BootID overrides the boot id read from
	// ProcRoot/sys/kernel/random/boot_id.
	BootID string `yaml:"boot_id"`
	// LineageDepth is the number of ancestors kept in a process's lineage
	// (default 8; at most 64).
	LineageDepth int `yaml:"lineage_depth"`
	// LineageArgsDepth is the number of nearest ancestors whose arguments are
	// kept in the lineage (default 2; negative for none).
	LineageArgsDepth int `yaml:"lineage_args_depth"`
	// ExitedTTL is how long an exited process stays resolvable (default 30s).
	ExitedTTL time.Duration `yaml:"exited_ttl"`
	// MaxExited bounds the exited processes kept (default 65536).
	MaxExited int `yaml:"max_exited"`
	// SweepInterval is how often live entries are checked against /proc to
	// retire processes whose exit record was lost (default 60s; negative
	// disables).
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// HashQueueSize bounds the queue of pending hash jobs (default 4096).
	HashQueueSize int `yaml:"hash_queue_size"`
	// HashWorkers is the number of worker goroutines Run starts for hashes
	// and user names (default 1).
	HashWorkers int `yaml:"hash_workers"`
	// HashCacheSize bounds the executable digest cache (default 8192).
	HashCacheSize int `yaml:"hash_cache_size"`
	// HashMaxBytes is the largest executable hashed (default 512 MiB); larger
	// files are skipped and counted.
	HashMaxBytes int64 `yaml:"hash_max_bytes"`
	// DisableHashing turns executable hashing off; the worker still stats
	// executables for their times and resolves user names.
	DisableHashing bool `yaml:"disable_hashing"`
	// MaxSeedArgBytes bounds the argument bytes read from /proc/PID/cmdline
	// (default 4096), like the probes' argv bound.
	MaxSeedArgBytes int `yaml:"max_seed_arg_bytes"`

	// Now returns the current time; tests replace it (default time.Now).
	Now func() time.Time `yaml:"-"`
}

func (c *Config) setDefaults() {
	if c.ProcRoot == "" {
		c.ProcRoot = "/proc"
	}
	if c.LineageDepth == 0 {
		c.LineageDepth = 8
	}
	if c.LineageArgsDepth == 0 {
		c.LineageArgsDepth = 2
	}
	if c.LineageArgsDepth < 0 {
		c.LineageArgsDepth = 0
	}
	if c.ExitedTTL == 0 {
		c.ExitedTTL = 30 * time.Second
	}
	if c.MaxExited == 0 {
		c.MaxExited = 65536
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = time.Minute
	}
	if c.HashQueueSize == 0 {
		c.HashQueueSize = 4096
	}
	if c.HashWorkers == 0 {
		c.HashWorkers = 1
	}
	if c.HashCacheSize == 0 {
		c.HashCacheSize = 8192
	}
	if c.HashMaxBytes == 0 {
		c.HashMaxBytes = 512 << 20
	}
	if c.MaxSeedArgBytes == 0 {
		c.MaxSeedArgBytes = 4096
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports the first setting that cannot work, naming its key.
func (c Config) Validate() error {
	switch {
	case c.LineageDepth < 0 || c.LineageDepth > 64:
		return fmt.Errorf("lineage_depth: %d is outside 0..64", c.LineageDepth)
	case c.ExitedTTL < 0:
		return fmt.Errorf("exited_ttl: %s is negative", c.ExitedTTL)
	case c.MaxExited < 0:
		return fmt.Errorf("max_exited: %d is negative", c.MaxExited)
	case c.HashQueueSize < 0:
		return fmt.Errorf("hash_queue_size: %d is negative", c.HashQueueSize)
	case c.HashWorkers < 0:
		return fmt.Errorf("hash_workers: %d is negative", c.HashWorkers)
	case c.HashCacheSize < 0:
		return fmt.Errorf("hash_cache_size: %d is negative", c.HashCacheSize)
	case c.HashMaxBytes < 0:
		return fmt.Errorf("hash_max_bytes: %d is negative", c.HashMaxBytes)
	}
	return nil
}

// ExecInfo is what an exec record tells about the process after execve.
type ExecInfo struct {
	// Pid is the host pid (tgid); Ppid the parent's host pid.
	Pid, Ppid uint32
	// NsPid is the pid in the process's own pid namespace.
	NsPid uint32
	// StartTime is the task's start time in ns since boot
	// (task->start_boottime; see the package doc on rounding).
	StartTime uint64
	Comm      string
	// ExePath is the absolute path of the executable.
	ExePath       string
	Args          []string
	ArgsTruncated bool
	Cwd           string
	Uid, Gid      uint32
	Euid, Egid    uint32
	LoginUID      uint32
	Sid           uint32
	Tty           uint32
	// ExeInode and ExeDev identify the executable; ExeDev in the kernel's
	// encoding (major<<20 | minor, as in super_block.s_dev).
	ExeInode, ExeDev uint64
	ExeUpperLayer    bool
	ExeFileless      bool
	// ExeOutsideRoot: the executable was not reachable from the process's
	// root (a detached mount, a memfd, outside its chroot).
	ExeOutsideRoot bool
	// Compat32: the executable is a 32-bit ELF (its system calls bypass the
	// per-syscall tracepoints).
	Compat32 bool
	// ExeCtime and ExeMtime are the executable inode's times, zero when
	// the probe did not read them (the hash worker then stats the file).
	// With ExeSize set they are the inode's raw fields, and ExeCtime may
	// carry the multigrain "queried" flag (2^31 ns late): the table
	// publishes the ctime a stat confirms (from its cache, or the hash
	// worker's stat).
	ExeCtime, ExeMtime time.Time
	// ExeSize is the executable's size (the inode's i_size), 0 when
	// unknown. With it, the inode, device and times identify the file
	// version, and an executable hashed before costs no system call.
	ExeSize int64
	// CapEffective is the effective capability set after exec.
	CapEffective uint64
	// MntNs is the inode number of the process's mount namespace, 0 when
	// unknown; it lets the user name be resolved from cache at once.
	MntNs uint64
}

// ForkInfo is what a fork record tells about a new process.
type ForkInfo struct {
	ParentPid uint32
	ChildPid  uint32
	// ChildNsPid is the child's pid in its own pid namespace, 0 when
	// unknown (then it is taken to equal ChildPid for a parent in the
	// initial pid namespace).
	ChildNsPid uint32
	// ChildStart is the child's start time in ns since boot.
	ChildStart uint64
}

// Creds are a process's ids and effective capabilities after a
// setuid-family or capset call, as the kernel reports them on return.
type Creds struct {
	Uid, Gid, Euid, Egid uint32
	// CapEffective is the effective capability set; it is applied only
	// when CapsKnown is set, so a record without capabilities does not
	// wipe the ones the table knows.
	CapEffective uint64
	CapsKnown    bool
}

// entry is the table's record of one process. Fields are guarded by
// Table.mu; proc is replaced, never modified, once published.
type entry struct {
	proc       *vigilv1.Process
	startTicks uint64
	// anc is proc as an ancestor, with arguments; built on the first
	// child after a publish (most processes have none) so every
	// descendant's lineage shares it. Stored under a read lock.
	anc   atomic.Pointer[vigilv1.Ancestor]
	mntNs uint64
	// userDone is set once proc.UserName is settled (found, or known
	// absent from passwd), so no more lookups are queued for it.
	userDone bool
	// gen counts image changes (exec) so a hash computed for an older
	// image is not published on a newer one.
	gen uint64
	// exe is the executable's version as the exec record (or /proc)
	// reported it; timesOK is set once proc's ExeMtime and ExeCtime are
	// what a stat reports (from the digest cache, or a stat).
	exe     exeFacts
	timesOK bool
	// kids is the lineage of this process's children, built once per
	// publish: siblings share it (fewer allocations, and the --stdout
	// encoder writes a shared lineage once). Stored under a read lock.
	kids     atomic.Pointer[[]*vigilv1.Ancestor]
	exited   bool
	exitedAt time.Time
}

// Table is the process table. Create it with New.
type Table struct {
	cfg      Config
	log      *slog.Logger
	m        *metrics
	bootID   [6]byte
	bootWall time.Time

	mu       sync.RWMutex
	byPid    map[uint32]*entry
	byExecID map[string]*entry
	// exitedQ holds exited entries in exit order (oldest first); head is
	// the index of the oldest one still queued.
	exitedQ  []*entry
	exitedHd int
	negative map[uint32]time.Time

	hashes *hashCache
	users  *userCache
	jobs   chan hashJob
}

// New builds an empty table; call Seed to fill it from /proc and Run to
// start hashing and expiry.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Table, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("proctable config: %w", err)
	}
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Table{
		cfg:      cfg,
		log:      log.With("component", "proctable"),
		byPid:    make(map[uint32]*entry),
		byExecID: make(map[string]*entry),
		negative: make(map[uint32]time.Time),
		hashes:   newHashCache(cfg.HashCacheSize),
		users:    newUserCache(),
		jobs:     make(chan hashJob, cfg.HashQueueSize),
	}
	bootID := cfg.BootID
	if bootID == "" {
		b, err := os.ReadFile(filepath.Join(cfg.ProcRoot, "sys/kernel/random/boot_id"))
		if err != nil {
			return nil, fmt.Errorf("read boot id: %w", err)
		}
		bootID = strings.TrimSpace(string(b))
	}
	raw, err := hex.DecodeString(strings.ReplaceAll(bootID, "-", ""))
	if err != nil || len(raw) < len(t.bootID) {
		return nil, fmt.Errorf("parse boot id %q: not a uuid", bootID)
	}
	copy(t.bootID[:], raw)
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return nil, fmt.Errorf("read boot clock: %w", err)
	}
	t.bootWall = time.Now().Add(-time.Duration(ts.Nano()))
	m, err := newMetrics(reg, t)
	if err != nil {
		return nil, err
	}
	t.m = m
	return t, nil
}

// ExecID returns the exec_id of the process with host pid pid that started
// startNs nanoseconds after boot.
func (t *Table) ExecID(pid uint32, startNs uint64) string {
	return t.execIDTicks(pid, startNs/TickNanos)
}

func (t *Table) execIDTicks(pid uint32, ticks uint64) string {
	var b [16]byte
	copy(b[:6], t.bootID[:])
	binary.BigEndian.PutUint32(b[6:10], pid)
	// 48 bits of ticks last 89,000 years of uptime.
	binary.BigEndian.PutUint16(b[10:12], uint16(ticks>>32))
	binary.BigEndian.PutUint32(b[12:16], uint32(ticks))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// startTimestamp turns ns since boot into wall-clock time.
func (t *Table) startTimestamp(startNs uint64) *timestamppb.Timestamp {
	return timestamppb.New(t.bootWall.Add(time.Duration(startNs)))
}

// Lookup returns the process with host pid pid, or nil when neither the
// table nor /proc knows it. The result is shared and must not be modified.
// A hit does not allocate.
func (t *Table) Lookup(pid uint32) *vigilv1.Process {
	t.mu.RLock()
	e := t.byPid[pid]
	var p *vigilv1.Process
	if e != nil {
		p = e.proc
	}
	t.mu.RUnlock()
	if p != nil {
		t.m.lookupHit.Inc()
		return p
	}
	e = t.fromProc(pid)
	if e == nil {
		return nil
	}
	// e.proc may be republished by the hash worker at any time: read it
	// under the lock.
	t.mu.RLock()
	defer t.mu.RUnlock()
	return e.proc
}

// LookupExecID returns the process with the given exec_id while the table
// holds it (alive, or exited less than ExitedTTL ago), or nil.
func (t *Table) LookupExecID(execID string) *vigilv1.Process {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if e := t.byExecID[execID]; e != nil {
		return e.proc
	}
	return nil
}

// fromProc reads a process the table does not know from /proc and inserts
// it. It returns nil when the pid is not running (remembered briefly).
func (t *Table) fromProc(pid uint32) *entry {
	if pid == 0 {
		return nil
	}
	now := t.cfg.Now()
	t.mu.RLock()
	until, neg := t.negative[pid]
	t.mu.RUnlock()
	if neg && now.Before(until) {
		t.m.lookupMiss.Inc()
		return nil
	}
	info, err := readProc(t.cfg.ProcRoot, pid, t.cfg.MaxSeedArgBytes)
	if err == nil && info.tgid != 0 && info.tgid != pid {
		// A thread id: the process is its thread group.
		return t.entryFor(info.tgid)
	}
	if err != nil {
		t.m.procReadErr.Inc()
		t.m.lookupMiss.Inc()
		t.mu.Lock()
		if len(t.negative) >= maxNegative {
			clear(t.negative)
		}
		t.negative[pid] = now.Add(negativeTTL)
		t.mu.Unlock()
		return nil
	}
	t.m.procRead.Inc()
	t.m.lookupProc.Inc()
	parent := t.entryForNoProc(info.ppid)
	if parent == nil && info.ppid != 0 {
		// Read the parent too, so the lineage is complete; the recursion
		// ends at pid 1 or 2, whose parent is 0, and is bounded by the
		// depth of the real process tree.
		parent = t.fromProc(info.ppid)
	}
	if info.exe != "" && !info.fileless {
		info.upper = onUpperLayer(readOverlayMounts(t.cfg.ProcRoot, pid), info.exe)
	}
	e := t.newSeedEntry(info, parent)
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.negative, pid)
	if cur := t.byPid[pid]; cur != nil && cur.startTicks == e.startTicks {
		// Someone else inserted it meanwhile.
		return cur
	}
	t.insertLocked(e)
	t.queueLocked(e, t.needsExeJob(e), !e.userDone)
	return e
}

// entryFor returns the live or recently exited entry for pid, reading /proc
// on a miss.
func (t *Table) entryFor(pid uint32) *entry {
	if e := t.entryForNoProc(pid); e != nil {
		return e
	}
	return t.fromProc(pid)
}

func (t *Table) entryForNoProc(pid uint32) *entry {
	t.mu.RLock()
	e := t.byPid[pid]
	t.mu.RUnlock()
	return e
}

// insertLocked makes e the entry for its pid, retiring a previous process
// with that pid (pid reuse, or an exit record that was lost).
func (t *Table) insertLocked(e *entry) {
	pid := e.proc.Pid
	if old := t.byPid[pid]; old != nil && old != e {
		if old.startTicks != e.startTicks {
			t.m.pidReuse.Inc()
		}
		if !old.exited {
			t.markExitedLocked(old)
		}
	}
	t.byPid[pid] = e
	t.byExecID[e.proc.ExecId] = e
}

// publishLocked replaces e's message and the ancestor built from it.
func (t *Table) publishLocked(e *entry, p *vigilv1.Process) {
	e.proc = p
	e.anc.Store(nil)
	e.kids.Store(nil)
}

// ancestor returns e as a lineage element, with or without arguments.
// Callers hold t.mu (read is enough: builders racing under it store equal
// values, and a publish, which clears it, takes the write lock).
func (e *entry) ancestor(withArgs bool) *vigilv1.Ancestor {
	a := e.anc.Load()
	if a == nil {
		a = ancestorOf(e.proc, true)
		e.anc.Store(a)
	}
	if withArgs || len(a.Args) == 0 {
		return a
	}
	return stripArgs(a)
}

// lineageFrom builds the lineage of a child of parent: the parent first,
// then the parent's own lineage, cut at LineageDepth, with arguments only on
// the nearest LineageArgsDepth elements. Elements are shared with the
// parent's lineage where they are unchanged. Callers hold t.mu (read).
func (t *Table) lineageFrom(parent *entry) []*vigilv1.Ancestor {
	depth := t.cfg.LineageDepth
	if parent == nil || depth == 0 {
		return nil
	}
	if l := parent.kids.Load(); l != nil {
		return *l
	}
	pl := parent.proc.Lineage
	n := min(1+len(pl), depth)
	out := make([]*vigilv1.Ancestor, n)
	argsDepth := t.cfg.LineageArgsDepth
	out[0] = parent.ancestor(argsDepth > 0)
	for i := 1; i < n; i++ {
		a := pl[i-1]
		if i >= argsDepth && len(a.Args) > 0 {
			a = stripArgs(a)
		}
		out[i] = a
	}
	parent.kids.Store(&out)
	return out
}

// OnExec records a successful execve and returns the process as it is after
// it. The exec_id stays the one the process had before the exec; a process
// the table did not know (its fork was missed, or it is older than the
// sensor and was never looked up) gets a new entry with its parent from
// Ppid.
func (t *Table) OnExec(info ExecInfo) *vigilv1.Process {
	ticks := info.StartTime / TickNanos
	p := &vigilv1.Process{
		Pid:            info.Pid,
		NsPid:          info.NsPid,
		Comm:           info.Comm,
		ExePath:        info.ExePath,
		Args:           info.Args,
		ArgsTruncated:  info.ArgsTruncated,
		Cwd:            info.Cwd,
		Uid:            info.Uid,
		Gid:            info.Gid,
		Euid:           info.Euid,
		Egid:           info.Egid,
		Loginuid:       info.LoginUID,
		Sid:            info.Sid,
		Tty:            info.Tty,
		ExeInode:       info.ExeInode,
		ExeDev:         info.ExeDev,
		ExeUpperLayer:  info.ExeUpperLayer,
		ExeFileless:    info.ExeFileless,
		ExeOutsideRoot: info.ExeOutsideRoot,
		Compat32:       info.Compat32,
		CapEffective:   info.CapEffective,
	}
	var exe exeFacts
	timesOK := false
	if info.ExeSize > 0 && !info.ExeMtime.IsZero() {
		exe = exeFacts{dev: info.ExeDev, ino: info.ExeInode, size: info.ExeSize,
			mtimeNs: info.ExeMtime.UnixNano(), ctimeNs: info.ExeCtime.UnixNano()}
	}
	hit := false
	if exe.known() {
		// The cache knows this file version: its digest and confirmed
		// ctime, with no system call.
		p.ExeMtime = nsTimestamp(exe.mtimeNs)
		if it, ok := t.hashes.get(exe); ok {
			hit, timesOK = true, true
			p.ExeCtime = nsTimestamp(it.ctimeNs)
			if p.ExeSha256 = it.sum; it.sum != "" {
				t.m.hashHit.Inc()
			}
		} else {
			// Published now, corrected by the stat the hash makes.
			p.ExeCtime = nsTimestamp(exe.ctimeNs)
		}
	} else {
		if !info.ExeCtime.IsZero() {
			p.ExeCtime = timestamppb.New(info.ExeCtime)
		}
		if !info.ExeMtime.IsZero() {
			p.ExeMtime = timestamppb.New(info.ExeMtime)
			// Without the size these came from a stat (procfs mode).
			timesOK = true
		}
	}
	t.mu.Lock()
	if e := t.byPid[info.Pid]; e != nil && e.startTicks == ticks && !e.exited {
		// The same process with a new image: keep its identity and family.
		old := e.proc
		p.ExecId = old.ExecId
		p.ParentExecId = old.ParentExecId
		p.Ppid = old.Ppid
		p.StartTime = old.StartTime
		p.Lineage = old.Lineage
		if p.NsPid == 0 {
			p.NsPid = old.NsPid
		}
		ns := info.MntNs
		if ns == 0 {
			ns = e.mntNs
		}
		if old.Uid == p.Uid && old.Gid == p.Gid && ns == e.mntNs && e.userDone {
			p.UserName, p.GroupName = old.UserName, old.GroupName
		} else {
			p.UserName, p.GroupName, e.userDone = t.users.cached(ns, p.Uid, p.Gid, t.cfg.Now())
		}
		if !hit && old.ExeInode == p.ExeInode && old.ExeDev == p.ExeDev && old.ExeInode != 0 &&
			(!exe.known() || !e.exe.known() || sameVersion(exe, e.exe)) {
			// Re-exec of the same file (a shell exec'ing itself): a file
			// being executed cannot be written (ETXTBSY), so the digest
			// and times of the old image still hold.
			p.ExeSha256 = old.ExeSha256
			if p.ExeMtime == nil || e.timesOK && !timesOK {
				p.ExeCtime, p.ExeMtime = old.ExeCtime, old.ExeMtime
				timesOK = e.timesOK
			}
		}
		e.exe = exe
		e.timesOK = timesOK
		e.mntNs = ns
		e.gen++
		t.publishLocked(e, p)
		t.queueLocked(e, t.needsExeJob(e), !e.userDone)
		t.mu.Unlock()
		t.m.execs.Inc()
		return p
	}
	t.mu.Unlock()
	parent := t.entryFor(info.Ppid)
	p.ExecId = t.execIDTicks(info.Pid, ticks)
	p.Ppid = info.Ppid
	p.StartTime = t.startTimestamp(info.StartTime)
	if parent != nil {
		t.mu.RLock()
		p.ParentExecId = parent.proc.ExecId
		p.Lineage = t.lineageFrom(parent)
		t.mu.RUnlock()
	}
	e := &entry{startTicks: ticks, mntNs: info.MntNs, exe: exe, timesOK: timesOK}
	p.UserName, p.GroupName, e.userDone = t.users.cached(info.MntNs, p.Uid, p.Gid, t.cfg.Now())
	t.mu.Lock()
	t.publishLocked(e, p)
	t.insertLocked(e)
	t.queueLocked(e, t.needsExeJob(e), !e.userDone)
	t.mu.Unlock()
	t.m.execs.Inc()
	// p, not e.proc: the hash worker may republish e.proc once the lock is
	// released, and p is what this exec published.
	return p
}

// OnFork records a new process and returns it. See OnForkInfo.
func (t *Table) OnFork(parentPid, childPid uint32, childStart uint64) *vigilv1.Process {
	return t.OnForkInfo(ForkInfo{ParentPid: parentPid, ChildPid: childPid, ChildStart: childStart})
}

// OnForkInfo records a new process (fork, vfork or clone without
// CLONE_THREAD) and returns it: the parent's image and credentials under a
// new exec_id, with the parent first in its lineage. Callers pass thread
// group leaders only.
func (t *Table) OnForkInfo(f ForkInfo) *vigilv1.Process {
	ticks := f.ChildStart / TickNanos
	t.mu.RLock()
	if cur := t.byPid[f.ChildPid]; cur != nil && cur.startTicks == ticks {
		// Already known: /proc seeding or a lookup got there first.
		p := cur.proc
		t.mu.RUnlock()
		return p
	}
	t.mu.RUnlock()
	parent := t.entryFor(f.ParentPid)
	if parent == nil {
		// The parent is gone and unknown; the child may still be readable.
		if e := t.fromProc(f.ChildPid); e != nil {
			return e.proc
		}
		p := &vigilv1.Process{
			ExecId:    t.execIDTicks(f.ChildPid, ticks),
			Pid:       f.ChildPid,
			Ppid:      f.ParentPid,
			NsPid:     f.ChildNsPid,
			StartTime: t.startTimestamp(f.ChildStart),
		}
		e := &entry{startTicks: ticks}
		t.mu.Lock()
		t.publishLocked(e, p)
		t.insertLocked(e)
		t.mu.Unlock()
		t.m.forks.Inc()
		return p
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	pp := parent.proc
	nsPid := f.ChildNsPid
	if nsPid == 0 && pp.NsPid == pp.Pid {
		nsPid = f.ChildPid
	}
	p := &vigilv1.Process{
		ExecId:         t.execIDTicks(f.ChildPid, ticks),
		ParentExecId:   pp.ExecId,
		Pid:            f.ChildPid,
		Ppid:           f.ParentPid,
		NsPid:          nsPid,
		Comm:           pp.Comm,
		ExePath:        pp.ExePath,
		Args:           pp.Args,
		ArgsTruncated:  pp.ArgsTruncated,
		Cwd:            pp.Cwd,
		Uid:            pp.Uid,
		Gid:            pp.Gid,
		Euid:           pp.Euid,
		Egid:           pp.Egid,
		Loginuid:       pp.Loginuid,
		Sid:            pp.Sid,
		Tty:            pp.Tty,
		StartTime:      t.startTimestamp(f.ChildStart),
		ExeSha256:      pp.ExeSha256,
		ExeInode:       pp.ExeInode,
		ExeDev:         pp.ExeDev,
		ExeUpperLayer:  pp.ExeUpperLayer,
		ExeFileless:    pp.ExeFileless,
		ExeOutsideRoot: pp.ExeOutsideRoot,
		Compat32:       pp.Compat32,
		UserName:       pp.UserName,
		Lineage:        t.lineageFrom(parent),
		CapEffective:   pp.CapEffective,
		GroupName:      pp.GroupName,
		ExeCtime:       pp.ExeCtime,
		ExeMtime:       pp.ExeMtime,
	}
	e := &entry{startTicks: ticks, mntNs: parent.mntNs, userDone: parent.userDone, exe: parent.exe, timesOK: parent.timesOK}
	t.publishLocked(e, p)
	t.insertLocked(e)
	// The parent's digest or user name may still be pending; a job for
	// the child makes sure the child gets them too.
	t.queueLocked(e, t.needsExeJob(e), !e.userDone)
	t.m.forks.Inc()
	return p
}

// OnExit marks the process with host pid pid as exited and returns it (nil
// when unknown). It stays resolvable for ExitedTTL.
func (t *Table) OnExit(pid uint32) *vigilv1.Process {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.byPid[pid]
	if e == nil {
		return nil
	}
	if !e.exited {
		t.markExitedLocked(e)
		t.m.exits.Inc()
	}
	return e.proc
}

// markExitedLocked queues e for expiry, evicting the oldest exited entries
// beyond MaxExited.
func (t *Table) markExitedLocked(e *entry) {
	e.exited = true
	e.exitedAt = t.cfg.Now()
	t.exitedQ = append(t.exitedQ, e)
	for len(t.exitedQ)-t.exitedHd > t.cfg.MaxExited {
		t.dropLocked(t.exitedQ[t.exitedHd])
		t.exitedQ[t.exitedHd] = nil
		t.exitedHd++
		t.m.evictCapacity.Inc()
	}
	t.compactLocked()
}

// compactLocked reclaims the consumed front of the exit queue once it is
// more than half of it.
func (t *Table) compactLocked() {
	if t.exitedHd > 1024 && t.exitedHd*2 > len(t.exitedQ) {
		n := copy(t.exitedQ, t.exitedQ[t.exitedHd:])
		clear(t.exitedQ[n:])
		t.exitedQ = t.exitedQ[:n]
		t.exitedHd = 0
	}
}

func (t *Table) dropLocked(e *entry) {
	if t.byPid[e.proc.Pid] == e {
		delete(t.byPid, e.proc.Pid)
	}
	if t.byExecID[e.proc.ExecId] == e {
		delete(t.byExecID, e.proc.ExecId)
	}
}

// Expire drops exited entries older than ExitedTTL and returns how many it
// dropped. Run calls it every second; tests call it directly.
func (t *Table) Expire() int {
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for t.exitedHd < len(t.exitedQ) {
		e := t.exitedQ[t.exitedHd]
		if now.Sub(e.exitedAt) < t.cfg.ExitedTTL {
			break
		}
		t.dropLocked(e)
		t.exitedQ[t.exitedHd] = nil
		t.exitedHd++
		n++
	}
	t.compactLocked()
	t.m.evictTTL.Add(float64(n))
	return n
}

// update publishes a copy of pid's process changed by fn.
func (t *Table) update(pid uint32, fn func(p *vigilv1.Process)) *vigilv1.Process {
	e := t.entryFor(pid)
	if e == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p := shallowCopy(e.proc)
	fn(p)
	t.publishLocked(e, p)
	return p
}

// OnSetID records a process's credentials after a successful setuid-family
// or capset call and returns the process as it is now. When the uid or gid
// changes, the names follow (from cache, else resolved by the worker).
func (t *Table) OnSetID(pid uint32, c Creds) *vigilv1.Process {
	e := t.entryFor(pid)
	if e == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := e.proc
	if old.Uid == c.Uid && old.Gid == c.Gid && old.Euid == c.Euid && old.Egid == c.Egid &&
		(!c.CapsKnown || old.CapEffective == c.CapEffective) {
		// Nothing changed (a setuid to the current id, a failed call):
		// keep the published message, allocate nothing.
		return old
	}
	p := shallowCopy(old)
	changed := p.Uid != c.Uid || p.Gid != c.Gid
	p.Uid, p.Gid, p.Euid, p.Egid = c.Uid, c.Gid, c.Euid, c.Egid
	if c.CapsKnown {
		p.CapEffective = c.CapEffective
	}
	if changed {
		p.UserName, p.GroupName, e.userDone = t.users.cached(e.mntNs, c.Uid, c.Gid, t.cfg.Now())
	}
	t.publishLocked(e, p)
	if !e.userDone {
		t.queueLocked(e, false, true)
	}
	return p
}

// OnChdir records a new working directory (chdir/fchdir), so relative paths
// resolve against it.
func (t *Table) OnChdir(pid uint32, cwd string) *vigilv1.Process {
	return t.update(pid, func(p *vigilv1.Process) { p.Cwd = cwd })
}

// ResolvePath returns p as an absolute, cleaned path: p itself when it is
// absolute, else p joined to dirfdPath (the path of the dirfd of an *at
// call, when the caller knows it) or to the process's working directory.
// When the working directory is unknown it is read from /proc/PID/cwd; when
// that fails too, p is returned cleaned but relative.
func (t *Table) ResolvePath(pid uint32, dirfdPath, p string) string {
	if p == "" {
		return dirfdPath
	}
	if p[0] == '/' {
		return path.Clean(p)
	}
	base := dirfdPath
	if base == "" {
		if proc := t.Lookup(pid); proc != nil {
			base = proc.Cwd
		}
	}
	if base == "" {
		if cwd, err := os.Readlink(filepath.Join(t.cfg.ProcRoot, itoa(pid), "cwd")); err == nil {
			base = cwd
		}
	}
	if base == "" {
		return path.Clean(p)
	}
	return path.Join(base, p)
}

// Len returns the number of live and exited entries.
func (t *Table) Len() (live, exited int) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	exited = len(t.exitedQ) - t.exitedHd
	return len(t.byPid) - t.exitedInPidMapLocked(), exited
}

func (t *Table) exitedInPidMapLocked() int {
	n := 0
	for _, e := range t.exitedQ[t.exitedHd:] {
		if t.byPid[e.proc.Pid] == e {
			n++
		}
	}
	return n
}

// Run hashes executables, expires exited entries and sweeps for lost exits
// until ctx is done.
func (t *Table) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range t.cfg.HashWorkers {
		wg.Go(func() { t.hashWorker(ctx) })
	}
	expire := time.NewTicker(time.Second)
	defer expire.Stop()
	var sweep <-chan time.Time
	if t.cfg.SweepInterval > 0 {
		tk := time.NewTicker(t.cfg.SweepInterval)
		defer tk.Stop()
		sweep = tk.C
	}
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-expire.C:
			t.Expire()
		case <-sweep:
			t.Sweep()
		}
	}
}

// Sweep retires live entries whose process is gone from /proc or whose pid
// now belongs to a process with another start time (their exit record was
// lost), and returns how many it retired.
func (t *Table) Sweep() int {
	type cand struct {
		e     *entry
		pid   uint32
		ticks uint64
	}
	t.mu.RLock()
	cands := make([]cand, 0, len(t.byPid))
	for pid, e := range t.byPid {
		if !e.exited {
			cands = append(cands, cand{e, pid, e.startTicks})
		}
	}
	t.mu.RUnlock()
	var gone []*entry
	for _, c := range cands {
		ticks, err := readStartTicks(t.cfg.ProcRoot, c.pid)
		if errors.Is(err, os.ErrNotExist) || (err == nil && ticks != c.ticks) {
			gone = append(gone, c.e)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, e := range gone {
		if !e.exited {
			t.markExitedLocked(e)
			n++
		}
	}
	t.m.sweepRetired.Add(float64(n))
	return n
}

func itoa(pid uint32) string {
	var b [10]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + pid%10)
		pid /= 10
		if pid == 0 {
			break
		}
	}
	return string(b[i:])
}
