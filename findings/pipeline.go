package findings

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/vigilsec/vigil/detect"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// Engine evaluates rules over events; detect's engine implements it.
type Engine interface {
	// Process evaluates one event and calls emit for every alert it raises
	// (single-event, sequence and threshold rules alike).
	Process(ev *vigilv1.Event, emit func(*detect.Alert))
}

// Publisher receives the findings each batch created or updated (the
// exporters). Publish must not block: ingest waits for it.
type Publisher interface {
	Publish(findings []*vigilv1.Finding)
}

// Pipeline is the backend's ingest path: it fills in the sensor's host, runs
// the detection engine over a batch's events and applies the alerts to the
// store in one transaction per batch. It implements the stream server's
// Ingester and HealthRecorder.
type Pipeline struct {
	store     Store
	engine    Engine
	publisher Publisher
	log       *slog.Logger

	// engineMu serialises the engine: streams from several sensors ingest
	// concurrently, and sequence and threshold rules keep state.
	engineMu sync.Mutex

	hostsMu sync.RWMutex
	hosts   map[string]*vigilv1.Host

	batches  *prometheus.CounterVec
	events   prometheus.Counter
	alerts   prometheus.Counter
	duration prometheus.Histogram
}

// NewPipeline builds a pipeline over a store and an engine. publisher may be
// nil.
func NewPipeline(store Store, engine Engine, publisher Publisher, log *slog.Logger, reg prometheus.Registerer) *Pipeline {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{
		store: store, engine: engine, publisher: publisher,
		log:   log.With("component", "findings"),
		hosts: map[string]*vigilv1.Host{},
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_findings_ingest_batches_total", Help: "Batches ingested, by result (accepted, duplicate, error).",
		}, []string{"result"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_findings_ingest_events_total", Help: "Events run through the detection engine.",
		}),
		alerts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_findings_ingest_alerts_total", Help: "Alerts the engine raised.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_findings_ingest_batch_seconds", Help: "Time to ingest one batch, detection and store included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{p.batches, p.events, p.alerts, p.duration} {
			_ = reg.Register(c)
		}
	}
	return p
}

// RecordHealth remembers the sensor's host from its hello or health report
// and records both for coverage.
func (p *Pipeline) RecordHealth(ctx context.Context, hello *vigilv1.Hello, h *vigilv1.SensorHealth) error {
	id := hello.GetSensorId()
	if id == "" {
		id = h.GetSensorId()
	}
	host := hello.GetHost()
	if host == nil {
		host = h.GetHost()
	}
	if id != "" && host != nil {
		p.hostsMu.Lock()
		p.hosts[id] = host
		p.hostsMu.Unlock()
	}
	return p.store.RecordHealth(ctx, hello, h)
}

// hostOf returns the host a sensor announced, from memory or, after a
// restart or on another replica, from the store.
func (p *Pipeline) hostOf(ctx context.Context, sensorID string) *vigilv1.Host {
	p.hostsMu.RLock()
	h, ok := p.hosts[sensorID]
	p.hostsMu.RUnlock()
	if ok {
		return h
	}
	st, err := p.store.GetSensor(ctx, sensorID)
	if err != nil {
		return nil
	}
	h = st.GetHost()
	if h != nil {
		p.hostsMu.Lock()
		p.hosts[sensorID] = h
		p.hostsMu.Unlock()
	}
	return h
}

// Ingest runs one batch through detection and into the store. A batch the
// store already accepted is reported as a duplicate before the engine sees
// it, so a replay raises nothing twice. When the store fails, the sensor
// sends the batch again and the engine sees its events a second time: the
// store still counts each finding once per accepted batch, but a sequence
// or threshold rule may have advanced on the first pass.
func (p *Pipeline) Ingest(ctx context.Context, b *vigilv1.Batch) (bool, error) {
	start := time.Now()
	defer func() { p.duration.Observe(time.Since(start).Seconds()) }()
	if b.GetSensorId() == "" || b.GetSequence() == 0 {
		p.batches.WithLabelValues("error").Inc()
		return false, fmt.Errorf("ingest: batch without sensor id or sequence")
	}
	key := BatchKey{SensorID: b.GetSensorId(), BootID: b.GetBootId(), Sequence: b.GetSequence()}
	seen, err := p.store.HasBatch(ctx, key)
	if err != nil {
		p.batches.WithLabelValues("error").Inc()
		return false, fmt.Errorf("ingest: %w", err)
	}
	if seen {
		p.batches.WithLabelValues("duplicate").Inc()
		return true, nil
	}
	host := p.hostOf(ctx, b.GetSensorId())
	var alerts []*detect.Alert
	emit := func(a *detect.Alert) { alerts = append(alerts, a) }
	p.engineMu.Lock()
	for _, ev := range b.GetEvents() {
		if ev.Host == nil && host != nil {
			ev.Host = host
		}
		ev.SensorId = b.GetSensorId()
		p.engine.Process(ev, emit)
	}
	p.engineMu.Unlock()
	p.events.Add(float64(len(b.GetEvents())))
	p.alerts.Add(float64(len(alerts)))

	var changed []*vigilv1.Finding
	var dup bool
	if cr, ok := p.store.(ChangeReporter); ok && p.publisher != nil {
		changed, dup, err = cr.ApplyBatchChanges(ctx, key, len(b.GetEvents()), alerts)
	} else {
		dup, err = p.store.ApplyBatch(ctx, key, len(b.GetEvents()), alerts)
	}
	if err != nil {
		p.batches.WithLabelValues("error").Inc()
		return false, fmt.Errorf("ingest: %w", err)
	}
	if dup {
		// Another replica accepted the same batch between our check and
		// our transaction; nothing was stored twice.
		p.batches.WithLabelValues("duplicate").Inc()
		return true, nil
	}
	p.batches.WithLabelValues("accepted").Inc()
	if len(changed) > 0 {
		out := make([]*vigilv1.Finding, len(changed))
		for i, f := range changed {
			out[i] = proto.Clone(f).(*vigilv1.Finding)
		}
		p.publisher.Publish(out)
	}
	return false, nil
}
