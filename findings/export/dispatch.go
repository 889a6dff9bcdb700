// Package export sends new and updated findings to other systems: a webhook
// in Falco's JSON output format (falcosidekick and its outputs), AWS Security
// Hub (ASFF) and Amazon EventBridge. Exports run beside ingest, with bounded
// queues and retries, and never hold it up.
package export

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// Exporter sends findings to one destination.
type Exporter interface {
	// Name names the exporter in logs and metrics ("webhook", ...).
	Name() string
	// MaxBatch is how many findings one Export call may carry.
	MaxBatch() int
	// Export sends findings; an error means none or only some arrived and
	// the call may be repeated (every destination treats a finding id as
	// an upsert).
	Export(ctx context.Context, findings []*vigilv1.Finding) error
}

// ErrPermanent is wrapped by Export errors that a retry cannot fix (a
// rejected request); the dispatcher drops the batch at once.
var ErrPermanent = errors.New("permanent export failure")

// Config tunes a Dispatcher.
type Config struct {
	// QueueSize bounds the findings waiting per exporter; when it is full,
	// new findings are dropped and counted. Default 10000.
	QueueSize int
	// MaxAttempts is how often one batch is tried before it is dropped.
	// Default 6.
	MaxAttempts int
	// InitialBackoff and MaxBackoff bound the wait between attempts, which
	// doubles each time. Defaults 500ms and 30s.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// Timeout bounds one Export call. Default 15s.
	Timeout time.Duration
}

func (c *Config) defaults() {
	if c.QueueSize <= 0 {
		c.QueueSize = 10000
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 6
	}
	if c.InitialBackoff <= 0 {
		c.InitialBackoff = 500 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 15 * time.Second
	}
}

// Dispatcher fans findings out to exporters, each with its own queue and
// worker, so a slow or failing destination delays only itself. It
// implements findings.Publisher.
type Dispatcher struct {
	cfg     Config
	log     *slog.Logger
	workers []*worker

	sent, failed, dropped, retries *prometheus.CounterVec
	queued                         *prometheus.GaugeVec
}

type worker struct {
	exp   Exporter
	queue chan *vigilv1.Finding
}

// NewDispatcher builds a dispatcher over exporters; Run starts it.
func NewDispatcher(cfg Config, exporters []Exporter, log *slog.Logger, reg prometheus.Registerer) *Dispatcher {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{
		cfg: cfg,
		log: log.With("component", "export"),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_export_findings_sent_total", Help: "Findings an exporter delivered.",
		}, []string{"exporter"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_export_findings_failed_total", Help: "Findings given up on after every attempt failed.",
		}, []string{"exporter"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_export_findings_dropped_total", Help: "Findings dropped because the exporter's queue was full.",
		}, []string{"exporter"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_export_retries_total", Help: "Export attempts repeated after a failure.",
		}, []string{"exporter"}),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_export_queue_findings", Help: "Findings waiting per exporter.",
		}, []string{"exporter"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{d.sent, d.failed, d.dropped, d.retries, d.queued} {
			_ = reg.Register(c)
		}
	}
	for _, e := range exporters {
		d.workers = append(d.workers, &worker{exp: e, queue: make(chan *vigilv1.Finding, cfg.QueueSize)})
	}
	return d
}

// Publish queues findings for every exporter without blocking; what does not
// fit is dropped and counted.
func (d *Dispatcher) Publish(findings []*vigilv1.Finding) {
	for _, w := range d.workers {
		for _, f := range findings {
			select {
			case w.queue <- f:
			default:
				d.dropped.WithLabelValues(w.exp.Name()).Inc()
			}
		}
		d.queued.WithLabelValues(w.exp.Name()).Set(float64(len(w.queue)))
	}
}

// Run exports until ctx ends, then returns after the workers stop. Findings
// still queued then are not sent.
func (d *Dispatcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, w := range d.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.run(ctx, w)
		}()
	}
	wg.Wait()
}

func (d *Dispatcher) run(ctx context.Context, w *worker) {
	name := w.exp.Name()
	max := max(w.exp.MaxBatch(), 1)
	for {
		var batch []*vigilv1.Finding
		select {
		case <-ctx.Done():
			return
		case f := <-w.queue:
			batch = append(batch, f)
		}
		// Take what else is waiting, up to a batch.
	fill:
		for len(batch) < max {
			select {
			case f := <-w.queue:
				batch = append(batch, f)
			default:
				break fill
			}
		}
		d.queued.WithLabelValues(name).Set(float64(len(w.queue)))
		batch = latestByID(batch)
		if err := d.send(ctx, w.exp, batch); err != nil {
			if ctx.Err() != nil {
				return
			}
			d.failed.WithLabelValues(name).Add(float64(len(batch)))
			d.log.Warn("export failed, findings dropped", "exporter", name, "findings", len(batch), "err", err)
			continue
		}
		d.sent.WithLabelValues(name).Add(float64(len(batch)))
	}
}

// send tries one batch until it succeeds, fails permanently or runs out of
// attempts.
func (d *Dispatcher) send(ctx context.Context, exp Exporter, batch []*vigilv1.Finding) error {
	backoff := d.cfg.InitialBackoff
	var err error
	for attempt := 1; attempt <= d.cfg.MaxAttempts; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
		err = exp.Export(cctx, batch)
		cancel()
		if err == nil || errors.Is(err, ErrPermanent) {
			return err
		}
		if attempt == d.cfg.MaxAttempts {
			break
		}
		d.retries.WithLabelValues(exp.Name()).Inc()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, d.cfg.MaxBackoff)
	}
	return fmt.Errorf("after %d attempts: %w", d.cfg.MaxAttempts, err)
}

// latestByID keeps one copy of each finding, the last queued: a finding
// updated twice while waiting is sent once, current.
func latestByID(batch []*vigilv1.Finding) []*vigilv1.Finding {
	idx := make(map[string]int, len(batch))
	out := batch[:0:0]
	for _, f := range batch {
		if i, ok := idx[f.GetId()]; ok {
			out[i] = f
			continue
		}
		idx[f.GetId()] = len(out)
		out = append(out, f)
	}
	return out
}
