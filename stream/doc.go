// Package stream is Vigil's sensor-to-backend wire.
//
// On the sensor, a Client batches events (by count, bytes and time), writes
// each sealed batch to a bounded spool (on disk when a directory is set),
// sends batches over one bidirectional gRPC stream compressed with zstd, and
// removes a batch from the spool only when the backend acknowledges it. While
// the backend is away the spool fills; when it is full the oldest batches go
// and the loss is carried in the next batch's dropped_* fields. A restarted
// sensor replays what its spool still holds, in order.
//
// On the backend, a Server authenticates sensors by token, checks every batch
// against limits.Limits, hands valid batches to an Ingester and acknowledges a batch
// only after Ingest returns nil. The Ingester de-duplicates durably by
// (sensor id, boot id, sequence); the Server also skips replays it has
// already acknowledged on the same stream.
//
// A batch that breaks a limit ends its stream with codes.InvalidArgument; the
// status carries the field and the limit (a BadRequest detail) and the
// offending sequence (an ErrorInfo detail). The Client then quarantines that
// one batch, counts it as dropped, and reconnects, so a poison batch can
// never loop; other streams are not touched. We end the stream rather than
// NACK in-band because a gRPC status is the one place every client already
// looks for an error and its reason.
package stream
