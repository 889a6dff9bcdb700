// Package procmode is the sensor's capture mode for where eBPF is not
// allowed (AWS Fargate): it follows process lifecycles with ptrace and polls
// /proc for connections and open files, and emits the same *vigilv1.Event
// kinds and fields as the eBPF collector for what it can see. It reports
// what it cannot see in Health (SkippedProbes) and docs/fargate.md.
//
// # Processes
//
// One tracer goroutine, locked to one OS thread (ptrace requests must come
// from the thread that attached), PTRACE_SEIZEs every thread of every
// process in scope with PTRACE_O_TRACEEXEC, TRACEFORK, TRACEVFORK,
// TRACECLONE and TRACEEXIT, so new children and threads are traced from
// their first instruction. It does not trace system calls: every tracee runs
// at full speed between the four events. At each stop it reads what /proc
// says (exe, argv, cwd, credentials, stdio) and restarts the tracee at once,
// passing signals through: a signal-delivery stop is resumed with its
// signal, a group stop with PTRACE_LISTEN so that the process stays stopped
// until SIGCONT, as it would untraced. PTRACE_O_EXITKILL is never set: if
// the sensor dies, the kernel detaches its tracees and they go on.
//
// The tracer blocks in wait4 with __WNOTHREAD on a thread that has no
// children of its own (but its doorbell, see doorbell.go), so it only ever
// sees its tracees and never reaps a process another goroutine of the
// sensor started; and it never traces the sensor's own children, whose exit
// status belongs to whoever started them.
//
// # Connections and files
//
// Pollers list /proc/PID/fd of the traced processes; a socket inode not seen
// before is looked up in /proc/PID/net/{tcp,tcp6,udp,udp6,unix} and reported
// as listen, accept (established on a listening port), connect or bind; a
// file descriptor not seen before is reported as an open with the flags from
// /proc/PID/fdinfo. A process that exits is polled once more at its exit
// stop, while its descriptors are still open, so short-lived commands are
// not missed for what they held when they exited.
package procmode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/collector/proctable"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// Mode is the capture mode this package reports in SensorHealth.mode.
const Mode = "procfs"

// Collector captures process, network and file activity with ptrace and
// /proc. Create it with New, run it with Run.
type Collector struct {
	log   *slog.Logger
	m     *metrics
	procs *proctable.Table
	self  uint32
	// procRoot and cgroupRoot are fixed at New; the pollers read them
	// without taking mu, which ApplyPolicy holds to change cfg.
	procRoot, cgroupRoot string
	// netNs is the sensor's network namespace: unix socket peers can only
	// be asked about in it.
	netNs uint64

	mu      sync.Mutex // guards cfg and running
	cfg     Config
	running bool
	filter  atomic.Pointer[filter]

	// queue carries events from the tracer and pollers to Run's consumer;
	// producers never block on it.
	queue chan *vigilv1.Event

	// tracked holds the processes being traced, by tgid.
	tmu     sync.Mutex
	tracked map[uint32]*procState

	buckets *rateLimiter

	traced       atomic.Int64
	eventsTotal  atomic.Uint64
	lostTotal    atomic.Uint64
	rateLimited  atomic.Uint64
	readErrors   atomic.Uint64
	seizeFailure atomic.Uint64
	// seizeErr is the last reason a process could not be traced.
	seizeErr atomic.Pointer[string]

	// refused remembers processes that could not be seized (pid to start
	// time), so that the scanner does not hand them to the tracer again.
	rmu     sync.Mutex
	refused map[uint32]uint64
}

// refuse remembers that pid (started at start) cannot be traced.
func (c *Collector) refuse(pid uint32, start uint64) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if len(c.refused) >= 4096 {
		clear(c.refused)
	}
	c.refused[pid] = start
}

// isRefused reports whether pid, started at start, could not be traced.
func (c *Collector) isRefused(pid uint32, start uint64) bool {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	s, ok := c.refused[pid]
	return ok && s == start
}

