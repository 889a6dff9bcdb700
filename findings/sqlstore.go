package findings

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilsec/vigil/detect"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// dialect is what differs between SQLite and PostgreSQL; the queries are
// otherwise shared, written with "?" placeholders.
type dialect struct {
	name string
	// numbered placeholders ($1, $2, ...) instead of "?".
	numbered bool
	// forUpdate locks selected rows until commit (PostgreSQL); SQLite
	// transactions hold the database's write lock instead.
	forUpdate string
	// migrations, in order; schema version i+1 is reached after the i-th.
	migrations []string
	// lockMigrations serialises replicas migrating one database at once.
	lockMigrations string
	// batchReads reads a batch's stored findings and correlation
	// candidates with one statement each (SQLite: the transaction holds the
	// write lock, so nothing changes between read and write); PostgreSQL
	// reads and locks row by row, in fingerprint order.
	batchReads bool
	// prefix renders "col starts with p" so that an index can serve it.
	prefix func(col, p string) (string, []any)
	// retryable reports errors after which the whole transaction may be
	// retried (deadlock or serialization failure between replicas).
	retryable func(error) bool
}

// sqlStore implements Store over database/sql for both dialects.
type sqlStore struct {
	db  *sql.DB
	d   dialect
	cfg StoreConfig
	log *slog.Logger
	m   *storeMetrics

	stmtsMu sync.Mutex
	stmts   map[string]*sql.Stmt
}

type storeMetrics struct {
	batches    *prometheus.CounterVec
	created    prometheus.Counter
	updated    prometheus.Counter
	sequences  prometheus.Counter
	retries    prometheus.Counter
	badAlerts  prometheus.Counter
	applyTime  prometheus.Histogram
	queryTime  prometheus.Histogram
	suppressed prometheus.Counter
}

func newStoreMetrics(reg prometheus.Registerer, dialect string) *storeMetrics {
	labels := prometheus.Labels{"store": dialect}
	m := &storeMetrics{
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_findings_batches_total", Help: "Sensor batches applied, by result (accepted, duplicate).", ConstLabels: labels,
		}, []string{"result"}),
		created: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_findings_created_total", Help: "Findings created.", ConstLabels: labels,
		}),
		updated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_findings_updated_total", Help: "Repeats aggregated into an existing finding.", ConstLabels: labels,
		}),
		sequences: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_findings_attack_sequences_updated_total", Help: "Attack-sequence findings created or updated.", ConstLabels: labels,
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_findings_tx_retries_total", Help: "Transactions retried after a deadlock or serialization failure.", ConstLabels: labels,
		}),
		badAlerts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_findings_invalid_alerts_total", Help: "Alerts that could not become findings (no rule or no events).", ConstLabels: labels,
		}),
		suppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_findings_suppressed_total", Help: "New findings archived by a suppression rule.", ConstLabels: labels,
		}),
		applyTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_findings_apply_batch_seconds", Help: "Time to apply one batch's findings.", ConstLabels: labels,
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		queryTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_findings_list_query_seconds", Help: "Time to list one page of findings.", ConstLabels: labels,
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.batches, m.created, m.updated, m.sequences, m.retries, m.badAlerts, m.suppressed, m.applyTime, m.queryTime} {
			// A second store on one registry (two stores in one process)
			// is not an error; the first one's series stay exported.
			_ = reg.Register(c)
		}
	}
	return m
}

