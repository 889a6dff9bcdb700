package enrich

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilsec/vigil/enrich/cgroup"
	"github.com/vigilsec/vigil/enrich/containerd"
	"github.com/vigilsec/vigil/enrich/ecs"
	"github.com/vigilsec/vigil/enrich/kubernetes"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// Lookup results, as in the result label of vigil_enrich_lookups_total.
const (
	resultFound    = "found"
	resultNotFound = "not_found"
	resultError    = "error"
)

func (e *Enricher) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-e.queue:
			if j.unresolved != nil {
				e.resolveID(ctx, j.unresolved)
				j.unresolved.queued.Store(false)
				continue
			}
			e.lookup(ctx, j.state)
			j.state.queued.Store(false)
		}
	}
}

// resolveID maps an id-only cgroup to its path, then treats it like a
// path miss.
func (e *Enricher) resolveID(ctx context.Context, s *slot) {
	path, ok := e.paths.Resolve(s.id)
	if !ok {
		e.m.lookups.WithLabelValues("cgroup_path", resultNotFound).Inc()
		s.retryAt.Store(time.Now().Add(e.cfg.RetryMin).UnixNano())
		return
	}
	e.m.lookups.WithLabelValues("cgroup_path", resultFound).Inc()
	ref, isContainer := cgroup.ParsePath(path)
	if !isContainer {
		e.cache.replaceID(s.id, s, newHostSlot())
		return
	}
	e.cache.mu.Lock()
	st := e.cache.stateForLocked(ref)
	e.cache.mu.Unlock()
	e.cache.replaceID(s.id, s, &slot{kind: slotContainer, state: st})
	// Look it up now unless another key of the same container already did.
	if m := st.meta.Load(); m.container.Partial && time.Now().UnixNano() >= m.refreshAt && st.queued.CompareAndSwap(false, true) {
		e.lookup(ctx, st)
		st.queued.Store(false)
	}
}

// outcome records one request's result in the metrics and in the source's
// health, and returns it: a miss (notFound) is a healthy answer.
func (e *Enricher) outcome(s *sourceState, err, notFound error, now time.Time) string {
	result := resultFound
	switch {
	case errors.Is(err, notFound):
		result = resultNotFound
		s.succeed()
	case err != nil:
		result = resultError
		s.fail(err, now)
	default:
		s.succeed()
	}
	e.m.lookups.WithLabelValues(s.name, result).Inc()
	return result
}

// found is what the sources said of one container.
type found struct {
	container  *vigilv1.Container
	kubernetes *vigilv1.Kubernetes
	ecs        *vigilv1.Ecs
	known      bool // some source knows the container
	failed     bool // some source that might know it failed
	notHere    bool // containerd answered and does not have it
	rootfs     string
}

// lookup asks the sources about a container and publishes a new snapshot.
func (e *Enricher) lookup(ctx context.Context, st *containerState) {
	ref := st.ref
	now := time.Now()
	f := found{container: &vigilv1.Container{Id: ref.ID, Runtime: ref.Runtime, Namespace: ref.Namespace}}
	if ref.PodUID != "" {
		f.kubernetes = &vigilv1.Kubernetes{PodUid: ref.PodUID}
	}
	e.fromContainerd(ctx, ref, &f, now)
	e.fromKubelet(ctx, ref, &f, now)
	e.fromTask(ctx, ref, &f, now)
	e.fromAgent(ctx, ref, &f, now)
	if f.ecs != nil {
		e.completeECS(ref, f.ecs)
	}
	if f.container.Image == "" {
		// No image reference from any source: the rootfs path still
		// tells the container apart.
		f.container.Image = f.rootfs
	}

	old := st.meta.Load()
	next := &meta{}
	switch {
	case f.known:
		st.attempts = 0
		next.container, next.kubernetes, next.ecs = f.container, f.kubernetes, f.ecs
		next.refreshAt = now.Add(e.cfg.CacheTTL).UnixNano()
	case ref.Weak && f.notHere && !f.failed:
		// A /<namespace>/<id> path that containerd does not know is an
		// ordinary cgroup, not a container: stop calling it one.
		e.demoteToHost(st)
		return
	case ref.Weak && e.sharesHostMounts("/"+ref.Namespace+"/"+ref.ID):
		// Without containerd's answer the path alone cannot tell, but the
		// cgroup's processes see the host's mounts: no runtime starts a
		// container that way, so it is a host cgroup of that shape.
		// Otherwise the partial id stays and is retried (containerd may
		// start after the sensor).
		e.demoteToHost(st)
		return
	case !old.container.Partial:
		// A refresh learned nothing (the container is gone, or a source
		// is down): keep what we knew, try again later.
		*next = *old
		next.refreshAt = now.Add(e.retryWait(st)).UnixNano()
	default:
		st.attempts++
		*next = *old
		next.refreshAt = now.Add(e.retryWait(st)).UnixNano()
	}
	st.meta.Store(next)
}

