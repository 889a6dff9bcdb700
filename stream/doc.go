// Package stream is Vigil's sensor-to-backend wire.
//
// On the sensor, a Client batches events (by count, bytes and time; the
// defaults, 2048 events, 1 MiB and 100 ms, keep an event's wait under 250
// ms), seals each batch into a bounded spool, sends batches over one
// bidirectional gRPC stream compressed with zstd, and removes a batch from
// the spool only when the backend acknowledges it. Process, container, pod
// and ECS context shared by pointer travels once per batch (Batch.processes
// and friends, referenced by Event.process_ref ...); the backend resolves
// the references, so every later stage sees ordinary events.
//
// The spool is written behind while the backend is reachable (a batch goes
// to disk once it is a second old without an ack) and at once while it is
// not; it is written in full when Run returns. So a backend outage or a
// sensor restart loses nothing; a sensor killed outright can lose the
// batches younger than one second. When the spool is full the oldest
// batches go, and the loss (with any loss those batches were carrying) is
// reported in the next batch's dropped_* fields and in health reports.
// Sequence numbers persist in the spool directory, so a restarted sensor
// never reuses one.
//
// On the backend, a Server authenticates sensors by token, checks every
// batch against limits.Limits, hands valid batches to an Ingester and
// acknowledges a batch only after Ingest returns nil. The Ingester
// de-duplicates durably by (sensor id, boot id, sequence); the Server also
// skips replays it has already acknowledged on the same stream.
//
// A batch that breaks a limit ends its stream with codes.InvalidArgument;
// the status carries the field and the limit (a BadRequest detail) and the
// offending sequence (an ErrorInfo detail, reason BATCH_INVALID). The Client
// then quarantines that one batch (the last one is kept under
// SPOOL/quarantine/), counts it as dropped, and reconnects, so a poison
// batch can never loop; other streams are not touched. A message over the
// gRPC size limit fails with gRPC's own codes.ResourceExhausted, which names
// no batch: the Client then resends one batch at a time and quarantines the
// batch that fails alone. We end the stream rather than NACK in-band
// because a gRPC status is where every client already looks for an error
// and its reason. A refusal no batch caused (a bad Hello; ErrorInfo reason
// MESSAGE_INVALID) keeps the spool intact; a bad health report is dropped
// and the stream goes on.
package stream
