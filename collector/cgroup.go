package collector

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cgroupPaths maps the kernel's cgroup ids to cgroup paths. A miss reads
// /proc/PID/cgroup of the process that produced the event; ids are inode
// numbers of the cgroup v2 directories, which never change for a cgroup.
// Only the reader goroutine uses it.
type cgroupPaths struct {
	procRoot   string
	cgroupRoot string
	byID       map[uint64]string
	misses     func()
}

func newCgroupPaths(procRoot, cgroupRoot string, misses func()) *cgroupPaths {
	return &cgroupPaths{procRoot: procRoot, cgroupRoot: cgroupRoot, byID: make(map[uint64]string), misses: misses}
}

// lookup returns the path of cgroup id, learning it from pid on a miss.
func (c *cgroupPaths) lookup(id uint64, pid uint32) string {
	if p, ok := c.byID[id]; ok {
		return p
	}
	c.misses()
	p := c.fromProc(pid)
	if len(c.byID) > 65536 {
		clear(c.byID) // cgroups come and go; start again rather than grow
	}
	c.byID[id] = p
	return p
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

// cgroupID returns the kernel id of a cgroup path (the inode of its
// directory in the unified hierarchy).
func cgroupID(cgroupRoot, p string) (uint64, error) {
	var firstErr error
	for _, root := range []string{filepath.Join(cgroupRoot, "unified"), cgroupRoot} {
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
