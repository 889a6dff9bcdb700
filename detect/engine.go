package detect

import (
	"container/list"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// EngineConfig bounds the engine's state. Zero values take the defaults.
type EngineConfig struct {
	// MaxSequenceKeys is the number of keys (processes, containers, ...)
	// each sequence rule tracks; the least recently used is evicted.
	// Default 10000.
	MaxSequenceKeys int `yaml:"max_sequence_keys"`
	// MaxPartialsPerKey bounds the partial matches of one sequence per key.
	// Default 16.
	MaxPartialsPerKey int `yaml:"max_partials_per_key"`
	// MaxIndexedPartials bounds the partial matches of one two-step
	// sequence whose second step looks its first step up by a captured
	// value (a written file, then its exec), across all keys; the least
	// recently seen is evicted. Default 16384.
	MaxIndexedPartials int `yaml:"max_indexed_partials"`
	// MaxThresholdKeys is the number of keys each threshold rule tracks.
	// Default 10000.
	MaxThresholdKeys int `yaml:"max_threshold_keys"`
	// MaxEvidence bounds the events a threshold alert carries. Default 10.
	MaxEvidence int `yaml:"max_evidence"`
	// NameCacheSize bounds the IP-to-DNS-name table behind fd.sip.name and
	// the file-creator table behind file.created_by. Default 65536 each.
	NameCacheSize int `yaml:"name_cache_size"`
}

func (c EngineConfig) withDefaults() EngineConfig {
	if c.MaxSequenceKeys <= 0 {
		c.MaxSequenceKeys = 10000
	}
	if c.MaxPartialsPerKey <= 0 {
		c.MaxPartialsPerKey = 16
	}
	if c.MaxIndexedPartials <= 0 {
		c.MaxIndexedPartials = 16384
	}
	if c.MaxThresholdKeys <= 0 {
		c.MaxThresholdKeys = 10000
	}
	if c.MaxEvidence <= 0 {
		c.MaxEvidence = 10
	}
	if c.NameCacheSize <= 0 {
		c.NameCacheSize = 65536
	}
	return c
}

// Engine evaluates a RuleSet against events. Process is safe for concurrent
// use; SetRules swaps the rule set atomically.
type Engine struct {
	cfg    EngineConfig
	log    *slog.Logger
	active atomic.Pointer[activeSet]
	swapMu sync.Mutex
	pool   sync.Pool
	num    atomic.Uint64
	tables *stateTables
	m      engineMetrics
}

type activeSet struct {
	rs     *RuleSet
	states []any // *sequenceState or *thresholdState, aligned with rs.rules
}

type engineMetrics struct {
	events       prometheus.Counter
	alerts       *prometheus.CounterVec
	seqEvictions prometheus.Counter
	seqExpired   prometheus.Counter
	thrEvictions prometheus.Counter
	cacheEvicted *prometheus.CounterVec
	rulesEnabled prometheus.Gauge
	alertsByKind map[string]prometheus.Counter
}

// registerCollector registers c, reusing an identical collector that is
// already registered (several engines in one process share metrics).
func registerCollector[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing
			}
		}
	}
	return c
}

