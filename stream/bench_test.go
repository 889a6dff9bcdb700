package stream

import (
	"context"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/stats"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// cpuTime is the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// wireCounter counts the bytes of every message the server receives, as
// they were on the wire (compressed, with gRPC's 5-byte prefix).
type wireCounter struct {
	bytes atomic.Int64
}

func (w *wireCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (w *wireCounter) HandleRPC(_ context.Context, s stats.RPCStats) {
	if in, ok := s.(*stats.InPayload); ok {
		w.bytes.Add(int64(in.WireLength))
	}
}
func (w *wireCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (w *wireCounter) HandleConn(context.Context, stats.ConnStats) {}

// BenchmarkStreamTLS sends realistic events from one Client (disk spool,
// default batching) to a Server over loopback TLS whose Ingester only
// counts, and reports end-to-end events/s and compressed bytes per event on
// the wire.
func BenchmarkStreamTLS(b *testing.B) {
	certs := writeCerts(b)
	cfg := DefaultServerConfig()
	cfg.CertFile, cfg.KeyFile = certs.ServerCert, certs.ServerKey
	cfg.Tokens = Tokens{Sensor: testSensorToken}
	wire := &wireCounter{}
	g, _, err := NewGRPCServer(cfg, grpcStatsHandler(wire))
	if err != nil {
		b.Fatal(err)
	}
	ing := newCountingIngester(false)
	srv, err := NewServer(cfg, ing, nil, nil, testLogger(b), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	srv.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go g.Serve(lis)
	defer g.Stop()

	f := newEventFactory()
	pool := make([]*vigilv1.Event, 10000)
	for i := range pool {
		pool[i] = f.event(i)
	}
	ccfg := clientConfig(lis.Addr().String(), certs, "bench-sensor", b.TempDir())
	// The producer here is not paced by the kernel; a spool that holds
	// the whole run measures throughput rather than the drop policy.
	ccfg.SpoolMaxBytes = 4 << 30
	c, err := NewClient(ccfg, testLogger(b), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	in := make(chan *vigilv1.Event, 4096)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := runClient(b, c, ctx, in)

	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		// Keep at most 50k events outstanding: the kernel cannot outrun the
		// wire forever, and a backlog the spool must write to disk would
		// measure the disk rather than the stream.
		if i%1000 == 0 {
			for int64(i)-ing.events.Load() > 50000 {
				time.Sleep(100 * time.Microsecond)
			}
		}
		in <- pool[i%len(pool)]
	}
	deadline := time.Now().Add(2 * time.Minute)
	for ing.events.Load() < int64(b.N) {
		if time.Now().After(deadline) {
			st := c.spool.stats()
			b.Fatalf("timed out: ingested %d of %d events; spool holds %d batches, dropped %d batches (%d events)", ing.events.Load(), b.N, st.entries, st.droppedBatches, st.droppedEvents)
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	close(in)
	if err := wait(); err != nil {
		b.Fatal(err)
	}
	if got := ing.events.Load(); got != int64(b.N) {
		b.Fatalf("ingested %d events, sent %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(wire.bytes.Load())/float64(b.N), "wire-bytes/event")
	// CPU time of the whole process (sensor and backend sides together)
	// per event: on a shared machine this is steadier than events/s, and
	// 1e9 / it is the rate one core would sustain.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/event")
	b.ReportMetric(0, "ns/op")
}
