package proctable

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// procInfo is what /proc tells about one process.
type procInfo struct {
	pid, tgid, ppid, nsPid uint32
	startTicks             uint64
	comm                   string
	exe                    string
	args                   []string
	argsTruncated          bool
	cwd                    string
	uid, gid, euid, egid   uint32
	loginuid, sid, tty     uint32
	inode, dev             uint64
	ctime, mtime           int64 // ns since the epoch
	size                   int64
	capEff                 uint64
	fileless               bool
	elf32                  bool
	upper                  bool
	mntNs                  uint64
}

// errNoProcess is returned for a pid /proc does not have.
var errNoProcess = errors.New("no such process")

// readProc reads one process from procRoot. Only the stat file is required:
// kernel threads have no exe or cmdline, and a process may exit half-way.
func readProc(procRoot string, pid uint32, maxArgBytes int) (procInfo, error) {
	dir := filepath.Join(procRoot, itoa(pid))
	info := procInfo{pid: pid, tgid: pid, loginuid: ^uint32(0)}
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return info, fmt.Errorf("read /proc/%d: %w", pid, errNoProcess)
		}
		return info, fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	if err := parseStat(stat, &info); err != nil {
		return info, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	if status, err := os.ReadFile(filepath.Join(dir, "status")); err == nil {
		parseStatus(status, &info)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "loginuid")); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
			info.loginuid = uint32(v)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		info.args, info.argsTruncated = splitCmdline(b, maxArgBytes)
	}
	if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil {
		info.exe, info.fileless = cleanExeLink(exe)
		var st unix.Stat_t
		if unix.Stat(filepath.Join(dir, "exe"), &st) == nil {
			info.inode = st.Ino
			info.dev = kernelDev(st.Dev)
			info.ctime, info.mtime = st.Ctim.Nano(), st.Mtim.Nano()
			info.size = st.Size
		}
		info.elf32 = isELF32(filepath.Join(dir, "exe"))
	}
	if cwd, err := os.Readlink(filepath.Join(dir, "cwd")); err == nil {
		info.cwd = cwd
	}
	info.mntNs = readNsInode(filepath.Join(dir, "ns/mnt"))
	return info, nil
}

// parseStat reads comm, ppid, session, tty and start time from a stat line.
// comm may hold spaces and parentheses, so fields are counted from the last
// ')'.
func parseStat(b []byte, info *procInfo) error {
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return errors.New("no comm")
	}
	info.comm = string(b[open+1 : closing])
	f := strings.Fields(string(b[closing+1:]))
	// f[0] is field 3 (state); field N is f[N-3].
	if len(f) < 20 {
		return fmt.Errorf("%d fields after comm, want 20", len(f))
	}
	ppid, err1 := strconv.ParseUint(f[1], 10, 32)
	sid, err2 := strconv.ParseUint(f[3], 10, 32)
	tty, err3 := strconv.ParseInt(f[4], 10, 64)
	start, err4 := strconv.ParseUint(f[19], 10, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return err
	}
	info.ppid, info.sid, info.tty, info.startTicks = uint32(ppid), uint32(sid), uint32(tty), start
	return nil
}

// parseStatus reads ids, the thread group and the namespace pid.
func parseStatus(b []byte, info *procInfo) {
	for line := range strings.SplitSeq(string(b), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		switch key {
		case "Tgid":
			if len(f) > 0 {
				info.tgid = parseU32(f[0])
			}
		case "Uid":
			if len(f) >= 2 {
				info.uid, info.euid = parseU32(f[0]), parseU32(f[1])
			}
		case "Gid":
			if len(f) >= 2 {
				info.gid, info.egid = parseU32(f[0]), parseU32(f[1])
			}
		case "CapEff":
			if len(f) > 0 {
				info.capEff, _ = strconv.ParseUint(f[0], 16, 64)
			}
		case "NSpid":
			// Outermost first; the last is the pid the process sees.
			if len(f) > 0 {
				info.nsPid = parseU32(f[len(f)-1])
			}
		}
	}
	if info.nsPid == 0 {
		info.nsPid = info.pid
	}
}

