// Package enrich adds where-it-happened context to events: the container
// (id, name, image, labels, runtime, privileged), the Kubernetes pod and
// the ECS task a process runs in, and the host (with its EC2 identity)
// the sensor runs on.
//
// The container comes from the event's cgroup path (or its cgroup id,
// mapped back to a path): package cgroup reads the container id and what
// the path format says (pod uid, ECS task id). Metadata comes from sources
// detected at Start: containerd (every namespace; Kubernetes pod data from
// the CRI labels), optionally the kubelet (pod labels, service account,
// CRI-O pods), the ECS task metadata endpoint v4 and the ECS agent's
// introspection API, and EC2's instance metadata service (IMDSv2). An
// absent source is skipped quietly; a failing one is retried with backoff
// and reported in Status and the vigil_enrich_source_errors_total metric.
//
// Enrich never blocks the event path. Metadata is cached per cgroup with a
// bounded size and idle expiry, and served by pointer: every event of a
// container carries the same *vigilv1.Container, *vigilv1.Kubernetes and
// *vigilv1.Ecs messages, which must be treated as read-only. On the first
// event of an unknown container Enrich sets Container{Id, Runtime,
// Partial: true} (and the pod uid when the path has it) and queues a
// lookup; events keep that partial message until the lookup completes,
// then carry the full one. We chose per-event partial data over sending
// metadata once per container and referencing it by id because the
// backend and the detection rules then see one self-contained event, and
// the cost is a pointer per event, not a copy. A lookup that finds newer
// data replaces the shared messages rather than editing them, so an event
// already handed on never changes under its reader.
package enrich

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/vigilsec/vigil/enrich/cgroup"
	"github.com/vigilsec/vigil/enrich/containerd"
	"github.com/vigilsec/vigil/enrich/ec2"
	"github.com/vigilsec/vigil/enrich/ecs"
	"github.com/vigilsec/vigil/enrich/host"
	"github.com/vigilsec/vigil/enrich/kubernetes"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// clockTick is the resolution of the coarse clock Enrich reads instead of
// time.Now: expiry only needs to be about right, and the hit path stays
// within its budget.
const clockTick = 50 * time.Millisecond

// taskRefetchMin rate-limits re-reading the task document when a lookup
// misses in the cached one (a container started since the last refresh).
const taskRefetchMin = 5 * time.Second

// Enricher fills events with container, Kubernetes and ECS context and
// describes the host. It is safe for concurrent use.
type Enricher struct {
	cfg   Config
	log   *slog.Logger
	m     *metrics
	cache *cache
	paths *cgroup.PathResolver
	queue chan job
	now   atomic.Int64 // coarse clock, unix nanoseconds
	host  atomic.Pointer[vigilv1.Host]
	http  *http.Client

	ctrd, kubelet, task, agent, imds *sourceState

	started    atomic.Bool
	ctrdClient atomic.Pointer[containerd.Client]
	tmde       *ecs.TaskMetadataClient
	agentCl    *ecs.AgentClient
	imdsCl     *ec2.Client
	kubeletCl  *kubernetes.KubeletClient

	podsMu      sync.Mutex
	pods        atomic.Pointer[kubernetes.Index]
	podsFetched time.Time

	taskMu      sync.Mutex
	taskDoc     atomic.Pointer[ecs.Task]
	taskFetched time.Time
	cluster     atomic.Pointer[string] // from the agent's /v1/metadata
	identity    atomic.Pointer[ec2.Identity]
}

// job is one queued lookup: a container's metadata, or the path of an
// unresolved cgroup id.
type job struct {
	state      *containerState
	unresolved *slot
}

