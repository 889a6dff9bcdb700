package enrich

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// testConfig is DefaultConfig with every source off and short timers, so
// each test turns on exactly the sources it serves.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Containerd.Enabled = false
	cfg.ECS.Enabled = false
	cfg.ECS.MetadataURI = ""
	cfg.EC2.Enabled = false
	cfg.LookupTimeout = 2 * time.Second
	cfg.DetectTimeout = 2 * time.Second
	cfg.RetryMin = 20 * time.Millisecond
	cfg.RetryMax = 200 * time.Millisecond
	return cfg
}

// startEnricher builds and starts an Enricher that stops with the test.
func startEnricher(t *testing.T, cfg Config) (*Enricher, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	e, err := New(cfg, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return e, reg
}

// waitComplete enriches fresh events for cgroup path until the container
// is no longer partial, as the sensor would see on later events.
func waitComplete(t *testing.T, e *Enricher, path string) *vigilv1.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev := &vigilv1.Event{CgroupPath: path}
		e.Enrich(ev)
		if ev.Container != nil && !ev.Container.Partial {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("container of %s still partial after 10s: %v; sources %v", path, ev.Container, e.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newEvent(path string) *vigilv1.Event { return &vigilv1.Event{CgroupPath: path} }

func sourceStatus(e *Enricher, name string) *vigilv1.SourceStatus {
	for _, s := range e.Status() {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// imdsMode is how the fake instance metadata service behaves.
type imdsMode int

const (
	imdsV2      imdsMode = iota // tokens required, as IMDSv2-only instances
	imdsRefuse                  // 401 to every request
	imdsDown                    // nothing listening
	imdsV1Only                  // no token API (404 on PUT), documents without a token
	imdsUnavail                 // not served at all (EC2 source disabled)
)

type fakeIMDS struct {
	url       string
	mode      atomic.Int32 // an imdsMode; tests may switch it
	tokenPuts atomic.Int32
	docGets   atomic.Int32
}

const imdsToken = "AQAEAFakeTokenForVigilTests=="

func newFakeIMDS(t *testing.T, mode imdsMode) *fakeIMDS {
	t.Helper()
	f := &fakeIMDS{}
	f.mode.Store(int32(mode))
	doc := fixture(t, "imds_identity.json")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mode := imdsMode(f.mode.Load())
		switch {
		case mode == imdsRefuse:
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			f.tokenPuts.Add(1)
			if mode == imdsV1Only {
				http.NotFound(w, r)
				return
			}
			if r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
				http.Error(w, "missing ttl", http.StatusBadRequest)
				return
			}
			w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", "21600")
			_, _ = w.Write([]byte(imdsToken))
		case r.Method == http.MethodGet && r.URL.Path == "/latest/dynamic/instance-identity/document":
			f.docGets.Add(1)
			if mode == imdsV2 && r.Header.Get("X-aws-ec2-metadata-token") != imdsToken {
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write(doc)
		default:
			http.NotFound(w, r)
		}
	}))
	f.url = srv.URL
	if mode == imdsDown {
		srv.Close()
	} else {
		t.Cleanup(srv.Close)
	}
	return f
}
