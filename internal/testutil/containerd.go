package testutil

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// RequireContainerd skips (or fails, under VIGIL_REQUIRE_PRIVILEGED=1) a
// test that needs root, containerd, ctr, runc and busybox-static. Install
// them with: apt-get install containerd runc busybox-static.
func RequireContainerd(t testing.TB) {
	t.Helper()
	RequirePrivileged(t)
	for _, bin := range []string{"containerd", "ctr", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			SkipOrFail(t, bin+" not installed (apt-get install containerd runc)")
		}
	}
	if _, err := busyboxPath(); err != nil {
		SkipOrFail(t, "busybox-static not installed (apt-get install busybox-static)")
	}
}

// StartContainerd starts a private containerd for one test: its own config,
// root and state directories and socket in a temporary directory, the CRI
// plugin off (tests make k8s.io containers with ctr and CRI labels). It
// returns the socket path and a cleanup that stops containerd and removes
// the directory; the cleanup also runs at the end of the test.
func StartContainerd(t testing.TB) (socket string, cleanup func()) {
	t.Helper()
	RequireContainerd(t)
	// A short base keeps the socket path under the 108-byte sun_path limit.
	dir, err := os.MkdirTemp("", "vigil-ctrd-")
	if err != nil {
		t.Fatalf("containerd temp dir: %v", err)
	}
	socket = filepath.Join(dir, "containerd.sock")
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  address = %q
  level = "info"

[plugins."io.containerd.runtime.v2.task"]
  platforms = ["linux/amd64", "linux/arm64"]
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), socket, socket+".ttrpc", filepath.Join(dir, "debug.sock"))
	configPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		t.Fatalf("write containerd config: %v", err)
	}
	logPath := filepath.Join(dir, "containerd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("containerd log: %v", err)
	}
	cmd := exec.Command("containerd", "--config", configPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so a signal to the test does not reach it
	// before the cleanup does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()

	var once sync.Once
	cleanup = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
			logFile.Close()
			if t.Failed() {
				if b, err := os.ReadFile(logPath); err == nil {
					t.Logf("containerd log:\n%s", tail(b, 4000))
				}
			}
			_ = os.RemoveAll(dir)
		})
	}
	t.Cleanup(cleanup)

	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("containerd exited at start:\n%s", tail(b, 4000))
		default:
		}
		if _, err := os.Stat(socket); err == nil {
			if err := exec.Command("ctr", "--address", socket, "version").Run(); err == nil {
				return socket, cleanup
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("containerd did not answer on %s within 20s:\n%s", socket, tail(b, 4000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ContainerOptions describe a container for RunContainer.
type ContainerOptions struct {
	// Socket is the containerd socket (from StartContainerd). Required.
	Socket string
	// Namespace is the containerd namespace; "default" when empty.
	Namespace string
	// ID is the container id; a unique "vigil-test-N" when empty.
	ID string
	// Labels go on the container (ctr run --label).
	Labels map[string]string
	// Rootfs is the root directory; a fresh busybox rootfs when empty.
	Rootfs string
	// Command runs in the container; "/bin/sleep 3600" when empty. Use
	// absolute paths: the rootfs has no PATH lookup configured.
	Command []string
	// CgroupPath overrides the cgroup (ctr run --cgroup), for example a
	// kubepods path; containerd's default is /<namespace>/<id>.
	CgroupPath string
	// Privileged runs the container with --privileged.
	Privileged bool
	// Mounts are host paths bind-mounted read-only into the container,
	// keyed by their path inside it (a Kubernetes hostPath volume).
	Mounts map[string]string
}

// Container is a running test container.
type Container struct {
	ID        string
	Namespace string
	Rootfs    string
	// Pid is the host pid of the container's first process.
	Pid int
}

var containerSeq atomic.Int64

// RunContainer starts a detached container with ctr and waits until its
// task runs; the container is killed and removed at the end of the test.
func RunContainer(t testing.TB, opts ContainerOptions) *Container {
	t.Helper()
	if opts.Socket == "" {
		t.Fatal("RunContainer: Socket is required")
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.ID == "" {
		opts.ID = fmt.Sprintf("vigil-test-%d-%d", os.Getpid(), containerSeq.Add(1))
	}
	if opts.Rootfs == "" {
		opts.Rootfs = BusyboxRootfs(t)
	}
	if len(opts.Command) == 0 {
		opts.Command = []string{"/bin/sleep", "3600"}
	}
	ctr := func(args ...string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		full := append([]string{"--address", opts.Socket, "--namespace", opts.Namespace}, args...)
		return exec.CommandContext(ctx, "ctr", full...).CombinedOutput()
	}

	args := []string{"run", "--detach", "--rootfs"}
	for k, v := range opts.Labels {
		args = append(args, "--label", k+"="+v)
	}
	if opts.CgroupPath != "" {
		args = append(args, "--cgroup", opts.CgroupPath)
	}
	if opts.Privileged {
		args = append(args, "--privileged")
	}
	for dst, src := range opts.Mounts {
		args = append(args, "--mount", "type=bind,src="+src+",dst="+dst+",options=rbind:ro")
	}
	args = append(args, opts.Rootfs, opts.ID)
	args = append(args, opts.Command...)
	if out, err := ctr(args...); err != nil {
		t.Fatalf("ctr run %s: %v\n%s", opts.ID, err, out)
	}
	t.Cleanup(func() {
		_, _ = ctr("task", "kill", "--signal", "SIGKILL", opts.ID)
		// The task needs a moment to stop before it can be deleted.
		for i := 0; i < 50; i++ {
			if _, err := ctr("task", "delete", "--force", opts.ID); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		_, _ = ctr("container", "delete", opts.ID)
	})

	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := ctr("task", "list")
		if err == nil {
			for _, line := range strings.Split(string(out), "\n") {
				f := strings.Fields(line)
				if len(f) >= 3 && f[0] == opts.ID && f[2] == "RUNNING" {
					pid, err := strconv.Atoi(f[1])
					if err == nil && pid > 0 {
						return &Container{ID: opts.ID, Namespace: opts.Namespace, Rootfs: opts.Rootfs, Pid: pid}
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s did not reach RUNNING: %v\n%s", opts.ID, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Exec runs a command inside the container (ctr task exec) and returns its
// combined output.
func (c *Container) Exec(t testing.TB, socket string, cmd ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"--address", socket, "--namespace", c.Namespace, "task", "exec",
		"--exec-id", fmt.Sprintf("exec-%d", containerSeq.Add(1)), c.ID}, cmd...)
	out, err := exec.CommandContext(ctx, "ctr", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr task exec %s %v: %v\n%s", c.ID, cmd, err, out)
	}
	return string(out)
}

// BusyboxRootfs makes a minimal root file system in a temporary directory:
// busybox-static with a symlink for each applet in /bin, and the empty
// directories runc mounts onto.
func BusyboxRootfs(t testing.TB) string {
	t.Helper()
	src, err := busyboxPath()
	if err != nil {
		SkipOrFail(t, "busybox-static not installed (apt-get install busybox-static)")
	}
	root := t.TempDir()
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc", "root", "run"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("read busybox: %v", err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatalf("write busybox: %v", err)
	}
	out, err := exec.Command(src, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatalf("link applet %s: %v", applet, err)
		}
	}
	etc := map[string]string{
		"passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
		"group":  "root:x:0:\nnogroup:x:65534:\n",
	}
	for name, content := range etc {
		if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// ProcCgroup returns the contents of /proc/PID/cgroup.
func ProcCgroup(t testing.TB, pid int) []byte {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatalf("read cgroup of pid %d: %v", pid, err)
	}
	return b
}

func busyboxPath() (string, error) {
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", os.ErrNotExist
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return bytes.TrimSpace(b)
}
