package collector

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// fillEveryField sets every field of m (recursively, lists with two
// elements) to a value that is not its zero value, so that a writer that
// leaves a field out loses it in a round trip.
func fillEveryField(m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		switch {
		case fd.IsMap():
			continue // no map in the messages written by hand
		case fd.IsList():
			l := m.Mutable(fd).List()
			for j := range 2 {
				if fd.Kind() == protoreflect.MessageKind {
					el := l.NewElement()
					fillEveryField(el.Message(), depth+1)
					l.Append(el)
				} else {
					l.Append(sampleValue(fd, j))
				}
			}
		case fd.Kind() == protoreflect.MessageKind:
			if depth < 3 {
				fillEveryField(m.Mutable(fd).Message(), depth+1)
			}
		default:
			m.Set(fd, sampleValue(fd, int(fd.Number())))
		}
	}
}

func sampleValue(fd protoreflect.FieldDescriptor, n int) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(fmt.Sprintf("%s \"%d\" ü\n", fd.Name(), n))
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		if fd.ContainingMessage().FullName() == "google.protobuf.Timestamp" {
			return protoreflect.ValueOfInt32(int32(n)*1000 + 7)
		}
		return protoreflect.ValueOfInt32(-int32(n) - 1)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(n) + 4_000_000_000)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		if fd.ContainingMessage().FullName() == "google.protobuf.Timestamp" {
			return protoreflect.ValueOfInt64(1_700_000_000 + int64(n))
		}
		return protoreflect.ValueOfInt64(-1 << 60)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(1<<63 + uint64(n))
	}
	panic(fmt.Sprintf("no sample for %s (%s)", fd.FullName(), fd.Kind()))
}

// TestJSONWritersCoverEveryField round-trips messages with every field set
// through the hand-written writers: a field added to the proto and not to
// the writer fails here.
func TestJSONWritersCoverEveryField(t *testing.T) {
	full := func(m proto.Message) proto.Message {
		fillEveryField(m.ProtoReflect(), 0)
		return m
	}
	proc := full(&vigilv1.Process{}).(*vigilv1.Process)
	type jsonCase struct {
		name string
		ev   *vigilv1.Event
	}
	cases := []jsonCase{
		{"a process with every field set survives", &vigilv1.Event{Process: proc}},
		{"an exec with every field set survives", &vigilv1.Event{Kind: &vigilv1.Event_Exec{Exec: full(&vigilv1.Exec{}).(*vigilv1.Exec)}}},
		{"a fork with every field set survives", &vigilv1.Event{Kind: &vigilv1.Event_Fork{Fork: full(&vigilv1.Fork{}).(*vigilv1.Fork)}}},
		{"an exit with every field set survives", &vigilv1.Event{Kind: &vigilv1.Event_Exit{Exit: full(&vigilv1.Exit{}).(*vigilv1.Exit)}}},
		{"a dup with every field set survives", &vigilv1.Event{Kind: &vigilv1.Event_Dup{Dup: full(&vigilv1.Dup{}).(*vigilv1.Dup)}}},
		{"a dup with no remote survives", &vigilv1.Event{Kind: &vigilv1.Event_Dup{Dup: &vigilv1.Dup{OldFd: 3, NewFd: 1, OldFdKind: "file"}}}},
		{"an exec with no body set survives", &vigilv1.Event{Kind: &vigilv1.Event_Exec{}}},
	}
	// Siblings share a lineage slice; the encoder writes it once and must
	// not hand one process's lineage to another.
	shared := []*vigilv1.Ancestor{{ExecId: "parent", Pid: 1}, {ExecId: "grandparent", Pid: 2}}
	cases = append(cases,
		jsonCase{"the first of two siblings sharing a lineage survives", &vigilv1.Event{Process: &vigilv1.Process{Pid: 3, Lineage: shared}}},
		jsonCase{"the second of two siblings sharing a lineage survives", &vigilv1.Event{Process: &vigilv1.Process{Pid: 4, Lineage: shared}}},
		jsonCase{"a process with a shorter slice of the same array survives", &vigilv1.Event{Process: &vigilv1.Process{Pid: 5, Lineage: shared[:1]}}},
	)
	var enc JSONEncoder // one encoder for all cases, so its caches are used
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := enc.AppendEvent(nil, c.ev)
			got := &vigilv1.Event{}
			if err := protojson.Unmarshal(b, got); err != nil {
				t.Fatalf("protojson cannot read %s: %v", b, err)
			}
			want := c.ev
			if x, ok := c.ev.Kind.(*vigilv1.Event_Exec); ok && x.Exec == nil {
				want = &vigilv1.Event{Kind: &vigilv1.Event_Exec{Exec: &vigilv1.Exec{}}}
			}
			if !proto.Equal(got, want) {
				t.Errorf("round trip differs:\n json %s\n  got %v\n want %v", b, got, want)
			}
		})
	}
}

// BenchmarkJSONEncoderProcessEvents encodes exec, fork and exit events of
// new processes (a process's JSON is cached, so each one is new), the mix
// of an exec storm.
func BenchmarkJSONEncoderProcessEvents(b *testing.B) {
	parent := &vigilv1.Process{}
	fillEveryField(parent.ProtoReflect(), 0)
	var enc JSONEncoder
	buf := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		p := proto.Clone(parent).(*vigilv1.Process)
		for _, ev := range []*vigilv1.Event{
			{Process: parent, Syscall: "clone", Kind: &vigilv1.Event_Fork{Fork: &vigilv1.Fork{ChildPid: 9, ChildExecId: "x"}}},
			{Process: p, Syscall: "execve", Kind: &vigilv1.Event_Exec{Exec: &vigilv1.Exec{Filename: "/bin/true", Stdio: []string{"pipe", "pipe", "tty"}}}},
			{Process: p, Syscall: "procexit", Kind: &vigilv1.Event_Exit{Exit: &vigilv1.Exit{}}},
		} {
			buf = enc.AppendEvent(buf[:0], ev)
			n++
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

func TestTimestampsAreWrittenAsProtojsonWritesThem(t *testing.T) {
	cases := []struct {
		name string
		sec  int64
		nsec int32
	}{
		{"a whole second has no fraction", 1_700_000_000, 0},
		{"milliseconds take three digits", 1_700_000_000, 120_000_000},
		{"microseconds take six digits", 1_700_000_000, 123_400},
		{"nanoseconds take nine digits", 1_700_000_000, 5},
		{"the epoch is written", 0, 0},
		{"the first day of year 1 is written", -62135596800, 1},
		{"the last second of year 9999 is written", 253402300799, 999_999_999},
		{"a leap day is written", 951782400, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ts := &timestamppb.Timestamp{Seconds: c.sec, Nanos: c.nsec}
			want, err := protojson.Marshal(ts)
			if err != nil {
				t.Fatal(err)
			}
			if got := appendTimestamp(nil, c.sec, c.nsec); string(got) != string(want) {
				t.Errorf("appendTimestamp = %s, want %s", got, want)
			}
		})
	}
}
