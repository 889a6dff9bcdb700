package proctable

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/testutil"
)

// TestSeededOverlayExecutablesKnowTheirLayer mounts a real overlay (as a
// container runtime does) and runs one binary from the image (lower) layer
// and one written after the mount (upper layer).
func TestSeededOverlayExecutablesKnowTheirLayer(t *testing.T) {
	testutil.RequirePrivileged(t)
	base := t.TempDir()
	lower, upper, work, merged := filepath.Join(base, "lower"), filepath.Join(base, "upper"),
		filepath.Join(base, "work"), filepath.Join(base, "merged")
	for _, d := range []string{lower, upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, sleepBin, filepath.Join(lower, "from-image"), 0o755)
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		testutil.SkipOrFail(t, "mount overlay: "+err.Error())
	}
	t.Cleanup(func() { _ = unix.Unmount(merged, unix.MNT_DETACH) })
	copyFile(t, sleepBin, filepath.Join(merged, "dropped"), 0o755)

	cases := []struct {
		name  string
		bin   string
		upper bool
	}{
		{"a binary from the lower (image) layer is not upper", "from-image", false},
		{"a binary written into the merged tree is upper", "dropped", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(merged, c.bin)
			cmd := exec.Command(path, "30")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			// Wait for the exec to show in /proc before looking.
			deadline := time.Now().Add(5 * time.Second)
			for {
				if link, _ := os.Readlink(filepath.Join("/proc", itoa(uint32(cmd.Process.Pid)), "exe")); link == path {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("child never exec'd")
				}
				time.Sleep(5 * time.Millisecond)
			}
			tb := newTable(t, Config{})
			p := tb.Lookup(uint32(cmd.Process.Pid))
			if p == nil {
				t.Fatal("child not found")
			}
			if p.ExeUpperLayer != c.upper {
				t.Errorf("%s: upper layer %v, want %v", p.ExePath, p.ExeUpperLayer, c.upper)
			}
		})
	}
}
