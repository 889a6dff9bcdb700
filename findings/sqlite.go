package findings

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

// DefaultSQLitePath is the database file "sqlite://" opens.
const DefaultSQLitePath = "vigil-data/vigil.db"

// sqliteMigrations is the SQLite schema, one entry per version. Findings'
// indexed columns live apart from their encoded bodies so that filtered
// scans and sorts handle small rows. Indexes that hold last_seen change on
// every repeat, so only the sort, type, rule and correlation indexes (the
// filters that match many findings) do. updated_at has no index of its own:
// time filters walk the sort indexes, which cover it, and only the
// retention purge scans by it.
var sqliteMigrations = []string{
	`CREATE TABLE findings (
	id TEXT PRIMARY KEY,
	fingerprint TEXT NOT NULL UNIQUE,
	resource_key TEXT NOT NULL,
	type TEXT NOT NULL,
	rule TEXT NOT NULL,
	severity REAL NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	first_seen INTEGER NOT NULL,
	last_seen INTEGER NOT NULL,
	archived INTEGER NOT NULL,
	cluster TEXT NOT NULL,
	cluster_arn TEXT NOT NULL,
	task_arn TEXT NOT NULL,
	namespace TEXT NOT NULL,
	pod TEXT NOT NULL,
	image TEXT NOT NULL,
	container_id TEXT NOT NULL,
	instance_id TEXT NOT NULL,
	hostname TEXT NOT NULL,
	sequence_id TEXT NOT NULL,
	tactics TEXT NOT NULL
);
CREATE TABLE finding_data (id TEXT PRIMARY KEY, data BLOB NOT NULL, events BLOB);
CREATE INDEX findings_last_seen ON findings (last_seen, id, type, severity, archived, updated_at);
CREATE INDEX findings_severity ON findings (severity, last_seen, id, type, archived, updated_at);
CREATE INDEX findings_type ON findings (type, last_seen);
CREATE INDEX findings_resource ON findings (resource_key, last_seen, archived, type, id, tactics, sequence_id);
CREATE INDEX findings_cluster ON findings (cluster);
CREATE INDEX findings_cluster_arn ON findings (cluster_arn);
CREATE INDEX findings_task ON findings (task_arn);
CREATE INDEX findings_pod ON findings (namespace, pod);
CREATE INDEX findings_image ON findings (image);
CREATE INDEX findings_container ON findings (container_id);
CREATE INDEX findings_instance ON findings (instance_id);
CREATE INDEX findings_hostname ON findings (hostname);
CREATE INDEX findings_rule ON findings (rule, last_seen);
CREATE TABLE batches (
	sensor_id TEXT NOT NULL,
	boot_id TEXT NOT NULL,
	sequence INTEGER NOT NULL,
	events INTEGER NOT NULL,
	received_at INTEGER NOT NULL,
	PRIMARY KEY (sensor_id, boot_id, sequence)
);
CREATE INDEX batches_received ON batches (received_at);
CREATE TABLE sensors (
	sensor_id TEXT PRIMARY KEY,
	first_seen INTEGER NOT NULL,
	last_contact INTEGER NOT NULL,
	batches_total INTEGER NOT NULL DEFAULT 0,
	events_total INTEGER NOT NULL DEFAULT 0,
	version TEXT NOT NULL DEFAULT '',
	hello BLOB,
	health BLOB,
	last_health INTEGER NOT NULL DEFAULT 0,
	loss_total INTEGER NOT NULL DEFAULT 0,
	loss_delta INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE suppressions (id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, data BLOB NOT NULL)`,
	// 2: what the backend noticed about a sensor's stream (a sensor that
	// lost its spool and so its place in the sequence).
	`ALTER TABLE sensors ADD COLUMN stream_problem TEXT NOT NULL DEFAULT ''`,
}

func openSQLite(ctx context.Context, cfg StoreConfig, path string, log *slog.Logger, reg prometheus.Registerer) (Store, error) {
	if path == "" {
		path = DefaultSQLitePath
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("open sqlite store: %w", err)
		}
	}
	// Immediate transactions take the write lock up front, so two writers
	// wait on the busy timeout instead of failing on a lock upgrade.
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	// 64 MiB of page cache: the hot findings of a busy backend stay in
	// memory between batches.
	q.Add("_pragma", "cache_size(-65536)")
	// Reads through a memory map need no system call per page; a larger
	// WAL between checkpoints writes a hot page to the database file once
	// per checkpoint rather than once per few batches.
	q.Add("_pragma", "mmap_size(268435456)")
	q.Add("_pragma", "wal_autocheckpoint(8000)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	// SQLite has one writer; a few connections let readers run beside it.
	db.SetMaxOpenConns(4)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	return newSQLStore(ctx, db, dialect{name: "sqlite", migrations: sqliteMigrations, prefix: sqlitePrefix, batchReads: true}, cfg, log, reg)
}