func newSQLStore(ctx context.Context, db *sql.DB, d dialect, cfg StoreConfig, log *slog.Logger, reg prometheus.Registerer) (*sqlStore, error) {
	s := &sqlStore{db: db, d: d, cfg: cfg, log: log, m: newStoreMetrics(reg, d.name), stmts: map[string]*sql.Stmt{}}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// q rewrites "?" placeholders for the dialect.
func (s *sqlStore) q(query string) string {
	if !s.d.numbered {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

func (s *sqlStore) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback()
	if s.d.lockMigrations != "" {
		if _, err := tx.ExecContext(ctx, s.d.lockMigrations); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: version table: %w", err)
	}
	var version int
	err = tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return fmt.Errorf("migrate: init version: %w", err)
		}
	case err != nil:
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if version > len(s.d.migrations) {
		return fmt.Errorf("migrate: database schema version %d is newer than this binary's %d", version, len(s.d.migrations))
	}
	for i := version; i < len(s.d.migrations); i++ {
		for _, stmt := range strings.Split(s.d.migrations[i], ";\n") {
			if strings.TrimSpace(stmt) == "" {
				continue
			}
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("migrate to version %d: %w", i+1, err)
			}
		}
		s.log.Info("store schema migrated", "store", s.d.name, "version", i+1)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE schema_version SET version = ?`), len(s.d.migrations)); err != nil {
		return fmt.Errorf("migrate: set version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *sqlStore) Close() error {
	s.stmtsMu.Lock()
	for _, st := range s.stmts {
		st.Close()
	}
	s.stmts = map[string]*sql.Stmt{}
	s.stmtsMu.Unlock()
	return s.db.Close()
}

// ApplyBatch implements Store.
func (s *sqlStore) ApplyBatch(ctx context.Context, key BatchKey, eventCount int, alerts []*detect.Alert) (bool, error) {
	_, dup, err := s.applyBatch(ctx, key, eventCount, alerts, false)
	return dup, err
}

// ApplyBatchChanges implements ChangeReporter.
func (s *sqlStore) ApplyBatchChanges(ctx context.Context, key BatchKey, eventCount int, alerts []*detect.Alert) ([]*vigilv1.Finding, bool, error) {
	return s.applyBatch(ctx, key, eventCount, alerts, true)
}

func (s *sqlStore) applyBatch(ctx context.Context, key BatchKey, eventCount int, alerts []*detect.Alert, wantEvents bool) ([]*vigilv1.Finding, bool, error) {
	start := time.Now()
	defer func() { s.m.applyTime.Observe(time.Since(start).Seconds()) }()
	now := s.cfg.Now()
	cands := s.candidates(alerts, now)
	for attempt := 0; ; attempt++ {
		changed, dup, err := s.applyOnce(ctx, key, eventCount, cands, now, wantEvents)
		if err != nil && s.d.retryable != nil && s.d.retryable(err) && attempt < 8 && ctx.Err() == nil {
			s.m.retries.Inc()
			time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
			continue
		}
		if err != nil {
			return nil, false, err
		}
		if dup {
			s.m.batches.WithLabelValues("duplicate").Inc()
		} else {
			s.m.batches.WithLabelValues("accepted").Inc()
		}
		return changed, dup, nil
	}
}

// candidates builds the alerts' findings, merges repeats within the batch
// and orders them by fingerprint, so that concurrent transactions lock
// findings in one order.
func (s *sqlStore) candidates(alerts []*detect.Alert, now time.Time) []*Candidate {
	byFP := map[string]*Candidate{}
	var out []*Candidate
	for _, a := range alerts {
		c, err := Build(a, now)
		if err != nil {
			s.m.badAlerts.Inc()
			s.log.Warn("alert dropped", "err", err)
			continue
		}
		if prev, ok := byFP[c.Fingerprint]; ok {
			mergeInto(prev.Finding, c.Finding, now)
			continue
		}
		byFP[c.Fingerprint] = c
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Fingerprint < out[j].Fingerprint })
	return out
}

// wantEvents asks for the changed findings' evidence events too (for the
// exporters), which aggregation otherwise leaves encoded.
func (s *sqlStore) applyOnce(ctx context.Context, key BatchKey, eventCount int, cands []*Candidate, now time.Time, wantEvents bool) ([]*vigilv1.Finding, bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, false, fmt.Errorf("apply batch: begin: %w", err)
	}
	defer tx.Rollback()
	res, err := s.exec(ctx, tx, `INSERT INTO batches (sensor_id, boot_id, sequence, events, received_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		key.SensorID, key.BootID, int64(key.Sequence), int64(eventCount), now.UnixNano())
	if err != nil {
		return nil, false, fmt.Errorf("apply batch: record batch: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, false, fmt.Errorf("apply batch: record batch: %w", err)
	} else if n == 0 {
		return nil, true, nil
	}
	if _, err := s.exec(ctx, tx, `INSERT INTO sensors (sensor_id, first_seen, last_contact, batches_total, events_total) VALUES (?, ?, ?, 1, ?)
		ON CONFLICT (sensor_id) DO UPDATE SET batches_total = sensors.batches_total + 1, events_total = sensors.events_total + excluded.events_total, last_contact = excluded.last_contact`,
		key.SensorID, now.UnixNano(), now.UnixNano(), int64(eventCount)); err != nil {
		return nil, false, fmt.Errorf("apply batch: sensor counters: %w", err)
	}
	var changed []*vigilv1.Finding
	if len(cands) > 0 {
		sups, err := s.suppressionsTx(ctx, tx)
		if err != nil {
			return nil, false, err
		}
		var pre map[string]storedFinding
		if s.d.batchReads {
			if pre, err = s.prefetch(ctx, tx, cands); err != nil {
				return nil, false, err
			}
		}
		touched := map[string]int64{}
		for _, c := range cands {
			// A retried transaction must not see a finding merged by the
			// failed one: give each attempt a copy where retries happen.
			cand := c.Finding
			if s.d.retryable != nil {
				cand = proto.Clone(c.Finding).(*vigilv1.Finding)
			}
			f, err := s.upsert(ctx, tx, c.Fingerprint, c.ResourceKey, cand, sups, now, pre, wantEvents)
			if err != nil {
				return nil, false, err
			}
			changed = append(changed, f)
			if !isAttackSequence(f.Type) && !f.GetService().GetArchived() {
				ls := f.GetService().GetEventLastSeen().AsTime().UnixNano()
				if ls > touched[c.ResourceKey] {
					touched[c.ResourceKey] = ls
				}
			}
		}
		keys := make([]string, 0, len(touched))
		for k := range touched {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var members map[string][]sequenceMember
		if s.d.batchReads {
			if members, err = s.sequenceCandidates(ctx, tx, touched); err != nil {
				return nil, false, err
			}
		}
		for _, k := range keys {
			more, err := s.correlate(ctx, tx, k, touched[k], members, sups, now)
			if err != nil {
				return nil, false, err
			}
			changed = mergeChanged(changed, more)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, false, fmt.Errorf("apply batch: commit: %w", err)
	}
	return changed, false, nil
}

// mergeChanged adds findings to a change list, replacing older copies of
// the same finding.
func mergeChanged(list, more []*vigilv1.Finding) []*vigilv1.Finding {
	if len(more) == 0 {
		return list
	}
	at := make(map[string]int, len(list))
	for i, f := range list {
		at[f.Id] = i
	}
	for _, f := range more {
		if i, ok := at[f.Id]; ok {
			list[i] = f
			continue
		}
		at[f.Id] = len(list)
		list = append(list, f)
	}
	return list
}

// upsert inserts a new finding or aggregates it into the stored one with the
// same fingerprint. It reads first, since most alerts repeat a finding; a
// miss inserts with ON CONFLICT DO NOTHING, which on PostgreSQL waits for a
// concurrent insert of the same fingerprint and then does nothing, and the
// locked read after it sees the committed row. So two replicas never create
// two findings for one fingerprint, nor lose a count.
//
// pre, when not nil, holds the stored findings of the batch's fingerprints,
// read at once (SQLite, where the transaction already excludes writers).
func (s *sqlStore) upsert(ctx context.Context, tx *sql.Tx, fp, resKey string, f *vigilv1.Finding, sups []*vigilv1.Suppression, now time.Time, pre map[string]storedFinding, wantEvents bool) (*vigilv1.Finding, error) {
	var existing storedFinding
	var found bool
	var err error
	if pre != nil {
		existing, found = pre[fp]
	} else if existing, found, err = s.findingByFingerprint(ctx, tx, fp); err != nil {
		return nil, err
	}
	if !found {
		for _, sup := range sups {
			if Match(sup.GetFilter(), f) {
				f.Service.Archived = true
				break
			}
		}
		inserted, err := s.insertFinding(ctx, tx, fp, resKey, f)
		if err != nil {
			return nil, err
		}
		if inserted {
			s.m.created.Inc()
			if f.Service.Archived {
				s.m.suppressed.Inc()
			}
			return f, nil
		}
		f.Service.Archived = false
		if existing, found, err = s.findingByFingerprint(ctx, tx, fp); err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("apply batch: finding %s vanished during insert", fp)
		}
	}
	merged := existing.f
	events := existing.events
	if mergeInto(merged, f, now) {
		if events, err = appendEvents(events, f.GetEvidence().GetEvents(), MaxEvidenceEvents); err != nil {
			return nil, fmt.Errorf("apply batch: %w", err)
		}
	}
	if merged.Evidence != nil {
		merged.Evidence.Events = nil
	}
	if err := s.writeFinding(ctx, tx, merged, events); err != nil {
		return nil, err
	}
	if wantEvents {
		if full, err := decodeFinding(nil, events); err == nil && full.Evidence != nil {
			if merged.Evidence == nil {
				merged.Evidence = &vigilv1.Evidence{}
			}
			merged.Evidence.Events = full.Evidence.Events
		}
	}
	s.m.updated.Inc()
	return merged, nil
}

// prefetchChunk bounds the parameters of one IN list (SQLite allows 32766).
const prefetchChunk = 500

// storedFinding is a finding read for aggregation: the finding without
// its evidence events, and the encoded events.
type storedFinding struct {
	f      *vigilv1.Finding
	events []byte
}

// prefetch reads the stored findings of all candidates' fingerprints in a
// few statements instead of one per candidate.
func (s *sqlStore) prefetch(ctx context.Context, tx *sql.Tx, cands []*Candidate) (map[string]storedFinding, error) {
	out := make(map[string]storedFinding, len(cands))
	for start := 0; start < len(cands); start += prefetchChunk {
		chunk := cands[start:min(start+prefetchChunk, len(cands))]
		args := make([]any, len(chunk))
		for i, c := range chunk {
			args[i] = c.Fingerprint
		}
		rows, err := tx.QueryContext(ctx, s.q(`SELECT f.fingerprint, d.data, d.events FROM findings f JOIN finding_data d ON d.id = f.id WHERE f.fingerprint IN (`+placeholders(len(chunk))+`)`), args...)
		if err != nil {
			return nil, fmt.Errorf("apply batch: prefetch findings: %w", err)
		}
		for rows.Next() {
			var fp string
			var head, events []byte
			if err := rows.Scan(&fp, &head, &events); err != nil {
				rows.Close()
				return nil, fmt.Errorf("apply batch: prefetch findings: %w", err)
			}
			f, err := decodeFinding(head, nil)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("apply batch: %w", err)
			}
			out[fp] = storedFinding{f: f, events: events}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("apply batch: prefetch findings: %w", err)
		}
	}
	return out, nil
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// findingByFingerprint reads (and on PostgreSQL locks) the finding with a
// fingerprint; ok is false when there is none.
func (s *sqlStore) findingByFingerprint(ctx context.Context, tx *sql.Tx, fp string) (storedFinding, bool, error) {
	var head, events []byte
	row, err := s.queryRow(ctx, tx, `SELECT d.data, d.events FROM findings f JOIN finding_data d ON d.id = f.id WHERE f.fingerprint = ?`+s.d.forUpdate, fp)
	if err == nil {
		err = row.Scan(&head, &events)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return storedFinding{}, false, nil
	}
	if err != nil {
		return storedFinding{}, false, fmt.Errorf("apply batch: read finding to aggregate: %w", err)
	}
	f, err := decodeFinding(head, nil)
	if err != nil {
		return storedFinding{}, false, fmt.Errorf("apply batch: %w", err)
	}
	return storedFinding{f: f, events: events}, true, nil
}

func (s *sqlStore) insertFinding(ctx context.Context, tx *sql.Tx, fp, resKey string, f *vigilv1.Finding) (bool, error) {
	c := columnsOf(f)
	res, err := s.exec(ctx, tx, `INSERT INTO findings (id, fingerprint, resource_key, type, rule, severity, created_at, updated_at, first_seen, last_seen, archived,
		cluster, cluster_arn, task_arn, namespace, pod, image, container_id, instance_id, hostname, sequence_id, tactics)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (fingerprint) DO NOTHING`,
		f.Id, fp, resKey, c.typ, c.rule, c.severity, c.createdAt, c.updatedAt, c.firstSeen, c.lastSeen, boolInt(c.archived),
		c.cluster, c.clusterArn, c.taskArn, c.namespace, c.pod, c.image, c.containerID, c.instanceID, c.hostname, c.sequenceID, c.tactics)
	if err != nil {
		return false, fmt.Errorf("apply batch: insert finding: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("apply batch: insert finding: %w", err)
	}
	if n == 0 {
		return false, nil
	}
	head, events, err := encodeFinding(f)
	if err != nil {
		return false, fmt.Errorf("apply batch: %w", err)
	}
	if _, err := s.exec(ctx, tx, `INSERT INTO finding_data (id, data, events) VALUES (?, ?, ?)`, f.Id, head, events); err != nil {
		return false, fmt.Errorf("apply batch: insert finding data: %w", err)
	}
	return true, nil
}

func (s *sqlStore) updateFinding(ctx context.Context, tx *sql.Tx, f *vigilv1.Finding) error {
	head, events, err := encodeFinding(f)
	if err != nil {
		return err
	}
	return s.writeRaw(ctx, tx, f, head, events)
}

// writeFinding stores a finding whose evidence events are already encoded
// (f's own events are ignored).
func (s *sqlStore) writeFinding(ctx context.Context, tx *sql.Tx, f *vigilv1.Finding, events []byte) error {
	var evs []*vigilv1.Event
	if f.Evidence != nil {
		evs, f.Evidence.Events = f.Evidence.Events, nil
		defer func() { f.Evidence.Events = evs }()
	}
	head, err := proto.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode finding: %w", err)
	}
	return s.writeRaw(ctx, tx, f, head, events)
}

func (s *sqlStore) writeRaw(ctx context.Context, tx *sql.Tx, f *vigilv1.Finding, head, events []byte) error {
	c := columnsOf(f)
	// Only what a repeat, an archive or a correlation changes: the type,
	// rule and resource columns are part of the fingerprint, and SQLite
	// rewrites every index whose columns are set.
	if _, err := s.exec(ctx, tx, `UPDATE findings SET severity = ?, updated_at = ?, first_seen = ?, last_seen = ?, archived = ?, sequence_id = ?, tactics = ? WHERE id = ?`,
		c.severity, c.updatedAt, c.firstSeen, c.lastSeen, boolInt(c.archived), c.sequenceID, c.tactics, f.Id); err != nil {
		return fmt.Errorf("update finding: %w", err)
	}
	if _, err := s.exec(ctx, tx, `UPDATE finding_data SET data = ?, events = ? WHERE id = ?`, head, events, f.Id); err != nil {
		return fmt.Errorf("update finding data: %w", err)
	}
	return nil
}

// exec runs a statement of the hot path in tx, prepared once per store:
// parsing SQL again for every finding costs more than running it.
func (s *sqlStore) exec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	st, err := s.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
}

// queryRow is exec for a query of one row.
func (s *sqlStore) queryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Row, error) {
	st, err := s.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...), nil
}