// New builds an Enricher. It reads the host description right away; it
// contacts no source until Start.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Enricher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("enrich config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "enrich")
	e := &Enricher{
		cfg:   cfg,
		log:   log,
		cache: newCache(cfg.CacheSize),
		paths: cgroup.NewPathResolver(cfg.CgroupRoot, time.Second),
		queue: make(chan job, cfg.QueueSize),
		http:  &http.Client{Timeout: cfg.LookupTimeout},
	}
	m, err := newMetrics(reg, e.cache)
	if err != nil {
		return nil, err
	}
	e.m = m
	e.now.Store(time.Now().UnixNano())
	e.host.Store(host.Collect(cfg.ProcRoot, cfg.HostRoot))

	bo := backoff(cfg.RetryMin, cfg.RetryMax)
	mk := func(name string, enabled bool) *sourceState {
		s := &sourceState{name: name, log: log, errCount: m.sourceErrors.WithLabelValues(name), backoff: bo, state: StateAbsent}
		if !enabled {
			s.state = StateDisabled
		}
		return s
	}
	e.ctrd = mk(SourceContainerd, cfg.Containerd.Enabled)
	e.kubelet = mk(SourceKubelet, cfg.Kubelet.Enabled)
	e.task = mk(SourceECSTask, cfg.ECS.Enabled && cfg.ECS.MetadataURI != "")
	e.agent = mk(SourceECSAgent, cfg.ECS.Enabled && cfg.ECS.AgentURI != "")
	e.imds = mk(SourceEC2, cfg.EC2.Enabled)
	if cfg.ECS.Enabled && cfg.ECS.MetadataURI != "" {
		e.tmde = ecs.NewTaskMetadataClient(cfg.ECS.MetadataURI, e.http)
	}
	if cfg.ECS.Enabled && cfg.ECS.AgentURI != "" {
		e.agentCl = ecs.NewAgentClient(cfg.ECS.AgentURI, e.http)
	}
	if cfg.Kubelet.Enabled {
		k, err := kubernetes.NewKubeletClient(kubernetes.KubeletConfig{
			URL: cfg.Kubelet.URL, TokenFile: cfg.Kubelet.TokenFile, CAFile: cfg.Kubelet.CAFile,
			InsecureSkipVerify: cfg.Kubelet.InsecureSkipVerify, Timeout: cfg.LookupTimeout,
		})
		if err != nil {
			return nil, fmt.Errorf("enrich.kubelet: %w", err)
		}
		e.kubeletCl = k
	}
	if cfg.EC2.Enabled {
		e.imdsCl = ec2.New(cfg.EC2.Endpoint, cfg.LookupTimeout)
	}
	return e, nil
}

// Start detects the sources (concurrently, bounded by DetectTimeout) and
// starts the lookup workers and the refreshers, which stop when ctx ends.
// Sources that are not there are skipped quietly and probed again now and
// then; Start fails only when called twice.
func (e *Enricher) Start(ctx context.Context) error {
	if !e.started.CompareAndSwap(false, true) {
		return errors.New("enricher already started")
	}
	go e.tickClock(ctx)

	dctx, cancel := context.WithTimeout(ctx, e.cfg.DetectTimeout)
	var wg sync.WaitGroup
	for _, detect := range []func(context.Context){e.detectContainerd, e.detectKubelet, e.detectTask, e.detectAgent, e.detectEC2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			detect(dctx)
		}()
	}
	wg.Wait()
	cancel()
	e.log.Info("enrichment sources detected",
		SourceContainerd, e.ctrd.current(), SourceKubelet, e.kubelet.current(), SourceECSTask, e.task.current(),
		SourceECSAgent, e.agent.current(), SourceEC2, e.imds.current())

	for range e.cfg.Workers {
		go e.worker(ctx)
	}
	go e.maintain(ctx)
	return nil
}

// Enrich fills ev.Container, ev.Kubernetes and ev.Ecs from the cache,
// keyed by ev.CgroupPath (or ev.CgroupId when the path is empty). It never
// blocks: on a miss it records what the cgroup path says and queues a
// lookup. The messages it sets are shared and must not be modified.
func (e *Enricher) Enrich(ev *vigilv1.Event) {
	now := e.now.Load()
	var s *slot
	switch {
	case ev.CgroupPath != "":
		e.cache.mu.RLock()
		s = e.cache.byPath[ev.CgroupPath]
		e.cache.mu.RUnlock()
	case ev.CgroupId != 0:
		e.cache.mu.RLock()
		s = e.cache.byID[ev.CgroupId]
		e.cache.mu.RUnlock()
	default:
		return
	}
	if s == nil {
		s = e.miss(ev, now)
	} else {
		e.m.hits.Inc()
	}
	// Skip the store when the clock has not moved: fewer cache-line
	// writes shared between CPUs.
	if s.lastSeen.Load() != now {
		s.lastSeen.Store(now)
	}
	switch s.kind {
	case slotHost:
		return
	case slotUnresolved:
		if now >= s.retryAt.Load() && s.queued.CompareAndSwap(false, true) {
			e.enqueue(job{unresolved: s}, &s.queued)
		}
		return
	}
	m := s.state.meta.Load()
	ev.Container = m.container
	if m.kubernetes != nil {
		ev.Kubernetes = m.kubernetes
	}
	if m.ecs != nil {
		ev.Ecs = m.ecs
	}
	if m.container.Partial {
		e.m.partial.Inc()
	}
	if now >= m.refreshAt && s.state.queued.CompareAndSwap(false, true) {
		e.enqueue(job{state: s.state}, &s.state.queued)
	}
}

