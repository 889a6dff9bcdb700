package cgroup

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

const (
	cid    = "3f4a1b2c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7a8"
	task   = "8f03e41243824aea923aca126495f665"
	podUID = "0a1b2c3d-4e5f-6789-abcd-ef0123456789"
	podSD  = "0a1b2c3d_4e5f_6789_abcd_ef0123456789"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		name string
		path string
		want Ref
		ok   bool
	}{
		{
			name: "a Docker container under the cgroupfs driver is read from /docker/<id>",
			path: "/docker/" + cid,
			want: Ref{ID: cid, Runtime: RuntimeDocker, Format: FormatDocker}, ok: true,
		},
		{
			name: "a Docker container under the systemd driver is read from docker-<id>.scope",
			path: "/system.slice/docker-" + cid + ".scope",
			want: Ref{ID: cid, Runtime: RuntimeDocker, Format: FormatDocker}, ok: true,
		},
		{
			name: "a plain containerd container is read from /<namespace>/<id> and marked weak",
			path: "/default/vigil-test-1",
			want: Ref{ID: "vigil-test-1", Runtime: RuntimeContainerd, Format: FormatContainerd, Namespace: "default", Weak: true}, ok: true,
		},
		{
			name: "a Docker-managed containerd container in the moby namespace is read as plain containerd",
			path: "/moby/" + cid,
			want: Ref{ID: cid, Runtime: RuntimeContainerd, Format: FormatContainerd, Namespace: "moby", Weak: true}, ok: true,
		},
		{
			name: "a Kubernetes besteffort pod under the systemd driver with containerd gives the pod uid",
			path: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + podSD + ".slice/cri-containerd-" + cid + ".scope",
			want: Ref{ID: cid, Runtime: RuntimeContainerd, Format: FormatKubernetesSystemd, PodUID: podUID}, ok: true,
		},
		{
			name: "a Kubernetes burstable pod under the systemd driver with containerd gives the pod uid",
			path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podSD + ".slice/cri-containerd-" + cid + ".scope",
			want: Ref{ID: cid, Runtime: RuntimeContainerd, Format: FormatKubernetesSystemd, PodUID: podUID}, ok: true,
		},
		{
			name: "a Kubernetes guaranteed pod under the systemd driver sits directly below kubepods.slice",
			path: "/kubepods.slice/kubepods-pod" + podSD + ".slice/cri-containerd-" + cid + ".scope",
			want: Ref{ID: cid, Runtime: RuntimeContainerd, Format: FormatKubernetesSystemd, PodUID: podUID}, ok: true,
		},
		{
			name: "a Kubernetes pod under the systemd driver with Docker as runtime is a docker scope with a pod uid",
			path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podSD + ".slice/docker-" + cid + ".scope",
			want: Ref{ID: cid, Runtime: RuntimeDocker, Format: FormatKubernetesSystemd, PodUID: podUID}, ok: true,
		},
		{
			name: "a Kubernetes besteffort pod under the cgroupfs driver gives the pod uid",
			path: "/kubepods/besteffort/pod" + podUID + "/" + cid,
			want: Ref{ID: cid, Runtime: RuntimeCRI, Format: FormatKubernetesCgroupf, PodUID: podUID}, ok: true,
		},
		{
			name: "a Kubernetes burstable pod under the cgroupfs driver gives the pod uid",
			path: "/kubepods/burstable/pod" + podUID + "/" + cid,
			want: Ref{ID: cid, Runtime: RuntimeCRI, Format: FormatKubernetesCgroupf, PodUID: podUID}, ok: true,
		},
		{
			name: "a Kubernetes guaranteed pod under the cgroupfs driver sits directly below /kubepods",
			path: "/kubepods/pod" + podUID + "/" + cid,
			want: Ref{ID: cid, Runtime: RuntimeCRI, Format: FormatKubernetesCgroupf, PodUID: podUID}, ok: true,
		},
		{
			name: "a CRI-O container in a Kubernetes pod is read from crio-<id>.scope",
			path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podSD + ".slice/crio-" + cid + ".scope",
			want: Ref{ID: cid, Runtime: RuntimeCRIO, Format: FormatKubernetesSystemd, PodUID: podUID}, ok: true,
		},
		{
			name: "a CRI-O container outside Kubernetes is still a CRI-O container",
			path: "/machine.slice/crio-" + cid + ".scope",
			want: Ref{ID: cid, Runtime: RuntimeCRIO, Format: FormatCRIO}, ok: true,
		},
		{
			name: "the CRI-O conmon monitor is not a container",
			path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podSD + ".slice/crio-conmon-" + cid + ".scope",
			ok:   false,
		},
		{
			name: "a podman container is read from libpod-<id>.scope",
			path: "/machine.slice/libpod-" + cid + ".scope",
			want: Ref{ID: cid, Runtime: RuntimePodman, Format: FormatPodman}, ok: true,
		},
		{
			name: "an ECS task container on EC2 with cgroup v1 is read from /ecs/<task>/<id>",
			path: "/ecs/" + task + "/" + cid,
			want: Ref{ID: cid, Runtime: RuntimeDocker, Format: FormatECS, TaskID: task}, ok: true,
		},
		{
			name: "an ECS task container of an old UUID-named task is read from /ecs/<uuid>/<id>",
			path: "/ecs/e01d58a8-151b-40e8-bc01-22647b9ecfec/" + cid,
			want: Ref{ID: cid, Runtime: RuntimeDocker, Format: FormatECS, TaskID: "e01d58a8-151b-40e8-bc01-22647b9ecfec"}, ok: true,
		},
		{
			name: "an ECS task container on EC2 with cgroup v2 is read from the ecstasks slice",
			path: "/ecstasks.slice/ecstasks-" + task + ".slice/docker-" + cid + ".scope",
			want: Ref{ID: cid, Runtime: RuntimeDocker, Format: FormatECS, TaskID: task}, ok: true,
		},
		{
			name: "a Fargate container is read from /ecs/<task>/<task>-<n>",
			path: "/ecs/" + task + "/" + task + "-2886439692",
			want: Ref{ID: task + "-2886439692", Runtime: RuntimeContainerd, Format: FormatFargate, TaskID: task}, ok: true,
		},
		{
			name: "a Fargate path whose suffix names another task is not a container",
			path: "/ecs/" + task + "/0123456789abcdef0123456789abcdef-1",
			ok:   false,
		},
		{
			name: "a path seen from inside a cgroup namespace still parses by its last components",
			path: "/../../kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + podSD + ".slice/cri-containerd-" + cid + ".scope",
			want: Ref{ID: cid, Runtime: RuntimeContainerd, Format: FormatKubernetesSystemd, PodUID: podUID}, ok: true,
		},
		{name: "the root cgroup is the host", path: "/", ok: false},
		{name: "an empty path is the host", path: "", ok: false},
		{name: "a systemd service is the host", path: "/system.slice/sshd.service", ok: false},
		{name: "the ECS agent's own service is the host", path: "/system.slice/ecs.service", ok: false},
		{name: "a login session is the host", path: "/user.slice/user-1000.slice/session-3.scope", ok: false},
		{name: "systemd's init scope is the host", path: "/init.scope", ok: false},
		{name: "a two-level path below a systemd slice is not a containerd namespace", path: "/system.slice/containerd.service", ok: false},
		{
			name: "a pod-level slice without a container scope is not a container",
			path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podSD + ".slice",
			ok:   false,
		},
		{name: "a docker scope with a short id is not a container", path: "/system.slice/docker-abc.scope", ok: false},
		{name: "a deep path with a hex leaf and no known parent is not a container", path: "/a/b/c/" + cid, ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParsePath(tt.path)
			if ok != tt.ok {
				t.Fatalf("ParsePath(%q) ok = %v, want %v (got %+v)", tt.path, ok, tt.ok, got)
			}
			if ok && got != tt.want {
				t.Fatalf("ParsePath(%q) = %+v, want %+v", tt.path, got, tt.want)
			}
			id, runtime, ok2 := ContainerIDFromCgroupPath(tt.path)
			if ok2 != tt.ok || id != tt.want.ID || runtime != tt.want.Runtime {
				t.Fatalf("ContainerIDFromCgroupPath(%q) = %q, %q, %v", tt.path, id, runtime, ok2)
			}
		})
	}
}