func (s *sqlStore) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	s.stmtsMu.Lock()
	defer s.stmtsMu.Unlock()
	if st, ok := s.stmts[query]; ok {
		return st, nil
	}
	st, err := s.db.PrepareContext(ctx, s.q(query))
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	s.stmts[query] = st
	return st, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// GetFinding implements Store.
func (s *sqlStore) GetFinding(ctx context.Context, id string) (*vigilv1.Finding, error) {
	var head, events []byte
	err := s.db.QueryRowContext(ctx, s.q(`SELECT data, events FROM finding_data WHERE id = ?`), id).Scan(&head, &events)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("finding %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get finding: %w", err)
	}
	f, err := decodeFinding(head, events)
	if err != nil {
		return nil, fmt.Errorf("get finding: %w", err)
	}
	return f, nil
}

// SetArchived implements Store.
func (s *sqlStore) SetArchived(ctx context.Context, id string, archived bool) error {
	return s.retry(ctx, func(tx *sql.Tx) error {
		var head, events []byte
		err := tx.QueryRowContext(ctx, s.q(`SELECT d.data, d.events FROM findings f JOIN finding_data d ON d.id = f.id WHERE f.id = ?`+s.d.forUpdate), id).Scan(&head, &events)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("finding %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("archive: read: %w", err)
		}
		f, err := decodeFinding(head, nil)
		if err != nil {
			return fmt.Errorf("archive: %w", err)
		}
		if f.Service == nil {
			f.Service = &vigilv1.Service{}
		}
		f.Service.Archived = archived
		return s.writeFinding(ctx, tx, f, events)
	})
}

