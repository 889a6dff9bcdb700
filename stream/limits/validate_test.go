package limits

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// goodBatch is a batch in wire form, as the sensor's client builds it: a
// process, container and pod sent once and referred to by three events.
func goodBatch() *vigilv1.Batch {
	now := timestamppb.New(time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC))
	return &vigilv1.Batch{
		SensorId: "sensor-1", BootId: "8c0f1e4a-5b2d-4e7f-9a3c-6d1b0e8f2a4c", Sequence: 3, SentAt: now,
		Processes: []*vigilv1.Process{{
			ExecId: "b:20000:1", ParentExecId: "b:1742:1", Pid: 20000, Comm: "curl", ExePath: "/usr/bin/curl",
			Args: []string{"curl", "-sS", "https://example.internal/"}, Cwd: "/opt/app", StartTime: now,
			Lineage: []*vigilv1.Ancestor{
				{ExecId: "b:1742:1", Comm: "bash", ExePath: "/usr/bin/bash", Args: []string{"bash", "-c", "run"}},
				{ExecId: "b:1:1", Comm: "tini", ExePath: "/sbin/tini", Args: []string{"/sbin/tini", "--"}},
			},
		}},
		Containers: []*vigilv1.Container{{Id: "3f6d2a8c9b1e", Image: "payments-api:v2", Labels: map[string]string{"k": "v"}}},
		Pods:       []*vigilv1.Kubernetes{{PodName: "payments-api-x2k4p", Namespace: "payments", PodLabels: map[string]string{"k": "v"}}},
		Events: []*vigilv1.Event{
			{Time: now, ProcessRef: 1, ContainerRef: 1, KubernetesRef: 1, Syscall: "execve", Kind: &vigilv1.Event_Exec{Exec: &vigilv1.Exec{Filename: "/usr/bin/curl"}}},
			{Time: now, ProcessRef: 1, ContainerRef: 1, KubernetesRef: 1, Syscall: "openat", Kind: &vigilv1.Event_Open{Open: &vigilv1.FileOpen{Path: "/etc/hosts"}}},
			{Time: now, ProcessRef: 1, ContainerRef: 1, KubernetesRef: 1, Syscall: "connect", Kind: &vigilv1.Event_Connect{Connect: &vigilv1.Connect{Remote: &vigilv1.SocketAddress{Family: "inet", Ip: "10.0.0.1", Port: 443}}}},
		},
	}
}

func TestValidateBatch(t *testing.T) {
	good := goodBatch
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
	raw, _ := proto.Marshal(goodBatch())
	f.Add(raw)
	b := goodBatch()
	Resolve(b, nil)
	inline, _ := proto.Marshal(b)
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
		Resolve(&b, host)
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

func TestValidatorsReturnUntypedNil(t *testing.T) {
	l := DefaultLimits()
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"a valid hello gives a nil error", ValidateHello(&vigilv1.Hello{SensorId: "s", BootId: "b", Host: &vigilv1.Host{Hostname: "h"}}, l)},
		{"a valid health report gives a nil error", ValidateHealth(&vigilv1.SensorHealth{SensorId: "s", LoadedProbes: []string{"exec"}}, l)},
		{"a valid batch gives a nil error", ValidateBatch(goodBatch(), l)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err != nil {
				t.Fatalf("got %#v", tc.err)
			}
		})
	}
}
