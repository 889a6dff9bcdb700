package collector

import (
	"fmt"
	"strconv"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/collector/probes"
)

// metrics are the collector's Prometheus collectors. Per-syscall counters
// are resolved once so the hot path only does an atomic add.
type metrics struct {
	events        [len(sysNames)]prometheus.Counter
	decodeErrors  prometheus.Counter
	cgroupMisses  prometheus.Counter
	dropped       prometheus.Counter
	probesLoaded  prometheus.Gauge
	probesSkipped prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, kernel *kernelCounters, pending func() float64) (*metrics, error) {
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_collector_events_total",
		Help: "Events decoded from the kernel, by system call (Falco's evt.type).",
	}, []string{"syscall"})
	m := &metrics{
		decodeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_collector_decode_errors_total",
			Help: "Ring-buffer records that could not be decoded and were skipped.",
		}),
		cgroupMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_collector_cgroup_cache_misses_total",
			Help: "cgroup ids whose path had to be read from /proc.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_collector_disabled_events_total",
			Help: "Decoded events not emitted because their kind is disabled.",
		}),
		probesLoaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_collector_probes_attached",
			Help: "Probes (tracepoints) attached and running.",
		}),
		probesSkipped: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_collector_probes_skipped",
			Help: "Probes that could not be attached (see the health report for why).",
		}),
	}
	for i, name := range sysNames {
		if name == "" {
			name = "unknown"
		}
		m.events[i] = events.WithLabelValues(name)
	}
	pendingGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_collector_ring_buffer_pending_bytes",
		Help: "Bytes written by the probes and not yet read.",
	}, pending)
	for _, c := range []prometheus.Collector{events, m.decodeErrors, m.cgroupMisses, m.dropped, m.probesLoaded, m.probesSkipped, pendingGauge, kernel} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register collector metrics: %w", err)
		}
	}
	return m, nil
}

// kernelCounters exports the probes' per-CPU counters map on each scrape.
type kernelCounters struct {
	m           *ebpf.Map
	lost        *prometheus.Desc
	rateLimited *prometheus.Desc
	ignored     *prometheus.Desc
	inflight    *prometheus.Desc
	slotClash   *prometheus.Desc
}

func newKernelCounters(m *ebpf.Map) *kernelCounters {
	return &kernelCounters{
		m: m,
		lost: prometheus.NewDesc("vigil_collector_lost_records_total",
			"Records the probes could not write because the ring buffer was full, per CPU.", []string{"cpu"}, nil),
		rateLimited: prometheus.NewDesc("vigil_collector_rate_limited_total",
			"Records dropped in the kernel by the per-process rate limit.", nil, nil),
		ignored: prometheus.NewDesc("vigil_collector_ignored_total",
			"Records dropped in the kernel because the binary or cgroup is ignored.", nil, nil),
		inflight: prometheus.NewDesc("vigil_collector_inflight_full_total",
			"System calls whose arguments could not be remembered between enter and exit (map full; compat probes only).", nil, nil),
		slotClash: prometheus.NewDesc("vigil_collector_open_slot_clashes_total",
			"Opens whose argument slot another thread took before their exit (the open is not reported; compat probes only).", nil, nil),
	}
}

func (k *kernelCounters) Describe(ch chan<- *prometheus.Desc) {
	ch <- k.lost
	ch <- k.rateLimited
	ch <- k.ignored
	ch <- k.inflight
	ch <- k.slotClash
}

func (k *kernelCounters) Collect(ch chan<- prometheus.Metric) {
	perCPU, err := k.read(probes.VigilRecCounterVIGIL_CNT_LOST)
	if err == nil {
		for cpu, v := range perCPU {
			ch <- prometheus.MustNewConstMetric(k.lost, prometheus.CounterValue, float64(v), strconv.Itoa(cpu))
		}
	}
	for _, c := range []struct {
		d    *prometheus.Desc
		slot probes.VigilRecCounter
	}{{k.rateLimited, probes.VigilRecCounterVIGIL_CNT_RATE_LIMITED}, {k.ignored, probes.VigilRecCounterVIGIL_CNT_IGNORED}, {k.inflight, probes.VigilRecCounterVIGIL_CNT_INFLIGHT_FULL}, {k.slotClash, probes.VigilRecCounterVIGIL_CNT_SLOT_CLASH}} {
		if v, err := k.sum(c.slot); err == nil {
			ch <- prometheus.MustNewConstMetric(c.d, prometheus.CounterValue, float64(v))
		}
	}
}

func (k *kernelCounters) read(slot probes.VigilRecCounter) ([]uint64, error) {
	var vals []uint64
	if err := k.m.Lookup(uint32(slot), &vals); err != nil {
		return nil, fmt.Errorf("read counter %d: %w", slot, err)
	}
	return vals, nil
}

func (k *kernelCounters) sum(slot probes.VigilRecCounter) (uint64, error) {
	vals, err := k.read(slot)
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, v := range vals {
		n += v
	}
	return n, nil
}
