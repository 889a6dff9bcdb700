package stream

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

func TestClientDeliversEveryEventOnce(t *testing.T) {
	for _, tc := range []struct {
		name     string
		events   int
		spoolDir bool
	}{
		{"a single event is delivered after the batch delay", 1, true},
		{"many events with a disk spool all arrive once", 20000, true},
		{"many events with a memory spool all arrive once", 20000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certs := writeCerts(t)
			ing := newCountingIngester(true)
			ts := startServer(t, certs, "", ing, nil)
			dir := ""
			if tc.spoolDir {
				dir = t.TempDir()
			}
			c, err := NewClient(clientConfig(ts.addr, certs, "sensor-a", dir), testLogger(t), prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			in := make(chan *vigilv1.Event, 100)
			wait := runClient(t, c, context.Background(), in)
			f := newEventFactory()
			for i := 0; i < tc.events; i++ {
				in <- f.event(i)
			}
			waitFor(t, 20*time.Second, "events ingested", func() bool { return ing.events.Load() == int64(tc.events) })
			close(in)
			if err := wait(); err != nil {
				t.Fatal(err)
			}
			ing.mu.Lock()
			defer ing.mu.Unlock()
			for i := 0; i < tc.events; i++ {
				if n := ing.tids[uint32(i)]; n != 1 {
					t.Fatalf("event %d arrived %d times", i, n)
				}
			}
		})
	}
}

func TestReconnectWaitsAreJittered(t *testing.T) {
	for _, d := range []time.Duration{time.Millisecond, 250 * time.Millisecond, 30 * time.Second} {
		seen := map[time.Duration]bool{}
		for i := 0; i < 200; i++ {
			w := jitter(d)
			if w < d/2 || w > d {
				t.Fatalf("jitter(%v) = %v, outside [%v, %v]", d, w, d/2, d)
			}
			seen[w] = true
		}
		if len(seen) < 10 {
			t.Fatalf("jitter(%v) gave only %d distinct waits in 200 draws", d, len(seen))
		}
	}
}

func TestClientConfigValidate(t *testing.T) {
	good := func() ClientConfig {
		c := DefaultClientConfig()
		c.Backend, c.Token, c.SensorID, c.BootID = "backend:7443", "t", "sensor-1", "boot"
		return c
	}
	for _, tc := range []struct {
		name   string
		mutate func(*ClientConfig)
		want   string // "" for valid
	}{
		{"the defaults with a backend, token and sensor id are valid", func(*ClientConfig) {}, ""},
		{"a missing backend names the key", func(c *ClientConfig) { c.Backend = "" }, "backend"},
		{"a missing token names the variable", func(c *ClientConfig) { c.Token = "" }, "VIGIL_SENSOR_TOKEN"},
		{"insecure with a CA file is contradictory", func(c *ClientConfig) { c.Insecure, c.CAFile = true, "ca.pem" }, "insecure"},
		{"a client cert without a key is refused", func(c *ClientConfig) { c.CertFile = "c.pem" }, "key_file"},
		{"a spool smaller than one batch is refused", func(c *ClientConfig) { c.SpoolMaxBytes = 1024 }, "spool_max_bytes"},
		{"a sensor id with a space is refused", func(c *ClientConfig) { c.SensorID = "my sensor" }, "sensor_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.mutate(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestOversizedBatchIsQuarantinedAfterALockstepRetry(t *testing.T) {
	certs := writeCerts(t)
	ing := newCountingIngester(true)
	ts := startServer(t, certs, "", ing, func(c *ServerConfig) { c.Limits.MaxMessageBytes = 64 << 10 })
	cfg := clientConfig(ts.addr, certs, "sensor-big", t.TempDir())
	cfg.BatchMaxEvents = 10
	c, err := NewClient(cfg, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	in := make(chan *vigilv1.Event)
	wait := runClient(t, c, context.Background(), in)
	f := newEventFactory()
	const total = 100
	for i := 0; i < total; i++ {
		e := f.event(i)
		if i == 33 {
			// Within every per-field limit, but 90 KiB in all: over the
			// server's 64 KiB message limit, refused by gRPC before it is
			// decoded, without saying which batch.
			big := make([]string, 30)
			for j := range big {
				big[j] = strings.Repeat("s", 3000)
			}
			e.Kind = &vigilv1.Event_Exec{Exec: &vigilv1.Exec{Stdio: big}}
		}
		in <- e
	}
	waitFor(t, 30*time.Second, "the other batches and the loss report", func() bool {
		return ing.events.Load() == total-10 && ing.dropped.Load() == 10
	})
	close(in)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	ing.mu.Lock()
	defer ing.mu.Unlock()
	for i := 30; i < 40; i++ {
		if ing.tids[uint32(i)] != 0 {
			t.Fatalf("event %d of the oversized batch was ingested", i)
		}
	}
}
