package enrich

import (
	"sync"
	"sync/atomic"

	"github.com/vigilsec/vigil/enrich/cgroup"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// meta is one immutable snapshot of what is known of a container. Events
// point at its messages, so a newer lookup replaces the snapshot instead of
// changing it: an event being serialised on another goroutine never sees a
// message change under it.
type meta struct {
	container  *vigilv1.Container
	kubernetes *vigilv1.Kubernetes
	ecs        *vigilv1.Ecs
	// refreshAt is the coarse-clock time at which the snapshot should be
	// looked up again: the TTL for complete data, a backoff for partial.
	refreshAt int64
}

// containerState is shared by every cgroup key of one container (an id key
// and a path key, or several v1 hierarchies' paths), so they all serve one
// message per container.
type containerState struct {
	ref  cgroup.Ref
	meta atomic.Pointer[meta]
	// queued is set while a lookup for the container is queued or running,
	// so only one worker handles a container at a time.
	queued atomic.Bool
	// attempts counts consecutive lookups that learned nothing; only the
	// worker holding queued touches it.
	attempts int
}

type slotKind uint8

const (
	slotHost       slotKind = iota // a host process: nothing to add
	slotContainer                  // a container: state is set
	slotUnresolved                 // a cgroup id whose path is not known yet
)

// slot is what the cache holds per cgroup key.
type slot struct {
	kind  slotKind
	state *containerState
	// id, queued and retryAt serve unresolved slots.
	id      uint64
	queued  atomic.Bool
	retryAt atomic.Int64
	// lastSeen is the coarse-clock time of the last event, for idle expiry
	// and for choosing what to evict.
	lastSeen atomic.Int64
}

// hostSlot is shared by every host cgroup: it has no state to keep apart.
// lastSeen on it is written but never read.
func newHostSlot() *slot { return &slot{kind: slotHost} }

// cache maps cgroup paths and ids to slots, bounded in size. Reads take
// the read lock only; writes happen on misses, lookups and expiry.
type cache struct {
	mu         sync.RWMutex
	byPath     map[string]*slot
	byID       map[uint64]*slot
	containers map[string]*containerState
	max        int
	// evicted counts evictions for the metric.
	evicted atomic.Uint64
}

func newCache(max int) *cache {
	return &cache{
		byPath:     make(map[string]*slot),
		byID:       make(map[uint64]*slot),
		containers: make(map[string]*containerState),
		max:        max,
	}
}

func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.byPath) + len(c.byID)
}

// stateForLocked returns the shared state of the container ref names,
// creating it with a partial snapshot (the id, what the path says, and
// refreshAt 0 so the first event queues a lookup).
func (c *cache) stateForLocked(ref cgroup.Ref) *containerState {
	if st, ok := c.containers[ref.ID]; ok {
		return st
	}
	st := &containerState{ref: ref}
	m := &meta{container: &vigilv1.Container{Id: ref.ID, Runtime: ref.Runtime, Namespace: ref.Namespace, Partial: true}}
	if ref.PodUID != "" {
		m.kubernetes = &vigilv1.Kubernetes{PodUid: ref.PodUID}
	}
	st.meta.Store(m)
	c.containers[ref.ID] = st
	return st
}

// insertPath stores the slot for path built by mk, unless another
// goroutine stored one first, and returns the slot in the cache.
func (c *cache) insertPath(path string, mk func() *slot) *slot {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.byPath[path]; ok {
		return s
	}
	c.makeRoomLocked()
	s := mk()
	c.byPath[path] = s
	return s
}

// insertID is insertPath for id keys.
func (c *cache) insertID(id uint64, mk func() *slot) *slot {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.byID[id]; ok {
		return s
	}
	c.makeRoomLocked()
	s := mk()
	c.byID[id] = s
	return s
}

// replaceID swaps an unresolved id slot for its resolved one.
func (c *cache) replaceID(id uint64, old, s *slot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byID[id] == old {
		s.lastSeen.Store(old.lastSeen.Load())
		c.byID[id] = s
	}
}

// evictSample is how many entries makeRoomLocked compares; sampling keeps
// eviction O(1) and close to LRU without touching the hit path.
const evictSample = 8

// makeRoomLocked evicts the least recently seen of a few sampled entries
// when the cache is full.
func (c *cache) makeRoomLocked() {
	for len(c.byPath)+len(c.byID) >= c.max {
		var (
			oldestPath string
			oldestID   uint64
			isID       bool
			oldest     int64 = 1<<63 - 1
			n          int
		)
		for p, s := range c.byPath {
			if t := s.lastSeen.Load(); t < oldest {
				oldest, oldestPath, isID = t, p, false
			}
			if n++; n >= evictSample {
				break
			}
		}
		n = 0
		for id, s := range c.byID {
			if t := s.lastSeen.Load(); t < oldest {
				oldest, oldestID, isID = t, id, true
			}
			if n++; n >= evictSample {
				break
			}
		}
		if isID {
			delete(c.byID, oldestID)
		} else {
			delete(c.byPath, oldestPath)
		}
		c.evicted.Add(1)
	}
}

// expire drops slots unseen since before cutoff, and container states no
// slot refers to any more.
func (c *cache) expire(cutoff int64) (dropped int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	live := make(map[*containerState]bool, len(c.containers))
	for p, s := range c.byPath {
		if s.lastSeen.Load() < cutoff {
			delete(c.byPath, p)
			dropped++
		} else if s.state != nil {
			live[s.state] = true
		}
	}
	for id, s := range c.byID {
		if s.lastSeen.Load() < cutoff {
			delete(c.byID, id)
			dropped++
		} else if s.state != nil {
			live[s.state] = true
		}
	}
	for id, st := range c.containers {
		if !live[st] {
			delete(c.containers, id)
		}
	}
	return dropped
}
