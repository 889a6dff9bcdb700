// Package findings turns detection alerts into GuardDuty-shaped findings,
// aggregates repeats, applies suppressions, correlates findings into attack
// sequences and keeps them in a Store (embedded SQLite or PostgreSQL).
//
// # Flow
//
// Pipeline is the backend's ingest path (the stream server's Ingester and
// HealthRecorder): it skips a batch the store already accepted, fills each
// event's host from the sensor's Hello, runs the events through the
// detection Engine and hands the alerts to Store.ApplyBatch, which does
// everything else in one transaction per batch:
//
//   - records the batch key (sensor id, boot id, sequence), so a replay is a
//     duplicate and changes nothing, and adds the batch's event count to the
//     sensor's coverage;
//   - builds each alert's finding (Build): resource, process with lineage,
//     runtime context from the rule and from the evidence events, evidence,
//     MITRE ids;
//   - aggregates: a finding with the same fingerprint (type, rule, resource,
//     executable and the rule's non-volatile context values) updates the
//     stored one (count, first and last seen, latest details, the latest
//     MaxEvidenceEvents evidence events) instead of adding another;
//   - archives new findings that match a suppression rule;
//   - correlates attack sequences (see AttackSequenceWorkload).
//
// # Stores
//
// Open("sqlite:///path/vigil.db") opens the embedded store (pure Go, WAL,
// migrations in a schema_version table); Open("postgres://...") opens a
// PostgreSQL store that several backend replicas share. Both are one
// implementation over database/sql. Findings keep their filter and sort keys
// in indexed columns and their bodies as protobuf beside them; list queries
// page by keyset (the sort key and id of the last finding), so the opaque
// NextToken stays valid while findings arrive.
//
// On PostgreSQL, concurrent replicas aggregate safely: a finding is read
// with SELECT ... FOR UPDATE, a missing one is inserted with ON CONFLICT
// (fingerprint) DO NOTHING and read again, batch keys are a primary key, and
// a transaction that loses a deadlock is retried.
//
// # Exporters
//
// Package export sends new and updated findings (Publisher) to a webhook in
// Falco's output format, AWS Security Hub and Amazon EventBridge, from
// bounded queues with retries, never blocking ingest.
package findings
