package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/collector/probes"
	"github.com/vigilsec/vigil/collector/proctable"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// Collector captures kernel activity as events. Create it with New, run it
// with Run.
type Collector struct {
	log     *slog.Logger
	m       *metrics
	coll    *ebpf.Collection
	kernel  *kernelCounters
	procs   *proctable.Table
	dec     Decoder
	cgroups *cgroupPaths
	reader  atomic.Pointer[ringbuf.Reader]
	// procRoot and poll are fixed at New; the reader uses them without
	// taking mu (ApplyPolicy replaces cfg under mu).
	procRoot      string
	poll          time.Duration
	hashAtExecMax int64
	raw           *rawFallback
	v1            v1Controller
	object        string // the probe build loaded: ProbeObjectDirect or ProbeObjectCompat

	mu       sync.Mutex // guards the fields below
	cfg      Config
	running  bool
	attached map[string][]*attachment // by event kind
	core     []*attachment
	skipped  map[string][]*vigilv1.SkippedProbe // by event kind
	// uringSkipped says why io_uring probes are not attached.
	uringSkipped []*vigilv1.SkippedProbe
	// last kernel counters and probes, kept for Health after Run returns
	lastLost, lastRate uint64
	lastLoaded         []string
	lastSkipped        []*vigilv1.SkippedProbe

	// emitCore says whether exec, fork and exit events are emitted (their
	// probes always run for the process table): bit 0 exec, 1 fork, 2 exit.
	emitCore     atomic.Uint32
	eventsTotal  atomic.Uint64
	decodeErrors atomic.Uint64

	// rawTap, when set (by tests), sees every raw record before decoding;
	// it is how the samples in testdata/ were captured.
	rawTap func([]byte)
	// blockingReader, set by tests, makes Run read without a ringWaiter,
	// as it does where the network poller cannot watch the ring buffer.
	blockingReader bool
}

// New validates cfg, mounts tracefs and bpffs when missing, and loads the
// probes into the kernel (nothing is attached until Run).
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("collector config: %w", err)
	}
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	log = log.With("component", "collector")
	if err := ensureMounts(cfg.TracefsPath, cfg.BPFFSPath); err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("raise memlock limit: %w", err)
	}
	v1 := cgroupV1Controller(cfg.ProcRoot, cfg.CgroupRoot)
	coll, object, err := loadProbes(cfg, v1, log)
	if err != nil {
		return nil, err
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		coll.Close()
		return nil, fmt.Errorf("read boot clock: %w", err)
	}
	c := &Collector{
		log:           log,
		coll:          coll,
		kernel:        newKernelCounters(coll.Maps["counters"]),
		dec:           Decoder{BootTime: time.Now().Add(-time.Duration(ts.Nano()))},
		cfg:           cfg,
		procRoot:      cfg.ProcRoot,
		poll:          cfg.PollInterval,
		hashAtExecMax: cfg.HashAtExecMaxBytes,
		raw:           newRawFallback(cfg, coll),
		attached:      make(map[string][]*attachment),
		skipped:       make(map[string][]*vigilv1.SkippedProbe),
	}
	c.m, err = newMetrics(reg, c.kernel, c.pendingBytes)
	if err != nil {
		coll.Close()
		return nil, err
	}
	c.v1 = v1
	c.object = object
	c.log.Info("probes loaded", "object", object)
	if c.v1.ok {
		c.log.Info("cgroup v1 host: cgroup ids from a v1 controller", "controller", c.v1.name)
	}
	c.cgroups = newCgroupPaths(cfg.ProcRoot, cfg.CgroupRoot, c.v1, c.m.cgroupMisses.Inc)
	c.procs, err = proctable.New(cfg.Process, log, reg)
	if err != nil {
		coll.Close()
		return nil, fmt.Errorf("process table: %w", err)
	}
	c.dec.Processes = c.procs
	if err := c.applyKernelConfig(cfg); err != nil {
		coll.Close()
		return nil, err
	}
	c.setEmitCore(cfg)
	return c, nil
}

func lastLines(lines []string, n int) []string {
	if len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}

// Processes returns the process table, for stages that resolve exec ids.
func (c *Collector) Processes() *proctable.Table { return c.procs }

func (c *Collector) pendingBytes() float64 {
	if r := c.reader.Load(); r != nil {
		return float64(r.AvailableBytes())
	}
	return 0
}

