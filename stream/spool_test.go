package stream

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// decodeFrame reads a spooled frame back as the backend would.
func decodeFrame(t *testing.T, frame []byte) *vigilv1.Batch {
	t.Helper()
	var m vigilv1.SensorMessage
	if err := proto.Unmarshal(frame, &m); err != nil {
		t.Fatal(err)
	}
	return m.GetBatch()
}

func TestSpoolDropsOldestWhenFull(t *testing.T) {
	for _, tc := range []struct {
		name string
		dir  bool
	}{
		{"a full disk spool drops its oldest batches and reports them in the next", true},
		{"a full memory spool drops its oldest batches and reports them in the next", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := ""
			if tc.dir {
				dir = t.TempDir()
			}
			f := newEventFactory()
			b := newBatchBuilder()
			fill := func(n, from int) {
				for i := 0; i < n; i++ {
					if err := b.add(f.event(from + i)); err != nil {
						t.Fatal(err)
					}
				}
			}
			// Measure one batch of 20 events, then allow about three.
			fill(20, 0)
			one := int64(b.sizeEstimate("s", "boot") + spoolHeaderSize)
			b.reset()
			sp, _, err := openSpool(dir, one*3+one/2, "boot")
			if err != nil {
				t.Fatal(err)
			}
			defer sp.close()
			var first uint64 // 1 on disk; a memory spool starts at its start time
			for i := 0; i < 3; i++ {
				fill(20, i*20)
				e, err := sp.append(b, "s", time.Now())
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					first = e.seq
				}
			}
			if st := sp.stats(); st.entries != 3 || st.droppedBatches != 0 {
				t.Fatalf("after three batches: %+v", st)
			}
			fill(20, 60)
			e, err := sp.append(b, "s", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			st := sp.stats()
			if st.entries != 3 || st.droppedBatches != 1 || st.droppedEvents != 20 || st.bytes > st.limit {
				t.Fatalf("after a fourth batch: %+v; want 3 held, 1 batch of 20 events dropped, within the limit", st)
			}
			if head := sp.next(0); head.seq != first+1 {
				t.Fatalf("oldest batch held is %d, want %d (the first dropped)", head.seq, first+1)
			}
			frame, err := sp.frame(e)
			if err != nil {
				t.Fatal(err)
			}
			got := decodeFrame(t, frame)
			if got.Sequence != first+3 || got.DroppedBatches != 1 || got.DroppedEvents != 20 || len(got.Events) != 20 {
				t.Fatalf("fourth batch: seq %d, dropped %d/%d, %d events; want seq 4 reporting 1 batch and 20 events dropped", got.Sequence, got.DroppedBatches, got.DroppedEvents, len(got.Events))
			}
			fill(20, 80)
			e, _ = sp.append(b, "s", time.Now())
			frame, _ = sp.frame(e)
			if got := decodeFrame(t, frame); got.DroppedEvents != 20 || got.DroppedBatches != 1 {
				t.Fatalf("fifth batch reports %d/%d dropped; want only its own loss (batch 2: 1 batch, 20 events)", got.DroppedBatches, got.DroppedEvents)
			}
		})
	}
}

// unusedAddr is a loopback address nothing listens on (yet).
func unusedAddr(t *testing.T) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// orderIngester records the order events arrive in and the drops reported.
type orderIngester struct {
	mu      sync.Mutex
	tids    []uint32
	seqs    []uint64
	dropped uint64
}

func (o *orderIngester) Ingest(_ context.Context, b *vigilv1.Batch) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.seqs {
		if s == b.Sequence {
			return true, nil
		}
	}
	o.seqs = append(o.seqs, b.Sequence)
	o.dropped += b.DroppedEvents
	for _, e := range b.Events {
		o.tids = append(o.tids, e.Tid)
	}
	return false, nil
}

func (o *orderIngester) counts() (events int, dropped uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.tids), o.dropped
}