// sharesHostMounts reports whether a process of the cgroup at path (as in
// /proc/PID/cgroup) is in the host's mount namespace. It reads the cgroup's
// member list in each hierarchy mounted under the cgroup root
// (cgroup v2, or each v1 controller) and decides on the first member whose
// namespace it can read; false when it cannot tell.
func (e *Enricher) sharesHostMounts(path string) bool {
	mntNS := func(pid string) (string, error) {
		return os.Readlink(filepath.Join(e.cfg.ProcRoot, pid, "ns", "mnt"))
	}
	// The host's mount namespace is PID 1's, and kthreadd's (PID 2): kernel
	// threads stay in the initial namespaces, and some init processes
	// refuse the read even to root.
	host, err := mntNS("1")
	if err != nil {
		if host, err = mntNS("2"); err != nil {
			return false
		}
	}
	dirs := []string{filepath.Join(e.cfg.CgroupRoot, path)}
	if hierarchies, err := os.ReadDir(e.cfg.CgroupRoot); err == nil {
		for _, h := range hierarchies {
			if h.IsDir() {
				dirs = append(dirs, filepath.Join(e.cfg.CgroupRoot, h.Name(), path))
			}
		}
	}
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, pid := range strings.Fields(string(b)) {
			if ns, err := mntNS(pid); err == nil {
				return ns == host
			}
		}
	}
	return false
}

// retryWait backs off repeated lookups of a container nobody knows.
func (e *Enricher) retryWait(st *containerState) time.Duration {
	return backoff(e.cfg.RetryMin, e.cfg.RetryMax)(st.attempts)
}

// demoteToHost turns every slot of a weakly parsed "container" into a host
// slot.
func (e *Enricher) demoteToHost(st *containerState) {
	e.cache.mu.Lock()
	defer e.cache.mu.Unlock()
	for p, s := range e.cache.byPath {
		if s.state == st {
			e.cache.byPath[p] = newHostSlot()
		}
	}
	for id, s := range e.cache.byID {
		if s.state == st {
			e.cache.byID[id] = newHostSlot()
		}
	}
	delete(e.cache.containers, st.ref.ID)
}