func enabled(cfg Config, kind string) bool {
	return len(cfg.EnabledEvents) == 0 || slices.Contains(cfg.EnabledEvents, kind)
}

func (c *Collector) setEmitCore(cfg Config) {
	var bits uint32
	for i, k := range []string{"exec", "fork", "exit"} {
		if enabled(cfg, k) {
			bits |= 1 << i
		}
	}
	c.emitCore.Store(bits)
}

// applyKernelConfig writes the filters and bounds into the probes' maps.
func (c *Collector) applyKernelConfig(cfg Config) error {
	kc := probes.VigilRecConfig{
		RatePerSec:  cfg.RateLimitPerSecond,
		RateBurst:   cfg.RateLimitBurst,
		ArgvMax:     uint32(cfg.ArgvBytes),
		EnvMax:      uint32(cfg.EnvBytes),
		DnsMax:      uint32(cfg.DNSPayloadBytes),
		WakeupBytes: uint32(cfg.WakeupBytes),
	}
	if !cfg.IncludeSelf {
		kc.SensorTgid = uint32(os.Getpid())
	}
	if cfg.RateLimitPerSecond > 0 {
		kc.Flags |= uint32(probes.VigilRecCfgFlagVIGIL_CFG_RATE_LIMIT)
	}
	// One probe reads every io_uring completion; the open, connect, unlink
	// and rename kinds decide which of them it reports.
	for _, u := range []struct {
		kind string
		flag probes.VigilRecCfgFlag
	}{
		{"open", probes.VigilRecCfgFlagVIGIL_CFG_URING_OPEN},
		{"connect", probes.VigilRecCfgFlagVIGIL_CFG_URING_CONNECT},
		{"unlink", probes.VigilRecCfgFlagVIGIL_CFG_URING_UNLINK},
		{"rename", probes.VigilRecCfgFlagVIGIL_CFG_URING_RENAME},
	} {
		if enabled(cfg, u.kind) {
			kc.Flags |= uint32(u.flag)
		}
	}
	bins := c.coll.Maps["ignored_binaries"]
	if err := clearMap[probes.VigilRecFileKey](bins); err != nil {
		return fmt.Errorf("clear ignored binaries: %w", err)
	}
	for _, p := range cfg.IgnoredBinaries {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			c.log.Warn("ignored binary not found; not ignored", "path", p, "error", err)
			continue
		}
		key := probes.VigilRecFileKey{Ino: st.Ino, Dev: unix.Major(st.Dev)<<20 | unix.Minor(st.Dev)}
		if err := bins.Put(key, uint8(1)); err != nil {
			return fmt.Errorf("ignore binary %s: %w", p, err)
		}
		kc.Flags |= uint32(probes.VigilRecCfgFlagVIGIL_CFG_IGNORE_BINARIES)
	}
	cgs := c.coll.Maps["ignored_cgroups"]
	if err := clearMap[uint64](cgs); err != nil {
		return fmt.Errorf("clear ignored cgroups: %w", err)
	}
	for _, p := range cfg.IgnoredCgroups {
		id, err := cgroupID(cfg.CgroupRoot, c.v1, p)
		if err != nil {
			c.log.Warn("ignored cgroup not found; not ignored", "path", p, "error", err)
			continue
		}
		if err := cgs.Put(id, uint8(1)); err != nil {
			return fmt.Errorf("ignore cgroup %s: %w", p, err)
		}
		kc.Flags |= uint32(probes.VigilRecCfgFlagVIGIL_CFG_IGNORE_CGROUPS)
	}
	if err := c.coll.Maps["config_map"].Put(uint32(0), kc); err != nil {
		return fmt.Errorf("write probe config: %w", err)
	}
	return nil
}

