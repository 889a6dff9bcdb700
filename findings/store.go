package findings

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/detect"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// ErrNotFound is returned for an unknown finding, suppression or sensor id.
var ErrNotFound = errors.New("not found")

// ErrInvalidQuery is wrapped by errors about a bad Query (unknown sort key,
// malformed page token, limit out of range), so callers can answer 400.
var ErrInvalidQuery = errors.New("invalid query")

// MaxLimit is the largest page a query returns.
const MaxLimit = 1000

// DefaultLimit is the page size of a query without a limit.
const DefaultLimit = 50

// Sort keys for Query.SortBy.
const (
	SortLastSeen = "lastSeen"
	SortSeverity = "severity"
)

// Query selects a page of findings.
type Query struct {
	// Filter selects findings; nil selects all.
	Filter *vigilv1.FindingFilter
	// SortBy is "lastSeen" (default) or "severity" (then last seen).
	SortBy string
	// Ascending sorts oldest or lowest first; the default is newest or
	// highest first.
	Ascending bool
	// Limit is the page size, 1 to MaxLimit; 0 means DefaultLimit.
	Limit int
	// NextToken continues from the page that returned it; it is opaque and
	// only valid with the same filter and sort.
	NextToken string
}

// BatchKey identifies a sensor batch for de-duplication.
type BatchKey struct {
	SensorID string
	BootID   string
	Sequence uint64
}

// BatchStats is what a store accepted from one sensor boot: the sequences,
// in order, and the events they carried. The exactly-once tests read it.
type BatchStats struct {
	Sequences []uint64
	Events    uint64
}

// Store keeps findings, suppressions, sensor coverage and the accepted batch
// sequences. SQLite and PostgreSQL implement it; several backends may share
// one PostgreSQL store.
type Store interface {
	// ApplyBatch records one sensor batch in one transaction: it
	// de-duplicates on the batch key (a batch already accepted returns
	// duplicate and changes nothing), adds the event count, upserts and
	// aggregates the alerts' findings, archives new findings that match a
	// suppression and correlates attack sequences.
	ApplyBatch(ctx context.Context, key BatchKey, eventCount int, alerts []*detect.Alert) (duplicate bool, err error)
	// ListFindings returns a page of findings and the token of the next
	// page ("" on the last).
	ListFindings(ctx context.Context, q Query) ([]*vigilv1.Finding, string, error)
	// GetFinding returns one finding, or ErrNotFound.
	GetFinding(ctx context.Context, id string) (*vigilv1.Finding, error)
	// SetArchived archives or unarchives a finding, or returns ErrNotFound.
	SetArchived(ctx context.Context, id string, archived bool) error
	// ListSuppressions returns the suppression rules, oldest first.
	ListSuppressions(ctx context.Context) ([]*vigilv1.Suppression, error)
	// CreateSuppression stores a suppression rule and returns it with its
	// id and creation time set. It applies to findings created afterwards.
	CreateSuppression(ctx context.Context, s *vigilv1.Suppression) (*vigilv1.Suppression, error)
	// DeleteSuppression removes a suppression rule, or returns ErrNotFound.
	DeleteSuppression(ctx context.Context, id string) error
	// RecordHealth records a sensor's hello (may be nil) and health report
	// (may be nil) for coverage.
	RecordHealth(ctx context.Context, hello *vigilv1.Hello, h *vigilv1.SensorHealth) error
	// ListSensors returns every sensor's coverage, by sensor id.
	ListSensors(ctx context.Context) ([]*vigilv1.SensorStatus, error)
	// GetSensor returns one sensor's coverage, or ErrNotFound.
	GetSensor(ctx context.Context, sensorID string) (*vigilv1.SensorStatus, error)
	// HasBatch reports whether a batch was already accepted.
	HasBatch(ctx context.Context, key BatchKey) (bool, error)
	// BatchStats returns what was accepted from one sensor boot.
	BatchStats(ctx context.Context, sensorID, bootID string) (BatchStats, error)
	// Purge deletes findings not updated since olderThan, and the batch
	// records received before it; it returns the findings deleted.
	Purge(ctx context.Context, olderThan time.Time) (int, error)
	// Close releases the store.
	Close() error
}

// ChangeReporter is implemented by stores that can report the findings a
// batch created or updated (the exporters' input).
type ChangeReporter interface {
	// ApplyBatchChanges is ApplyBatch, returning the findings the batch
	// created or updated, attack sequences included.
	ApplyBatchChanges(ctx context.Context, key BatchKey, eventCount int, alerts []*detect.Alert) (changed []*vigilv1.Finding, duplicate bool, err error)
}

// StoreConfig tunes a store.
type StoreConfig struct {
	// URL selects the store: "sqlite:///path/vigil.db", "sqlite://" (the
	// default file vigil-data/vigil.db), "postgres://..." or
	// "postgresql://...".
	URL string
	// HealthWindow is how recent a sensor's last report must be for it to
	// count as healthy; default 2 minutes.
	HealthWindow time.Duration
	// CorrelationWindow is how close in time findings on one workload must
	// be to form an attack sequence; default one hour.
	CorrelationWindow time.Duration
	// MinSequenceSeverity is the least severity of a finding that counts
	// toward an attack sequence; default 4 (Medium), so low-severity signals
	// such as a reconnaissance command do not escalate by themselves.
	MinSequenceSeverity float64
	// MinSequenceTactics is how many different MITRE tactics make an attack
	// sequence; default 2.
	MinSequenceTactics int
	// Now returns the current time; tests set it. Default time.Now.
	Now func() time.Time
}

func (c *StoreConfig) defaults() {
	if c.HealthWindow <= 0 {
		c.HealthWindow = 2 * time.Minute
	}
	if c.CorrelationWindow <= 0 {
		c.CorrelationWindow = time.Hour
	}
	if c.MinSequenceSeverity <= 0 {
		c.MinSequenceSeverity = 4
	}
	if c.MinSequenceTactics <= 0 {
		c.MinSequenceTactics = 2
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Open opens the store a URL names with default settings.
func Open(ctx context.Context, url string, log *slog.Logger, reg prometheus.Registerer) (Store, error) {
	return OpenConfig(ctx, StoreConfig{URL: url}, log, reg)
}

// OpenConfig opens the store cfg.URL names, creating or migrating its
// schema.
func OpenConfig(ctx context.Context, cfg StoreConfig, log *slog.Logger, reg prometheus.Registerer) (Store, error) {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "findings")
	switch {
	case strings.HasPrefix(cfg.URL, "sqlite://"):
		return openSQLite(ctx, cfg, strings.TrimPrefix(cfg.URL, "sqlite://"), log, reg)
	case strings.HasPrefix(cfg.URL, "postgres://"), strings.HasPrefix(cfg.URL, "postgresql://"):
		return openPostgres(ctx, cfg, log, reg)
	}
	return nil, fmt.Errorf("open store: unsupported url %q (want sqlite:// or postgres://)", redactURL(cfg.URL))
}

// redactURL hides a password in a store URL before it reaches a log or an
// error.
func redactURL(u string) string {
	at := strings.LastIndex(u, "@")
	scheme := strings.Index(u, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return u
	}
	creds := u[scheme+3 : at]
	if i := strings.Index(creds, ":"); i >= 0 {
		return u[:scheme+3] + creds[:i] + ":xxxxx" + u[at:]
	}
	return u
}