func TestSpoolWhileBackendIsAway(t *testing.T) {
	certs := writeCerts(t)
	addr := unusedAddr(t)
	cfg := clientConfig(addr, certs, "sensor-away", t.TempDir())
	cfg.BatchMaxEvents = 100
	cfg.BatchMaxBytes = 64 << 10
	cfg.SpoolMaxBytes = 200 << 10 // a few batches' worth
	c, err := NewClient(cfg, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	in := make(chan *vigilv1.Event)
	wait := runClient(t, c, context.Background(), in)
	f := newEventFactory()
	const total = 5000
	for i := 0; i < total; i++ {
		in <- f.event(i)
	}
	waitFor(t, 10*time.Second, "the spool to overflow", func() bool { return c.spool.stats().droppedBatches > 0 })
	st := c.spool.stats()
	if st.bytes > st.limit+int64(cfg.BatchMaxBytes) {
		t.Fatalf("spool holds %d bytes, limit %d", st.bytes, st.limit)
	}

	ing := &orderIngester{}
	startServer(t, certs, addr, ing, nil)
	waitFor(t, 20*time.Second, "every event delivered or reported lost", func() bool {
		n, d := ing.counts()
		return n+int(d) == total && c.spool.stats().entries == 0
	})
	close(in)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	n, d := ing.counts()
	t.Logf("%d events delivered, %d reported lost by a spool of %d bytes", n, d, cfg.SpoolMaxBytes)
	if d == 0 || n == 0 {
		t.Fatalf("delivered %d, lost %d; want both", n, d)
	}
	// The oldest went: what arrived is the newest events, in order.
	ing.mu.Lock()
	defer ing.mu.Unlock()
	if !sort.SliceIsSorted(ing.tids, func(i, j int) bool { return ing.tids[i] < ing.tids[j] }) {
		t.Fatal("events replayed out of order")
	}
	if last := ing.tids[len(ing.tids)-1]; last != total-1 || ing.tids[0] != uint32(d) {
		t.Fatalf("delivered events %d..%d; want the newest, %d..%d", ing.tids[0], last, d, total-1)
	}
}

func TestSensorRestartReplaysItsSpool(t *testing.T) {
	certs := writeCerts(t)
	addr := unusedAddr(t)
	dir := t.TempDir()
	cfg := clientConfig(addr, certs, "sensor-restart", dir)
	cfg.BatchMaxEvents = 100
	f := newEventFactory()

	// First run: the backend is down; events go to the spool and stay
	// there when the sensor stops.
	c1, err := NewClient(cfg, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	in1 := make(chan *vigilv1.Event)
	ctx, cancel := context.WithCancel(context.Background())
	wait1 := runClient(t, c1, ctx, in1)
	for i := 0; i < 1000; i++ {
		in1 <- f.event(i)
	}
	cancel()
	if err := wait1(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"+spoolExt))
	if len(files) != 10 {
		t.Fatalf("spool holds %d files after the first run, want 10", len(files))
	}

	// Second run, backend up: the spool is replayed first, then new events
	// follow with sequence numbers that continue the first run's.
	ing := &orderIngester{}
	startServer(t, certs, addr, ing, nil)
	c2, err := NewClient(cfg, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	in2 := make(chan *vigilv1.Event)
	wait2 := runClient(t, c2, context.Background(), in2)
	for i := 1000; i < 2000; i++ {
		in2 <- f.event(i)
	}
	waitFor(t, 20*time.Second, "both runs' events", func() bool { n, _ := ing.counts(); return n == 2000 })
	close(in2)
	if err := wait2(); err != nil {
		t.Fatal(err)
	}
	ing.mu.Lock()
	defer ing.mu.Unlock()
	for i, tid := range ing.tids {
		if tid != uint32(i) {
			t.Fatalf("event %d arrived at position %d: replay out of order or doubled", tid, i)
		}
	}
	for i, s := range ing.seqs {
		if s != uint64(i+1) {
			t.Fatalf("batch %d has sequence %d; sequences must continue across restarts", i, s)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*"+spoolExt)); len(left) != 0 {
		t.Fatalf("%d spool files left after delivery", len(left))
	}
}

func TestCorruptSpoolFileIsDroppedAndReported(t *testing.T) {
	dir := t.TempDir()
	f := newEventFactory()
	b := newBatchBuilder()
	sp, _, err := openSpool(dir, 1<<20, "boot")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		b.add(f.event(i))
	}
	sp.append(b, "s", time.Now())
	sp.close() // writes it to disk
	files, _ := filepath.Glob(filepath.Join(dir, "*"+spoolExt))
	if len(files) != 1 {
		t.Fatalf("%d files, want 1", len(files))
	}
	if err := os.WriteFile(files[0], []byte("VGS1 torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, problems, err := openSpool(dir, 1<<20, "boot")
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	if len(problems) != 1 || !sp.unreported() {
		t.Fatalf("problems %q, unreported %v; want the torn file reported", problems, sp.unreported())
	}
	e, err := sp.append(b, "s", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	frame, _ := sp.frame(e)
	if got := decodeFrame(t, frame); got.DroppedBatches != 1 || got.Sequence != 2 {
		t.Fatalf("next batch: seq %d reports %d batches dropped; want seq 2 reporting 1", got.Sequence, got.DroppedBatches)
	}
}

// stallIngester never answers until released, like a backend stuck on
// its store.
type stallIngester struct{ release chan struct{} }

func (s stallIngester) Ingest(ctx context.Context, _ *vigilv1.Batch) (bool, error) {
	select {
	case <-s.release:
	case <-ctx.Done():
	}
	return false, ctx.Err()
}

func TestUnacknowledgedBatchReachesDiskAfterSpoolWriteAfter(t *testing.T) {
	certs := writeCerts(t)
	stall := stallIngester{release: make(chan struct{})}
	defer close(stall.release)
	ts := startServer(t, certs, "", stall, nil)
	dir := t.TempDir()
	cfg := clientConfig(ts.addr, certs, "sensor-stalled", dir)
	cfg.SpoolWriteAfter = 100 * time.Millisecond
	c, err := NewClient(cfg, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	in := make(chan *vigilv1.Event)
	ctx, cancel := context.WithCancel(context.Background())
	wait := runClient(t, c, ctx, in)
	defer func() {
		cancel()
		wait()
	}()
	f := newEventFactory()
	for i := 0; i < 10; i++ {
		in <- f.event(i)
	}
	// One batch, sent and never acknowledged, and no further batch to
	// trigger a write: it must still reach the disk.
	waitFor(t, 5*time.Second, "the batch file", func() bool {
		files, _ := filepath.Glob(filepath.Join(dir, "*"+spoolExt))
		return len(files) == 1
	})
}