func clearMap[K any](m *ebpf.Map) error {
	var keys []K
	var k K
	it := m.Iterate()
	var v []byte
	for it.Next(&k, &v) {
		keys = append(keys, k)
	}
	if err := it.Err(); err != nil {
		return err
	}
	for _, k := range keys {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}

// Run attaches the probes, seeds the process table from /proc and sends
// events to out until ctx is done or reading fails. On return every probe is
// detached and the probes are unloaded; Run can be called once.
func (c *Collector) Run(ctx context.Context, out chan<- *vigilv1.Event) error {
	c.mu.Lock()
	if c.running || c.coll == nil {
		c.mu.Unlock()
		return errors.New("collector already ran")
	}
	c.running = true
	core, err := attachCore(c.coll.Programs)
	if err != nil {
		c.mu.Unlock()
		c.close()
		return err
	}
	uring, skipped := attachURing(c.coll.Programs)
	core = append(core, uring...)
	c.uringSkipped = skipped
	for _, s := range skipped {
		c.log.Info("probe skipped", "probe", s.Name, "reason", s.Reason)
	}
	c.core = core
	c.reattachLocked(c.cfg)
	c.mu.Unlock()
	defer c.close()

	rd, err := ringbuf.NewReader(c.coll.Maps["events"])
	if err != nil {
		return fmt.Errorf("open ring buffer: %w", err)
	}
	c.reader.Store(rd)
	defer func() {
		c.reader.Store(nil)
		rd.Close()
	}()

	if err := c.procs.Seed(ctx); err != nil {
		c.log.Warn("seed process table from /proc", "error", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := c.procs.Run(ctx); err != nil {
			c.log.Warn("process table stopped", "error", err)
		}
	})
	wg.Go(func() { c.watchLoss(ctx) })
	waiter := c.newWaiter()
	if waiter != nil {
		defer waiter.Close()
	}
	stop := context.AfterFunc(ctx, func() {
		// With a waiter the reader never blocks in rd, and rd must not be
		// unmapped under it: ending the wait is enough.
		if waiter != nil {
			waiter.Close()
		} else {
			rd.Close()
		}
	})
	defer stop()

	err = c.read(ctx, rd, waiter, out)
	cancel()
	wg.Wait()
	return err
}

// newWaiter returns a waiter on the ring buffer, or nil when the network
// poller cannot watch it (the reader then blocks in epoll as before).
func (c *Collector) newWaiter() *ringWaiter {
	if c.blockingReader {
		return nil
	}
	c.mu.Lock()
	var m *ebpf.Map
	if c.coll != nil {
		m = c.coll.Maps["events"]
	}
	c.mu.Unlock()
	if m == nil {
		return nil
	}
	w, err := newRingWaiter(m)
	if err != nil {
		c.log.Info("ring buffer reader blocks in epoll", "reason", err)
		return nil
	}
	return w
}

// readBatch bounds the events the reader holds before handing them on.
const readBatch = 256

// read is the hot loop: one record at a time, buffers reused. Events are
// handed on in batches, when the ring buffer is drained or readBatch are
// held: the next stage then wakes once per drain (the probes batch
// wakeups, so once per poll) rather than once per event, and on a small
// host every goroutine wakeup costs a futex and competes with the traced
// workload for a core.
//
// With a waiter (see ringWaiter) the reader never blocks in rd: it reads
// while the ring holds records and waits in the network poller when it is
// empty. Without one, ReadInto blocks until the poll deadline.
func (c *Collector) read(ctx context.Context, rd *ringbuf.Reader, waiter *ringWaiter, out chan<- *vigilv1.Event) error {
	poll := c.poll
	c.mu.Lock()
	wakeBytes := c.cfg.WakeupBytes
	c.mu.Unlock()
	nextDeadline := func() time.Time {
		if waiter != nil {
			return time.Unix(1, 0) // in the past: do not wait
		}
		return time.Now().Add(poll)
	}
	rd.SetDeadline(nextDeadline())
	ready := func() bool { return rd.AvailableBytes() >= wakeBytes }
	var raw ringbuf.Record
	var rec Record
	batch := make([]*vigilv1.Event, 0, readBatch)
	flush := func() bool {
		defer func() {
			clear(batch) // the events belong to the next stage now
			batch = batch[:0]
		}()
		if ctx.Err() != nil {
			return false
		}
		for _, ev := range batch {
			select {
			case out <- ev:
			case <-ctx.Done():
				return false
			}
		}
		return true
	}
	for {
		if waiter != nil && rd.AvailableBytes() == 0 {
			// Drained. Reading on would cost an epoll_wait system call
			// in the reader, and each system call wakes the runtime's
			// sysmon thread into 20 µs polling: wait in the poller.
			if len(batch) > 0 && !flush() {
				return nil
			}
			if ctx.Err() != nil {
				return nil
			}
			if err := waiter.wait(poll, ready); err != nil {
				if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
					return nil
				}
				return fmt.Errorf("wait for ring buffer: %w", err)
			}
			continue
		}
		if len(batch) >= readBatch || len(batch) > 0 && waiter == nil && rd.AvailableBytes() == 0 {
			if !flush() {
				return nil
			}
		}
		err := rd.ReadInto(&raw)
		if err != nil {
			// Whatever the error, what was read goes out first: the
			// reader is about to wait or stop.
			if len(batch) > 0 && !flush() {
				return nil
			}
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				// Probes skip wakeups below WakeupBytes; this is the timer
				// that drains what they left.
				if ctx.Err() != nil {
					return nil
				}
				// With a waiter the loop's top waits; without, the next
				// ReadInto blocks until this deadline.
				rd.SetDeadline(nextDeadline())
				continue
			case errors.Is(err, ringbuf.ErrClosed) || errors.Is(err, os.ErrClosed):
				return nil
			default:
				return fmt.Errorf("read ring buffer: %w", err)
			}
		}
		if c.rawTap != nil {
			c.rawTap(raw.RawSample)
		}
		if err := c.dec.Decode(raw.RawSample, &rec); err != nil {
			c.decodeErrors.Add(1)
			c.m.decodeErrors.Inc()
			continue
		}
		c.eventsTotal.Add(1)
		if int(rec.Sys) < len(c.m.events) {
			c.m.events[rec.Sys].Inc()
		}
		extra := c.attribute(&rec)
		if c.wanted(&rec) {
			batch = append(batch, rec.Event)
		}
		if extra != nil {
			batch = append(batch, extra)
		}
	}
}

