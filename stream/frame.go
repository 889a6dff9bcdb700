package stream

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// Field numbers of the messages we write by hand. The generated
// descriptors are checked against them in frame_test.go.
const (
	fieldSensorMessageBatch = 2
	fieldBatchSensorID      = 1
	fieldBatchBootID        = 2
	fieldBatchSequence      = 3
	fieldBatchEvents        = 4
	fieldBatchSentAt        = 5
	fieldBatchDroppedBatch  = 6
	fieldBatchDroppedEvents = 7
)

// batchBuilder accumulates events already in wire format. Each event is
// marshalled once, when it arrives, so sealing a batch is a copy and the
// batch's exact size is always known.
type batchBuilder struct {
	events []byte
	count  int
	opts   proto.MarshalOptions
}

// add appends one event as a Batch.events entry.
func (b *batchBuilder) add(e *vigilv1.Event) error {
	size := proto.Size(e)
	b.events = protowire.AppendTag(b.events, fieldBatchEvents, protowire.BytesType)
	b.events = protowire.AppendVarint(b.events, uint64(size))
	before := len(b.events)
	var err error
	// UseCachedSize reuses the sizes proto.Size just computed.
	b.events, err = b.opts.MarshalAppend(b.events, e)
	if err != nil {
		b.events = b.events[:before]
		return fmt.Errorf("marshal event: %w", err)
	}
	if len(b.events)-before != size {
		// The event changed between Size and Marshal: someone mutated it
		// after handing it over. Refuse it rather than send a corrupt batch.
		return fmt.Errorf("marshal event: size changed from %d to %d (event mutated after send)", size, len(b.events)-before)
	}
	b.count++
	return nil
}

// sizeEstimate is the sealed frame's size, give or take the header's
// varints (within frameHeaderSlack).
func (b *batchBuilder) sizeEstimate(sensorID, bootID string) int {
	return len(b.events) + len(sensorID) + len(bootID) + frameHeaderSlack
}

// frameHeaderSlack covers tags, lengths, the sequence, sent_at and the
// dropped counters.
const frameHeaderSlack = 64

// batchHeader is what a batch carries besides its events.
type batchHeader struct {
	sensorID, bootID string
	sequence         uint64
	sentAt           time.Time
	droppedBatches   uint64
	droppedEvents    uint64
}

// seal returns the SensorMessage{batch} frame and resets the builder.
func (b *batchBuilder) seal(h batchHeader) []byte {
	var hdr [256]byte
	body := hdr[:0]
	body = protowire.AppendTag(body, fieldBatchSensorID, protowire.BytesType)
	body = protowire.AppendString(body, h.sensorID)
	body = protowire.AppendTag(body, fieldBatchBootID, protowire.BytesType)
	body = protowire.AppendString(body, h.bootID)
	body = protowire.AppendTag(body, fieldBatchSequence, protowire.VarintType)
	body = protowire.AppendVarint(body, h.sequence)
	if !h.sentAt.IsZero() {
		var ts [24]byte
		t := ts[:0]
		if s := h.sentAt.Unix(); s != 0 {
			t = protowire.AppendTag(t, 1, protowire.VarintType)
			t = protowire.AppendVarint(t, uint64(s))
		}
		if n := h.sentAt.Nanosecond(); n != 0 {
			t = protowire.AppendTag(t, 2, protowire.VarintType)
			t = protowire.AppendVarint(t, uint64(n))
		}
		body = protowire.AppendTag(body, fieldBatchSentAt, protowire.BytesType)
		body = protowire.AppendBytes(body, t)
	}
	if h.droppedBatches != 0 {
		body = protowire.AppendTag(body, fieldBatchDroppedBatch, protowire.VarintType)
		body = protowire.AppendVarint(body, h.droppedBatches)
	}
	if h.droppedEvents != 0 {
		body = protowire.AppendTag(body, fieldBatchDroppedEvents, protowire.VarintType)
		body = protowire.AppendVarint(body, h.droppedEvents)
	}
	n := len(body) + len(b.events)
	frame := make([]byte, 0, n+16)
	frame = protowire.AppendTag(frame, fieldSensorMessageBatch, protowire.BytesType)
	frame = protowire.AppendVarint(frame, uint64(n))
	frame = append(frame, body...)
	frame = append(frame, b.events...)
	b.events = b.events[:0]
	b.count = 0
	return frame
}