func (e *Enricher) fromContainerd(ctx context.Context, ref cgroup.Ref, f *found, now time.Time) {
	c := e.ctrdClient.Load()
	if c == nil || !e.ctrd.usable(now) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.LookupTimeout)
	defer cancel()
	start := time.Now()
	info, err := c.Lookup(ctx, ref.Namespace, ref.ID)
	e.m.lookupSeconds.WithLabelValues(SourceContainerd).Observe(time.Since(start).Seconds())
	switch e.outcome(e.ctrd, err, containerd.ErrNotFound, now) {
	case resultNotFound:
		f.notHere = true
		return
	case resultError:
		f.failed = true
		return
	}
	f.known = true
	c2 := f.container
	c2.Name = info.Name
	c2.Image = info.Image
	f.rootfs = info.Rootfs
	c2.ImageDigest = info.ImageDigest
	c2.Namespace = info.Namespace
	c2.Labels = info.Labels
	c2.Privileged = info.Privileged
	if !info.CreatedAt.IsZero() {
		c2.StartedAt = timestamppb.New(info.CreatedAt)
	}
	switch {
	case info.Namespace == "moby":
		// Docker's containers live in containerd's moby namespace.
		c2.Runtime = cgroup.RuntimeDocker
	case c2.Runtime == "" || c2.Runtime == cgroup.RuntimeCRI:
		c2.Runtime = cgroup.RuntimeContainerd
	}
	if k := kubernetesFromLabels(info.Labels); k != nil {
		k.PodLabels = info.PodLabels
		if k.PodUid == "" && f.kubernetes != nil {
			k.PodUid = f.kubernetes.PodUid
		}
		f.kubernetes = k
	}
	if x, ok := ecs.FromLabels(info.Labels); ok {
		f.ecs = x
	}
}

// kubernetesFromLabels reads a pod's identity from the CRI labels.
func kubernetesFromLabels(l map[string]string) *vigilv1.Kubernetes {
	k := &vigilv1.Kubernetes{
		PodName:       l[containerd.LabelPodName],
		Namespace:     l[containerd.LabelPodNamespace],
		PodUid:        l[containerd.LabelPodUID],
		ContainerName: l[containerd.LabelContainerName],
	}
	if k.PodName == "" && k.PodUid == "" {
		return nil
	}
	return k
}

// fromKubelet completes the pod from the kubelet's pod list: labels and
// service account always, and the pod's identity, container name and
// image when containerd could not say (CRI-O, Docker).
func (e *Enricher) fromKubelet(ctx context.Context, ref cgroup.Ref, f *found, now time.Time) {
	if e.kubeletCl == nil || !e.kubelet.usable(now) {
		return
	}
	uid := ref.PodUID
	if f.kubernetes != nil && f.kubernetes.PodUid != "" {
		uid = f.kubernetes.PodUid
	}
	find := func(ix *kubernetes.Index) (*kubernetes.Pod, *kubernetes.Container) {
		if ix == nil {
			return nil, nil
		}
		if p, c, ok := ix.ByContainer(ref.ID); ok {
			return p, c
		}
		if uid != "" {
			if p, ok := ix.Pod(uid); ok {
				return p, nil
			}
		}
		return nil, nil
	}
	p, c := find(e.pods.Load())
	if p == nil && uid != "" {
		// A pod scheduled since the last refresh.
		e.podsMu.Lock()
		due := now.Sub(e.podsFetched) >= taskRefetchMin
		e.podsMu.Unlock()
		if due {
			e.refreshPods(ctx)
			p, c = find(e.pods.Load())
		}
	}
	if p == nil {
		e.m.lookups.WithLabelValues(SourceKubelet, resultNotFound).Inc()
		return
	}
	e.m.lookups.WithLabelValues(SourceKubelet, resultFound).Inc()
	f.known = true
	k := f.kubernetes
	if k == nil {
		k = &vigilv1.Kubernetes{}
		f.kubernetes = k
	}
	if k.PodName == "" {
		k.PodName, k.Namespace, k.PodUid = p.Name, p.Namespace, p.UID
	}
	if len(k.PodLabels) == 0 {
		k.PodLabels = p.Labels
	}
	k.ServiceAccount = p.ServiceAccount
	if c == nil {
		return
	}
	if k.ContainerName == "" {
		k.ContainerName = c.Name
	}
	ct := f.container
	if ct.Name == "" || ct.Name == ct.Id {
		ct.Name = c.Name
	}
	if ct.Image == "" {
		ct.Image = c.Image
	}
	if ct.ImageDigest == "" {
		ct.ImageDigest = c.ImageID
	}
	if ct.Runtime == "" || ct.Runtime == cgroup.RuntimeCRI {
		ct.Runtime = c.Runtime
	}
}

