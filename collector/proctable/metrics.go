package proctable

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the table's Prometheus collectors, with label values resolved
// once so the hot path only does atomic adds.
type metrics struct {
	lookupHit, lookupProc, lookupMiss prometheus.Counter
	procRead, procReadErr             prometheus.Counter
	pidReuse                          prometheus.Counter
	execs, forks, exits               prometheus.Counter
	evictTTL, evictCapacity           prometheus.Counter
	sweepRetired                      prometheus.Counter

	hashHit, hashMiss, hashEvict prometheus.Counter
	hashDropped                  prometheus.Counter
	hashBytes                    prometheus.Counter
	hashErrors                   *prometheus.CounterVec
	hashSeconds                  prometheus.Histogram

	passwdRead, passwdErr prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, t *Table) (*metrics, error) {
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_proctable_lookups_total",
		Help: "Process lookups by pid, by result: hit (in the table), proc (read from /proc on a miss), miss (unknown).",
	}, []string{"result"})
	procReads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_proctable_proc_reads_total",
		Help: "Reads of /proc/PID for processes the table did not know, by result.",
	}, []string{"result"})
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_proctable_events_total",
		Help: "Process lifecycle records applied to the table, by kind.",
	}, []string{"kind"})
	evictions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_proctable_evictions_total",
		Help: "Exited processes dropped from the table, by reason: ttl (expired) or capacity (max_exited reached first).",
	}, []string{"reason"})
	pidReuse := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_proctable_pid_reuse_total",
		Help: "New processes whose pid belonged to another process still in the table.",
	})
	lostExits := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_proctable_lost_exits_total",
		Help: "Processes retired by the /proc sweep because their exit record never arrived.",
	})
	hashHit := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_proctable_hash_cache_hits_total",
		Help: "Executable digests found in the cache.",
	})
	hashMiss := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_proctable_hash_cache_misses_total",
		Help: "Executable digests computed because the cache lacked them.",
	})
	hashEvict := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_proctable_hash_cache_evictions_total",
		Help: "Executable digests evicted from the full cache.",
	})
	hashDropped := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_proctable_hash_queue_dropped_total",
		Help: "Hash and user-name jobs dropped because the queue was full.",
	})
	hashBytes := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_proctable_hash_read_bytes_total",
		Help: "Bytes of executables read for hashing.",
	})
	hashErrors := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_proctable_hash_errors_total",
		Help: "Executables not hashed, by reason: open (process gone or unreadable), changed (a different image than the table's), too_large, read.",
	}, []string{"reason"})
	hashSeconds := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "vigil_proctable_hash_duration_seconds",
		Help:    "Time to hash one executable on a cache miss.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	})
	passwd := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_proctable_passwd_reads_total",
		Help: "Reads of a process's /etc/passwd to resolve user names, by result.",
	}, []string{"result"})
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_proctable_processes",
		Help: "Processes held in the table, live and recently exited.",
	}, func() float64 {
		t.mu.RLock()
		defer t.mu.RUnlock()
		return float64(len(t.byExecID))
	})
	exited := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_proctable_exited_processes",
		Help: "Exited processes kept so late events still resolve.",
	}, func() float64 {
		t.mu.RLock()
		defer t.mu.RUnlock()
		return float64(len(t.exitedQ) - t.exitedHd)
	})
	if reg != nil {
		for _, c := range []prometheus.Collector{lookups, procReads, events, evictions, pidReuse, lostExits,
			hashHit, hashMiss, hashEvict, hashDropped, hashBytes, hashErrors, hashSeconds, passwd, held, exited} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register proctable metrics: %w", err)
			}
		}
	}
	return &metrics{
		lookupHit:     lookups.WithLabelValues("hit"),
		lookupProc:    lookups.WithLabelValues("proc"),
		lookupMiss:    lookups.WithLabelValues("miss"),
		procRead:      procReads.WithLabelValues("ok"),
		procReadErr:   procReads.WithLabelValues("error"),
		pidReuse:      pidReuse,
		execs:         events.WithLabelValues("exec"),
		forks:         events.WithLabelValues("fork"),
		exits:         events.WithLabelValues("exit"),
		evictTTL:      evictions.WithLabelValues("ttl"),
		evictCapacity: evictions.WithLabelValues("capacity"),
		sweepRetired:  lostExits,
		hashHit:       hashHit,
		hashMiss:      hashMiss,
		hashEvict:     hashEvict,
		hashDropped:   hashDropped,
		hashBytes:     hashBytes,
		hashErrors:    hashErrors,
		hashSeconds:   hashSeconds,
		passwdRead:    passwd.WithLabelValues("ok"),
		passwdErr:     passwd.WithLabelValues("error"),
	}, nil
}