// wanted says whether rec's event is emitted: exec, fork and exit records
// always feed the process table, but their events only go out when enabled.
func (c *Collector) wanted(rec *Record) bool {
	bits := c.emitCore.Load()
	var bit uint32
	switch rec.Type {
	case probes.VigilRecTypeVIGIL_REC_EXEC:
		bit = 1
	case probes.VigilRecTypeVIGIL_REC_FORK:
		bit = 2
	case probes.VigilRecTypeVIGIL_REC_EXIT:
		bit = 4
	default:
		return true
	}
	if bits&bit == 0 {
		c.m.dropped.Inc()
		return false
	}
	return true
}

// newRawFallback returns the raw_syscalls fallback when cfg asks for it,
// else nil (attachGroup then reports missing tracepoints as skipped).
func newRawFallback(cfg Config, coll *ebpf.Collection) *rawFallback {
	if !cfg.RawSyscallsFallback {
		return nil
	}
	return &rawFallback{progs: coll.Programs, table: coll.Maps["raw_fallback"]}
}

// hashAtExec gives an exec event its executable's digest when the file is
// small enough to hash now (or is cached), so rules on proc.sha256 see it
// even for a process that exits before the background worker would reach it.
func (c *Collector) hashAtExec(pid uint32, ev *vigilv1.Event) {
	if c.hashAtExecMax < 0 || ev.Process == nil || ev.Process.ExeSha256 != "" {
		return
	}
	// Even when it cannot hash (a file too large for the event path), the
	// table may have published the times a stat confirmed.
	_, _ = c.procs.HashNowUpTo(pid, c.hashAtExecMax)
	if p := c.procs.Lookup(pid); p != nil {
		ev.Process = p
	}
}