// retry runs fn in a transaction, again after deadlocks between replicas.
func (s *sqlStore) retry(ctx context.Context, fn func(*sql.Tx) error) error {
	for attempt := 0; ; attempt++ {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		err = fn(tx)
		if err == nil {
			err = tx.Commit()
		} else {
			tx.Rollback()
		}
		if err != nil && s.d.retryable != nil && s.d.retryable(err) && attempt < 8 {
			s.m.retries.Inc()
			time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
			continue
		}
		return err
	}
}

// pageToken is the keyset position after the last finding of a page.
type pageToken struct {
	Sort      string  `json:"s"`
	Ascending bool    `json:"a,omitempty"`
	Severity  float64 `json:"v,omitempty"`
	LastSeen  int64   `json:"t"`
	ID        string  `json:"i"`
}

func encodeToken(t pageToken) string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeToken(s string) (pageToken, error) {
	var t pageToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return t, fmt.Errorf("%w: nextToken is malformed", ErrInvalidQuery)
	}
	if err := json.Unmarshal(b, &t); err != nil || t.ID == "" {
		return t, fmt.Errorf("%w: nextToken is malformed", ErrInvalidQuery)
	}
	return t, nil
}

// whereFilter renders a filter as SQL conditions over the findings table,
// aliased f.
//
// typeIndex lets a type prefix use the type index: right when the prefix
// matches few findings (see rareTypePrefix), so that a sort of the matches
// beats walking the whole sort index for them.
func whereFilter(flt *vigilv1.FindingFilter, prefix func(col, p string) (string, []any), typeIndex bool) ([]string, []any) {
	var conds []string
	var args []any
	if flt == nil {
		return nil, nil
	}
	pattern := func(col, v string) {
		if v == "" {
			return
		}
		if p, ok := strings.CutSuffix(v, "*"); ok {
			if p == "" {
				return
			}
			c, a := prefix(col, p)
			conds = append(conds, c)
			args = append(args, a...)
			return
		}
		conds = append(conds, col+" = ?")
		args = append(args, v)
	}
	// Ranges (type prefixes, severity and time) rarely select few enough
	// findings to beat walking the sort index, and a range index would
	// force a sort of every match: the unary + keeps SQLite (and is a no-op
	// for PostgreSQL) from using an index for them. The sort indexes cover
	// these columns, so the walk reads no table rows.
	if p, ok := strings.CutSuffix(flt.Type, "*"); ok && p != "" {
		col := "+f.type"
		if typeIndex {
			col = "f.type"
		}
		c, a := prefix(col, p)
		conds = append(conds, c)
		args = append(args, a...)
	} else if flt.Type != "" && !ok {
		conds = append(conds, "f.type = ?")
		args = append(args, flt.Type)
	}
	if flt.SeverityMin > 0 {
		conds = append(conds, "+f.severity >= ?")
		args = append(args, flt.SeverityMin)
	}
	if flt.SeverityMax > 0 {
		conds = append(conds, "+f.severity <= ?")
		args = append(args, flt.SeverityMax)
	}
	if flt.UpdatedAfter != nil {
		conds = append(conds, "+f.updated_at >= ?")
		args = append(args, flt.UpdatedAfter.AsTime().UnixNano())
	}
	if flt.UpdatedBefore != nil {
		conds = append(conds, "+f.updated_at <= ?")
		args = append(args, flt.UpdatedBefore.AsTime().UnixNano())
	}
	switch flt.Archived {
	case "true":
		conds = append(conds, "+f.archived = 1")
	case "false":
		conds = append(conds, "+f.archived = 0")
	}
	switch {
	case strings.HasPrefix(flt.Cluster, "arn:"):
		conds = append(conds, "f.cluster_arn = ?")
		args = append(args, flt.Cluster)
	case flt.Cluster != "":
		conds = append(conds, "f.cluster = ?")
		args = append(args, flt.Cluster)
	}
	pattern("f.task_arn", flt.TaskArn)
	pattern("f.namespace", flt.Namespace)
	pattern("f.pod", flt.Pod)
	pattern("f.image", flt.Image)
	pattern("f.container_id", flt.ContainerId)
	pattern("f.instance_id", flt.InstanceId)
	pattern("f.hostname", flt.Hostname)
	pattern("f.rule", flt.Rule)
	return conds, args
}

