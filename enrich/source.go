package enrich

import (
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// Source states, as reported in SourceStatus.state.
const (
	StateOK       = "ok"
	StateAbsent   = "absent"
	StateDisabled = "disabled"
	StateFailing  = "failing"
)

// Source names, as reported in SourceStatus.name and the source label of
// the metrics.
const (
	SourceContainerd = "containerd"
	SourceKubelet    = "kubelet"
	SourceECSTask    = "ecs_task_metadata"
	SourceECSAgent   = "ecs_agent"
	SourceEC2        = "ec2_imds"
)

// sourceState tracks one source's health: detected or not, failing with
// backoff, error counts for Status.
type sourceState struct {
	name     string
	log      *slog.Logger
	errCount prometheus.Counter
	backoff  func(failures int) time.Duration

	mu       sync.Mutex
	state    string
	lastErr  string
	errors   uint64
	failures int
	retryAt  time.Time
	// nextProbe is when an absent source is detected again.
	nextProbe time.Time
}

// usable reports whether the source may be asked now: it works, or it is
// failing and its backoff has passed (the call is the retry).
func (s *sourceState) usable(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == StateOK || s.state == StateFailing && !now.Before(s.retryAt)
}

func (s *sourceState) current() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// succeed marks the source working.
func (s *sourceState) succeed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != StateOK {
		s.log.Info("enrichment source ok", "source", s.name, "was", s.state)
	}
	s.state, s.failures = StateOK, 0
}

// fail records an error and backs off before the next attempt.
func (s *sourceState) fail(err error, now time.Time) {
	s.errCount.Inc()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errors++
	s.failures++
	s.lastErr = err.Error()
	wait := s.backoff(s.failures)
	s.retryAt = now.Add(wait)
	if s.state != StateFailing {
		s.log.Warn("enrichment source failing", "source", s.name, "err", err, "retry_in", wait)
	}
	s.state = StateFailing
}

// absent marks the source not present here; it is probed again after
// interval.
func (s *sourceState) absent(reason error, now time.Time, interval time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != StateAbsent && s.state != "" {
		s.log.Info("enrichment source absent", "source", s.name, "reason", reason)
	}
	s.state = StateAbsent
	if reason != nil {
		s.lastErr = reason.Error()
	}
	s.nextProbe = now.Add(interval)
}

// dueForProbe reports whether a source without a working connection
// should be detected again: absent past its probe interval, or failing
// past its backoff.
func (s *sourceState) dueForProbe(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case StateAbsent:
		return !now.Before(s.nextProbe)
	case StateFailing:
		return !now.Before(s.retryAt)
	}
	return false
}

func (s *sourceState) status() *vigilv1.SourceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &vigilv1.SourceStatus{Name: s.name, State: s.state, LastError: s.lastErr, Errors: s.errors}
}

// backoff returns an exponential backoff from lo, doubling per failure,
// capped at hi.
func backoff(lo, hi time.Duration) func(int) time.Duration {
	return func(n int) time.Duration {
		d := lo
		for i := 1; i < n && d < hi; i++ {
			d *= 2
		}
		return min(d, hi)
	}
}
