package stream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
	"github.com/vigilsec/vigil/stream/streamtest"
)

// Environment of the test backend child process.
const (
	envBackend   = "VIGIL_STREAM_TEST_BACKEND" // listen address; set = run as backend
	envStore     = "VIGIL_STREAM_TEST_STORE"
	envCert      = "VIGIL_STREAM_TEST_CERT"
	envKey       = "VIGIL_STREAM_TEST_KEY"
	envKillAfter = "VIGIL_STREAM_TEST_KILL_AFTER" // SIGKILL self after committing this many events
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(envBackend); addr != "" {
		if err := runTestBackend(addr); err != nil {
			fmt.Fprintln(os.Stderr, "test backend:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// journalIngester is a durable Ingester: each accepted batch is one line
// in an append-only journal, holding the batch's key and every event's
// tid, written with one write(2) and fsynced before Ingest returns. A batch
// is thus wholly stored or not at all, and a replay is recognised by its
// key. (A journal rather than SQLite keeps the fuzz target's binary small:
// fuzzing snapshots the coverage counters of every linked package.)
type journalIngester struct {
	f         *os.File
	seen      map[string]bool
	stored    int64
	killAfter int64
}

// journal is what a journal file holds.
type journal struct {
	tids    []int
	batches map[string]batchRecord
	replays int
}

type batchRecord struct {
	seq             uint64
	events, dropped int
}

// readJournal parses path; a torn last line (no newline) is ignored.
func readJournal(path string) (journal, error) {
	j := journal{batches: map[string]batchRecord{}}
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return j, nil
		}
		return j, err
	}
	lines := strings.Split(string(data), "\n")
	for _, line := range lines[:len(lines)-1] {
		f := strings.Fields(line)
		if len(f) < 4 {
			return j, fmt.Errorf("bad journal line %q", line)
		}
		key := f[1] + "/" + f[2] + "/" + f[3]
		switch f[0] {
		case "R":
			j.replays++
		case "B":
			seq, _ := strconv.ParseUint(f[3], 10, 64)
			dropped, _ := strconv.Atoi(f[4])
			var n int
			if len(f) > 5 {
				for _, t := range strings.Split(f[5], ",") {
					tid, _ := strconv.Atoi(t)
					j.tids = append(j.tids, tid)
					n++
				}
			}
			j.batches[key] = batchRecord{seq: seq, events: n, dropped: dropped}
		}
	}
	return j, nil
}

func openJournalIngester(path string) (*journalIngester, error) {
	j, err := readJournal(path)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	ing := &journalIngester{f: f, seen: map[string]bool{}, stored: int64(len(j.tids))}
	for k := range j.batches {
		ing.seen[k] = true
	}
	return ing, nil
}

func (s *journalIngester) Ingest(_ context.Context, b *vigilv1.Batch) (bool, error) {
	key := b.SensorId + "/" + b.BootId + "/" + strconv.FormatUint(b.Sequence, 10)
	var line []byte
	dup := s.seen[key]
	if dup {
		line = fmt.Appendf(nil, "R %s %s %d\n", b.SensorId, b.BootId, b.Sequence)
	} else {
		line = fmt.Appendf(nil, "B %s %s %d %d ", b.SensorId, b.BootId, b.Sequence, b.DroppedEvents)
		for i, e := range b.Events {
			if i > 0 {
				line = append(line, ',')
			}
			line = strconv.AppendUint(line, uint64(e.Tid), 10)
		}
		line = append(line, '\n')
	}
	if _, err := s.f.Write(line); err != nil {
		return false, err
	}
	if err := s.f.Sync(); err != nil {
		return false, err
	}
	if dup {
		return true, nil
	}
	s.seen[key] = true
	s.stored += int64(len(b.Events))
	if s.killAfter > 0 && s.stored >= s.killAfter {
		// Die between the commit and the ack: the sensor must resend this
		// batch, and the store must recognise it.
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	return false, nil
}

// runTestBackend serves SensorService on addr over TLS with the durable
// store until killed.
func runTestBackend(addr string) error {
	ing, err := openJournalIngester(os.Getenv(envStore))
	if err != nil {
		return err
	}
	if v := os.Getenv(envKillAfter); v != "" {
		n, _ := strconv.ParseInt(v, 10, 64)
		ing.killAfter = ing.stored + n
	}
	cfg := DefaultServerConfig()
	cfg.CertFile, cfg.KeyFile = os.Getenv(envCert), os.Getenv(envKey)
	cfg.Tokens = Tokens{Sensor: testSensorToken, API: testAPIToken}
	g, _, err := NewGRPCServer(cfg)
	if err != nil {
		return err
	}
	srv, err := NewServer(cfg, ing, nil, nil, nil, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	srv.Register(g)
	var lis net.Listener
	// The previous backend's port may linger briefly after SIGKILL.
	for i := 0; ; i++ {
		if lis, err = net.Listen("tcp", addr); err == nil || i == 100 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	return g.Serve(lis)
}

// startBackendProcess runs this test binary as a backend child.
func startBackendProcess(t *testing.T, addr, store string, certs streamtest.Certs, killAfter int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		envBackend+"="+addr, envStore+"="+store, envCert+"="+certs.ServerCert, envKey+"="+certs.ServerKey)
	if killAfter > 0 {
		cmd.Env = append(cmd.Env, envKillAfter+"="+strconv.Itoa(killAfter))
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

func killedBySIGKILL(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

func TestExactlyOnceAcrossBackendKills(t *testing.T) {
	const total = 100000
	certs := writeCerts(t)
	store := t.TempDir() + "/journal"
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()

	// Backend 1 kills itself right after committing the batch that takes
	// it past 30000 events, before acknowledging it.
	b1 := startBackendProcess(t, addr, store, certs, 30000)

	cfg := clientConfig(addr, certs, "sensor-exactly-once", t.TempDir())
	cfg.BatchMaxEvents = 500
	c, err := NewClient(cfg, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	in := make(chan *vigilv1.Event, 1000)
	wait := runClient(t, c, context.Background(), in)
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		f := newEventFactory()
		// About 25k events/s, so that both kills land mid-stream.
		for i := 0; i < total; i++ {
			in <- f.event(i)
			if i%250 == 249 {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()

	if err := b1.Wait(); !killedBySIGKILL(err) {
		t.Fatalf("backend 1 ended with %v, want SIGKILL after commit", err)
	}
	read := func() journal {
		j, err := readJournal(store)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	count := func() int { return len(read().tids) }
	after1 := count()
	t.Logf("backend 1 killed itself after committing %d events", after1)

	// Backend 2 on the same store, SIGKILLed by us mid-stream.
	b2 := startBackendProcess(t, addr, store, certs, 0)
	waitFor(t, 60*time.Second, "backend 2 to store 60000 events", func() bool { return count() >= 60000 })
	if err := b2.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := b2.Wait(); !killedBySIGKILL(err) {
		t.Fatalf("backend 2 ended with %v, want SIGKILL", err)
	}
	after2 := count()
	t.Logf("backend 2 SIGKILLed with %d events stored", after2)
	if after2 >= total {
		t.Fatalf("backend 2 stored all %d events before the kill; the kill was not mid-stream", after2)
	}

	// Backend 3 takes the rest.
	startBackendProcess(t, addr, store, certs, 0)
	<-fed
	waitFor(t, 60*time.Second, "all events stored", func() bool { return count() >= total })
	close(in)
	if err := wait(); err != nil {
		t.Fatal(err)
	}

	j := read()
	seen := make([]int, total)
	for _, tid := range j.tids {
		if tid < 0 || tid >= total {
			t.Fatalf("stored an event with tid %d, never sent", tid)
		}
		seen[tid]++
	}
	for tid, k := range seen {
		if k != 1 {
			t.Fatalf("event %d stored %d times, want exactly once", tid, k)
		}
	}
	n := len(j.tids)
	if n != total {
		t.Fatalf("stored %d events, sent %d", n, total)
	}
	batches := len(j.batches)
	var maxSeq uint64
	seqs := make(map[uint64]bool)
	sumEvents, dropped := 0, 0
	for _, r := range j.batches {
		seqs[r.seq] = true
		maxSeq = max(maxSeq, r.seq)
		sumEvents += r.events
		dropped += r.dropped
	}
	for s := uint64(1); s <= uint64(batches); s++ {
		if !seqs[s] {
			t.Fatalf("sequence %d missing among %d batches (max %d)", s, batches, maxSeq)
		}
	}
	if maxSeq != uint64(batches) || sumEvents != total || dropped != 0 {
		t.Fatalf("%d batches up to sequence %d with %d events, %d reported dropped; want 1..%d, %d events, none dropped", batches, maxSeq, sumEvents, dropped, batches, total)
	}
	replays := j.replays
	if replays < 1 {
		t.Fatal("no batch was replayed, but backend 1 died between commit and ack")
	}
	t.Logf("%d events in %d batches exactly once; %d replayed batches recognised and ignored", n, batches, replays)
}
