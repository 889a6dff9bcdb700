package collector

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestAnUnresolvedCgroupIsNotWalkedAgainForAWhile(t *testing.T) {
	proc, root := t.TempDir(), t.TempDir()
	mem := filepath.Join(root, "memory")
	if err := os.MkdirAll(mem, 0o755); err != nil {
		t.Fatal(err)
	}
	v1 := v1Controller{ok: true, index: 4, name: "memory", dir: mem}
	misses := 0
	c := newCgroupPaths(proc, root, v1, func() { misses++ })
	clock := time.Unix(1_700_000_000, 0)
	c.now = func() time.Time { return clock }
	const gone = 1 << 60
	steps := []struct {
		name       string
		advance    time.Duration
		wantMisses int
	}{
		{"the first event of an unknown cgroup looks it up", 0, 1},
		{"the next event of it within the ttl does not", time.Second, 1},
		{"one after the ttl looks it up again", unknownTTL, 2},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clock = clock.Add(s.advance)
			if got := c.lookup(gone, 99); got != "" {
				t.Errorf("lookup = %q, want nothing", got)
			}
			if misses != s.wantMisses {
				t.Errorf("%d lookups, want %d", misses, s.wantMisses)
			}
		})
	}
	t.Run("a cgroup that appears is found once its ttl has passed", func(t *testing.T) {
		dir := filepath.Join(mem, "late")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Stat(dir, &st); err != nil {
			t.Fatal(err)
		}
		if got := c.lookup(st.Ino, 99); got != "/late" {
			t.Fatalf("lookup of a new cgroup = %q, want /late", got)
		}
	})
}
