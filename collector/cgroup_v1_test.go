package collector

import (
	"golang.org/x/sys/unix"
	"os"
	"path/filepath"
	"testing"
)

func TestCgroupV1Controller(t *testing.T) {
	const procCgroups = "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t3\t1\t1\ncpu\t1\t1\t1\ncpuacct\t2\t1\t1\nblkio\t7\t1\t1\nmemory\t4\t5\t1\ndevices\t5\t40\t1\nfreezer\t6\t1\t1\nnet_cls\t0\t1\t1\npids\t8\t1\t1\n"
	tests := []struct {
		name    string
		cgroups string
		dirs    []string
		files   []string
		want    v1Controller
	}{
		{
			name:    "a v1 host uses the memory controller, numbered by its row in /proc/cgroups",
			cgroups: procCgroups, dirs: []string{"memory", "pids", "cpu"},
			want: v1Controller{ok: true, index: 4, name: "memory", dir: "memory"},
		},
		{
			name:    "without memory the next controller in order is used, even in a joint mount",
			cgroups: procCgroups, dirs: []string{"cpu,cpuacct", "devices"},
			want: v1Controller{ok: true, index: 1, name: "cpu", dir: "cpu,cpuacct"},
		},
		{
			name:    "a unified host uses unified ids",
			cgroups: procCgroups, dirs: []string{"memory"}, files: []string{"cgroup.controllers"},
			want: v1Controller{},
		},
		{
			name:    "a controller listed but not mounted is not used",
			cgroups: "#subsys_name\thierarchy\tnum_cgroups\tenabled\nmemory\t0\t1\t1\npids\t2\t1\t1\n", dirs: []string{"pids"},
			want: v1Controller{ok: true, index: 1, name: "pids", dir: "pids"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc, root := t.TempDir(), t.TempDir()
			if err := os.WriteFile(filepath.Join(proc, "cgroups"), []byte(tt.cgroups), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, d := range tt.dirs {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range tt.files {
				if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got := cgroupV1Controller(proc, root)
			want := tt.want
			if want.ok {
				want.dir = filepath.Join(root, want.dir)
			}
			if got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestCgroupPathLookup(t *testing.T) {
	proc, root := t.TempDir(), t.TempDir()
	mem := filepath.Join(root, "memory")
	for _, d := range []string{"default/web", "default/db", "system.slice"} {
		if err := os.MkdirAll(filepath.Join(mem, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ino := func(rel string) uint64 {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(mem, rel), &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	writeCgroup := func(pid, content string) {
		if err := os.MkdirAll(filepath.Join(proc, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, pid, "cgroup"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCgroup("10", "4:memory:/default/web\n1:name=systemd:/default/web\n0::/\n")
	// Pid 11 was reused by a host process after the container process exited.
	writeCgroup("11", "4:memory:/system.slice\n1:name=systemd:/system.slice\n0::/\n")
	v1 := v1Controller{ok: true, index: 4, name: "memory", dir: mem}
	tests := []struct {
		name string
		id   uint64
		pid  uint32
		want string
	}{
		{"a live process's cgroup comes from /proc", ino("default/web"), 10, "/default/web"},
		{"a reused pid does not lend its cgroup: the id is looked up instead", ino("default/db"), 11, "/default/db"},
		{"a process that is gone is found by its cgroup id", ino("default/db"), 99, "/default/db"},
		{"an unknown id yields nothing rather than a wrong path", 1 << 60, 99, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCgroupPaths(proc, root, v1, func() {})
			if got := c.lookup(tt.id, tt.pid); got != tt.want {
				t.Errorf("lookup(%d, %d) = %q, want %q", tt.id, tt.pid, got, tt.want)
			}
		})
	}
}
