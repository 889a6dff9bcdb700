package stream

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
	"github.com/vigilsec/vigil/stream/limits"
)

// sealedBatch builds a batch through the client's batchBuilder and reads
// it back, so tests see exactly what goes on the wire (shared context and
// references included).
func sealedBatch(t testing.TB, events []*vigilv1.Event) (*vigilv1.Batch, []byte) {
	t.Helper()
	b := newBatchBuilder()
	for _, e := range events {
		if err := b.add(e); err != nil {
			t.Fatal(err)
		}
	}
	frame := b.seal(batchHeader{sensorID: "sensor-1", bootID: "boot-1", sequence: 9, sentAt: time.Unix(1764115200, 5), droppedBatches: 2, droppedEvents: 30})
	var m vigilv1.SensorMessage
	if err := proto.Unmarshal(frame, &m); err != nil {
		t.Fatal(err)
	}
	raw, err := proto.Marshal(m.GetBatch())
	if err != nil {
		t.Fatal(err)
	}
	return m.GetBatch(), raw
}

func TestSealedBatchReadsBackAsTheEventsSent(t *testing.T) {
	f := newEventFactory()
	var events []*vigilv1.Event
	for i := 0; i < 40; i++ {
		events = append(events, f.event(i))
	}
	b, _ := sealedBatch(t, events)
	if b.SensorId != "sensor-1" || b.BootId != "boot-1" || b.Sequence != 9 || b.DroppedBatches != 2 || b.DroppedEvents != 30 || !b.SentAt.AsTime().Equal(time.Unix(1764115200, 5)) {
		t.Fatalf("header read back as %v", b)
	}
	if len(b.Processes) != 4 || len(b.Containers) != 1 || len(b.Pods) != 1 {
		t.Fatalf("shared context: %d processes, %d containers, %d pods; want 4, 1, 1 (shared by pointer)", len(b.Processes), len(b.Containers), len(b.Pods))
	}
	if err := limits.ValidateBatch(b, limits.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	limits.Resolve(b, nil)
	for i, e := range b.Events {
		e.SensorId = "" // filled in by resolve
		if !proto.Equal(e, events[i]) {
			t.Fatalf("event %d read back as\n%v\nwant\n%v", i, e, events[i])
		}
	}
	for i, e := range events {
		if e.Process == nil || e.ProcessRef != 0 || e.Container == nil {
			t.Fatalf("event %d was left changed by the builder", i)
		}
	}
}
