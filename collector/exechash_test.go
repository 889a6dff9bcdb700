package collector

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// TestExecEventsCarryTheDigestAndInodeTimes runs binaries three times each
// under the real probes: the first exec hashes the file (the process may be
// gone by then: through its parent's root), the later ones take the digest
// from the cache by the record's inode facts, and every exec event carries
// the file's digest and its mtime and ctime as stat reports them (the
// kernel's ctime carries the multigrain flag once the test has stat'ed it).
func TestExecEventsCarryTheDigestAndInodeTimes(t *testing.T) {
	cp := startCapture(t, Config{EnabledEvents: []string{"exec", "fork", "exit"}})
	src, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	want := sha256Hex(src)
	dir := t.TempDir()
	plain := filepath.Join(dir, "vigil-hashed-true")
	if err := os.WriteFile(plain, src, 0o755); err != nil {
		t.Fatal(err)
	}
	// An overlay, as a container's root file system is.
	lower, upper, work, merged := filepath.Join(dir, "lower"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{lower, upper, work, merged} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(lower, "image-true"), src, 0o755); err != nil {
		t.Fatal(err)
	}
	overlay := unix.Mount("overlay", merged, "overlay", 0, "lowerdir="+lower+",upperdir="+upper+",workdir="+work) == nil
	if overlay {
		t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })
		if err := os.WriteFile(filepath.Join(merged, "dropped-true"), src, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name    string
		path    string
		overlay bool
	}{
		{"a file on the host's file system", plain, false},
		{"a file in an overlay's lower layer", filepath.Join(merged, "image-true"), true},
		{"a file written in an overlay's upper layer", filepath.Join(merged, "dropped-true"), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.overlay && !overlay {
				t.Skip("cannot mount overlay here")
			}
			var st unix.Stat_t
			if err := unix.Stat(c.path, &st); err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				cmd := exec.Command(c.path)
				cmd.Env = testEnv
				if err := cmd.Run(); err != nil {
					t.Fatal(err)
				}
				pid := uint32(cmd.Process.Pid)
				ev := cp.waitFor(t, "exec of "+c.path, func(ev *vigilv1.Event) bool {
					return ev.GetExec() != nil && ev.Process.GetPid() == pid
				})
				p := ev.Process
				if p.ExeSha256 != want {
					t.Errorf("exec %d: digest %q, want %s", i, p.ExeSha256, want)
				}
				if p.ExeMtime == nil || p.ExeMtime.AsTime().UnixNano() != st.Mtim.Nano() {
					t.Errorf("exec %d: mtime %v, want %d", i, p.ExeMtime, st.Mtim.Nano())
				}
				if p.ExeCtime == nil || p.ExeCtime.AsTime().UnixNano() != st.Ctim.Nano() {
					t.Errorf("exec %d: ctime %v, want %d (as stat reports it)", i, p.ExeCtime, st.Ctim.Nano())
				}
			}
		})
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
