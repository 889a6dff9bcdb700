package procmode

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the procfs collector's Prometheus collectors.
type metrics struct {
	events      *prometheus.CounterVec
	dropped     prometheus.Counter
	lost        prometheus.Counter
	rateLimited prometheus.Counter
	seizeFailed prometheus.Counter
	stops       *prometheus.CounterVec
	stopSeconds prometheus.Histogram
	pollSeconds *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer, traced func() float64) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_procmode_events_total",
			Help: "Events produced in procfs mode, by system call (Falco's evt.type).",
		}, []string{"syscall"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_procmode_disabled_events_total",
			Help: "Events not emitted because their kind is disabled or their binary or cgroup ignored.",
		}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_procmode_lost_events_total",
			Help: "Events dropped because the queue to the consumer was full.",
		}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_procmode_rate_limited_events_total",
			Help: "Events dropped by the per-process rate limit.",
		}),
		seizeFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_procmode_seize_failures_total",
			Help: "Processes that could not be traced (already traced by another tracer, or not permitted).",
		}),
		stops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_procmode_ptrace_stops_total",
			Help: "ptrace stops handled, by kind (exec, fork, exit, signal, group_stop, other).",
		}, []string{"kind"}),
		stopSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vigil_procmode_stop_handling_seconds",
			Help:    "Time a tracee was held stopped while its stop was handled.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10),
		}),
		pollSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_procmode_poll_seconds",
			Help:    "Duration of one /proc poll, by poller (net, files, scan).",
			Buckets: prometheus.ExponentialBuckets(1e-5, 4, 10),
		}, []string{"poller"}),
	}
	tracedGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_procmode_traced_threads",
		Help: "Threads currently traced with ptrace.",
	}, traced)
	for _, c := range []prometheus.Collector{m.events, m.dropped, m.lost, m.rateLimited, m.seizeFailed, m.stops, m.stopSeconds, m.pollSeconds, tracedGauge} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register procmode metrics: %w", err)
		}
	}
	return m, nil
}