// miss stores a slot for a cgroup not in the cache.
func (e *Enricher) miss(ev *vigilv1.Event, now int64) *slot {
	e.m.misses.Inc()
	if ev.CgroupPath == "" {
		return e.cache.insertID(ev.CgroupId, func() *slot {
			s := &slot{kind: slotUnresolved, id: ev.CgroupId}
			s.lastSeen.Store(now)
			return s
		})
	}
	ref, ok := cgroup.ParsePath(ev.CgroupPath)
	return e.cache.insertPath(ev.CgroupPath, func() *slot {
		s := &slot{kind: slotHost}
		if ok {
			s = &slot{kind: slotContainer, state: e.cache.stateForLocked(ref)}
		}
		s.lastSeen.Store(now)
		return s
	})
}

// enqueue hands a job to the workers without waiting; when the queue is
// full the flag is cleared so a later event queues it again.
func (e *Enricher) enqueue(j job, queued *atomic.Bool) {
	select {
	case e.queue <- j:
	default:
		queued.Store(false)
		e.m.queueFull.Inc()
	}
}

// Host describes the host, with its EC2 identity once IMDS answered. The
// message is shared and must not be modified.
func (e *Enricher) Host() *vigilv1.Host { return e.host.Load() }

// Status reports each source's state for the sensor's health report.
func (e *Enricher) Status() []*vigilv1.SourceStatus {
	return []*vigilv1.SourceStatus{e.ctrd.status(), e.kubelet.status(), e.task.status(), e.agent.status(), e.imds.status()}
}

func (e *Enricher) tickClock(ctx context.Context) {
	t := time.NewTicker(clockTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			e.now.Store(now.UnixNano())
		}
	}
}

// maintain re-probes absent and failing sources, refreshes the task
// document and expires idle cgroups.
func (e *Enricher) maintain(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lastExpire := time.Now()
	expireEvery := min(max(e.cfg.CacheTTL/4, time.Second), time.Minute)
	defer func() {
		if c := e.ctrdClient.Load(); c != nil {
			_ = c.Close()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			probe := func(s *sourceState, detect func(context.Context)) {
				if s.dueForProbe(now) {
					pctx, cancel := context.WithTimeout(ctx, e.cfg.DetectTimeout)
					detect(pctx)
					cancel()
				}
			}
			if e.ctrdClient.Load() == nil {
				probe(e.ctrd, e.detectContainerd)
			}
			probe(e.task, e.detectTask)
			probe(e.kubelet, e.detectKubelet)
			if e.kubeletCl != nil && e.kubelet.current() == StateOK {
				e.podsMu.Lock()
				stale := now.Sub(e.podsFetched) >= e.cfg.Kubelet.Refresh
				e.podsMu.Unlock()
				if stale {
					e.refreshPods(ctx)
				}
			}
			if e.cluster.Load() == nil {
				probe(e.agent, e.detectAgent)
			}
			if e.identity.Load() == nil {
				probe(e.imds, e.detectEC2)
			}
			if e.tmde != nil && e.task.current() == StateOK {
				e.taskMu.Lock()
				stale := now.Sub(e.taskFetched) >= e.cfg.ECS.TaskRefresh
				e.taskMu.Unlock()
				if stale {
					e.refreshTask(ctx)
				}
			}
			if now.Sub(lastExpire) >= expireEvery {
				lastExpire = now
				cutoff := now.Add(-e.cfg.CacheTTL).UnixNano()
				if n := e.cache.expire(cutoff); n > 0 {
					e.m.expired.Add(float64(n))
				}
			}
		}
	}
}

func (e *Enricher) detectContainerd(ctx context.Context) {
	if e.ctrd.current() == StateDisabled {
		return
	}
	var (
		c   *containerd.Client
		err error
	)
	for _, socket := range containerdSockets(e.cfg.Containerd.Socket) {
		if c, err = containerd.Dial(ctx, socket, e.cfg.LookupTimeout); !errors.Is(err, os.ErrNotExist) {
			break
		}
	}
	switch {
	case err == nil:
		e.ctrdClient.Store(c)
		e.ctrd.succeed()
	case errors.Is(err, os.ErrNotExist):
		e.ctrd.absent(err, time.Now(), e.cfg.RedetectInterval)
	default:
		e.ctrd.fail(err, time.Now())
	}
}

