package collector

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupPaths maps the kernel's cgroup ids to cgroup paths. A miss reads
// /proc/PID/cgroup of the process that produced the event; ids are inode
// numbers of the cgroup v2 directories, which never change for a cgroup.
// Only the reader goroutine uses it.
type cgroupPaths struct {
	procRoot   string
	cgroupRoot string
	// v1 is the controller whose hierarchy names cgroups on a cgroup v1
	// host (see cgroupV1Controller); its zero value means unified ids.
	v1     v1Controller
	byID   map[uint64]string
	misses func()
	// unknown holds, until when, the ids neither /proc nor the hierarchy
	// knew (a cgroup removed since its event, or one outside the sensor's
	// view): each failed lookup walks the hierarchy, and a burst of events
	// from a vanished cgroup would walk it per event.
	unknown map[uint64]time.Time
	now     func() time.Time
}

// unknownTTL is how long a cgroup id that could not be resolved is not
// looked up again.
const unknownTTL = 5 * time.Second

// maxUnknown bounds the unresolved ids remembered; the set is cleared when
// full.
const maxUnknown = 4096

func newCgroupPaths(procRoot, cgroupRoot string, v1 v1Controller, misses func()) *cgroupPaths {
	return &cgroupPaths{procRoot: procRoot, cgroupRoot: cgroupRoot, v1: v1, byID: make(map[uint64]string), misses: misses,
		unknown: make(map[uint64]time.Time), now: time.Now}
}

// v1Controller is the cgroup v1 controller the probes take cgroup ids from
// on a host without the unified hierarchy: there every task is in the
// unified root, so unified ids cannot tell containers apart.
type v1Controller struct {
	ok    bool
	index uint32 // enum cgroup_subsys_id
	name  string // "memory", ...
	dir   string // its hierarchy's mount, e.g. /sys/fs/cgroup/memory
}

// cgroupV1Controller picks that controller, or returns ok=false on a
// unified (cgroup v2) host. The kernel numbers subsystems in the order
// /proc/cgroups lists them.
func cgroupV1Controller(procRoot, cgroupRoot string) v1Controller {
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		return v1Controller{}
	}
	b, err := os.ReadFile(filepath.Join(procRoot, "cgroups"))
	if err != nil {
		return v1Controller{}
	}
	type row struct {
		index   uint32
		mounted bool
	}
	rows := map[string]row{}
	var index uint32
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || strings.HasPrefix(f[0], "#") {
			continue
		}
		rows[f[0]] = row{index: index, mounted: f[1] != "0" && f[3] == "1"}
		index++
	}
	for _, name := range []string{"memory", "pids", "cpu", "cpuacct", "blkio", "devices", "freezer"} {
		r, ok := rows[name]
		if !ok || !r.mounted {
			continue
		}
		if dir := v1Mount(cgroupRoot, name); dir != "" {
			return v1Controller{ok: true, index: r.index, name: name, dir: dir}
		}
	}
	return v1Controller{}
}

// v1Mount finds the directory a v1 controller is mounted on below
// cgroupRoot: its own name, or a joint mount such as cpu,cpuacct.
func v1Mount(cgroupRoot, name string) string {
	entries, err := os.ReadDir(cgroupRoot)
	if err != nil {
		return ""
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		for _, part := range strings.Split(e.Name(), ",") {
			if part == name {
				return filepath.Join(cgroupRoot, e.Name())
			}
		}
	}
	return ""
}