// ValidateQuery checks a query's sort, limit and token; errors wrap
// ErrInvalidQuery and name the parameter.
func ValidateQuery(q Query) error {
	switch q.SortBy {
	case "", SortLastSeen, SortSeverity:
	default:
		return fmt.Errorf("%w: sortBy must be %q or %q", ErrInvalidQuery, SortLastSeen, SortSeverity)
	}
	if q.Limit < 0 || q.Limit > MaxLimit {
		return fmt.Errorf("%w: limit must be between 1 and %d", ErrInvalidQuery, MaxLimit)
	}
	if f := q.Filter; f != nil {
		switch f.Archived {
		case "", "true", "false":
		default:
			return fmt.Errorf("%w: archived must be true or false", ErrInvalidQuery)
		}
		if f.SeverityMin < 0 || f.SeverityMax < 0 || (f.SeverityMax > 0 && f.SeverityMin > f.SeverityMax) {
			return fmt.Errorf("%w: severity range is invalid", ErrInvalidQuery)
		}
	}
	if q.NextToken != "" {
		t, err := decodeToken(q.NextToken)
		if err != nil {
			return err
		}
		sortBy := q.SortBy
		if sortBy == "" {
			sortBy = SortLastSeen
		}
		if t.Sort != sortBy || t.Ascending != q.Ascending {
			return fmt.Errorf("%w: nextToken belongs to another sort order", ErrInvalidQuery)
		}
	}
	return nil
}

