package enrich

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/enrich/cgroup"
	"github.com/vigilsec/vigil/internal/testutil"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// childPid returns a child of the container's first process: "a process
// run in the container", as the collector would see it exec.
func childPid(t *testing.T, pid int) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if f := strings.Fields(string(b)); len(f) > 0 {
			c, err := strconv.Atoi(f[0])
			if err == nil {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d has no child", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cgroupID is the inode of the process's cgroup directory in the
// hierarchy the resolver walks: what the collector reports as the cgroup
// id.
func cgroupID(t *testing.T, e *Enricher, path string) uint64 {
	t.Helper()
	st, err := os.Stat(filepath.Join(e.paths.Root(), path))
	if err != nil {
		t.Fatalf("stat cgroup %s: %v", path, err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

func TestContainerdEnrichment(t *testing.T) {
	socket, _ := testutil.StartContainerd(t)
	cfg := testConfig()
	cfg.Containerd.Enabled = true
	cfg.Containerd.Socket = socket
	e, reg := startEnricher(t, cfg)
	if st := sourceStatus(e, SourceContainerd); st.State != StateOK {
		t.Fatalf("containerd source = %v, want ok", st)
	}

	podUID := "0a1b2c3d-4e5f-6789-abcd-" + randomHex(t, 12)
	k8sID := randomHex(t, 64)
	dockerID := randomHex(t, 64)
	ecsID, ecsTask := randomHex(t, 64), randomHex(t, 32)
	sh := []string{"/bin/sh", "-c", "/bin/sleep 3600 & wait"}

	tests := []struct {
		name  string
		opts  testutil.ContainerOptions
		check func(t *testing.T, c *testutil.Container, ev *vigilv1.Event)
	}{
		{
			name: "a process in a plain containerd container carries its id, name, rootfs, namespace and app=vigil-test label",
			opts: testutil.ContainerOptions{Labels: map[string]string{"app": "vigil-test"}},
			check: func(t *testing.T, c *testutil.Container, ev *vigilv1.Event) {
				got := ev.Container
				if got.Id != c.ID || got.Name != c.ID || got.Image != c.Rootfs || got.Namespace != "default" ||
					got.Labels["app"] != "vigil-test" || got.Runtime != cgroup.RuntimeContainerd || got.Privileged || got.StartedAt == nil {
					t.Fatalf("Container = %v", got)
				}
				if ev.Kubernetes != nil || ev.Ecs != nil {
					t.Fatalf("unexpected pod or task context: %v %v", ev.Kubernetes, ev.Ecs)
				}
			},
		},
		{
			name: "a process in a k8s.io container with CRI labels carries the pod name, namespace, uid, labels and container name",
			opts: testutil.ContainerOptions{
				Namespace:  "k8s.io",
				ID:         k8sID,
				CgroupPath: "/kubepods/besteffort/pod" + podUID + "/" + k8sID,
				Labels: map[string]string{
					"io.kubernetes.pod.name":       "web-0",
					"io.kubernetes.pod.namespace":  "shop",
					"io.kubernetes.pod.uid":        podUID,
					"io.kubernetes.container.name": "nginx",
					"io.cri-containerd.kind":       "container",
				},
			},
			check: func(t *testing.T, c *testutil.Container, ev *vigilv1.Event) {
				k := ev.Kubernetes
				if k == nil || k.PodName != "web-0" || k.Namespace != "shop" || k.PodUid != podUID || k.ContainerName != "nginx" ||
					k.PodLabels["app"] != "web" || len(k.PodLabels) != 1 {
					t.Fatalf("Kubernetes = %v", k)
				}
				if got := ev.Container; got.Id != k8sID || got.Name != "nginx" || got.Namespace != "k8s.io" || got.Runtime != cgroup.RuntimeContainerd {
					t.Fatalf("Container = %v", got)
				}
			},
		},
		{
			name: "a privileged container in Docker's moby namespace is reported as a privileged Docker container",
			opts: testutil.ContainerOptions{Namespace: "moby", ID: dockerID, CgroupPath: "/docker/" + dockerID, Privileged: true},
			check: func(t *testing.T, c *testutil.Container, ev *vigilv1.Event) {
				if got := ev.Container; got.Id != dockerID || !got.Privileged || got.Runtime != cgroup.RuntimeDocker || got.Namespace != "moby" {
					t.Fatalf("Container = %v", got)
				}
			},
		},
		{
			name: "a Docker container of an ECS task in the moby namespace carries the task from its com.amazonaws.ecs labels",
			opts: testutil.ContainerOptions{
				Namespace: "moby", ID: ecsID, CgroupPath: "/ecs/" + ecsTask + "/" + ecsID,
				Labels: map[string]string{
					"com.amazonaws.ecs.cluster":                 "default",
					"com.amazonaws.ecs.container-name":          "curl",
					"com.amazonaws.ecs.task-arn":                "arn:aws:ecs:us-west-2:111122223333:task/default/" + ecsTask,
					"com.amazonaws.ecs.task-definition-family":  "curltest",
					"com.amazonaws.ecs.task-definition-version": "24",
				},
			},
			check: func(t *testing.T, c *testutil.Container, ev *vigilv1.Event) {
				x := ev.Ecs
				if x == nil || x.Cluster != "default" || x.TaskArn != "arn:aws:ecs:us-west-2:111122223333:task/default/"+ecsTask ||
					x.TaskFamily != "curltest" || x.TaskRevision != "24" || x.ContainerName != "curl" || x.LaunchType != "EC2" ||
					x.ClusterArn != "arn:aws:ecs:us-west-2:111122223333:cluster/default" {
					t.Fatalf("Ecs = %v", x)
				}
				if got := ev.Container; got.Id != ecsID || got.Runtime != cgroup.RuntimeDocker {
					t.Fatalf("Container = %v", got)
				}
			},
		},
	}

	// The pod's sandbox, whose labels are the pod's labels.
	testutil.RunContainer(t, testutil.ContainerOptions{
		Socket: socket, Namespace: "k8s.io", ID: randomHex(t, 64),
		Labels: map[string]string{
			"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.uid": podUID,
			"io.cri-containerd.kind": "sandbox", "app": "web",
		},
	})

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Socket = socket
			tt.opts.Command = sh
			c := testutil.RunContainer(t, tt.opts)
			pid := childPid(t, c.Pid)
			path := cgroup.PathFromProcCgroup(testutil.ProcCgroup(t, pid))

			first := &vigilv1.Event{CgroupPath: path, Process: &vigilv1.Process{Pid: uint32(pid)}}
			e.Enrich(first)
			if first.Container == nil || first.Container.Id != c.ID {
				t.Fatalf("first event for cgroup %s: container %v, want at least id %s", path, first.Container, c.ID)
			}
			ev := waitComplete(t, e, path)
			tt.check(t, c, ev)

			// The collector may know only the cgroup id: the enricher maps
			// it to the path and serves the same shared message.
			id := cgroupID(t, e, path)
			deadline := time.Now().Add(10 * time.Second)
			for {
				byID := &vigilv1.Event{CgroupId: id}
				e.Enrich(byID)
				byPath := &vigilv1.Event{CgroupPath: path}
				e.Enrich(byPath)
				if byID.Container == byPath.Container && !byID.Container.GetPartial() {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("event with cgroup id %d only: container %v, want the shared message of %s", id, byID.Container, c.ID)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}

	t.Run("a cgroup shaped like a containerd container that containerd does not know is treated as the host", func(t *testing.T) {
		path := "/default/not-a-container-" + randomHex(t, 8)
		deadline := time.Now().Add(10 * time.Second)
		for {
			ev := &vigilv1.Event{CgroupPath: path}
			e.Enrich(ev)
			if ev.Container == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("still a container after 10s: %v", ev.Container)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	if n := counterValue(t, reg, "vigil_enrich_lookups_total", "source", SourceContainerd, "result", "found"); n < 3 {
		t.Fatalf("containerd found lookups = %v, want >= 3", n)
	}
	if n := counterValue(t, reg, "vigil_enrich_cache_misses_total"); n < 3 {
		t.Fatalf("cache misses = %v, want >= 3", n)
	}
}

func TestContainerdDown(t *testing.T) {
	tests := []struct {
		name      string
		socket    func(t *testing.T) string
		wantState string
	}{
		{
			name:      "a missing containerd socket makes the source absent",
			socket:    func(t *testing.T) string { return filepath.Join(t.TempDir(), "containerd.sock") },
			wantState: StateAbsent,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Containerd.Enabled = true
			cfg.Containerd.Socket = tt.socket(t)
			e, _ := startEnricher(t, cfg)
			if st := sourceStatus(e, SourceContainerd); st.State != tt.wantState {
				t.Fatalf("containerd source = %v, want %s", st, tt.wantState)
			}
			ev := &vigilv1.Event{CgroupPath: "/docker/" + agentDockerID}
			e.Enrich(ev)
			if ev.Container == nil || ev.Container.Id != agentDockerID || !ev.Container.Partial {
				t.Fatalf("event = %v, want the partial container id", ev.Container)
			}
		})
	}
}