// attribute replaces the decoder's minimal process with the process
// table's, keeps the table current, and sets the cgroup path. It returns an
// extra event when one record means two things (an open of
// /dev/userfaultfd is also a userfaultfd event).
func (c *Collector) attribute(rec *Record) *vigilv1.Event {
	ev := rec.Event
	pid := ev.Process.Pid
	switch rec.Type {
	case probes.VigilRecTypeVIGIL_REC_EXEC:
		p := ev.Process
		x := ev.GetExec()
		if rec.EnvTruncated {
			c.envFromProc(pid, x)
		}
		info := proctable.ExecInfo{
			Pid: pid, Ppid: p.Ppid, NsPid: p.NsPid, StartTime: rec.StartTime,
			Comm: p.Comm, ExePath: p.ExePath, Args: p.Args, ArgsTruncated: p.ArgsTruncated,
			Cwd: p.Cwd, Uid: p.Uid, Gid: p.Gid, Euid: p.Euid, Egid: p.Egid,
			LoginUID: p.Loginuid, Sid: p.Sid, Tty: p.Tty,
			ExeInode: p.ExeInode, ExeDev: p.ExeDev, ExeFileless: p.ExeFileless, ExeUpperLayer: p.ExeUpperLayer,
			ExeOutsideRoot: p.ExeOutsideRoot,
			Compat32:       p.Compat32,
			CapEffective:   p.CapEffective,
		}
		if rec.ExeSize > 0 {
			// The inode's version: the table finds a cached digest by it
			// without opening the file.
			info.ExeSize = rec.ExeSize
			info.ExeMtime, info.ExeCtime = time.Unix(0, rec.ExeMtimeNs), time.Unix(0, rec.ExeCtimeNs)
		}
		ev.Process = c.procs.OnExec(info)
		c.hashAtExec(pid, ev)
	case probes.VigilRecTypeVIGIL_REC_FORK:
		f := ev.GetFork()
		child := c.procs.OnForkInfo(proctable.ForkInfo{ParentPid: pid, ChildPid: f.ChildPid, ChildNsPid: rec.ChildNsPid, ChildStart: rec.StartTime})
		if child != nil {
			f.ChildExecId = child.ExecId
		}
		if p := c.procs.Lookup(pid); p != nil {
			ev.Process = p
		}
	case probes.VigilRecTypeVIGIL_REC_EXIT:
		if p := c.procs.OnExit(pid); p != nil {
			ev.Process = p
		}
	default:
		// The decoder looked the process up already (Decoder.Processes).
		if rec.Creds != nil {
			if p := c.procs.OnSetID(pid, proctable.Creds{Uid: rec.Creds.Uid, Gid: rec.Creds.Gid, Euid: rec.Creds.Euid, Egid: rec.Creds.Egid}); p != nil {
				ev.Process = p
			}
		}
	}
	ev.CgroupPath = c.cgroups.lookup(ev.CgroupId, pid)
	if o := ev.GetOpen(); o != nil && o.Path == "/dev/userfaultfd" {
		return &vigilv1.Event{
			Time: ev.Time, Process: ev.Process, Tid: ev.Tid, CgroupId: ev.CgroupId, CgroupPath: ev.CgroupPath,
			Result: ev.Result, Errno: ev.Errno, Syscall: ev.Syscall,
			Kind: &vigilv1.Event_Userfaultfd{Userfaultfd: &vigilv1.Userfaultfd{Flags: o.Flags}},
		}
	}
	return nil
}

// envFromProc reads LD_PRELOAD and LD_LIBRARY_PATH from /proc/PID/environ
// when the probe's bounded copy of the environment did not hold them.
func (c *Collector) envFromProc(pid uint32, x *vigilv1.Exec) {
	b, err := os.ReadFile(c.procRoot + "/" + strconv.FormatUint(uint64(pid), 10) + "/environ")
	if err != nil {
		return
	}
	if v, ok := envValue(b, "LD_PRELOAD"); ok {
		x.LdPreload = v
	}
	if v, ok := envValue(b, "LD_LIBRARY_PATH"); ok {
		x.LdLibraryPath = v
	}
}

// watchLoss logs when the kernel reports lost records, so loss is never
// silent even without a metrics scraper.
func (c *Collector) watchLoss(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	var last uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			lost, _ := c.kernel.sum(probes.VigilRecCounterVIGIL_CNT_LOST)
			if lost > last {
				c.log.Warn("ring buffer full: records lost", "lost", lost-last, "lost_total", lost)
			}
			last = lost
		}
	}
}

// reattachLocked makes the attached syscall probes match cfg.EnabledEvents.
func (c *Collector) reattachLocked(cfg Config) {
	for _, g := range probeGroups {
		want := enabled(cfg, g.kind) && len(g.syscalls) > 0
		_, have := c.attached[g.kind]
		switch {
		case want && !have:
			ok, skipped := attachGroup(c.coll.Programs, c.raw, g)
			c.attached[g.kind] = ok
			c.skipped[g.kind] = skipped
			for _, s := range skipped {
				c.log.Info("probe skipped", "probe", s.Name, "reason", s.Reason)
			}
		case !want && have:
			closeAll(c.attached[g.kind])
			delete(c.attached, g.kind)
			delete(c.skipped, g.kind)
		}
	}
	loaded, skipped := c.probeNamesLocked()
	c.m.probesLoaded.Set(float64(len(loaded)))
	c.m.probesSkipped.Set(float64(len(skipped)))
}