// ListFindings implements Store with keyset pagination: the token holds the
// sort key and id of the page's last finding, so pages stay stable while new
// findings arrive and deep pages cost no more than the first.
func (s *sqlStore) ListFindings(ctx context.Context, q Query) ([]*vigilv1.Finding, string, error) {
	start := time.Now()
	defer func() { s.m.queryTime.Observe(time.Since(start).Seconds()) }()
	if err := ValidateQuery(q); err != nil {
		return nil, "", err
	}
	if q.SortBy == "" {
		q.SortBy = SortLastSeen
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	typeIndex, err := s.rareTypePrefix(ctx, q.Filter)
	if err != nil {
		return nil, "", err
	}
	conds, args := whereFilter(q.Filter, s.d.prefix, typeIndex)
	dir, cmp := "DESC", "<"
	if q.Ascending {
		dir, cmp = "ASC", ">"
	}
	keyCols := "f.last_seen, f.id"
	order := fmt.Sprintf("f.last_seen %s, f.id %s", dir, dir)
	if q.SortBy == SortSeverity {
		keyCols = "f.severity, f.last_seen, f.id"
		order = fmt.Sprintf("f.severity %s, f.last_seen %s, f.id %s", dir, dir, dir)
	}
	if q.NextToken != "" {
		t, _ := decodeToken(q.NextToken)
		if q.SortBy == SortSeverity {
			conds = append(conds, fmt.Sprintf("(%s) %s (?, ?, ?)", keyCols, cmp))
			args = append(args, t.Severity, t.LastSeen, t.ID)
		} else {
			conds = append(conds, fmt.Sprintf("(%s) %s (?, ?)", keyCols, cmp))
			args = append(args, t.LastSeen, t.ID)
		}
	}
	// Select and sort the page's keys first, then fetch only their bodies:
	// a sort over joined rows would carry every candidate's body.
	inner := `SELECT f.severity, f.last_seen, f.id FROM findings f`
	if len(conds) > 0 {
		inner += " WHERE " + strings.Join(conds, " AND ")
	}
	inner += " ORDER BY " + order + " LIMIT " + strconv.Itoa(limit+1)
	query := `SELECT f.severity, f.last_seen, f.id, d.data, d.events FROM (` + inner + `) f JOIN finding_data d ON d.id = f.id ORDER BY ` + order
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, "", fmt.Errorf("list findings: %w", err)
	}
	defer rows.Close()
	var out []*vigilv1.Finding
	var last pageToken
	for rows.Next() {
		var sev float64
		var ls int64
		var id string
		var head, events []byte
		if err := rows.Scan(&sev, &ls, &id, &head, &events); err != nil {
			return nil, "", fmt.Errorf("list findings: scan: %w", err)
		}
		if len(out) == limit {
			tok := encodeToken(pageToken{Sort: q.SortBy, Ascending: q.Ascending, Severity: last.Severity, LastSeen: last.LastSeen, ID: last.ID})
			return out, tok, rows.Err()
		}
		f, err := decodeFinding(head, events)
		if err != nil {
			return nil, "", fmt.Errorf("list findings: %s: %w", id, err)
		}
		out = append(out, f)
		last = pageToken{Severity: sev, LastSeen: ls, ID: id}
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list findings: %w", err)
	}
	return out, "", nil
}

