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
	fieldBatchProcesses     = 8
	fieldBatchContainers    = 9
	fieldBatchPods          = 10
	fieldBatchEcsTasks      = 11
)

// batchBuilder accumulates events already in wire format. Each event is
// marshalled once, when it arrives, so sealing a batch is a copy and the
// batch's exact size is always known. Process, container, pod and ECS
// context that several events share by pointer (as the process table and
// enrichment hand them out) goes into the batch once and the events refer
// to it by index: on the backend, decoding a 1.5 KiB event with its lineage
// costs ten times what decoding the event alone does.
type batchBuilder struct {
	events []byte // Batch.events entries
	shared []byte // Batch.processes, containers, pods, ecs_tasks entries
	count  int
	opts   proto.MarshalOptions

	procs map[*vigilv1.Process]uint32
	conts map[*vigilv1.Container]uint32
	pods  map[*vigilv1.Kubernetes]uint32
	tasks map[*vigilv1.Ecs]uint32
}

func newBatchBuilder() *batchBuilder {
	return &batchBuilder{
		opts:  proto.MarshalOptions{UseCachedSize: true},
		procs: map[*vigilv1.Process]uint32{},
		conts: map[*vigilv1.Container]uint32{},
		pods:  map[*vigilv1.Kubernetes]uint32{},
		tasks: map[*vigilv1.Ecs]uint32{},
	}
}

// intern returns m's 1-based index among the batch's shared messages of
// field num, appending m the first time it is seen.
func intern[M interface {
	comparable
	proto.Message
}](b *batchBuilder, seen map[M]uint32, num protowire.Number, m M) (uint32, error) {
	if ref, ok := seen[m]; ok {
		return ref, nil
	}
	size := proto.Size(m)
	before := len(b.shared)
	b.shared = protowire.AppendTag(b.shared, num, protowire.BytesType)
	b.shared = protowire.AppendVarint(b.shared, uint64(size))
	start := len(b.shared)
	var err error
	if b.shared, err = b.opts.MarshalAppend(b.shared, m); err != nil {
		b.shared = b.shared[:before]
		return 0, fmt.Errorf("marshal shared context: %w", err)
	}
	if len(b.shared)-start != size {
		b.shared = b.shared[:before]
		return 0, fmt.Errorf("marshal shared context: size changed from %d to %d (mutated after send)", size, len(b.shared)-start)
	}
	ref := uint32(len(seen) + 1)
	seen[m] = ref
	return ref, nil
}

// add appends one event as a Batch.events entry. It owns e while it runs:
// it swaps e's context pointers for references and puts them back.
func (b *batchBuilder) add(e *vigilv1.Event) error {
	proc, cont, pod, task := e.Process, e.Container, e.Kubernetes, e.Ecs
	defer func() {
		e.Process, e.Container, e.Kubernetes, e.Ecs = proc, cont, pod, task
		e.ProcessRef, e.ContainerRef, e.KubernetesRef, e.EcsRef = 0, 0, 0, 0
	}()
	var err error
	if proc != nil {
		if e.ProcessRef, err = intern(b, b.procs, fieldBatchProcesses, proc); err != nil {
			return err
		}
		e.Process = nil
	}
	if cont != nil {
		if e.ContainerRef, err = intern(b, b.conts, fieldBatchContainers, cont); err != nil {
			return err
		}
		e.Container = nil
	}
	if pod != nil {
		if e.KubernetesRef, err = intern(b, b.pods, fieldBatchPods, pod); err != nil {
			return err
		}
		e.Kubernetes = nil
	}
	if task != nil {
		if e.EcsRef, err = intern(b, b.tasks, fieldBatchEcsTasks, task); err != nil {
			return err
		}
		e.Ecs = nil
	}
	size := proto.Size(e)
	b.events = protowire.AppendTag(b.events, fieldBatchEvents, protowire.BytesType)
	b.events = protowire.AppendVarint(b.events, uint64(size))
	before := len(b.events)
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
	return len(b.events) + len(b.shared) + len(sensorID) + len(bootID) + frameHeaderSlack
}

// reset empties the builder for the next batch, keeping its buffers.
func (b *batchBuilder) reset() {
	b.events = b.events[:0]
	b.shared = b.shared[:0]
	b.count = 0
	clear(b.procs)
	clear(b.conts)
	clear(b.pods)
	clear(b.tasks)
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
	n := len(body) + len(b.shared) + len(b.events)
	frame := make([]byte, 0, n+16)
	frame = protowire.AppendTag(frame, fieldSensorMessageBatch, protowire.BytesType)
	frame = protowire.AppendVarint(frame, uint64(n))
	frame = append(frame, body...)
	frame = append(frame, b.shared...)
	frame = append(frame, b.events...)
	b.reset()
	return frame
}
