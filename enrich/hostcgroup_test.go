package enrich

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/testutil"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// TestWeakCgroupWithoutContainerd puts real processes in real cgroups shaped
// like containerd's /<namespace>/<id> while containerd is not there to ask:
// the cgroup whose process sees the host's mounts is a host cgroup, the one
// whose process has its own mount namespace stays a (partial) container.
func TestWeakCgroupWithoutContainerd(t *testing.T) {
	testutil.RequirePrivileged(t)
	cfg := testConfig() // containerd disabled: no runtime answers
	hierarchy := cfg.CgroupRoot
	var st unix.Statfs_t
	if err := unix.Statfs(hierarchy, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		hierarchy = filepath.Join(hierarchy, "memory")
	}
	ns := "vigil-test-" + randomHex(t, 4)
	nsDir := filepath.Join(hierarchy, ns)
	if err := os.Mkdir(nsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(nsDir) })

	ownMounts, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	// place starts cmd in a new cgroup /<ns>/<id> and returns that path
	// once the process is in it and, for unshare, in its own namespace.
	place := func(id string, cmd *exec.Cmd, ownNamespace bool) string {
		t.Helper()
		dir := filepath.Join(nsDir, id)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			os.Remove(dir)
		})
		pid := strconv.Itoa(cmd.Process.Pid)
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(pid), 0o644); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(5 * time.Second); ownNamespace; {
			mnt, err := os.Readlink("/proc/" + pid + "/ns/mnt")
			if err == nil && mnt != ownMounts {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%v never left the host mount namespace", cmd.Args)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return "/" + ns + "/" + id
	}
	hostPath := place("host-"+randomHex(t, 4), exec.Command("sleep", "60"), false)
	containerPath := place("ctr-"+randomHex(t, 4), exec.Command("unshare", "--mount", "sleep", "60"), true)

	e, _ := startEnricher(t, cfg)
	ev := &vigilv1.Event{CgroupPath: hostPath}
	e.Enrich(ev)
	if !ev.Container.GetPartial() {
		t.Fatalf("first sight of %s: container %v, want a partial one until it is looked up", hostPath, ev.Container)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		ev := &vigilv1.Event{CgroupPath: hostPath}
		e.Enrich(ev)
		if ev.Container == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s, whose process shares the host's mounts, is still a container after 10s: %v", hostPath, ev.Container)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Several lookups of the other cgroup (retries back off from 20ms to
	// 200ms in testConfig) must all keep it a container.
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		ev := &vigilv1.Event{CgroupPath: containerPath}
		e.Enrich(ev)
		if ev.Container.GetId() == "" || !ev.Container.GetPartial() {
			t.Fatalf("%s, whose process has its own mount namespace: container %v, want the partial container", containerPath, ev.Container)
		}
	}
}