func parseU32(s string) uint32 {
	v, _ := strconv.ParseUint(s, 10, 32)
	return uint32(v)
}

// splitCmdline splits NUL-separated arguments, keeping at most max bytes.
func splitCmdline(b []byte, max int) ([]string, bool) {
	if len(b) == 0 {
		return nil, false
	}
	truncated := false
	if len(b) > max {
		b, truncated = b[:max], true
	}
	b = bytes.TrimSuffix(b, []byte{0})
	s := string(b)
	return strings.Split(s, "\x00"), truncated
}

// cleanExeLink turns a /proc/PID/exe link into a path and whether the
// executable is fileless (a memfd, or a file deleted since exec).
func cleanExeLink(link string) (string, bool) {
	fileless := false
	if p, ok := strings.CutSuffix(link, " (deleted)"); ok {
		link, fileless = p, true
	}
	if strings.HasPrefix(link, "/memfd:") {
		fileless = true
	}
	return link, fileless
}

// kernelDev turns a userspace dev_t (as stat returns it) into the kernel's
// internal encoding (MKDEV: major<<20 | minor), which is what probes read
// from super_block.s_dev, so both sources give the same ExeDev.
func kernelDev(dev uint64) uint64 {
	return uint64(unix.Major(dev))<<20 | uint64(unix.Minor(dev))
}

// readNsInode returns the inode number of a namespace link ("mnt:[4026531841]"),
// 0 when unreadable.
func readNsInode(link string) uint64 {
	s, err := os.Readlink(link)
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

// readStartTicks returns a process's start time from its stat file, for the
// sweep's "same process?" check.
func readStartTicks(procRoot string, pid uint32) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	var info procInfo
	if err := parseStat(b, &info); err != nil {
		return 0, err
	}
	return info.startTicks, nil
}

// overlayMount is an overlay mount as a process sees it.
type overlayMount struct {
	mountPoint string
	upperDir   string
}

// readOverlayMounts lists the overlay mounts in a process's mountinfo, with
// their upper directories.
func readOverlayMounts(procRoot string, pid uint32) []overlayMount {
	b, err := os.ReadFile(filepath.Join(procRoot, itoa(pid), "mountinfo"))
	if err != nil {
		return nil
	}
	var out []overlayMount
	for line := range strings.SplitSeq(string(b), "\n") {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - overlay overlay rw,lowerdir=...,upperdir=...
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 || qf[0] != "overlay" {
			continue
		}
		for opt := range strings.SplitSeq(qf[2], ",") {
			if up, ok := strings.CutPrefix(opt, "upperdir="); ok {
				out = append(out, overlayMount{mountPoint: unescapeMount(pf[4]), upperDir: unescapeMount(up)})
			}
		}
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for space, ...).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// onUpperLayer reports whether exe (a path in the process's root) lives in
// the upper layer of the overlay mount holding it: the file exists in the
// upper directory, so it was written after the container started. It is only
// used when seeding from /proc; probes report the flag for new execs.
func onUpperLayer(mounts []overlayMount, exe string) bool {
	best := -1
	for i, m := range mounts {
		if (exe == m.mountPoint || strings.HasPrefix(exe, strings.TrimSuffix(m.mountPoint, "/")+"/")) &&
			(best < 0 || len(m.mountPoint) > len(mounts[best].mountPoint)) {
			best = i
		}
	}
	if best < 0 {
		return false
	}
	rel := strings.TrimPrefix(exe, strings.TrimSuffix(mounts[best].mountPoint, "/"))
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(mounts[best].upperDir, rel), &st); err != nil {
		return false
	}
	// A whiteout (char device 0:0) hides a lower file; it is not the exe.
	return !(st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0)
}

// isELF32 says whether the file at path starts with a 32-bit ELF header. The
// probes read the same header from the kernel at exec; this covers
// processes that were running before the sensor started.
func isELF32(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var h [5]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return false
	}
	return string(h[:4]) == "\x7fELF" && h[4] == 1 // ELFCLASS32
}
