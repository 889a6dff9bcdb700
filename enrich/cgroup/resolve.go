package cgroup

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// PathResolver maps kernel cgroup ids (the inode number of the cgroup's
// directory, as bpf_get_current_cgroup_id returns on cgroup v2) back to
// cgroup paths, for collectors that only see the id. It walks the cgroup
// file system on a miss and caches what it found; walks are rate-limited
// so a stream of unknown ids cannot turn into a stream of walks.
type PathResolver struct {
	root        string
	minInterval time.Duration

	mu       sync.Mutex
	byID     map[uint64]string
	lastWalk time.Time
}

// NewPathResolver returns a resolver for the hierarchy mounted at or below
// mountRoot (normally /sys/fs/cgroup): the unified hierarchy when the root
// itself is cgroup2, else its "unified" mount, else the name=systemd one.
// minInterval bounds how often a miss may trigger a new walk.
func NewPathResolver(mountRoot string, minInterval time.Duration) *PathResolver {
	return &PathResolver{
		root:        hierarchyRoot(mountRoot),
		minInterval: minInterval,
		byID:        make(map[uint64]string),
	}
}

// Root is the directory the resolver walks.
func (r *PathResolver) Root() string { return r.root }

// Resolve returns the cgroup path (relative to the hierarchy root, with a
// leading slash, as in /proc/PID/cgroup) of cgroup id.
func (r *PathResolver) Resolve(id uint64) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.byID[id]; ok {
		return p, true
	}
	if !r.lastWalk.IsZero() && time.Since(r.lastWalk) < r.minInterval {
		return "", false
	}
	r.walkLocked()
	p, ok := r.byID[id]
	return p, ok
}

// walkLocked rebuilds the id map from the file system; deleted cgroups
// drop out because the map is rebuilt rather than patched.
func (r *PathResolver) walkLocked() {
	r.lastWalk = time.Now()
	byID := make(map[uint64]string, len(r.byID))
	_ = filepath.WalkDir(r.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			// Cgroups vanish while we walk; skip what is gone.
			if d != nil && d.IsDir() && !errors.Is(err, fs.ErrNotExist) {
				return fs.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		rel, err := filepath.Rel(r.root, path)
		if err != nil {
			return nil
		}
		if rel == "." {
			rel = ""
		}
		byID[st.Ino] = "/" + rel
		return nil
	})
	r.byID = byID
}

// hierarchyRoot picks the directory whose inode numbers are cgroup ids.
func hierarchyRoot(mountRoot string) string {
	if isCgroup2(mountRoot) {
		return mountRoot
	}
	for _, sub := range []string{"unified", "systemd"} {
		p := filepath.Join(mountRoot, sub)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return mountRoot
}

func isCgroup2(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC
}
