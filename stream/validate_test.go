package stream

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
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
	if err := ValidateBatch(b, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	resolve(b, nil)
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

func TestValidateBatch(t *testing.T) {
	f := newEventFactory()
	good := func() *vigilv1.Batch {
		b, _ := sealedBatch(t, []*vigilv1.Event{f.event(0), f.event(1), f.event(7)})
		return b
	}
	long := strings.Repeat("a", 4097)
	for _, tc := range []struct {
		name   string
		mutate func(*vigilv1.Batch)
		field  string // "" when valid
	}{
		{"a batch as the client builds it is valid", func(*vigilv1.Batch) {}, ""},
		{"an empty batch that only reports a loss is valid", func(b *vigilv1.Batch) { b.Events, b.Processes, b.Containers, b.Pods = nil, nil, nil, nil }, ""},
		{"a missing sensor id is invalid", func(b *vigilv1.Batch) { b.SensorId = "" }, "batch.sensor_id"},
		{"a boot id with a space is invalid", func(b *vigilv1.Batch) { b.BootId = "a b" }, "batch.boot_id"},
		{"a long shared exe path is invalid", func(b *vigilv1.Batch) { b.Processes[0].ExePath = long }, "batch.processes[0].exe_path"},
		{"a long lineage argument is invalid", func(b *vigilv1.Batch) { b.Processes[0].Lineage[1].Args[0] = long }, "batch.processes[0].lineage[1].args[0]"},
		{"a long container label is invalid", func(b *vigilv1.Batch) { b.Containers[0].Labels["k"] = long }, "batch.containers[0].labels[k]"},
		{"a long pod label is invalid", func(b *vigilv1.Batch) { b.Pods[0].PodLabels["k"] = long }, `batch.pods[0].pod_labels["k"]`},
		{"a long open path is invalid", func(b *vigilv1.Batch) { b.Events[1].GetOpen().Path = long }, "batch.events[1].open.path"},
		{"too many arguments are invalid", func(b *vigilv1.Batch) { b.Processes[0].Args = make([]string, 1025) }, "batch.processes[0].args"},
		{"a port above 65535 is invalid", func(b *vigilv1.Batch) { b.Events[2].GetConnect().Remote.Port = 70000 }, "batch.events[2].connect.remote.port"},
		{"inline and referenced process together are invalid", func(b *vigilv1.Batch) { b.Events[0].Process = &vigilv1.Process{} }, "batch.events[0].process_ref"},
		{"a container reference out of range is invalid", func(b *vigilv1.Batch) { b.Events[0].ContainerRef = 2 }, "batch.events[0].container_ref"},
		{"a rare kind with a long string is invalid", func(b *vigilv1.Batch) {
			b.Events[0].Kind = &vigilv1.Event_Mount{Mount: &vigilv1.Mount{Source: long}}
		}, "batch.events[0].mount.source"},
		{"a null shared process is invalid", func(b *vigilv1.Batch) { b.Processes[0] = nil }, "batch.processes[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := good()
			tc.mutate(b)
			err := ValidateBatch(b, DefaultLimits())
			if tc.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			ve, ok := err.(*ValidationError)
			if !ok || ve.Field != tc.field {
				t.Fatalf("error %v, want one on field %s", err, tc.field)
			}
		})
	}
}

// withinLimits independently walks a message and reports the first string
// or list over the limits, to check what ValidateBatch accepted.
func withinLimits(m protoreflect.Message, l Limits) bool {
	ok := true
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		check := func(v protoreflect.Value, kind protoreflect.Kind) {
			switch kind {
			case protoreflect.StringKind:
				ok = ok && len(v.String()) <= l.MaxStringBytes
			case protoreflect.MessageKind:
				ok = ok && withinLimits(v.Message(), l)
			}
		}
		switch {
		case fd.IsList():
			ok = ok && v.List().Len() <= max(l.MaxListItems, l.MaxBatchEvents)
			for i := 0; i < v.List().Len(); i++ {
				check(v.List().Get(i), fd.Kind())
			}
		case fd.IsMap():
			ok = ok && v.Map().Len() <= l.MaxListItems
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				check(k.Value(), fd.MapKey().Kind())
				check(mv, fd.MapValue().Kind())
				return true
			})
		default:
			check(v, fd.Kind())
		}
		return ok
	})
	return ok
}

// FuzzValidateBatch feeds arbitrary bytes, decoded as a Batch, to the
// ingest validation: it must never panic, and whatever it accepts must
// resolve into events that each have a process, with every string and list
// within the limits.
func FuzzValidateBatch(f *testing.F) {
	ef := newEventFactory()
	var events []*vigilv1.Event
	for i := 0; i < 12; i++ {
		events = append(events, ef.event(i))
	}
	_, raw := sealedBatch(f, events)
	f.Add(raw)
	_, raw = sealedBatch(f, events[:1])
	f.Add(raw)
	inline, _ := proto.Marshal(&vigilv1.Batch{SensorId: "s", BootId: "b", Sequence: 1, Events: events[:3]})
	f.Add(inline)
	f.Add([]byte{})
	limits := DefaultLimits()
	limits.MaxStringBytes = 256 // small, so the fuzzer reaches it
	limits.MaxListItems = 16
	limits.MaxBatchEvents = 64
	host := &vigilv1.Host{Hostname: "h"}
	f.Fuzz(func(t *testing.T, data []byte) {
		var b vigilv1.Batch
		if err := proto.Unmarshal(data, &b); err != nil {
			return
		}
		if err := ValidateBatch(&b, limits); err != nil {
			if _, ok := err.(*ValidationError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if !withinLimits(b.ProtoReflect(), limits) {
			t.Fatal("accepted a batch with a string or list over the limits")
		}
		resolve(&b, host)
		for i, e := range b.Events {
			if e.Process == nil || e.Kind == nil || e.Time == nil {
				t.Fatalf("accepted event %d without process, kind or time", i)
			}
			if e.ProcessRef != 0 || e.ContainerRef != 0 || e.KubernetesRef != 0 || e.EcsRef != 0 {
				t.Fatalf("event %d still has references after resolve", i)
			}
		}
	})
}
