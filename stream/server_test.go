package stream

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

func TestReplayedBatchIsAcknowledgedAndIgnored(t *testing.T) {
	certs := writeCerts(t)
	ing := newCountingIngester(true)
	ts := startServer(t, certs, "", ing, nil)
	f := newEventFactory()
	batch := &vigilv1.Batch{SensorId: "sensor-replay", BootId: "boot-1", Sequence: 1, Events: []*vigilv1.Event{f.event(0), f.event(1)}}

	for _, tc := range []struct {
		name    string
		newConn bool
		wantDup bool
	}{
		{"the first send is accepted", true, false},
		{"a resend on the same stream is acknowledged as a duplicate", false, true},
		{"a resend on a new stream is acknowledged as a duplicate", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := rawStream(t, ts.addr, certs, testSensorToken, false)
			if err != nil {
				t.Fatal(err)
			}
			msgs := []*vigilv1.SensorMessage{helloMsg("sensor-replay"), batchMsg(batch)}
			if !tc.newConn {
				// Send, take the first ack, then resend on the same stream.
				if _, err := firstReply(st, nil, msgs...); err != nil {
					t.Fatal(err)
				}
				msgs = msgs[1:]
			}
			reply, err := firstReply(st, nil, msgs...)
			if err != nil {
				t.Fatal(err)
			}
			if a := reply.GetAck(); a.GetSequence() != 1 || a.GetDuplicate() != tc.wantDup {
				t.Fatalf("ack %v, want sequence 1 with duplicate=%v", a, tc.wantDup)
			}
			if n := ing.events.Load(); n != 2 {
				t.Fatalf("%d events ingested, want the batch's 2 once", n)
			}
		})
	}
}

// healthRecorder keeps the reports it is given.
type healthRecorder struct {
	mu      sync.Mutex
	reports []*vigilv1.SensorHealth
	hellos  []*vigilv1.Hello
}

func (h *healthRecorder) RecordHealth(_ context.Context, hello *vigilv1.Hello, r *vigilv1.SensorHealth) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reports = append(h.reports, r)
	h.hellos = append(h.hellos, hello)
	return nil
}

func (h *healthRecorder) last() (*vigilv1.Hello, *vigilv1.SensorHealth) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.reports) == 0 {
		return nil, nil
	}
	return h.hellos[len(h.hellos)-1], h.reports[len(h.reports)-1]
}

func TestHealthReportsAndPolicyPushes(t *testing.T) {
	certs := writeCerts(t)
	cfg := DefaultServerConfig()
	cfg.CertFile, cfg.KeyFile = certs.ServerCert, certs.ServerKey
	cfg.Tokens = Tokens{Sensor: testSensorToken}
	g, _, err := NewGRPCServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	health := &healthRecorder{}
	policies := NewPolicyBroadcaster(&vigilv1.CollectionPolicy{Version: "v1", EnabledEvents: []string{"exec"}})
	srv, err := NewServer(cfg, newCountingIngester(false), health, policies, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	srv.Register(g)
	lis := listen(t)
	go g.Serve(lis)
	defer g.Stop()

	var mu sync.Mutex
	var got []string
	ccfg := clientConfig(lis.Addr().String(), certs, "sensor-health", "")
	ccfg.Version = "1.2.3"
	ccfg.HealthInterval = 50 * time.Millisecond
	ccfg.HealthFunc = func() *vigilv1.SensorHealth {
		return &vigilv1.SensorHealth{Kernel: "6.8.0", LoadedProbes: []string{"exec"}, EventsTotal: 42, Mode: "ebpf"}
	}
	ccfg.OnPolicy = func(p *vigilv1.CollectionPolicy) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, p.Version)
	}
	c, err := NewClient(ccfg, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wait := runClient(t, c, ctx, make(chan *vigilv1.Event))
	defer func() {
		cancel()
		wait()
	}()

	t.Run("the current policy is pushed when a sensor connects", func(t *testing.T) {
		waitFor(t, 10*time.Second, "policy v1", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 1 && got[0] == "v1" })
	})
	t.Run("a new policy is pushed to a connected sensor", func(t *testing.T) {
		policies.Set(&vigilv1.CollectionPolicy{Version: "v2"})
		waitFor(t, 10*time.Second, "policy v2", func() bool { mu.Lock(); defer mu.Unlock(); return got[len(got)-1] == "v2" })
	})
	t.Run("health reports reach the recorder with the spool's figures and the sensor's hello", func(t *testing.T) {
		waitFor(t, 10*time.Second, "a health report", func() bool { _, r := health.last(); return r != nil })
		hello, r := health.last()
		if r.SensorId != "sensor-health" || r.EventsTotal != 42 || r.SpoolLimitBytes == 0 || r.Time == nil {
			t.Fatalf("report %v", r)
		}
		if hello.Version != "1.2.3" || hello.Host.GetHostname() == "" {
			t.Fatalf("hello %v", hello)
		}
	})
}

func TestRefusalsNoBatchCausedKeepTheSpool(t *testing.T) {
	long := strings.Repeat("h", 5000)
	for _, tc := range []struct {
		name          string
		hostname      string
		healthKernel  string
		wantDelivered bool
	}{
		{"a refused hello keeps every batch spooled", long, "", false},
		{"a refused health report is dropped and batches flow", "host", long, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certs := writeCerts(t)
			ing := newCountingIngester(false)
			ts := startServer(t, certs, "", ing, nil)
			cfg := clientConfig(ts.addr, certs, "sensor-refused", t.TempDir())
			cfg.Host.Hostname = tc.hostname
			cfg.HealthInterval = 20 * time.Millisecond
			cfg.HealthFunc = func() *vigilv1.SensorHealth { return &vigilv1.SensorHealth{Kernel: tc.healthKernel} }
			c, err := NewClient(cfg, testLogger(t), prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			in := make(chan *vigilv1.Event)
			ctx, cancel := context.WithCancel(context.Background())
			wait := runClient(t, c, ctx, in)
			f := newEventFactory()
			for i := 0; i < 50; i++ {
				in <- f.event(i)
			}
			if tc.wantDelivered {
				waitFor(t, 10*time.Second, "the events", func() bool { return ing.events.Load() == 50 })
			} else {
				time.Sleep(500 * time.Millisecond)
				if st := c.spool.stats(); st.entries == 0 || st.droppedBatches != 0 || ing.events.Load() != 0 {
					t.Fatalf("spool %+v, %d ingested; want the batch kept, nothing dropped or ingested", st, ing.events.Load())
				}
			}
			cancel()
			if err := wait(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