// procState is what the collector keeps per traced process.
type procState struct {
	tgid     uint32
	mu       sync.Mutex // serializes polls of this process; guards below
	cgroup   string
	cgroupID uint64
	flags    uint8 // polledNet, polledFiles
	// baseline is set for processes found running (seeded or scanned):
	// their descriptors at the first poll were opened before tracing and
	// are not reported as new.
	baseline bool
	fds      map[int]fdKey
	socks    map[uint64]struct{}
}

// Poll flags: the process's sockets or files have been listed once, so
// what the next poll finds beyond them is new.
const (
	polledNet uint8 = 1 << iota
	polledFiles
)

func (ps *procState) polledNet() bool   { return ps.flags&polledNet != 0 }
func (ps *procState) polledFiles() bool { return ps.flags&polledFiles != 0 }

// fdKey identifies what a descriptor refers to, so a descriptor number
// reused for another file is reported again.
type fdKey struct {
	ino, dev uint64
}

// filter is the emit-time part of the configuration, swapped whole by
// ApplyPolicy.
type filter struct {
	enabled  map[string]bool // nil: all
	binaries map[string]bool
	cgroups  map[string]bool
}

func newFilter(cfg Config) *filter {
	f := &filter{binaries: make(map[string]bool), cgroups: make(map[string]bool)}
	if len(cfg.EnabledEvents) > 0 {
		f.enabled = make(map[string]bool)
		for _, k := range cfg.EnabledEvents {
			f.enabled[k] = true
		}
	}
	for _, b := range cfg.IgnoredBinaries {
		f.binaries[b] = true
	}
	for _, g := range cfg.IgnoredCgroups {
		f.cgroups[g] = true
	}
	return f
}

func (f *filter) wants(kind string) bool { return f.enabled == nil || f.enabled[kind] }

// New validates cfg and builds the collector and its process table. Nothing
// is traced until Run.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("procmode config: %w", err)
	}
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	log = log.With("component", "collector", "mode", Mode)
	c := &Collector{
		log:        log,
		self:       uint32(os.Getpid()),
		procRoot:   cfg.ProcRoot,
		cgroupRoot: cfg.CgroupRoot,
		cfg:        cfg,
		queue:      make(chan *vigilv1.Event, cfg.QueueSize),
		tracked:    make(map[uint32]*procState),
		refused:    make(map[uint32]uint64),
		buckets:    newRateLimiter(),
	}
	c.netNs = nsInode(cfg.ProcRoot, c.self, "net")
	c.filter.Store(newFilter(cfg))
	var err error
	c.m, err = newMetrics(reg, func() float64 { return float64(c.traced.Load()) })
	if err != nil {
		return nil, err
	}
	c.procs, err = proctable.New(cfg.Process, log, reg)
	if err != nil {
		return nil, fmt.Errorf("process table: %w", err)
	}
	return c, nil
}

// Processes returns the process table, for stages that resolve exec ids.
func (c *Collector) Processes() *proctable.Table { return c.procs }