// NewEngine builds an engine with no rules; call SetRules before Process.
func NewEngine(cfg EngineConfig, log *slog.Logger, reg prometheus.Registerer) *Engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	e := &Engine{cfg: cfg, log: log.With("component", "detect")}
	e.m = engineMetrics{
		events: registerCollector(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_detect_events_total", Help: "Events evaluated by the detection engine."})),
		alerts: registerCollector(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_detect_alerts_total", Help: "Alerts raised, by rule kind (falco, sequence, threshold)."}, []string{"kind"})),
		seqEvictions: registerCollector(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_detect_sequence_evictions_total", Help: "Sequence partial matches dropped because a state bound was reached."})),
		seqExpired: registerCollector(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_detect_sequence_expired_total", Help: "Sequence partial matches that expired outside their window."})),
		thrEvictions: registerCollector(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_detect_threshold_evictions_total", Help: "Threshold keys dropped because the key bound was reached."})),
		cacheEvicted: registerCollector(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_detect_cache_evictions_total", Help: "Entries evicted from the engine's lookup tables, by table (dns, files)."}, []string{"table"})),
		rulesEnabled: registerCollector(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_detect_engine_rules_enabled", Help: "Enabled rules in the engine's active rule set."})),
	}
	e.m.alertsByKind = map[string]prometheus.Counter{}
	for _, k := range []string{"falco", "sequence", "threshold"} {
		e.m.alertsByKind[k] = e.m.alerts.WithLabelValues(k)
	}
	e.tables = newStateTables(cfg.NameCacheSize, e.m.cacheEvicted.WithLabelValues("dns"), e.m.cacheEvicted.WithLabelValues("files"))
	e.pool.New = func() any { return &evalCtx{} }
	e.active.Store(&activeSet{rs: &RuleSet{byType: map[string][]*compiledRule{}}})
	return e
}

// RuleSet returns the active rule set.
func (e *Engine) RuleSet() *RuleSet { return e.active.Load().rs }

// SetRules makes rs the active rule set. Sequence and threshold rules whose
// logic did not change keep their partial matches and counts.
func (e *Engine) SetRules(rs *RuleSet) {
	if rs == nil {
		return
	}
	e.swapMu.Lock()
	defer e.swapMu.Unlock()
	old := e.active.Load()
	kept := map[string]any{}
	for i, r := range old.rs.rules {
		if old.states[i] != nil {
			kept[r.fingerprint] = old.states[i]
		}
	}
	next := &activeSet{rs: rs, states: make([]any, len(rs.rules))}
	enabled := 0
	for i, r := range rs.rules {
		if r.info.Enabled {
			enabled++
		}
		if st, ok := kept[r.fingerprint]; ok {
			next.states[i] = st
			continue
		}
		switch {
		case r.seq != nil && r.seq.index != nil:
			next.states[i] = &indexedSequenceState{parts: newLRU[indexKey, []*partialMatch](e.cfg.MaxIndexedPartials)}
		case r.seq != nil:
			next.states[i] = &sequenceState{keys: newLRU[string, *seqKey](e.cfg.MaxSequenceKeys)}
		case r.thr != nil:
			next.states[i] = &thresholdState{keys: newLRU[string, *thrKey](e.cfg.MaxThresholdKeys)}
		}
	}
	e.active.Store(next)
	e.m.rulesEnabled.Set(float64(enabled))
}

// Process evaluates one event against the rules that can match its type and
// calls emit for every alert. emit runs on the caller's goroutine.
func (e *Engine) Process(ev *vigilv1.Event, emit func(*Alert)) {
	if ev == nil {
		return
	}
	a := e.active.Load()
	e.m.events.Inc()
	c := e.pool.Get().(*evalCtx)
	c.reset(ev, e.num.Add(1))
	c.names = e.tables
	e.tables.observe(ev)
	for _, r := range a.rs.rulesFor(c.evtType) {
		switch {
		case r.seq != nil:
			a.states[r.index].(sequenceProcessor).process(e, r, c, emit)
		case r.thr != nil:
			c.hit = threatHit{}
			if r.cond(c) {
				a.states[r.index].(*thresholdState).add(e, r, c, emit)
			}
		default:
			c.hit = threatHit{}
			if r.cond(c) {
				e.fire(r, c, []*vigilv1.Event{ev}, nil, emit)
			}
		}
	}
	c.ev, c.captures = nil, nil
	e.pool.Put(c)
}

// fire builds the alert of a match and hands it to emit.
func (e *Engine) fire(r *compiledRule, c *evalCtx, events []*vigilv1.Event, captures map[string]string, emit func(*Alert)) {
	emit(e.alert(r, c, events, captures))
}

// alert builds the alert of a match and counts it.
func (e *Engine) alert(r *compiledRule, c *evalCtx, events []*vigilv1.Event, captures map[string]string) *Alert {
	al := &Alert{Rule: r.info, Output: r.output.render(c, captures), OutputFields: r.output.values(c), Events: events, Captures: captures}
	if t := c.ev.GetTime(); t != nil {
		al.Time = t.AsTime()
	} else {
		al.Time = time.Now()
	}
	if len(r.groupBy) > 0 {
		var b strings.Builder
		for i := range r.groupBy {
			v, _ := r.groupBy[i].str(c)
			b.WriteString(v)
			b.WriteByte(0)
		}
		al.GroupKey = b.String()
	}
	if len(r.context) > 0 || c.hit.list != "" {
		al.Context = make(map[string]string, len(r.context)+3)
		for _, cc := range r.context {
			switch {
			case cc.field != nil:
				if v, ok := cc.field.str(c); ok {
					al.Context[cc.key] = v
				}
			case cc.capture != "":
				if v, ok := captures[cc.capture]; ok {
					al.Context[cc.key] = v
				}
			default:
				al.Context[cc.key] = cc.lit
			}
		}
		if c.hit.list != "" {
			al.Context["threatListName"] = c.hit.list
			al.Context["threatListItem"] = c.hit.item
			if _, err := netip.ParsePrefix(c.hit.item); err == nil {
				if ip, ok := sockIP(pickRemote)(c); ok {
					al.Context["remoteIp"] = ip.String()
				}
			} else if _, err := netip.ParseAddr(c.hit.item); err == nil {
				al.Context["remoteIp"] = c.hit.item
			} else {
				al.Context["domain"] = c.hit.item
			}
		}
	}
	if ctr := e.m.alertsByKind[r.info.Kind]; ctr != nil {
		ctr.Inc()
	}
	return al
}

func eventNanos(c *evalCtx) int64 {
	if t := c.evTime(); t != 0 {
		return t
	}
	return time.Now().UnixNano()
}

// Sequences.

// candidateKeys appends the keys whose partial matches an event can
// advance: its own key, and with process_tree its ancestors' exec ids too.
func (spec *sequenceSpec) candidateKeys(dst []string, key string, c *evalCtx) []string {
	dst = append(dst, key)
	if spec.tree {
		for _, a := range c.ev.GetProcess().GetLineage() {
			if a.ExecId != "" {
				dst = append(dst, a.ExecId)
			}
		}
	}
	return dst
}

// sequenceProcessor advances a sequence rule's partial matches with one
// event.
type sequenceProcessor interface {
	process(e *Engine, r *compiledRule, c *evalCtx, emit func(*Alert))
}

type sequenceState struct {
	mu   sync.Mutex
	keys *lru[string, *seqKey]
	// active mirrors keys.len() for a lock-free "nothing pending" check.
	active atomic.Int64
	sweepClock
}

// sweepEvery is how many locked visits pass between sweeps; a sweep costs
// one pass over the keys, so this keeps it well under a percent of the work.
const sweepEvery = 4096

// sweepClock counts a sequence state's locked visits down to the next sweep
// of expired partial matches under keys that see no more events.
type sweepClock struct{ untilSweep int }

// due says, once every sweepEvery calls, that it is time to sweep.
func (w *sweepClock) due() bool {
	if w.untilSweep--; w.untilSweep > 0 {
		return false
	}
	w.untilSweep = sweepEvery
	return true
}

func (s *sequenceState) sweep(e *Engine, now, within int64) {
	var dead []string
	for el := s.keys.order.Front(); el != nil; el = el.Next() {
		ent := el.Value.(*lruEntry[string, *seqKey])
		ent.val.partials = dropExpired(e, ent.val.partials, now, within)
		if len(ent.val.partials) == 0 {
			dead = append(dead, ent.key)
		}
	}
	for _, k := range dead {
		s.keys.remove(k)
	}
}

type seqKey struct {
	partials []*partialMatch
}

type partialMatch struct {
	next     int   // index of the step to match next
	start    int64 // ns of the first step's event
	events   []*vigilv1.Event
	captures map[string]string
}

func (s *sequenceState) process(e *Engine, r *compiledRule, c *evalCtx, emit func(*Alert)) {
	spec := r.seq
	key, ok := spec.by(c)
	if !ok {
		return
	}
	// Step conditions that do not read captures are evaluated once per
	// event; the rest once per partial match.
	var once [8]int8 // 0 unknown, 1 true, 2 false
	match := func(i int, p *partialMatch) bool {
		st := &spec.steps[i]
		if st.types != nil && !st.types[c.evtType] {
			return false
		}
		if !st.usesCaptures && i < len(once) {
			if once[i] == 0 {
				once[i] = 2
				if st.cond(c) {
					once[i] = 1
				}
			}
			return once[i] == 1
		}
		if p != nil {
			c.captures = p.captures
		}
		ok := st.cond(c)
		c.captures = nil
		return ok
	}
	now := eventNanos(c)
	within := int64(spec.within)

	// Nothing to advance and no first step: skip the lock. Most events of a
	// sequence's types end here.
	if s.active.Load() == 0 && !match(0, nil) {
		return
	}
	var buf [16]string
	candidates := spec.candidateKeys(buf[:0], key, c)

	// Alerts are handed to emit after the lock is released, so a slow or
	// re-entrant emit cannot stall other streams.
	var ready []*Alert
	defer func() {
		for _, a := range ready {
			emit(a)
		}
	}()
	s.mu.Lock()
	defer func() {
		s.active.Store(int64(s.keys.len()))
		s.mu.Unlock()
	}()
	if s.due() {
		s.sweep(e, now, within)
	}
	for _, k := range candidates {
		sk, ok := s.keys.get(k)
		if !ok {
			continue
		}
		kept := sk.partials[:0]
		for _, p := range sk.partials {
			if now-p.start > within {
				e.m.seqExpired.Inc()
				continue
			}
			if p.next > 0 && match(p.next, p) {
				p.events = append(p.events, c.ev)
				p.captures = capture(&spec.steps[p.next], c, p.captures)
				p.next++
				if p.next == len(spec.steps) {
					c.captures = p.captures
					ready = append(ready, e.alert(r, c, p.events, p.captures))
					c.captures = nil
					continue
				}
			}
			kept = append(kept, p)
		}
		sk.partials = kept
		if len(kept) == 0 {
			s.keys.remove(k)
		}
	}
	if !match(0, nil) {
		return
	}
	caps := capture(&spec.steps[0], c, nil)
	sk, ok := s.keys.get(key)
	if !ok {
		sk = &seqKey{}
		if s.keys.put(key, sk) {
			e.m.seqEvictions.Inc()
		}
	}
	// A repeat of the first step with the same captures refreshes the
	// partial match instead of starting a second one, so the sequence fires
	// once.
	for _, p := range sk.partials {
		if p.next == 1 && sameCaptures(p.captures, caps) {
			p.start, p.events[0] = now, c.ev
			return
		}
	}
	if len(sk.partials) >= e.cfg.MaxPartialsPerKey {
		sk.partials = append(sk.partials[:0], sk.partials[1:]...)
		e.m.seqEvictions.Inc()
	}
	sk.partials = append(sk.partials, &partialMatch{next: 1, start: now, events: []*vigilv1.Event{c.ev}, captures: caps})
}

func capture(st *compiledStep, c *evalCtx, into map[string]string) map[string]string {
	if len(st.captures) == 0 {
		return into
	}
	out := make(map[string]string, len(into)+len(st.captures))
	for k, v := range into {
		out[k] = v
	}
	for _, cp := range st.captures {
		if v, ok := cp.field.str(c); ok {
			out[cp.name] = v
		}
	}
	return out
}

// indexedSequenceState holds the partial matches of a two-step sequence
// whose second step needs a captured value equal to one of the event's
// field values (see captureIndex). They are kept by (key, value), so an
// event of the second step finds its candidates with a map lookup, and a
// flood of first steps (a dropper writing decoy files after its payload)
// evicts only the least recently seen of MaxIndexedPartials, not a window
// of MaxPartialsPerKey.
type indexedSequenceState struct {
	mu    sync.Mutex
	parts *lru[indexKey, []*partialMatch]
	// active mirrors parts.len() for a lock-free "nothing pending" check.
	active atomic.Int64
	sweepClock
}

type indexKey struct{ key, value string }

// maxPerValue bounds the partial matches kept for one (key, value): the
// same file written by several writers.
const maxPerValue = 4

func (s *indexedSequenceState) process(e *Engine, r *compiledRule, c *evalCtx, emit func(*Alert)) {
	spec := r.seq
	first, second := &spec.steps[0], &spec.steps[1]
	key, ok := spec.by(c)
	if !ok {
		return
	}
	advance := s.active.Load() > 0 && (second.types == nil || second.types[c.evtType])
	start := (first.types == nil || first.types[c.evtType]) && first.cond(c)
	if !advance && !start {
		return
	}
	now := eventNanos(c)
	within := int64(spec.within)
	var kbuf [16]string
	keys := spec.candidateKeys(kbuf[:0], key, c)
	var vbuf [4]string
	values := vbuf[:0]
	if advance {
		for _, f := range spec.index.fields {
			if v, ok := f(c); ok && v != "" && !slices.Contains(values, v) {
				values = append(values, v)
			}
		}
	}

	var ready []*Alert
	defer func() {
		for _, a := range ready {
			emit(a)
		}
	}()
	s.mu.Lock()
	defer func() {
		s.active.Store(int64(s.parts.len()))
		s.mu.Unlock()
	}()
	if s.due() {
		s.sweep(e, now, within)
	}
	for _, k := range keys {
		for _, v := range values {
			ik := indexKey{k, v}
			ps, ok := s.parts.get(ik)
			if !ok {
				continue
			}
			kept := ps[:0]
			for _, p := range ps {
				if now-p.start > within {
					e.m.seqExpired.Inc()
					continue
				}
				c.captures = p.captures
				matched := second.cond(c)
				c.captures = nil
				if !matched {
					kept = append(kept, p)
					continue
				}
				events := append(p.events, c.ev)
				caps := capture(second, c, p.captures)
				c.captures = caps
				ready = append(ready, e.alert(r, c, events, caps))
				c.captures = nil
			}
			if len(kept) == 0 {
				s.parts.remove(ik)
			} else {
				s.parts.put(ik, kept)
			}
		}
	}
	if !start {
		return
	}
	caps := capture(first, c, nil)
	v := caps[spec.index.capture]
	if v == "" {
		return // nothing the second step could equal
	}
	ik := indexKey{key, v}
	ps, _ := s.parts.get(ik)
	for _, p := range ps {
		if sameCaptures(p.captures, caps) {
			// A repeat refreshes the partial match, so the sequence fires
			// once.
			p.start, p.events[0] = now, c.ev
			return
		}
	}
	if len(ps) >= maxPerValue {
		ps = append(ps[:0], ps[1:]...)
		e.m.seqEvictions.Inc()
	}
	ps = append(ps, &partialMatch{next: 1, start: now, events: []*vigilv1.Event{c.ev}, captures: caps})
	if s.parts.put(ik, ps) {
		e.m.seqEvictions.Inc()
	}
}

func (s *indexedSequenceState) sweep(e *Engine, now, within int64) {
	var dead []indexKey
	for el := s.parts.order.Front(); el != nil; el = el.Next() {
		ent := el.Value.(*lruEntry[indexKey, []*partialMatch])
		ent.val = dropExpired(e, ent.val, now, within)
		if len(ent.val) == 0 {
			dead = append(dead, ent.key)
		}
	}
	for _, k := range dead {
		s.parts.remove(k)
	}
}

// dropExpired removes, in place, the partial matches older than within and
// counts them.
func dropExpired(e *Engine, ps []*partialMatch, now, within int64) []*partialMatch {
	kept := ps[:0]
	for _, p := range ps {
		if now-p.start > within {
			e.m.seqExpired.Inc()
			continue
		}
		kept = append(kept, p)
	}
	return kept
}

func sameCaptures(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Thresholds.

type thresholdState struct {
	mu   sync.Mutex
	keys *lru[string, *thrKey]
}

type thrKey struct {
	times    []int64
	events   []*vigilv1.Event
	distinct map[string]int64
}

func (s *thresholdState) add(e *Engine, r *compiledRule, c *evalCtx, emit func(*Alert)) {
	spec := r.thr
	key, ok := spec.by(c)
	if !ok {
		return
	}
	var dv string
	if spec.distinct != nil {
		if dv, ok = spec.distinct.str(c); !ok {
			return
		}
	}
	now := eventNanos(c)
	cutoff := now - int64(spec.within)
	var ready *Alert
	defer func() {
		if ready != nil {
			emit(ready)
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	tk, ok := s.keys.get(key)
	if !ok {
		tk = &thrKey{}
		if s.keys.put(key, tk) {
			e.m.thrEvictions.Inc()
		}
	}
	n := 0
	if spec.distinct != nil {
		if tk.distinct == nil {
			tk.distinct = map[string]int64{}
		}
		for v, t := range tk.distinct {
			if t < cutoff {
				delete(tk.distinct, v)
			}
		}
		tk.distinct[dv] = now
		n = len(tk.distinct)
	} else {
		i := 0
		for i < len(tk.times) && tk.times[i] < cutoff {
			i++
		}
		tk.times = append(tk.times[:0], tk.times[i:]...)
		tk.times = append(tk.times, now)
		n = len(tk.times)
	}
	tk.events = append(tk.events, c.ev)
	if len(tk.events) > e.cfg.MaxEvidence {
		tk.events = append(tk.events[:0], tk.events[len(tk.events)-e.cfg.MaxEvidence:]...)
	}
	if n < spec.count {
		return
	}
	caps := map[string]string{"by": key, "count": strconv.Itoa(n)}
	if spec.distinct != nil {
		caps["distinct"] = spec.distinct.name
	}
	events := tk.events
	s.keys.remove(key)
	ready = e.alert(r, c, events, caps)
}

// lru is a bounded map with least-recently-used eviction.
type lru[K comparable, V any] struct {
	max   int
	order *list.List
	items map[K]*list.Element
}

type lruEntry[K comparable, V any] struct {
	key K
	val V
}

func newLRU[K comparable, V any](max int) *lru[K, V] {
	return &lru[K, V]{max: max, order: list.New(), items: map[K]*list.Element{}}
}

func (l *lru[K, V]) get(k K) (V, bool) {
	if el, ok := l.items[k]; ok {
		l.order.MoveToFront(el)
		return el.Value.(*lruEntry[K, V]).val, true
	}
	var zero V
	return zero, false
}

// put stores v and reports whether an old entry was evicted for it.
func (l *lru[K, V]) put(k K, v V) bool {
	if el, ok := l.items[k]; ok {
		el.Value.(*lruEntry[K, V]).val = v
		l.order.MoveToFront(el)
		return false
	}
	l.items[k] = l.order.PushFront(&lruEntry[K, V]{key: k, val: v})
	if l.order.Len() > l.max {
		last := l.order.Back()
		l.order.Remove(last)
		delete(l.items, last.Value.(*lruEntry[K, V]).key)
		return true
	}
	return false
}

func (l *lru[K, V]) remove(k K) {
	if el, ok := l.items[k]; ok {
		l.order.Remove(el)
		delete(l.items, k)
	}
}

func (l *lru[K, V]) len() int { return l.order.Len() }

// stateTables are the lookups fields read across events: which DNS name an
// address was resolved from, and which process created a file.
type stateTables struct {
	mu         sync.Mutex
	dns        *lru[dnsKey, string]
	files      *lru[fileKey, string]
	dnsEvict   prometheus.Counter
	filesEvict prometheus.Counter
}

// dnsKey and fileKey scope entries by host (and container): the same
// address or path means different things on two machines.
type dnsKey struct {
	host string
	ip   netip.Addr
}

type fileKey struct {
	host, container, path string
}

func newStateTables(size int, dnsEvict, filesEvict prometheus.Counter) *stateTables {
	return &stateTables{dns: newLRU[dnsKey, string](size), files: newLRU[fileKey, string](size), dnsEvict: dnsEvict, filesEvict: filesEvict}
}

func scope(ev *vigilv1.Event) string {
	if h := ev.GetHost(); h != nil && h.InstanceId != "" {
		return h.InstanceId
	}
	if h := ev.GetHost(); h != nil && h.Hostname != "" {
		return h.Hostname
	}
	return ev.SensorId
}

func fileKeyOf(ev *vigilv1.Event, path string) fileKey {
	return fileKey{host: scope(ev), container: ev.GetContainer().GetId(), path: path}
}

const oCreat = 0o100

func (t *stateTables) observe(ev *vigilv1.Event) {
	switch k := ev.Kind.(type) {
	case *vigilv1.Event_DnsAnswer:
		if len(k.DnsAnswer.Addresses) == 0 || k.DnsAnswer.Name == "" {
			return
		}
		sc := scope(ev)
		t.mu.Lock()
		for _, a := range k.DnsAnswer.Addresses {
			if ip, err := netip.ParseAddr(a); err == nil {
				if t.dns.put(dnsKey{sc, ip.Unmap()}, k.DnsAnswer.Name) {
					t.dnsEvict.Inc()
				}
			}
		}
		t.mu.Unlock()
	case *vigilv1.Event_Open:
		o := k.Open
		if ev.Result < 0 || o.Path == "" || (!o.Created && o.Flags&oCreat == 0) || o.Flags&3 == 0 {
			return
		}
		exe := ev.GetProcess().GetExePath()
		if exe == "" {
			return
		}
		t.mu.Lock()
		if t.files.put(fileKeyOf(ev, o.Path), exe) {
			t.filesEvict.Inc()
		}
		t.mu.Unlock()
	case *vigilv1.Event_Rename:
		rn := k.Rename
		if ev.Result < 0 || rn.NewPath == "" {
			return
		}
		from := fileKeyOf(ev, rn.OldPath)
		t.mu.Lock()
		creator, ok := t.files.get(from)
		if !ok {
			creator = ev.GetProcess().GetExePath()
		}
		t.files.remove(from)
		if creator != "" && t.files.put(fileKeyOf(ev, rn.NewPath), creator) {
			t.filesEvict.Inc()
		}
		t.mu.Unlock()
	}
}

func (t *stateTables) nameOf(ev *vigilv1.Event, ip netip.Addr) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dns.get(dnsKey{scope(ev), ip})
}

func (t *stateTables) creatorOf(ev *vigilv1.Event) (string, bool) {
	p, ok := "", false
	if ev.GetExec() != nil {
		p, ok = nonEmpty(ev.GetProcess().GetExePath())
	} else {
		p, ok = filePath(ev)
	}
	if !ok {
		return "", false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.files.get(fileKeyOf(ev, p))
}
