package stream

import (
	"context"
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