func TestPathFromProcCgroup(t *testing.T) {
	tests := []struct {
		name string
		data string
		want string
	}{
		{
			name: "a cgroup v2 host gives the unified path",
			data: "0::/system.slice/docker-" + cid + ".scope\n",
			want: "/system.slice/docker-" + cid + ".scope",
		},
		{
			name: "a cgroup v1 host prefers the line that names a container",
			data: "12:pids:/docker/" + cid + "\n1:name=systemd:/docker/" + cid + "\n",
			want: "/docker/" + cid,
		},
		{
			name: "a hybrid host with a plain containerd container uses the unified line",
			data: "9:name=systemd:/default/t1\n4:memory:/default/t1\n0::/default/t1\n",
			want: "/default/t1",
		},
		{
			name: "a v1 host whose unified line is the root falls back to name=systemd",
			data: "4:memory:/process_api/x\n1:name=systemd:/user.slice/session-1.scope\n0::/\n",
			want: "/user.slice/session-1.scope",
		},
		{
			name: "a path containing a colon is kept whole",
			data: "0::/weird:name/x\n",
			want: "/weird:name/x",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PathFromProcCgroup([]byte(tt.data)); got != tt.want {
				t.Fatalf("PathFromProcCgroup = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPathResolver(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "kubepods.slice", "cri-containerd-"+cid+".scope")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ino := func(p string) uint64 {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Sys().(*syscall.Stat_t).Ino
	}
	r := NewPathResolver(root, time.Hour)
	tests := []struct {
		name string
		id   uint64
		want string
		ok   bool
	}{
		{name: "a cgroup directory's inode resolves to its path", id: ino(dir), want: "/kubepods.slice/cri-containerd-" + cid + ".scope", ok: true},
		{name: "the root's inode resolves to slash", id: ino(root), want: "/", ok: true},
		{name: "an unknown id does not resolve", id: 1<<62 + 7, ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := r.Resolve(tt.id)
			if ok != tt.ok || got != tt.want {
				t.Fatalf("Resolve(%d) = %q, %v; want %q, %v", tt.id, got, ok, tt.want, tt.ok)
			}
		})
	}
	t.Run("a cgroup created after the last walk is not found until the rate limit allows a new walk", func(t *testing.T) {
		late := filepath.Join(root, "late")
		if err := os.Mkdir(late, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, ok := r.Resolve(ino(late)); ok {
			t.Fatal("resolved before a new walk was allowed")
		}
		fast := NewPathResolver(root, 0)
		if got, ok := fast.Resolve(ino(late)); !ok || got != "/late" {
			t.Fatalf("Resolve = %q, %v; want /late", got, ok)
		}
	})
}
