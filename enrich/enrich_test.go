package enrich

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/vigilsec/vigil/internal/testutil"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

const dockerPath = "/docker/" + agentDockerID

func TestEnrichWithoutSources(t *testing.T) {
	tests := []struct {
		name          string
		events        []*vigilv1.Event
		wantContainer string // "" for none
		wantPartial   bool
		wantPodUID    string
		wantHits      float64
		wantMisses    float64
	}{
		{
			name:     "a host process gets no container and later events of its cgroup are cache hits",
			events:   []*vigilv1.Event{{CgroupPath: "/system.slice/sshd.service"}, {CgroupPath: "/system.slice/sshd.service"}},
			wantHits: 1, wantMisses: 1,
		},
		{
			name:          "a container nobody can describe yet gets a partial container with its id",
			events:        []*vigilv1.Event{{CgroupPath: dockerPath}, {CgroupPath: dockerPath}, {CgroupPath: dockerPath}},
			wantContainer: agentDockerID, wantPartial: true, wantHits: 2, wantMisses: 1,
		},
		{
			name:          "a Kubernetes container gets its pod uid from the path before any lookup",
			events:        []*vigilv1.Event{{CgroupPath: "/kubepods/burstable/pod0a1b2c3d-4e5f-6789-abcd-ef0123456789/" + agentDockerID}},
			wantContainer: agentDockerID, wantPartial: true, wantPodUID: "0a1b2c3d-4e5f-6789-abcd-ef0123456789", wantMisses: 1,
		},
		{
			name:   "an event without cgroup information is left alone",
			events: []*vigilv1.Event{{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, reg := startEnricher(t, testConfig())
			var first *vigilv1.Container
			for i, ev := range tt.events {
				e.Enrich(ev)
				if tt.wantContainer == "" {
					if ev.Container != nil {
						t.Fatalf("event %d: container %v, want none", i, ev.Container)
					}
					continue
				}
				if ev.Container.GetId() != tt.wantContainer || ev.Container.GetPartial() != tt.wantPartial {
					t.Fatalf("event %d: container %v, want id %s partial %v", i, ev.Container, tt.wantContainer, tt.wantPartial)
				}
				if tt.wantPodUID != "" && ev.Kubernetes.GetPodUid() != tt.wantPodUID {
					t.Fatalf("event %d: kubernetes %v, want pod uid %s", i, ev.Kubernetes, tt.wantPodUID)
				}
				if first == nil {
					first = ev.Container
				} else if ev.Container != first {
					t.Fatalf("event %d got a copy of the container message, want the shared pointer", i)
				}
			}
			if got := counterValue(t, reg, "vigil_enrich_cache_hits_total"); got != tt.wantHits {
				t.Fatalf("hits = %v, want %v", got, tt.wantHits)
			}
			if got := counterValue(t, reg, "vigil_enrich_cache_misses_total"); got != tt.wantMisses {
				t.Fatalf("misses = %v, want %v", got, tt.wantMisses)
			}
			for _, st := range e.Status() {
				if st.State != StateDisabled {
					t.Fatalf("source %v, want disabled", st)
				}
			}
		})
	}
}

func TestCacheBounds(t *testing.T) {
	t.Run("the cache never holds more cgroups than its size and counts evictions", func(t *testing.T) {
		cfg := testConfig()
		cfg.CacheSize = 16
		e, reg := startEnricher(t, cfg)
		for i := range 100 {
			e.Enrich(&vigilv1.Event{CgroupPath: fmt.Sprintf("/docker/%064x", i)})
		}
		if n := e.cache.len(); n > 16 {
			t.Fatalf("cache holds %d entries, want <= 16", n)
		}
		if got := counterValue(t, reg, "vigil_enrich_cache_evictions_total"); got < 84 {
			t.Fatalf("evictions = %v, want >= 84", got)
		}
		if got := counterValue(t, reg, "vigil_enrich_cache_entries"); got > 16 || got == 0 {
			t.Fatalf("entries gauge = %v", got)
		}
	})
	t.Run("cgroups unseen for the TTL expire with their container state", func(t *testing.T) {
		e, _ := startEnricher(t, testConfig())
		e.Enrich(&vigilv1.Event{CgroupPath: dockerPath})
		e.Enrich(&vigilv1.Event{CgroupPath: "/init.scope"})
		if n := e.cache.expire(e.now.Load() + 1); n != 2 {
			t.Fatalf("expired %d entries, want 2", n)
		}
		if e.cache.len() != 0 || len(e.cache.containers) != 0 {
			t.Fatalf("cache still holds %d slots and %d containers", e.cache.len(), len(e.cache.containers))
		}
	})
	t.Run("a full lookup queue drops the lookup without blocking and counts it", func(t *testing.T) {
		cfg := testConfig()
		cfg.QueueSize = 1
		reg := prometheus.NewRegistry()
		e, err := New(cfg, nil, reg) // not started: nothing drains the queue
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			for i := range 10 {
				e.Enrich(&vigilv1.Event{CgroupPath: fmt.Sprintf("/docker/%064x", i)})
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Enrich blocked on a full queue")
		}
		if got := counterValue(t, reg, "vigil_enrich_queue_full_total"); got != 9 {
			t.Fatalf("queue_full = %v, want 9", got)
		}
	})
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{
			name: "an empty file keeps every source on with the documented endpoints",
			yaml: "{}",
			check: func(t *testing.T, c Config) {
				if !c.Containerd.Enabled || !c.ECS.Enabled || !c.EC2.Enabled ||
					c.Containerd.Socket != DefaultContainerdSocket || c.ECS.AgentURI != DefaultAgentURI {
					t.Fatalf("config = %+v", c)
				}
			},
		},
		{
			name: "a file can turn a source off and override endpoints and durations",
			yaml: "ec2: {enabled: false}\ncontainerd: {socket: /run/k3s/containerd/containerd.sock}\ncache_ttl: 90s\n",
			check: func(t *testing.T, c Config) {
				if c.EC2.Enabled || c.Containerd.Socket != "/run/k3s/containerd/containerd.sock" || c.CacheTTL != 90*time.Second {
					t.Fatalf("config = %+v", c)
				}
			},
		},
		{name: "a tiny cache is rejected by key", yaml: "cache_size: 2\n", wantErr: "enrich.cache_size"},
		{name: "zero workers are rejected by key", yaml: "workers: 0\n", wantErr: "enrich.workers"},
		{name: "a retry maximum below the minimum is rejected by key", yaml: "retry_min: 10s\nretry_max: 1s\n", wantErr: "enrich.retry_max"},
		{name: "containerd without a socket is rejected by key", yaml: "containerd: {socket: \"\"}\n", wantErr: "enrich.containerd.socket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			if err := yaml.Unmarshal([]byte(tt.yaml), &c); err != nil {
				t.Fatal(err)
			}
			err := c.Validate()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Validate = %v, want an error naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestSourceRecovery(t *testing.T) {
	t.Run("an IMDS that refuses at start is retried with backoff and its identity used once it answers", func(t *testing.T) {
		f := newFakeIMDS(t, imdsRefuse)
		cfg := testConfig()
		cfg.EC2.Enabled = true
		cfg.EC2.Endpoint = f.url
		e, _ := startEnricher(t, cfg)
		if st := sourceStatus(e, SourceEC2); st.State != StateFailing {
			t.Fatalf("ec2 source = %v, want failing", st)
		}
		f.mode.Store(int32(imdsV2))
		deadline := time.Now().Add(10 * time.Second)
		for e.Host().InstanceId == "" {
			if time.Now().After(deadline) {
				t.Fatalf("identity not picked up after recovery; source %v", sourceStatus(e, SourceEC2))
			}
			time.Sleep(50 * time.Millisecond)
		}
		if st := sourceStatus(e, SourceEC2); st.State != StateOK || st.Errors == 0 {
			t.Fatalf("ec2 source = %v, want ok with the earlier errors counted", st)
		}
	})
	t.Run("containerd that starts after the sensor is found on a later probe", func(t *testing.T) {
		testutil.RequireContainerd(t)
		link := filepath.Join(t.TempDir(), "containerd.sock")
		cfg := testConfig()
		cfg.Containerd.Enabled = true
		cfg.Containerd.Socket = link
		cfg.RedetectInterval = 100 * time.Millisecond
		e, _ := startEnricher(t, cfg)
		if st := sourceStatus(e, SourceContainerd); st.State != StateAbsent {
			t.Fatalf("containerd source = %v, want absent", st)
		}
		socket, _ := testutil.StartContainerd(t)
		if err := os.Symlink(socket, link); err != nil {
			t.Fatal(err)
		}
		c := testutil.RunContainer(t, testutil.ContainerOptions{Socket: socket, Labels: map[string]string{"app": "vigil-test"}})
		ev := waitComplete(t, e, "/default/"+c.ID)
		if ev.Container.Labels["app"] != "vigil-test" {
			t.Fatalf("container = %v", ev.Container)
		}
		if st := sourceStatus(e, SourceContainerd); st.State != StateOK {
			t.Fatalf("containerd source = %v, want ok", st)
		}
	})
}