// lookup returns the path of cgroup id, learning it from pid on a miss.
func (c *cgroupPaths) lookup(id uint64, pid uint32) string {
	if p, ok := c.byID[id]; ok {
		return p
	}
	var now time.Time
	if until, ok := c.unknown[id]; ok {
		if now = c.now(); now.Before(until) {
			return ""
		}
		delete(c.unknown, id)
	}
	c.misses()
	// The process may be gone, and its pid even reused by another process
	// in another cgroup: keep what /proc says only if that cgroup's id is
	// the event's, else find the cgroup by its id.
	p := c.fromProc(pid)
	if p != "" && !c.isCgroup(id, p) {
		p = ""
	}
	if p == "" {
		p = c.fromID(id)
	}
	if p == "" {
		// Not cached: an event of this cgroup after unknownTTL tries again.
		if now.IsZero() {
			now = c.now()
		}
		if len(c.unknown) >= maxUnknown {
			clear(c.unknown)
		}
		c.unknown[id] = now.Add(unknownTTL)
		return ""
	}
	if len(c.byID) > 65536 {
		clear(c.byID) // cgroups come and go; start again rather than grow
	}
	c.byID[id] = p
	return p
}

// hierarchy is the mount of the cgroup hierarchy the probes take ids from.
func (c *cgroupPaths) hierarchy() string {
	if c.v1.ok {
		return c.v1.dir
	}
	if _, err := os.Stat(filepath.Join(c.cgroupRoot, "cgroup.controllers")); err != nil {
		return filepath.Join(c.cgroupRoot, "unified")
	}
	return c.cgroupRoot
}

// isCgroup reports whether cgroup path p has kernel id id.
func (c *cgroupPaths) isCgroup(id uint64, p string) bool {
	var st unix.Stat_t
	return unix.Stat(filepath.Join(c.hierarchy(), p), &st) == nil && st.Ino == id
}

// fromID finds the cgroup whose directory's inode is id in the hierarchy
// the probes take ids from, walking at most a few levels (containers sit at
// depth two to four).
func (c *cgroupPaths) fromID(id uint64) string {
	root := c.hierarchy()
	const maxDepth = 5
	var found string
	var walk func(dir, rel string, depth int)
	walk = func(dir, rel string, depth int) {
		if found != "" || depth > maxDepth {
			return
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			var st unix.Stat_t
			sub := filepath.Join(dir, e.Name())
			if unix.Stat(sub, &st) == nil && st.Ino == id {
				found = rel + "/" + e.Name()
				return
			}
			walk(sub, rel+"/"+e.Name(), depth+1)
			if found != "" {
				return
			}
		}
	}
	var st unix.Stat_t
	if unix.Stat(root, &st) == nil && st.Ino == id {
		return "/"
	}
	walk(root, "", 1)
	return found
}

// fromProc reads the process's cgroup path: the unified (v2) hierarchy when
// it places the process below the root, else the systemd (v1) one.
func (c *cgroupPaths) fromProc(pid uint32) string {
	b, err := os.ReadFile(filepath.Join(c.procRoot, strconv.FormatUint(uint64(pid), 10), "cgroup"))
	if err != nil {
		return ""
	}
	var unified, systemd, first string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if c.v1.ok && slices.Contains(strings.Split(parts[1], ","), c.v1.name) {
			// The hierarchy the probes' ids come from.
			return parts[2]
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			unified = parts[2]
		case parts[1] == "name=systemd":
			systemd = parts[2]
		case first == "":
			first = parts[2]
		}
	}
	switch {
	case unified != "" && unified != "/":
		return unified
	case systemd != "":
		return systemd
	case unified != "":
		return unified
	}
	return first
}

// cgroupID returns the kernel id of a cgroup path: the inode of its
// directory in the hierarchy the probes take ids from (the v1 controller's
// on a v1 host, else the unified one).
func cgroupID(cgroupRoot string, v1 v1Controller, p string) (uint64, error) {
	roots := []string{filepath.Join(cgroupRoot, "unified"), cgroupRoot}
	if v1.ok {
		roots = []string{v1.dir}
	}
	var firstErr error
	for _, root := range roots {
		var st unix.Stat_t
		err := unix.Stat(filepath.Join(root, p), &st)
		if err == nil {
			return st.Ino, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return 0, firstErr
}