func (c *Collector) probeNamesLocked() ([]string, []*vigilv1.SkippedProbe) {
	var loaded []string
	var skipped []*vigilv1.SkippedProbe
	for _, a := range c.core {
		loaded = append(loaded, a.name)
	}
	for _, g := range probeGroups {
		for _, a := range c.attached[g.kind] {
			loaded = append(loaded, a.name)
		}
		skipped = append(skipped, c.skipped[g.kind]...)
	}
	skipped = append(skipped, c.uringSkipped...)
	return loaded, skipped
}

func (c *Collector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastLoaded, c.lastSkipped = c.probeNamesLocked()
	all := c.core
	for k, as := range c.attached {
		all = append(all, as...)
		delete(c.attached, k)
	}
	c.core = nil
	closeAll(all)
	if c.coll != nil {
		c.lastLost, _ = c.kernel.sum(probes.VigilRecCounterVIGIL_CNT_LOST)
		c.lastRate, _ = c.kernel.sum(probes.VigilRecCounterVIGIL_CNT_RATE_LIMITED)
		c.coll.Close()
		c.coll = nil
	}
}

// Health fills the capture part of a sensor health report: attached and
// skipped probes, events read, records lost, rate limited and undecodable.
func (c *Collector) Health(h *vigilv1.SensorHealth) {
	c.mu.Lock()
	loaded, skipped := c.probeNamesLocked()
	lost, rate := c.lastLost, c.lastRate
	if c.coll == nil {
		loaded, skipped = c.lastLoaded, c.lastSkipped
	} else {
		lost, _ = c.kernel.sum(probes.VigilRecCounterVIGIL_CNT_LOST)
		rate, _ = c.kernel.sum(probes.VigilRecCounterVIGIL_CNT_RATE_LIMITED)
	}
	c.mu.Unlock()
	h.LoadedProbes = loaded
	h.SkippedProbes = skipped
	h.EventsTotal = c.eventsTotal.Load()
	h.LostRecords = lost
	h.RateLimited = rate
	h.DecodeErrors = c.decodeErrors.Load()
	h.Mode = "ebpf"
}

// ApplyPolicy applies a collection policy pushed by the backend. The policy
// replaces the enabled event kinds (empty: all; probes are attached or
// detached live), the ignored binaries and cgroups, and the rate limit (0:
// off). Event kinds this sensor does not know are ignored with a warning, so
// a newer backend's policy still applies.
func (c *Collector) ApplyPolicy(p *vigilv1.CollectionPolicy) error {
	if p == nil {
		return errors.New("nil policy")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg := c.cfg
	cfg.EnabledEvents = nil
	known := EventKinds()
	for _, k := range p.EnabledEvents {
		if slices.Contains(known, k) {
			cfg.EnabledEvents = append(cfg.EnabledEvents, k)
		} else {
			c.log.Warn("policy names an unknown event kind; ignored", "kind", k, "version", p.Version)
		}
	}
	if len(p.EnabledEvents) > 0 && len(cfg.EnabledEvents) == 0 {
		return fmt.Errorf("policy %s: no known event kind in %v", p.Version, p.EnabledEvents)
	}
	cfg.IgnoredBinaries = p.IgnoredBinaries
	cfg.IgnoredCgroups = p.IgnoredCgroups
	cfg.RateLimitPerSecond = p.RateLimitPerSecond
	cfg.RateLimitBurst = p.RateLimitBurst
	if cfg.RateLimitBurst == 0 {
		cfg.RateLimitBurst = 4 * p.RateLimitPerSecond
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("policy %s: %w", p.Version, err)
	}
	if c.coll == nil {
		return errors.New("collector is closed")
	}
	if err := c.applyKernelConfig(cfg); err != nil {
		return err
	}
	c.cfg = cfg
	c.setEmitCore(cfg)
	if c.running {
		c.reattachLocked(cfg)
	}
	c.log.Info("collection policy applied", "version", p.Version, "enabled_events", cfg.EnabledEvents,
		"ignored_binaries", len(cfg.IgnoredBinaries), "ignored_cgroups", len(cfg.IgnoredCgroups), "rate_limit_per_second", cfg.RateLimitPerSecond)
	return nil
}