// containerdSockets is the configured socket, and when that is the default,
// the other places distributions put containerd: Docker's own (older
// Docker releases) and k3s/RKE2's.
func containerdSockets(configured string) []string {
	if configured != DefaultContainerdSocket {
		return []string{configured}
	}
	return []string{configured, "/run/docker/containerd/containerd.sock", "/run/k3s/containerd/containerd.sock"}
}

func (e *Enricher) detectKubelet(ctx context.Context) {
	if e.kubeletCl == nil {
		return
	}
	e.refreshPods(ctx)
}

// refreshPods re-reads the node's pod list. A kubelet that does not answer
// at all is absent (not a Kubernetes node, or not reachable from here);
// one that answers with an error is failing.
func (e *Enricher) refreshPods(ctx context.Context) {
	start := time.Now()
	pods, err := e.kubeletCl.Pods(ctx)
	e.m.lookupSeconds.WithLabelValues(SourceKubelet).Observe(time.Since(start).Seconds())
	e.podsMu.Lock()
	e.podsFetched = time.Now()
	e.podsMu.Unlock()
	if err != nil {
		var se *kubernetes.StatusError
		if errors.As(err, &se) || e.kubelet.current() == StateOK {
			e.kubelet.fail(err, time.Now())
		} else {
			e.kubelet.absent(err, time.Now(), e.cfg.RedetectInterval)
		}
		return
	}
	e.pods.Store(kubernetes.NewIndex(pods))
	e.kubelet.succeed()
}

func (e *Enricher) detectTask(ctx context.Context) {
	if e.tmde == nil {
		return
	}
	// ECS set the endpoint variable, so the endpoint should be there: an
	// error is a failure, not an absence.
	e.refreshTask(ctx)
}

// refreshTask re-reads the sensor's own task document.
func (e *Enricher) refreshTask(ctx context.Context) {
	start := time.Now()
	t, err := e.tmde.Task(ctx)
	e.m.lookupSeconds.WithLabelValues(SourceECSTask).Observe(time.Since(start).Seconds())
	e.taskMu.Lock()
	e.taskFetched = time.Now()
	e.taskMu.Unlock()
	if err != nil {
		e.task.fail(err, time.Now())
		return
	}
	e.taskDoc.Store(t)
	e.task.succeed()
}

func (e *Enricher) detectAgent(ctx context.Context) {
	if e.agentCl == nil {
		return
	}
	md, err := e.agentCl.Metadata(ctx)
	if err != nil {
		var se *ecs.StatusError
		if errors.As(err, &se) {
			// Something answers on the agent port but not as the agent.
			e.agent.fail(err, time.Now())
		} else {
			e.agent.absent(err, time.Now(), e.cfg.RedetectInterval)
		}
		return
	}
	cluster := md.Cluster
	e.cluster.Store(&cluster)
	e.agent.succeed()
}

func (e *Enricher) detectEC2(ctx context.Context) {
	if e.imdsCl == nil {
		return
	}
	if os.Getenv("AWS_EXECUTION_ENV") == "AWS_ECS_FARGATE" {
		// Fargate tasks have no instance metadata service: do not wait
		// for a timeout to learn it.
		e.imds.absent(errors.New("on Fargate"), time.Now(), 24*time.Hour)
		return
	}
	id, err := e.imdsCl.Identity(ctx)
	if err != nil {
		if ec2.Answered(err) {
			// An IMDS that refuses us (401/403): worth retrying and
			// reporting, not silently "not on EC2".
			e.imds.fail(err, time.Now())
		} else {
			e.imds.absent(err, time.Now(), e.cfg.RedetectInterval)
		}
		return
	}
	e.identity.Store(id)
	h := proto.Clone(e.host.Load()).(*vigilv1.Host)
	h.InstanceId = id.InstanceID
	h.InstanceType = id.InstanceType
	h.AmiId = id.ImageID
	h.Region = id.Region
	h.AccountId = id.AccountID
	h.AvailabilityZone = id.AvailabilityZone
	e.host.Store(h)
	e.imds.succeed()
}