// suppressionsTx loads the suppression rules inside a batch transaction.
func (s *sqlStore) suppressionsTx(ctx context.Context, tx *sql.Tx) ([]*vigilv1.Suppression, error) {
	rows, err := tx.QueryContext(ctx, `SELECT data FROM suppressions ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("load suppressions: %w", err)
	}
	defer rows.Close()
	return scanSuppressions(rows)
}

func scanSuppressions(rows *sql.Rows) ([]*vigilv1.Suppression, error) {
	var out []*vigilv1.Suppression
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("scan suppression: %w", err)
		}
		sup := &vigilv1.Suppression{}
		if err := proto.Unmarshal(data, sup); err != nil {
			return nil, fmt.Errorf("decode suppression: %w", err)
		}
		out = append(out, sup)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list suppressions: %w", err)
	}
	return out, nil
}

// ListSuppressions implements Store.
func (s *sqlStore) ListSuppressions(ctx context.Context) ([]*vigilv1.Suppression, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT data FROM suppressions ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list suppressions: %w", err)
	}
	defer rows.Close()
	return scanSuppressions(rows)
}

// CreateSuppression implements Store.
func (s *sqlStore) CreateSuppression(ctx context.Context, sup *vigilv1.Suppression) (*vigilv1.Suppression, error) {
	if sup == nil || sup.GetFilter() == nil || proto.Equal(sup.GetFilter(), &vigilv1.FindingFilter{}) {
		return nil, fmt.Errorf("%w: a suppression needs a non-empty filter", ErrInvalidQuery)
	}
	if err := ValidateQuery(Query{Filter: sup.GetFilter()}); err != nil {
		return nil, err
	}
	out := proto.Clone(sup).(*vigilv1.Suppression)
	out.Id = NewID()
	now := s.cfg.Now()
	out.CreatedAt = timestamppb.New(now)
	data, err := proto.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode suppression: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO suppressions (id, created_at, data) VALUES (?, ?, ?)`), out.Id, now.UnixNano(), data); err != nil {
		return nil, fmt.Errorf("create suppression: %w", err)
	}
	return out, nil
}