// fromTask looks the container up in the sensor's own task document (the
// Fargate sidecar sees its task's containers; the EC2 daemon its own).
func (e *Enricher) fromTask(ctx context.Context, ref cgroup.Ref, f *found, now time.Time) {
	if e.tmde == nil || !e.task.usable(now) {
		return
	}
	t := e.taskDoc.Load()
	var c *ecs.ContainerMetadata
	ok := false
	if t != nil {
		c, ok = t.Container(ref.ID)
	}
	if !ok && ref.TaskID != "" && (t == nil || strings.HasSuffix(t.TaskARN, "/"+ref.TaskID)) {
		// Our own task, and a container we have not seen: it may have
		// started since the last refresh.
		e.taskMu.Lock()
		due := now.Sub(e.taskFetched) >= taskRefetchMin
		e.taskMu.Unlock()
		if due {
			e.refreshTask(ctx)
			if t = e.taskDoc.Load(); t != nil {
				c, ok = t.Container(ref.ID)
			}
		}
	}
	if !ok {
		e.m.lookups.WithLabelValues(SourceECSTask, resultNotFound).Inc()
		return
	}
	e.m.lookups.WithLabelValues(SourceECSTask, resultFound).Inc()
	f.known = true
	f.ecs = t.Identity(c)
	c2 := f.container
	if c2.Name == "" || c2.Name == c2.Id {
		c2.Name = c.Name
	}
	if c2.Image == "" {
		c2.Image = c.Image
	}
	if c2.ImageDigest == "" {
		c2.ImageDigest = c.ImageID
	}
	if c2.Labels == nil {
		c2.Labels = c.Labels
	}
	if c2.StartedAt == nil && c.StartedAt != nil {
		c2.StartedAt = timestamppb.New(*c.StartedAt)
	}
}

// fromAgent asks the ECS agent which task runs a Docker container.
func (e *Enricher) fromAgent(ctx context.Context, ref cgroup.Ref, f *found, now time.Time) {
	if f.ecs != nil && f.ecs.TaskArn != "" {
		return
	}
	cluster := e.cluster.Load()
	if e.agentCl == nil || cluster == nil || !e.agent.usable(now) {
		return
	}
	// The agent only knows Docker containers: 64-hex ids.
	if len(ref.ID) != 64 || ref.Format == cgroup.FormatFargate {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.LookupTimeout)
	defer cancel()
	start := time.Now()
	t, err := e.agentCl.TaskByDockerID(ctx, ref.ID)
	e.m.lookupSeconds.WithLabelValues(SourceECSAgent).Observe(time.Since(start).Seconds())
	switch e.outcome(e.agent, err, ecs.ErrNotFound, now) {
	case resultNotFound:
		return
	case resultError:
		f.failed = true
		return
	}
	f.known = true
	f.ecs = t.Identity(*cluster, ref.ID)
	if c := f.container; c.Name == "" || c.Name == c.Id {
		c.Name = f.ecs.ContainerName
	}
	if f.container.Runtime == "" {
		f.container.Runtime = cgroup.RuntimeDocker
	}
}

// completeECS fills the launch type and zone that labels and the agent do
// not give.
func (e *Enricher) completeECS(ref cgroup.Ref, x *vigilv1.Ecs) {
	if x.LaunchType == "" {
		if ref.Format == cgroup.FormatFargate {
			x.LaunchType = ecs.LaunchTypeFargate
		} else {
			// Labels from containerd or Docker: the host is visible to
			// us, so it is not Fargate.
			x.LaunchType = ecs.LaunchTypeEC2
		}
	}
	if x.AvailabilityZone == "" {
		if t := e.taskDoc.Load(); t != nil && t.AvailabilityZone != "" {
			x.AvailabilityZone = t.AvailabilityZone
		} else if id := e.identity.Load(); id != nil {
			x.AvailabilityZone = id.AvailabilityZone
		}
	}
}
