package deploy_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"

	"github.com/vigilsec/vigil/internal/testutil"
)

// containerPrivileges is what a deployment artefact grants the sensor
// container, in runtime terms.
type containerPrivileges struct {
	capabilities []string // CAP_* names: bounding, effective and permitted
	hostPID      bool
	hostNetwork  bool
	readOnlyRoot bool
	noNewPrivs   bool
	// runtimeDefaultSeccomp applies containerd's default seccomp profile
	// (the chart's seccompProfile RuntimeDefault) instead of none.
	runtimeDefaultSeccomp bool
	binds                 []bind
}

type bind struct {
	host, container string
	readOnly        bool
}

// chartSensorPrivileges renders the chart with values and reads the sensor
// container's privileges from the DaemonSet, the way the kubelet and
// containerd turn them into a runtime spec.
func chartSensorPrivileges(t *testing.T, values map[string]any) containerPrivileges {
	t.Helper()
	ds, _ := renderChartWorkloads(t, values)
	spec := ds.Spec.Template.Spec
	c := spec.Containers[0]
	sc := c.SecurityContext
	p := containerPrivileges{
		hostPID:               spec.HostPID,
		hostNetwork:           spec.HostNetwork,
		readOnlyRoot:          sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem,
		noNewPrivs:            sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation,
		runtimeDefaultSeccomp: sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault,
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Fatal("chart made the sensor privileged")
	}
	// Kubernetes starts from the runtime's default set, removes drop and
	// adds add; the chart drops ALL.
	for _, cp := range sc.Capabilities.Add {
		p.capabilities = append(p.capabilities, "CAP_"+string(cp))
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		v := volumes[m.Name]
		switch {
		case v.HostPath != nil:
			p.binds = append(p.binds, bind{v.HostPath.Path, m.MountPath, m.ReadOnly})
		case v.EmptyDir != nil:
			p.binds = append(p.binds, bind{"", m.MountPath, m.ReadOnly})
		}
		// Secrets (the CA) are not needed without a backend.
	}
	return p
}

// ecsSensorPrivileges reads the same from the ECS daemon task definition,
// the way the ECS agent turns it into a Docker container.
func ecsSensorPrivileges(t *testing.T) containerPrivileges {
	t.Helper()
	raw, err := os.ReadFile("ecs/sensor-daemon.json")
	if err != nil {
		t.Fatal(err)
	}
	td := decodeTaskDefinition(t, []byte(expandPlaceholders(t, string(raw))))
	c := container(td, "sensor")
	p := containerPrivileges{
		hostPID:      td.PidMode == "host",
		hostNetwork:  td.NetworkMode == "host",
		readOnlyRoot: aws.ToBool(c.ReadonlyRootFilesystem),
	}
	if aws.ToBool(c.Privileged) {
		t.Fatal("task definition made the sensor privileged")
	}
	if len(c.LinuxParameters.Capabilities.Drop) != 1 || c.LinuxParameters.Capabilities.Drop[0] != "ALL" {
		t.Fatal("the harness models drop ALL only")
	}
	for _, cp := range c.LinuxParameters.Capabilities.Add {
		p.capabilities = append(p.capabilities, "CAP_"+cp)
	}
	hostPaths := map[string]string{}
	for _, v := range td.Volumes {
		if v.Host != nil {
			hostPaths[aws.ToString(v.Name)] = aws.ToString(v.Host.SourcePath)
		}
	}
	for _, m := range c.MountPoints {
		if h, ok := hostPaths[aws.ToString(m.SourceVolume)]; ok {
			p.binds = append(p.binds, bind{h, aws.ToString(m.ContainerPath), aws.ToBool(m.ReadOnly)})
		}
	}
	return p
}

// buildSensor builds cmd/sensor the way the image does.
func buildSensor(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "vigil-sensor")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/sensor")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build sensor: %v\n%s", err, b)
	}
	return out
}

