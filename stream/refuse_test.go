package stream

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

func TestBadBatchesAreRefusedWhileAnotherSensorStreams(t *testing.T) {
	certs := writeCerts(t)
	ing := newCountingIngester(true)
	ts := startServer(t, certs, "", ing, func(c *ServerConfig) {
		c.Limits.MaxBatchEvents = 100
		c.Limits.MaxMessageBytes = 1 << 20
	})

	// Sensor A streams well-formed events the whole time.
	const goodEvents = 20000
	goodCfg := clientConfig(ts.addr, certs, "sensor-good", t.TempDir())
	goodCfg.BatchMaxEvents = 100
	c, err := NewClient(goodCfg, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	in := make(chan *vigilv1.Event, 100)
	wait := runClient(t, c, context.Background(), in)
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		f := newEventFactory()
		for i := 0; i < goodEvents; i++ {
			in <- f.event(i)
			if i%100 == 99 {
				time.Sleep(2 * time.Millisecond)
			}
		}
	}()

	f := newEventFactory()
	batch := func(mutate func(*vigilv1.Batch)) *vigilv1.Batch {
		b := &vigilv1.Batch{SensorId: "sensor-bad", BootId: "boot-1", Sequence: 7}
		for i := 0; i < 5; i++ {
			b.Events = append(b.Events, f.event(1000000+i))
		}
		mutate(b)
		return b
	}
	for _, tc := range []struct {
		name      string
		batch     *vigilv1.Batch
		wantCode  codes.Code
		wantField string
		wantIn    string
	}{
		{"a batch over max_batch_events is refused", batch(func(b *vigilv1.Batch) {
			for i := 0; i < 96; i++ {
				b.Events = append(b.Events, f.event(i))
			}
		}), codes.InvalidArgument, "batch.events", "101 events exceeds limit 100"},
		{"an argument over max_string_bytes is refused", batch(func(b *vigilv1.Batch) {
			b.Events[2].Process = &vigilv1.Process{ExecId: "x", Args: []string{"sh", strings.Repeat("A", 5000)}}
		}), codes.InvalidArgument, "batch.events[2].process.args[1]", "5000 bytes exceeds limit 4096"},
		{"an event without a kind is refused", batch(func(b *vigilv1.Batch) { b.Events[0].Kind = nil }), codes.InvalidArgument, "batch.events[0].kind", "unset"},
		{"an event without a process is refused", batch(func(b *vigilv1.Batch) { b.Events[1].Process = nil }), codes.InvalidArgument, "batch.events[1].process", "required"},
		{"an unknown socket family is refused", batch(func(b *vigilv1.Batch) {
			b.Events[3].Kind = &vigilv1.Event_Connect{Connect: &vigilv1.Connect{Remote: &vigilv1.SocketAddress{Family: "appletalk"}}}
		}), codes.InvalidArgument, "batch.events[3].connect.remote.family", "not one of"},
		{"a reference past the shared processes is refused", batch(func(b *vigilv1.Batch) {
			b.Events[4].Process, b.Events[4].ProcessRef = nil, 3
		}), codes.InvalidArgument, "batch.events[4].process_ref", "past the batch's 0 shared entries"},
		{"a zero sequence is refused", batch(func(b *vigilv1.Batch) { b.Sequence = 0 }), codes.InvalidArgument, "batch.sequence", "at least 1"},
		{"a sensor id with a control byte is refused", batch(func(b *vigilv1.Batch) { b.SensorId = "bad\nsensor" }), codes.InvalidArgument, "batch.sensor_id", "not printable"},
		{"a batch for another sensor than the stream's is refused", batch(func(b *vigilv1.Batch) { b.SensorId = "sensor-good" }), codes.InvalidArgument, "batch.sensor_id", "differs"},
		{"an invalid timestamp is refused", batch(func(b *vigilv1.Batch) { b.Events[0].Time.Nanos = -5 }), codes.InvalidArgument, "batch.events[0].time", "not a valid timestamp"},
		{"a message over max_message_bytes is refused by gRPC", batch(func(b *vigilv1.Batch) {
			b.Events[0].Kind = &vigilv1.Event_Exec{Exec: &vigilv1.Exec{Stdio: []string{strings.Repeat("x", 2<<20)}}}
		}), codes.ResourceExhausted, "", "larger than max"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := rawStream(t, ts.addr, certs, testSensorToken, false)
			_, err = firstReply(st, err, helloMsg("sensor-bad"), batchMsg(tc.batch))
			s := status.Convert(err)
			if s.Code() != tc.wantCode || !strings.Contains(s.Message(), tc.wantIn) {
				t.Fatalf("status %v %q, want %v containing %q", s.Code(), s.Message(), tc.wantCode, tc.wantIn)
			}
			if tc.wantField == "" {
				return
			}
			var field string
			var seq string
			for _, d := range s.Details() {
				switch d := d.(type) {
				case *errdetails.BadRequest:
					field = d.FieldViolations[0].Field
				case *errdetails.ErrorInfo:
					seq = d.Metadata["sequence"]
				}
			}
			if field != tc.wantField {
				t.Fatalf("BadRequest field %q, want %q", field, tc.wantField)
			}
			if seq != "7" && tc.batch.Sequence == 7 {
				t.Fatalf("ErrorInfo sequence %q, want 7", seq)
			}
		})
	}

	<-fed
	waitFor(t, 20*time.Second, "the good sensor's events", func() bool { return ing.events.Load() == goodEvents })
	close(in)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	ing.mu.Lock()
	defer ing.mu.Unlock()
	for i := 0; i < goodEvents; i++ {
		if ing.tids[uint32(i)] != 1 {
			t.Fatalf("good sensor's event %d arrived %d times", i, ing.tids[uint32(i)])
		}
	}
	if ing.tids[1000000] != 0 {
		t.Fatal("an event of a refused batch was ingested")
	}
}

func TestClientQuarantinesAPoisonBatchAndGoesOn(t *testing.T) {
	certs := writeCerts(t)
	ing := newCountingIngester(true)
	ts := startServer(t, certs, "", ing, nil)
	dir := t.TempDir()
	cfg := clientConfig(ts.addr, certs, "sensor-poison", dir)
	cfg.BatchMaxEvents = 10
	c, err := NewClient(cfg, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	in := make(chan *vigilv1.Event, 10)
	wait := runClient(t, c, context.Background(), in)
	f := newEventFactory()
	const total, poison = 200, 55
	for i := 0; i < total; i++ {
		e := f.event(i)
		if i == poison {
			e.Process = &vigilv1.Process{ExecId: "poison", Args: []string{strings.Repeat("B", 10000)}}
		}
		in <- e
	}
	// The poison event's batch (events 50..59) is refused and dropped;
	// the loss is reported in a later batch.
	waitFor(t, 20*time.Second, "the other events and the loss report", func() bool {
		return ing.events.Load() == total-10 && ing.dropped.Load() == 10
	})
	close(in)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	ing.mu.Lock()
	defer ing.mu.Unlock()
	for i := 0; i < total; i++ {
		want := 1
		if i >= 50 && i < 60 {
			want = 0
		}
		if ing.tids[uint32(i)] != want {
			t.Fatalf("event %d arrived %d times, want %d", i, ing.tids[uint32(i)], want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "quarantine", "last"+spoolExt)); err != nil {
		t.Fatalf("refused batch not kept for inspection: %v", err)
	}
}
