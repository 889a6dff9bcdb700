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

// TestExecEventsCarryTheDigestAndInodeTimes runs one private binary three
// times under the real probes: the first exec hashes it (the process may be
// gone by then: through its parent's root), the later ones take the digest
// from the cache by the record's inode facts, and every exec event carries
// the file's digest and its mtime and ctime as stat reports them.
func TestExecEventsCarryTheDigestAndInodeTimes(t *testing.T) {
	cp := startCapture(t, Config{EnabledEvents: []string{"exec", "fork", "exit"}})
	bin := filepath.Join(t.TempDir(), "vigil-hashed-true")
	src, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(bin, &st); err != nil {
		t.Fatal(err)
	}
	want := sha256Hex(src)
	for i := range 3 {
		cmd := exec.Command(bin)
		cmd.Env = testEnv
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		pid := uint32(cmd.Process.Pid)
		ev := cp.waitFor(t, "exec of the hashed binary", func(ev *vigilv1.Event) bool {
			return ev.GetExec() != nil && ev.Process.GetPid() == pid
		})
		p := ev.Process
		if p.ExeSha256 != want {
			t.Errorf("exec %d: digest %q, want %s", i, p.ExeSha256, want)
		}
		if got := p.ExeMtime.AsTime().UnixNano(); p.ExeMtime == nil || got != st.Mtim.Nano() {
			t.Errorf("exec %d: mtime %v, want %d", i, p.ExeMtime, st.Mtim.Nano())
		}
		if got := p.ExeCtime.AsTime().UnixNano(); p.ExeCtime == nil || got != st.Ctim.Nano() {
			t.Errorf("exec %d: ctime %v, want %d (as stat reports it)", i, p.ExeCtime, st.Ctim.Nano())
		}
		if p.ExeInode != st.Ino {
			t.Errorf("exec %d: inode %d, want %d", i, p.ExeInode, st.Ino)
		}
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
