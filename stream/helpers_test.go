package stream

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
	"google.golang.org/protobuf/types/known/timestamppb"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
	"github.com/vigilsec/vigil/stream/streamtest"
)

const (
	testSensorToken = "sensor-token-for-tests"
	testAPIToken    = "api-token-for-tests"
)

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("VIGIL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// eventFactory builds events shaped like the sensor's: a shell started by
// sshd under systemd in a Kubernetes pod, running curl, opening files and
// connecting out. The container and pod context is shared by pointer as
// enrichment does.
type eventFactory struct {
	container *vigilv1.Container
	k8s       *vigilv1.Kubernetes
	lineage   []*vigilv1.Ancestor
	start     time.Time
	// procs hands out one *Process per pid, as the process table does.
	procs map[uint32]*vigilv1.Process
}

func newEventFactory() *eventFactory {
	start := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	return &eventFactory{
		start: start,
		procs: map[uint32]*vigilv1.Process{},
		container: &vigilv1.Container{
			Id:          "3f6d2a8c9b1e4f7a0d5c8e2b6a9f1d4c7e0b3a6d9c2f5e8b1a4d7c0f3e6b9a2d",
			Name:        "payments-api",
			Image:       "123456789012.dkr.ecr.eu-west-1.amazonaws.com/payments-api:v2.14.1",
			ImageDigest: "sha256:9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b",
			Runtime:     "containerd",
			Namespace:   "k8s.io",
			Labels: map[string]string{
				"io.kubernetes.pod.name":       "payments-api-7d9f8b6c5-x2k4p",
				"io.kubernetes.pod.namespace":  "payments",
				"io.kubernetes.container.name": "api",
			},
			StartedAt: timestamppb.New(start.Add(-time.Hour)),
		},
		k8s: &vigilv1.Kubernetes{
			PodName:        "payments-api-7d9f8b6c5-x2k4p",
			Namespace:      "payments",
			PodUid:         "0c6f3b0e-6a55-4f1c-9d2b-4be1f3a2c9d7",
			ContainerName:  "api",
			ServiceAccount: "payments-api",
			PodLabels:      map[string]string{"app": "payments-api", "pod-template-hash": "7d9f8b6c5"},
		},
		lineage: []*vigilv1.Ancestor{
			{ExecId: "b1d3:1742:1764115200000000000", ParentExecId: "b1d3:901:1764111600000000000", Pid: 1742, NsPid: 12, Comm: "bash", ExePath: "/usr/bin/bash", Args: []string{"bash", "-c", "/opt/app/run.sh"}, StartTime: timestamppb.New(start.Add(-30 * time.Minute))},
			{ExecId: "b1d3:901:1764111600000000000", ParentExecId: "b1d3:1:1764108000000000000", Pid: 901, NsPid: 1, Comm: "tini", ExePath: "/sbin/tini", Args: []string{"/sbin/tini", "--", "/opt/app/entrypoint.sh"}, StartTime: timestamppb.New(start.Add(-time.Hour))},
			{ExecId: "b1d3:1:1764108000000000000", Pid: 1, Comm: "systemd", ExePath: "/usr/lib/systemd/systemd", Args: []string{"/sbin/init"}, StartTime: timestamppb.New(start.Add(-2 * time.Hour))},
		},
	}
}

// event returns the i-th event: an exec, then opens and connects. The
// event's tid is i, so tests can check each one arrives exactly once.
func (f *eventFactory) event(i int) *vigilv1.Event {
	pid := uint32(20000 + i/10)
	proc := f.procs[pid]
	if proc == nil {
		proc = f.process(pid)
		f.procs[pid] = proc
	}
	e := &vigilv1.Event{
		Time:       timestamppb.New(f.start.Add(time.Duration(i) * time.Microsecond)),
		Tid:        uint32(i),
		CgroupId:   4026532415,
		CgroupPath: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0c6f3b0e_6a55_4f1c_9d2b_4be1f3a2c9d7.slice/cri-containerd-3f6d2a8c9b1e4f7a0d5c8e2b6a9f1d4c7e0b3a6d9c2f5e8b1a4d7c0f3e6b9a2d.scope",
		Container:  f.container,
		Kubernetes: f.k8s,
		Process:    proc,
	}
	switch i % 10 {
	case 0:
		e.Syscall = "execve"
		e.Kind = &vigilv1.Event_Exec{Exec: &vigilv1.Exec{Filename: "/usr/bin/curl", Stdio: []string{"pipe", "pipe", "pipe"}}}
	case 1, 2, 3, 4, 5, 6:
		paths := []string{"/etc/ld.so.cache", "/usr/lib/x86_64-linux-gnu/libcurl.so.4.8.0", "/etc/ssl/certs/ca-certificates.crt", "/etc/resolv.conf", "/etc/hosts", "/opt/app/config/billing.yaml"}
		e.Syscall = "openat"
		e.Result = int64(3 + i%7)
		e.Kind = &vigilv1.Event_Open{Open: &vigilv1.FileOpen{Path: paths[i%len(paths)], Flags: 0o2000000, Fd: int32(3 + i%7), Inode: uint64(131000 + i%97), Dev: 64769, Fstype: "overlay"}}
	default:
		e.Syscall = "connect"
		e.Kind = &vigilv1.Event_Connect{Connect: &vigilv1.Connect{
			Fd:       5,
			Remote:   &vigilv1.SocketAddress{Family: "inet", Ip: "10.100.23.17", Port: 8443},
			Local:    &vigilv1.SocketAddress{Family: "inet", Ip: "10.0.12.34", Port: uint32(40000 + i%20000)},
			Protocol: "tcp",
		}}
	}
	return e
}

// countingIngester stores nothing but counts, de-duplicating in memory.
type countingIngester struct {
	mu      sync.Mutex
	seen    map[string]bool
	batches atomic.Int64
	events  atomic.Int64
	dups    atomic.Int64
	dropped atomic.Int64
	tids    map[uint32]int // when non-nil, how often each event tid arrived
}

func newCountingIngester(trackTids bool) *countingIngester {
	c := &countingIngester{seen: map[string]bool{}}
	if trackTids {
		c.tids = map[uint32]int{}
	}
	return c
}

func (c *countingIngester) Ingest(_ context.Context, b *vigilv1.Batch) (bool, error) {
	key := b.SensorId + "/" + b.BootId + "/" + strconv.FormatUint(b.Sequence, 10)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen[key] {
		c.dups.Add(1)
		return true, nil
	}
	c.seen[key] = true
	c.batches.Add(1)
	c.events.Add(int64(len(b.Events)))
	c.dropped.Add(int64(b.DroppedEvents))
	if c.tids != nil {
		for _, e := range b.Events {
			c.tids[e.Tid]++
		}
	}
	return false, nil
}

// testServer is a real backend gRPC server on loopback.
type testServer struct {
	addr  string
	certs streamtest.Certs
	stop  func()
}

func writeCerts(t testing.TB) streamtest.Certs {
	t.Helper()
	certs, err := streamtest.WriteCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

// startServer serves SensorService with ing over TLS on addr ("" picks a
// free port).
func startServer(t testing.TB, certs streamtest.Certs, addr string, ing Ingester, mutate func(*ServerConfig)) *testServer {
	t.Helper()
	cfg := DefaultServerConfig()
	cfg.CertFile, cfg.KeyFile = certs.ServerCert, certs.ServerKey
	cfg.Tokens = Tokens{Sensor: testSensorToken, API: testAPIToken}
	if mutate != nil {
		mutate(&cfg)
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	g, _, err := NewGRPCServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(cfg, ing, nil, nil, testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	srv.Register(g)
	go g.Serve(lis)
	var once sync.Once
	stop := func() { once.Do(g.Stop) }
	t.Cleanup(stop)
	return &testServer{addr: lis.Addr().String(), certs: certs, stop: stop}
}

// clientConfig is a client for ts with a spool in dir ("" for memory).
func clientConfig(addr string, certs streamtest.Certs, sensorID, spoolDir string) ClientConfig {
	cfg := DefaultClientConfig()
	cfg.Backend = addr
	cfg.CAFile = certs.CA
	cfg.Token = testSensorToken
	cfg.SensorID = sensorID
	cfg.BootID = "8c0f1e4a-5b2d-4e7f-9a3c-6d1b0e8f2a4c"
	cfg.SpoolDir = spoolDir
	cfg.ReconnectMin = 20 * time.Millisecond
	cfg.ReconnectMax = 200 * time.Millisecond
	cfg.Host = &vigilv1.Host{Hostname: "ip-10-0-12-34.eu-west-1.compute.internal", Kernel: "6.8.0-1019-aws", BootId: cfg.BootID, Os: "Ubuntu 24.04", Arch: "amd64", InstanceId: "i-0abc123def4567890", Region: "eu-west-1"}
	return cfg
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runClient starts c.Run in the background; the returned func waits for it.
func runClient(t testing.TB, c *Client, ctx context.Context, in <-chan *vigilv1.Event) func() error {
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, in) }()
	return func() error {
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return fmt.Errorf("client did not stop")
		}
	}
}

func grpcStatsHandler(h stats.Handler) grpc.ServerOption { return grpc.StatsHandler(h) }

// process is what the process table knows of pid: a curl started by the
// pod's shell, with its lineage.
func (f *eventFactory) process(pid uint32) *vigilv1.Process {
	return &vigilv1.Process{
		ExecId:       "b1d3:" + strconv.Itoa(int(pid)) + ":1764115200123456789",
		ParentExecId: f.lineage[0].ExecId,
		Pid:          pid,
		Ppid:         1742,
		NsPid:        pid - 19000,
		Comm:         "curl",
		ExePath:      "/usr/bin/curl",
		Args:         []string{"curl", "-sS", "--max-time", "5", "https://internal-billing.payments.svc.cluster.local:8443/v1/health"},
		Cwd:          "/opt/app",
		Uid:          1000, Gid: 1000, Euid: 1000, Egid: 1000,
		Loginuid:  4294967295,
		StartTime: timestamppb.New(f.start),
		ExeSha256: "4f2a9c1d7b3e8a6f0c5d2b9e7a4f1c8d3b6e0a9f2c5d8b1e4a7f0c3d6b9e2a5f",
		ExeInode:  1835017,
		ExeDev:    64769,
		UserName:  "app",
		Lineage:   f.lineage,
	}
}

// listen opens a loopback listener on a free port.
func listen(t testing.TB) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}