// DeleteSuppression implements Store.
func (s *sqlStore) DeleteSuppression(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM suppressions WHERE id = ?`), id)
	if err != nil {
		return fmt.Errorf("delete suppression: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete suppression: %w", err)
	} else if n == 0 {
		return fmt.Errorf("suppression %s: %w", id, ErrNotFound)
	}
	return nil
}

// HasBatch implements Store.
func (s *sqlStore) HasBatch(ctx context.Context, key BatchKey) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT 1 FROM batches WHERE sensor_id = ? AND boot_id = ? AND sequence = ?`),
		key.SensorID, key.BootID, int64(key.Sequence)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up batch: %w", err)
	}
	return true, nil
}

// BatchStats implements Store.
func (s *sqlStore) BatchStats(ctx context.Context, sensorID, bootID string) (BatchStats, error) {
	var st BatchStats
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT sequence, events FROM batches WHERE sensor_id = ? AND boot_id = ? ORDER BY sequence`), sensorID, bootID)
	if err != nil {
		return st, fmt.Errorf("batch stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq, n int64
		if err := rows.Scan(&seq, &n); err != nil {
			return st, fmt.Errorf("batch stats: scan: %w", err)
		}
		st.Sequences = append(st.Sequences, uint64(seq))
		st.Events += uint64(n)
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("batch stats: %w", err)
	}
	return st, nil
}

// Purge implements Store.
func (s *sqlStore) Purge(ctx context.Context, olderThan time.Time) (int, error) {
	cut := olderThan.UnixNano()
	var n int64
	err := s.retry(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM finding_data WHERE id IN (SELECT id FROM findings WHERE updated_at < ?)`), cut); err != nil {
			return fmt.Errorf("purge finding data: %w", err)
		}
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM findings WHERE updated_at < ?`), cut)
		if err != nil {
			return fmt.Errorf("purge findings: %w", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return fmt.Errorf("purge findings: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM batches WHERE received_at < ?`), cut); err != nil {
			return fmt.Errorf("purge batches: %w", err)
		}
		return nil
	})
	return int(n), err
}

// sqlitePrefix renders a prefix match as a range on the column (BINARY
// collation compares bytes, so the range is exact and uses the index),
// checked again with substr where the range has no upper bound. LIKE would
// ignore case and treat % and _ as wildcards.
func sqlitePrefix(col, p string) (string, []any) {
	last := p[len(p)-1]
	if last == 0xff {
		return fmt.Sprintf("(%s >= ? AND substr(%s, 1, %d) = ?)", col, col, len([]rune(p))), []any{p, p}
	}
	upper := p[:len(p)-1] + string([]byte{last + 1})
	return fmt.Sprintf("(%s >= ? AND %s < ?)", col, col), []any{p, upper}
}

// postgresPrefix uses starts_with: a range would follow the database's
// collation, which need not order bytes.
func postgresPrefix(col, p string) (string, []any) {
	col = strings.TrimPrefix(col, "+") // SQLite's index hint; no text operator in PostgreSQL
	return fmt.Sprintf("starts_with(%s, ?)", col), []any{p}
}

// rareTypeLimit is how many findings a type prefix may match for a sort of
// its matches to be cheaper than walking the sort index.
const rareTypeLimit = 3000

// rareTypePrefix reports whether the filter's type prefix matches fewer
// than rareTypeLimit findings, counted on the type index alone (SQLite
// only: its planner cannot tell without statistics, PostgreSQL's can).
func (s *sqlStore) rareTypePrefix(ctx context.Context, flt *vigilv1.FindingFilter) (bool, error) {
	p, ok := strings.CutSuffix(flt.GetType(), "*")
	if !ok || p == "" || s.d.name != "sqlite" {
		return false, nil
	}
	c, args := s.d.prefix("f.type", p)
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM findings f WHERE `+c+` LIMIT `+strconv.Itoa(rareTypeLimit)+`)`, args...).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("list findings: count type: %w", err)
	}
	return n < rareTypeLimit, nil
}