// Run seeds the process table from /proc, traces the processes in scope and
// polls /proc, sending events to out until ctx is done. On return every
// tracee has been detached and left running. Run can be called once.
func (c *Collector) Run(ctx context.Context, out chan<- *vigilv1.Event) error {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return errors.New("collector already ran")
	}
	c.running = true
	cfg := c.cfg
	c.mu.Unlock()

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
	t := newTracer(c, cfg)
	tracerDone := make(chan error, 1)
	go func() { tracerDone <- t.run(ctx) }()
	wg.Go(func() { c.scanLoop(ctx, t, cfg) })
	if cfg.NetInterval > 0 {
		wg.Go(func() { c.pollLoop(ctx, cfg.NetInterval, true, false) })
	}
	if cfg.FileInterval > 0 {
		wg.Go(func() { c.pollLoop(ctx, cfg.FileInterval, false, true) })
	}
	var err error
	func() {
		for {
			select {
			case ev := <-c.queue:
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			case err = <-tracerDone:
				tracerDone = nil
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	cancel()
	if tracerDone != nil {
		err = <-tracerDone
	}
	wg.Wait()
	return err
}

// emit hands ev to the consumer without blocking. kind is the oneof field
// name of ev.Kind.
func (c *Collector) emit(kind string, ev *vigilv1.Event) {
	f := c.filter.Load()
	if !f.wants(kind) || (ev.Process != nil && f.binaries[ev.Process.ExePath]) || f.cgroups[ev.CgroupPath] {
		c.m.dropped.Inc()
		return
	}
	if kind != "exit" && ev.Process != nil {
		c.mu.Lock()
		rate, burst := c.cfg.RateLimitPerSecond, c.cfg.RateLimitBurst
		c.mu.Unlock()
		if rate > 0 && !c.buckets.allow(ev.Process.Pid, rate, burst, time.Now()) {
			c.rateLimited.Add(1)
			c.m.rateLimited.Inc()
			return
		}
	}
	select {
	case c.queue <- ev:
		c.eventsTotal.Add(1)
		c.m.events.WithLabelValues(ev.Syscall).Inc()
	default:
		c.lostTotal.Add(1)
		c.m.lost.Inc()
	}
}

// state returns the tracked process tgid, creating it when create is set.
func (c *Collector) state(tgid uint32, create bool) *procState {
	c.tmu.Lock()
	defer c.tmu.Unlock()
	ps := c.tracked[tgid]
	if ps == nil && create {
		ps = &procState{tgid: tgid, fds: make(map[int]fdKey), socks: make(map[uint64]struct{})}
		c.tracked[tgid] = ps
	}
	return ps
}

// forget drops a process that exited.
func (c *Collector) forget(tgid uint32) {
	c.tmu.Lock()
	delete(c.tracked, tgid)
	c.tmu.Unlock()
	c.buckets.forget(tgid)
}

// snapshot returns the tracked processes.
func (c *Collector) snapshot() []*procState {
	c.tmu.Lock()
	defer c.tmu.Unlock()
	out := make([]*procState, 0, len(c.tracked))
	for _, ps := range c.tracked {
		out = append(out, ps)
	}
	return out
}

// refreshCgroup reads the process's cgroup path (and id) into ps.
func (c *Collector) refreshCgroup(ps *procState) {
	p := cgroupPath(c.procRoot, ps.tgid)
	if p == "" {
		return
	}
	var id uint64
	for _, root := range []string{c.cgroupRoot + "/unified", c.cgroupRoot} {
		var st unix.Stat_t
		if unix.Stat(root+p, &st) == nil {
			id = st.Ino
			break
		}
	}
	ps.mu.Lock()
	ps.cgroup, ps.cgroupID = p, id
	ps.mu.Unlock()
}

// cgroupInfo returns the process's cgroup path and id.
func (ps *procState) cgroupInfo() (string, uint64) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.cgroup, ps.cgroupID
}

// Health fills the capture part of a sensor health report.
func (c *Collector) Health(h *vigilv1.SensorHealth) {
	c.mu.Lock()
	cfg := c.cfg
	c.mu.Unlock()
	loaded := []string{"ptrace-exec"}
	if cfg.NetInterval > 0 {
		loaded = append(loaded, "procfs-net")
	}
	if cfg.FileInterval > 0 {
		loaded = append(loaded, "procfs-fd")
	}
	h.LoadedProbes = loaded
	h.SkippedProbes = skippedProbes(cfg)
	if reason := c.seizeErr.Load(); reason != nil && c.traced.Load() == 0 {
		// Nothing could be traced: say so instead of claiming coverage.
		h.LoadedProbes = slices.DeleteFunc(h.LoadedProbes, func(s string) bool { return s == "ptrace-exec" })
		h.SkippedProbes = append([]*vigilv1.SkippedProbe{{Name: "ptrace-exec", Reason: *reason}}, h.SkippedProbes...)
	}
	h.EventsTotal = c.eventsTotal.Load()
	h.LostRecords = c.lostTotal.Load()
	h.RateLimited = c.rateLimited.Load()
	h.DecodeErrors = c.readErrors.Load()
	h.Mode = Mode
}

// NotAvailable is the reason Health gives for an event kind that only the
// eBPF collector produces.
const NotAvailable = "not available in procfs mode"

// skippedProbes names every event kind this mode cannot produce, and the
// ones it could but is configured not to.
func skippedProbes(cfg Config) []*vigilv1.SkippedProbe {
	var out []*vigilv1.SkippedProbe
	for _, k := range allKinds {
		src, ok := kindSources[k]
		switch {
		case !ok:
			out = append(out, &vigilv1.SkippedProbe{Name: k, Reason: NotAvailable})
		case src == "procfs-net" && cfg.NetInterval <= 0:
			out = append(out, &vigilv1.SkippedProbe{Name: k, Reason: "procfs-net polling disabled (net_interval)"})
		case src == "procfs-fd" && cfg.FileInterval <= 0:
			out = append(out, &vigilv1.SkippedProbe{Name: k, Reason: "procfs-fd polling disabled (file_interval)"})
		}
	}
	return out
}

// ApplyPolicy applies a collection policy pushed by the backend: enabled
// event kinds, ignored binaries and cgroups, and the rate limit. Empty
// policy fields keep the configured values. Kinds this mode cannot produce
// are accepted and stay reported as skipped.
func (c *Collector) ApplyPolicy(p *vigilv1.CollectionPolicy) error {
	if p == nil {
		return errors.New("nil policy")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg := c.cfg
	if len(p.EnabledEvents) > 0 {
		cfg.EnabledEvents = slices.Clone(p.EnabledEvents)
	}
	if len(p.IgnoredBinaries) > 0 {
		cfg.IgnoredBinaries = slices.Clone(p.IgnoredBinaries)
	}
	if len(p.IgnoredCgroups) > 0 {
		cfg.IgnoredCgroups = slices.Clone(p.IgnoredCgroups)
	}
	if p.RateLimitPerSecond > 0 {
		cfg.RateLimitPerSecond = p.RateLimitPerSecond
		cfg.RateLimitBurst = p.RateLimitBurst
		if cfg.RateLimitBurst == 0 {
			cfg.RateLimitBurst = 4 * p.RateLimitPerSecond
		}
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("policy %s: %w", p.Version, err)
	}
	c.cfg = cfg
	c.filter.Store(newFilter(cfg))
	c.log.Info("collection policy applied", "version", p.Version, "enabled_events", cfg.EnabledEvents,
		"ignored_binaries", len(cfg.IgnoredBinaries), "ignored_cgroups", len(cfg.IgnoredCgroups),
		"rate_limit_per_second", cfg.RateLimitPerSecond)
	return nil
}

// eventKinds lists the oneof field names of vigil.v1.Event's kind.
func eventKinds() []string {
	fields := (&vigilv1.Event{}).ProtoReflect().Descriptor().Oneofs().ByName("kind").Fields()
	out := make([]string, 0, fields.Len())
	for i := range fields.Len() {
		out = append(out, string(fields.Get(i).Name()))
	}
	return out
}

// rateLimiter is a per-process token bucket.
type rateLimiter struct {
	mu sync.Mutex
	b  map[uint32]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter() *rateLimiter { return &rateLimiter{b: make(map[uint32]*bucket)} }

func (r *rateLimiter) allow(pid, rate, burst uint32, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.b[pid]
	if b == nil {
		b = &bucket{tokens: float64(burst), last: now}
		r.b[pid] = b
	}
	b.tokens = min(float64(burst), b.tokens+now.Sub(b.last).Seconds()*float64(rate))
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (r *rateLimiter) forget(pid uint32) {
	r.mu.Lock()
	delete(r.b, pid)
	r.mu.Unlock()
}
