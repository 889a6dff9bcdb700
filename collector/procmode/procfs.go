package procmode

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// readProcFile reads a /proc file with open, read and close only. os.ReadFile
// also stats the file and tries to register it with the runtime's poller,
// which doubles the system calls for the small files the tracer reads while
// a tracee waits.
func readProcFile(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 2048)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// procStat is what the collector reads from /proc/PID/stat and status.
type procStat struct {
	comm                 string
	state                byte
	ppid, sid            uint32
	tty                  uint32
	flags                uint64
	startTicks           uint64
	tgid, nsPid          uint32
	uid, gid, euid, egid uint32
	capEff               uint64
}

// pfKthread is PF_KTHREAD in the stat flags field: kernel threads cannot be
// traced and have nothing to report.
const pfKthread = 0x00200000

func pidDir(procRoot string, pid uint32) string {
	return procRoot + "/" + strconv.FormatUint(uint64(pid), 10)
}

// readStat reads /proc/PID/stat. comm may hold spaces and parentheses, so
// fields are counted from the last ')'.
func readStat(procRoot string, pid uint32) (procStat, error) {
	b, err := readProcFile(pidDir(procRoot, pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

func parseStat(b []byte) (procStat, error) {
	var s procStat
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return s, errors.New("stat: no comm")
	}
	s.comm = string(b[open+1 : closing])
	f := strings.Fields(string(b[closing+1:]))
	// f[0] is field 3 (state); field N is f[N-3].
	if len(f) < 20 {
		return s, fmt.Errorf("stat: %d fields after comm, want 20", len(f))
	}
	s.state = f[0][0]
	ppid, err1 := strconv.ParseUint(f[1], 10, 32)
	sid, err2 := strconv.ParseUint(f[3], 10, 32)
	tty, err3 := strconv.ParseInt(f[4], 10, 64)
	flags, err4 := strconv.ParseUint(f[6], 10, 64)
	start, err5 := strconv.ParseUint(f[19], 10, 64)
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return s, fmt.Errorf("stat: %w", err)
	}
	s.ppid, s.sid, s.tty, s.flags, s.startTicks = uint32(ppid), uint32(sid), uint32(tty), flags, start
	return s, nil
}

// readStatus adds ids, the thread group, the namespace pid and the
// effective capabilities from /proc/PID/status to s.
func readStatus(procRoot string, pid uint32, s *procStat) error {
	b, err := readProcFile(pidDir(procRoot, pid) + "/status")
	if err != nil {
		return err
	}
	parseStatus(b, s)
	if s.tgid == 0 {
		s.tgid = pid
	}
	if s.nsPid == 0 {
		s.nsPid = pid
	}
	return nil
}

func parseStatus(b []byte, s *procStat) {
	for line := range strings.SplitSeq(string(b), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		if len(f) == 0 {
			continue
		}
		switch key {
		case "Tgid":
			s.tgid = parseU32(f[0])
		case "Uid":
			if len(f) >= 2 {
				s.uid, s.euid = parseU32(f[0]), parseU32(f[1])
			}
		case "Gid":
			if len(f) >= 2 {
				s.gid, s.egid = parseU32(f[0]), parseU32(f[1])
			}
		case "CapEff":
			s.capEff, _ = strconv.ParseUint(f[0], 16, 64)
		case "NSpid":
			// Outermost first; the last is the pid the process sees.
			s.nsPid = parseU32(f[len(f)-1])
		}
	}
}

func parseU32(s string) uint32 {
	v, _ := strconv.ParseUint(s, 10, 32)
	return uint32(v)
}

// readLoginUID returns /proc/PID/loginuid, or 4294967295 (unset).
func readLoginUID(procRoot string, pid uint32) uint32 {
	b, err := readProcFile(pidDir(procRoot, pid) + "/loginuid")
	if err != nil {
		return ^uint32(0)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		return ^uint32(0)
	}
	return uint32(v)
}

// splitCmdline splits NUL-separated arguments, keeping at most max bytes.
func splitCmdline(b []byte, max int) ([]string, bool) {
	if len(b) == 0 {
		return nil, false
	}
	truncated := false
	if max > 0 && len(b) > max {
		b, truncated = b[:max], true
	}
	b = bytes.TrimSuffix(b, []byte{0})
	return strings.Split(string(b), "\x00"), truncated
}

// envValue finds NAME=value in a NUL-separated environment block.
func envValue(env []byte, name string) string {
	for kv := range bytes.SplitSeq(env, []byte{0}) {
		if len(kv) > len(name) && kv[len(name)] == '=' && string(kv[:len(name)]) == name {
			return string(kv[len(name)+1:])
		}
	}
	return ""
}

// kernelDev turns stat(2)'s st_dev into the kernel's encoding
// (major<<20 | minor), which is what the process table stores, so that both
// collectors give the same ExeDev.
func kernelDev(dev uint64) uint64 {
	return uint64(unix.Major(dev))<<20 | uint64(unix.Minor(dev))
}

// cgroupPath reads the process's cgroup path from /proc/PID/cgroup: the
// unified (v2) hierarchy when it places the process below the root, else the
// systemd (v1) one, as the eBPF collector does.
func cgroupPath(procRoot string, pid uint32) string {
	b, err := readProcFile(pidDir(procRoot, pid) + "/cgroup")
	if err != nil {
		return ""
	}
	return parseCgroup(b)
}

func parseCgroup(b []byte) string {
	var unified, systemd, first string
	for line := range strings.SplitSeq(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
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

// fdKind classifies what a /proc/PID/fd link points at, in the words of
// Exec.stdio ("socket", "pipe", "tty", "file", "other"), and returns the
// socket inode for sockets.
func fdKind(link string) (kind string, sockIno uint64) {
	switch {
	case link == "":
		return "none", 0
	case strings.HasPrefix(link, "socket:["):
		ino, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
		return "socket", ino
	case strings.HasPrefix(link, "pipe:["):
		return "pipe", 0
	case strings.HasPrefix(link, "/dev/pts/") || strings.HasPrefix(link, "/dev/tty") || link == "/dev/console" || link == "/dev/ptmx":
		return "tty", 0
	case strings.HasPrefix(link, "/"):
		return "file", 0
	}
	return "other", 0
}

// fdinfoFlags returns the open(2) flags of fd from /proc/PID/fdinfo/FD
// (printed in octal), and its mount id.
func fdinfoFlags(procRoot string, pid uint32, fd int) (flags uint32, mntID int, err error) {
	b, err := readProcFile(pidDir(procRoot, pid) + "/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return 0, 0, err
	}
	return parseFdinfo(b)
}

func parseFdinfo(b []byte) (flags uint32, mntID int, err error) {
	found := false
	for line := range strings.SplitSeq(string(b), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "flags":
			v, perr := strconv.ParseUint(val, 8, 32)
			if perr != nil {
				return 0, 0, fmt.Errorf("fdinfo flags %q: %w", val, perr)
			}
			flags, found = uint32(v), true
		case "mnt_id":
			mntID, _ = strconv.Atoi(val)
		}
	}
	if !found {
		return 0, 0, errors.New("fdinfo: no flags")
	}
	return flags, mntID, nil
}

// mountTypes maps mount ids to file system types from a mountinfo file.
func parseMountTypes(b []byte) map[int]string {
	out := make(map[int]string)
	for line := range strings.SplitSeq(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 1 || len(qf) < 1 {
			continue
		}
		id, err := strconv.Atoi(pf[0])
		if err != nil {
			continue
		}
		out[id] = qf[0]
	}
	return out
}

// nsInode returns the inode of a namespace link (/proc/PID/ns/net), 0 when
// unreadable.
func nsInode(procRoot string, pid uint32, ns string) uint64 {
	s, err := os.Readlink(pidDir(procRoot, pid) + "/ns/" + ns)
	if err != nil {
		return 0
	}
	i := strings.IndexByte(s, '[')
	if i < 0 || !strings.HasSuffix(s, "]") {
		return 0
	}
	v, _ := strconv.ParseUint(s[i+1:len(s)-1], 10, 64)
	return v
}

// listPids lists the numeric entries of a /proc directory (processes in
// procRoot, threads in procRoot/PID/task).
func listPids(dir string) ([]uint32, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	out := make([]uint32, 0, len(names))
	for _, n := range names {
		v, err := strconv.ParseUint(n, 10, 32)
		if err == nil {
			out = append(out, uint32(v))
		}
	}
	return out, nil
}
