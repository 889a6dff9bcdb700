package findings

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilsec/vigil/detect"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// tmpExecEngine raises a finding for every exec of a file under /tmp: a
// one-rule engine, so these tests depend on the Engine contract only.
type tmpExecEngine struct {
	mu     sync.Mutex
	events int
	seen   []*vigilv1.Event
}

func (e *tmpExecEngine) Process(ev *vigilv1.Event, emit func(*detect.Alert)) {
	e.mu.Lock()
	e.events++
	e.seen = append(e.seen, ev)
	e.mu.Unlock()
	if ev.GetExec() != nil && strings.HasPrefix(ev.GetProcess().GetExePath(), "/tmp/") {
		emit(&detect.Alert{Rule: ruleReverseShell, Time: ev.GetTime().AsTime(), Output: "exec from /tmp", Events: []*vigilv1.Event{ev}})
	}
}

// recordingPublisher keeps what it was given.
type recordingPublisher struct {
	mu  sync.Mutex
	got []*vigilv1.Finding
}

func (r *recordingPublisher) Publish(fs []*vigilv1.Finding) {
	r.mu.Lock()
	r.got = append(r.got, fs...)
	r.mu.Unlock()
}

func sensorBatch(seq uint64, evs ...*vigilv1.Event) *vigilv1.Batch {
	for _, ev := range evs {
		ev.Host = nil // sensors send the host once, in their hello
		ev.SensorId = ""
	}
	return &vigilv1.Batch{SensorId: "sensor-a", BootId: "boot-1", Sequence: seq, Events: evs, SentAt: timestamppb.New(baseTime)}
}

func TestPipelineIngest(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, "sqlite://"+filepath.Join(t.TempDir(), "vigil.db"), &clock{t: baseTime})
	eng := &tmpExecEngine{}
	pub := &recordingPublisher{}
	p := NewPipeline(s, eng, pub, nil, nil)
	if err := p.RecordHealth(ctx, &vigilv1.Hello{SensorId: "sensor-a", BootId: "boot-1", Version: "0.1.0", Host: testHost}, nil); err != nil {
		t.Fatal(err)
	}
	b1 := sensorBatch(1, execEvent(inContainer, baseTime, "/tmp/b4sh", "b4sh"), execEvent(inContainer, baseTime, "/usr/bin/ls", "ls"))
	b2 := sensorBatch(2, execEvent(inContainer, baseTime.Add(time.Second), "/tmp/b4sh", "b4sh"))
	steps := []struct {
		name       string
		batch      *vigilv1.Batch
		wantDup    bool
		wantEvents int // engine calls so far
		wantCount  uint32
	}{
		{"a new batch runs through the engine into a finding", b1, false, 2, 1},
		{"a replayed batch is a duplicate and skips the engine", b1, true, 2, 1},
		{"the next batch aggregates into the same finding", b2, false, 3, 2},
		{"a replay of the next batch changes nothing", b2, true, 3, 2},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			dup, err := p.Ingest(ctx, st.batch)
			if err != nil {
				t.Fatal(err)
			}
			if dup != st.wantDup {
				t.Errorf("duplicate = %v, want %v", dup, st.wantDup)
			}
			if eng.events != st.wantEvents {
				t.Errorf("engine saw %d events, want %d", eng.events, st.wantEvents)
			}
			fs := listAll(t, s, Query{})
			if len(fs) != 1 || fs[0].GetService().GetCount() != st.wantCount {
				t.Fatalf("findings = %v, want one counted %d", ids(fs), st.wantCount)
			}
		})
	}
	t.Run("events reach the engine with the sensor's host and id", func(t *testing.T) {
		for _, ev := range eng.seen {
			if ev.GetHost().GetHostname() != testHost.Hostname || ev.GetSensorId() != "sensor-a" {
				t.Errorf("event host %v sensor %q", ev.GetHost(), ev.GetSensorId())
			}
		}
	})
	t.Run("the finding names the host", func(t *testing.T) {
		f := listAll(t, s, Query{})[0]
		if f.GetResource().GetHostname() != testHost.Hostname || f.GetResource().GetInstanceDetails().GetInstanceId() != testHost.InstanceId {
			t.Errorf("resource = %v", f.GetResource())
		}
	})
	t.Run("the publisher got the new and the updated finding", func(t *testing.T) {
		if len(pub.got) != 2 || pub.got[0].GetService().GetCount() != 1 || pub.got[1].GetService().GetCount() != 2 {
			t.Errorf("published %d findings: %v", len(pub.got), pub.got)
		}
	})
	t.Run("the store counted each batch and event once", func(t *testing.T) {
		st, err := s.BatchStats(ctx, "sensor-a", "boot-1")
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Sequences) != 2 || st.Events != 3 {
			t.Errorf("stats = %+v, want 2 batches of 3 events", st)
		}
	})
	t.Run("a new pipeline learns the host from the store", func(t *testing.T) {
		p2 := NewPipeline(s, eng, nil, nil, nil)
		if _, err := p2.Ingest(ctx, sensorBatch(3, execEvent(onHost, baseTime, "/usr/bin/true"))); err != nil {
			t.Fatal(err)
		}
		if last := eng.seen[len(eng.seen)-1]; last.GetHost().GetHostname() != testHost.Hostname {
			t.Errorf("host after restart = %v", last.GetHost())
		}
	})
	t.Run("a batch without a sensor id is refused", func(t *testing.T) {
		if _, err := p.Ingest(ctx, &vigilv1.Batch{Sequence: 1}); err == nil {
			t.Error("accepted a batch without a sensor id")
		}
	})
}