// ociSpec is the runtime spec containerd or Docker would give the container:
// their default mounts, masked and read-only paths, no seccomp (the chart
// and the task definition ask for Unconfined and Docker's default
// respectively; the capability set is what is under test here).
func ociSpec(p containerPrivileges, scratch string, args []string) *specs.Spec {
	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
	}
	for i, b := range p.binds {
		src := b.host
		if src == "" {
			src = filepath.Join(scratch, fmt.Sprintf("emptydir-%d", i))
			os.MkdirAll(src, 0o755)
		}
		opts := []string{"rbind", "rprivate"}
		if b.readOnly {
			opts = append(opts, "ro")
		} else {
			opts = append(opts, "rw")
		}
		mounts = append(mounts, specs.Mount{Destination: b.container, Type: "bind", Source: src, Options: opts})
	}
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.UTSNamespace}, {Type: specs.IPCNamespace}}
	if !p.hostPID {
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace})
	}
	if !p.hostNetwork {
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	spec := &specs.Spec{
		Version:  specs.Version,
		Hostname: "vigil-sensor",
		Root:     &specs.Root{Path: "rootfs", Readonly: p.readOnlyRoot},
		Process: &specs.Process{
			User:            specs.User{UID: 0, GID: 0},
			Args:            append([]string{"/usr/local/bin/vigil-sensor"}, args...),
			Env:             []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
			Cwd:             "/",
			NoNewPrivileges: p.noNewPrivs,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: p.capabilities, Effective: p.capabilities, Permitted: p.capabilities,
			},
		},
		Mounts: mounts,
		Linux: &specs.Linux{
			Namespaces: ns,
			MaskedPaths: []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
				"/sys/devices/virtual/powercap"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	if p.runtimeDefaultSeccomp {
		// containerd builds its default profile from the process's
		// capabilities: bpf() only with CAP_BPF, perf_event_open() only
		// with CAP_PERFMON, and so on.
		spec.Linux.Seccomp = seccomp.DefaultProfile(spec)
	}
	return spec
}

// runSensorContainer starts the sensor under runc with the spec, runs a
// marker command on the host until the sensor prints its exec, and reports
// whether it did within the timeout, with the sensor's log.
func runSensorContainer(t *testing.T, runc, sensor string, p containerPrivileges, timeout time.Duration) (sawMarker bool, log string) {
	t.Helper()
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	for _, d := range []string{"usr/local/bin", "proc", "dev", "sys", "etc"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range p.binds {
		os.MkdirAll(filepath.Join(rootfs, b.container), 0o755)
		if fi, err := os.Stat(b.host); err == nil && !fi.IsDir() {
			// A socket or file mount point must be a file.
			os.Remove(filepath.Join(rootfs, b.container))
			os.WriteFile(filepath.Join(rootfs, b.container), nil, 0o644)
		}
	}
	bin, err := os.ReadFile(sensor)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "usr/local/bin/vigil-sensor"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	spec := ociSpec(p, t.TempDir(), []string{"--stdout"})
	marker := fmt.Sprintf("vigil-deploy-marker-%d", time.Now().UnixNano())
	out := &markerWriter{marker: []byte(marker), found: make(chan struct{})}
	var stderr bytes.Buffer
	ctr := testutil.StartBundle(t, runc, bundle, "vigil-deploy", spec, out, &stderr)
	defer ctr.Stop()
	exited := ctr.Exited

	deadline := time.After(timeout)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-out.found:
			return true, stderr.String()
		case <-exited:
			select {
			case <-out.found:
				return true, stderr.String()
			default:
			}
			return false, "sensor exited: " + ctr.ExitState() + "\n" + stderr.String()
		case <-deadline:
			return false, stderr.String()
		case <-tick.C:
			exec.Command("/bin/true", marker).Run()
		}
	}
}

// markerWriter receives the sensor's JSON lines and closes found once the
// marker appears; it keeps only the unfinished last line between writes.
type markerWriter struct {
	mu      sync.Mutex
	marker  []byte
	partial []byte
	found   chan struct{}
	done    bool
}

func (w *markerWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	buf := append(w.partial, p...)
	if bytes.Contains(buf, w.marker) {
		w.done = true
		close(w.found)
		w.partial = nil
		return len(p), nil
	}
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		buf = buf[i+1:]
	}
	w.partial = append([]byte(nil), buf...)
	return len(p), nil
}

