package stream

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	_ "modernc.org/sqlite" // the durable test store

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

// sqliteIngester is a durable Ingester: it records each batch's key and
// each event's tid in one transaction, so a batch is either wholly stored
// or not at all, and a replay is recognised by its key.
type sqliteIngester struct {
	db        *sql.DB
	stored    int64
	killAfter int64
}

func openStore(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS batches (sensor TEXT, boot TEXT, seq INTEGER, events INTEGER, dropped INTEGER, PRIMARY KEY (sensor, boot, seq))`,
		`CREATE TABLE IF NOT EXISTS events (tid INTEGER)`,
		`CREATE TABLE IF NOT EXISTS replays (sensor TEXT, boot TEXT, seq INTEGER)`,
	} {
		if _, err := db.Exec(q); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

func (s *sqliteIngester) Ingest(ctx context.Context, b *vigilv1.Batch) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	res, err := tx.Exec(`INSERT OR IGNORE INTO batches VALUES (?, ?, ?, ?, ?)`, b.SensorId, b.BootId, b.Sequence, len(b.Events), b.DroppedEvents)
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := tx.Exec(`INSERT INTO replays VALUES (?, ?, ?)`, b.SensorId, b.BootId, b.Sequence); err != nil {
			return false, err
		}
		return true, tx.Commit()
	}
	stmt, err := tx.Prepare(`INSERT INTO events VALUES (?)`)
	if err != nil {
		return false, err
	}
	defer stmt.Close()
	for _, e := range b.Events {
		if _, err := stmt.Exec(e.Tid); err != nil {
			return false, err
		}
	}
	if err := tx.Commit(); err != nil {
		return false, err
	}
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
	db, err := openStore(os.Getenv(envStore))
	if err != nil {
		return err
	}
	ing := &sqliteIngester{db: db}
	if err := db.QueryRow(`SELECT count(*) FROM events`).Scan(&ing.stored); err != nil {
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
	store := t.TempDir() + "/store.db"
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
	db, err := openStore(store)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func() int {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM events`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
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

	var n, distinct, minTid, maxTid int
	if err := db.QueryRow(`SELECT count(*), count(DISTINCT tid), min(tid), max(tid) FROM events`).Scan(&n, &distinct, &minTid, &maxTid); err != nil {
		t.Fatal(err)
	}
	if n != total || distinct != total || minTid != 0 || maxTid != total-1 {
		t.Fatalf("stored %d events (%d distinct, tids %d..%d), want each of 0..%d exactly once", n, distinct, minTid, maxTid, total-1)
	}
	var batches, minSeq, maxSeq, sumEvents, dropped int
	if err := db.QueryRow(`SELECT count(*), min(seq), max(seq), sum(events), sum(dropped) FROM batches`).Scan(&batches, &minSeq, &maxSeq, &sumEvents, &dropped); err != nil {
		t.Fatal(err)
	}
	if minSeq != 1 || maxSeq != batches || sumEvents != total || dropped != 0 {
		t.Fatalf("batches: %d with sequences %d..%d, %d events, %d reported dropped; want sequences 1..%d without gaps, %d events, none dropped",
			batches, minSeq, maxSeq, sumEvents, dropped, batches, total)
	}
	var replays int
	if err := db.QueryRow(`SELECT count(*) FROM replays`).Scan(&replays); err != nil {
		t.Fatal(err)
	}
	if replays < 1 {
		t.Fatal("no batch was replayed, but backend 1 died between commit and ack")
	}
	t.Logf("%d events in %d batches exactly once; %d replayed batches recognised and ignored", n, batches, replays)
}
