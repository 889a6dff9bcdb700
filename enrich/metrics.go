package enrich

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the enricher's Prometheus metrics (vigil_enrich_*).
type metrics struct {
	hits          prometheus.Counter
	misses        prometheus.Counter
	partial       prometheus.Counter
	expired       prometheus.Counter
	queueFull     prometheus.Counter
	lookups       *prometheus.CounterVec
	sourceErrors  *prometheus.CounterVec
	lookupSeconds *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer, c *cache) (*metrics, error) {
	m := &metrics{
		hits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_enrich_cache_hits_total",
			Help: "Events whose cgroup was in the enrichment cache.",
		}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_enrich_cache_misses_total",
			Help: "Events whose cgroup was not in the enrichment cache.",
		}),
		partial: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_enrich_partial_events_total",
			Help: "Events sent with only the container id because its lookup had not completed.",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_enrich_cache_expired_total",
			Help: "Cache entries dropped after going unseen for the cache TTL.",
		}),
		queueFull: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_enrich_queue_full_total",
			Help: "Lookups not queued because the lookup queue was full (retried on a later event).",
		}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_enrich_lookups_total",
			Help: "Metadata lookups by source and result (found, not_found, error).",
		}, []string{"source", "result"}),
		sourceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_enrich_source_errors_total",
			Help: "Errors from enrichment sources (containerd, ECS task metadata, ECS agent, EC2 IMDS).",
		}, []string{"source"}),
		lookupSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_enrich_lookup_duration_seconds",
			Help:    "Time taken by one request to an enrichment source.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
		}, []string{"source"}),
	}
	entries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_enrich_cache_entries",
		Help: "Cgroups held in the enrichment cache.",
	}, func() float64 { return float64(c.len()) })
	evictions := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "vigil_enrich_cache_evictions_total",
		Help: "Cache entries evicted to stay within the cache size.",
	}, func() float64 { return float64(c.evicted.Load()) })
	if reg == nil {
		return m, nil
	}
	for _, col := range []prometheus.Collector{m.hits, m.misses, m.partial, m.expired, m.queueFull,
		m.lookups, m.sourceErrors, m.lookupSeconds, entries, evictions} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("register enrich metrics: %w", err)
		}
	}
	return m, nil
}