// TestSensorRunsWithTheShippedPrivileges starts the real sensor in a real
// container (runc, as containerd and Docker use it) holding exactly the
// privileges and host mounts that the Helm chart and the ECS task definition
// grant, and checks that it loads its probes and sees a process started on
// the host. The last case takes CAP_BPF away to show the check can fail.
func TestSensorRunsWithTheShippedPrivileges(t *testing.T) {
	testutil.RequirePrivileged(t)
	runc, err := exec.LookPath("runc")
	if err != nil {
		testutil.SkipOrFail(t, "runc not installed (apt-get install runc)")
	}
	if _, err := os.Stat("../cmd/sensor"); err != nil {
		testutil.SkipOrFail(t, "cmd/sensor is not in the tree yet")
	}
	sensor := buildSensor(t)
	// Two host paths stand in for the node's: containerd's socket is a
	// private containerd's (the mount is part of what the artefacts ask
	// for, so it must exist), and the spool a temporary directory (the
	// kubelet and the ECS agent create it on a node).
	socket, _ := testutil.StartContainerd(t)
	held := boundingSet(t)
	onNode := func(p containerPrivileges) containerPrivileges {
		binds := append([]bind(nil), p.binds...)
		for i, b := range binds {
			switch b.host {
			case "/run/containerd/containerd.sock":
				binds[i].host = socket
			case "/var/lib/vigil/spool":
				binds[i].host = t.TempDir()
			}
		}
		p.binds = binds
		// A container cannot get a capability its runtime lacks. Sandboxes
		// like the one CI runs in may withhold CAP_SYS_RESOURCE, which the
		// sensor needs only for RLIMIT_MEMLOCK on kernels before 5.11.
		var caps []string
		for _, c := range p.capabilities {
			if held[c] {
				caps = append(caps, c)
			} else {
				t.Logf("this machine's bounding set lacks %s; trying the rest without it", c)
			}
		}
		p.capabilities = caps
		return p
	}

	withoutBPF := chartSensorPrivileges(t, nil)
	withoutBPF.capabilities = slicesDelete(withoutBPF.capabilities, "CAP_BPF")

	tests := []struct {
		name string
		priv containerPrivileges
		want bool
		// wantLog is what the sensor must say when it is refused.
		wantLog string
	}{
		{
			name: "the chart's default DaemonSet privileges are enough to capture host execs",
			priv: chartSensorPrivileges(t, nil),
			want: true,
		},
		{
			name: "the chart's SYS_ADMIN switch for old kernels is enough to capture host execs",
			priv: chartSensorPrivileges(t, map[string]any{"sensor": map[string]any{"useSysAdmin": true}}),
			want: true,
		},
		{
			name: "the chart with seccompProfile RuntimeDefault (containerd's profile) still captures host execs",
			priv: chartSensorPrivileges(t, map[string]any{"sensor": map[string]any{"seccompProfile": map[string]any{"type": "RuntimeDefault"}}}),
			want: true,
		},
		{
			name: "the ECS daemon task definition's privileges are enough to capture host execs",
			priv: ecsSensorPrivileges(t),
			want: true,
		},
		{
			name:    "without CAP_BPF the sensor captures nothing, so the check is real",
			priv:    withoutBPF,
			want:    false,
			wantLog: "operation not permitted",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := 60 * time.Second
			if !tt.want {
				timeout = 15 * time.Second
			}
			saw, log := runSensorContainer(t, runc, sensor, onNode(tt.priv), timeout)
			if strings.Contains(log, "runc run failed") {
				t.Fatalf("the container did not start, so the privileges were never tried:\n%s", tailLines(log, 30))
			}
			t.Logf("sensor log:\n%s", tailLines(log, 8))
			if tt.wantLog != "" && !strings.Contains(log, tt.wantLog) {
				t.Errorf("the sensor's log does not say %q", tt.wantLog)
			}
			if saw != tt.want {
				t.Errorf("sensor with %v saw the host exec = %v, want %v; its log:\n%s", tt.priv.capabilities, saw, tt.want, tailLines(log, 30))
			}
		})
	}
}

// capNames are the capability numbers of capabilities(7) the sensor's
// artefacts use.
var capNames = map[int]string{2: "CAP_DAC_READ_SEARCH", 19: "CAP_SYS_PTRACE", 21: "CAP_SYS_ADMIN", 24: "CAP_SYS_RESOURCE", 38: "CAP_PERFMON", 39: "CAP_BPF"}

// boundingSet reads which of those this process may hand to a container.
func boundingSet(t *testing.T) map[string]bool {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var mask uint64
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%x", &mask); err != nil {
				t.Fatal(err)
			}
		}
	}
	held := map[string]bool{}
	for bit, name := range capNames {
		held[name] = mask&(1<<bit) != 0
	}
	return held
}

func slicesDelete(s []string, v string) []string {
	var out []string
	for _, x := range s {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
