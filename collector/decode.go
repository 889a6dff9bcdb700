package collector

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilsec/vigil/collector/probes"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// Errors the decoder returns; every one means the record was skipped.
var (
	ErrShortRecord   = errors.New("record shorter than its header")
	ErrBadLayout     = errors.New("record layout does not match its type")
	ErrUnknownRecord = errors.New("unknown record type")
)

// Record is one decoded ring-buffer record: the event, plus what the
// process table needs and the event message has no field for.
type Record struct {
	Event *vigilv1.Event
	// Type is the record type (enum rec_type).
	Type probes.VigilRecType
	// Sys is the probes' syscall id (enum rec_sys).
	Sys uint16
	// StartTime is the process start time in ns since boot: for exec and
	// exit the process itself, for fork the child.
	StartTime uint64
	// ChildNsPid is the new process's namespace pid (fork).
	ChildNsPid uint32
	// EnvTruncated is set on exec when the environment was longer than the
	// bound and neither LD_PRELOAD nor LD_LIBRARY_PATH was in the copy.
	EnvTruncated bool
	// ExeSize, ExeMtimeNs and ExeCtimeNs are the executable inode's size
	// and times in ns since the epoch (exec), as the kernel holds them:
	// the ctime may carry the multigrain "queried" flag, so the process
	// table, not the decoder, publishes the times.
	ExeSize                int64
	ExeMtimeNs, ExeCtimeNs int64
	// Creds are the process's ids after a setuid-family call, else nil.
	Creds *Creds
}

// Creds are a process's real and effective ids.
type Creds struct {
	Uid, Gid, Euid, Egid uint32
}

// Decoder turns ring-buffer records into events. It is a pure function of
// its input and BootTime; it never panics, whatever the bytes.
type Decoder struct {
	// BootTime is the wall-clock time of boot, so that kernel timestamps
	// (ns since boot) become wall-clock times.
	BootTime time.Time
	// Processes, when set, supplies the process of records other than exec,
	// fork and exit, so that no placeholder process is built for a process
	// the table knows (the common case on the hot path).
	Processes ProcessLookup
}

// ProcessLookup finds a process by host pid (proctable.Table does).
type ProcessLookup interface {
	Lookup(pid uint32) *vigilv1.Process
}

type eventAlloc struct {
	ev vigilv1.Event
	ts timestamppb.Timestamp
}

// execAlloc, forkAlloc and exitAlloc hold a process record's event and its
// body in one allocation each. An exec's also holds the decoder's own
// process message: the new image, which the process table's replaces but
// which carries what the record says until then.
type execAlloc struct {
	ev    vigilv1.Event
	ts    timestamppb.Timestamp
	proc  vigilv1.Process
	start timestamppb.Timestamp
	wrap  vigilv1.Event_Exec
	body  vigilv1.Exec
	stdio [3]string
}

type forkAlloc struct {
	ev   vigilv1.Event
	ts   timestamppb.Timestamp
	wrap vigilv1.Event_Fork
	body vigilv1.Fork
}

type exitAlloc struct {
	ev   vigilv1.Event
	ts   timestamppb.Timestamp
	wrap vigilv1.Event_Exit
	body vigilv1.Exit
}

type dupAlloc struct {
	ev   vigilv1.Event
	ts   timestamppb.Timestamp
	wrap vigilv1.Event_Dup
	dup  vigilv1.Dup
}

type openAlloc struct {
	ev   vigilv1.Event
	ts   timestamppb.Timestamp
	wrap vigilv1.Event_Open
	open vigilv1.FileOpen
}

// view returns b as a *T without copying when b is long enough and
// aligned; records from the ring buffer always are (8-byte aligned), other
// input is copied.
func view[T any](b []byte) *T {
	var zero T
	n := int(unsafe.Sizeof(zero))
	if len(b) < n {
		return nil
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	if uintptr(p)%unsafe.Alignof(zero) != 0 {
		v := new(T)
		copy(unsafe.Slice((*byte)(unsafe.Pointer(v)), n), b)
		return v
	}
	return (*T)(p)
}

// strs holds the variable-length strings of a record.
type strs [6][]byte

func splitStrings(b []byte, h *probes.VigilRecHdr, fixed int) (strs, error) {
	var s strs
	if int(h.Fixed) != fixed || int(h.Nstr) > len(s) {
		return s, ErrBadLayout
	}
	off := fixed
	for i := 0; i < int(h.Nstr); i++ {
		n := int(h.StrLen[i])
		if off+n > len(b) {
			return s, ErrBadLayout
		}
		s[i] = b[off : off+n]
		off += n
	}
	return s, nil
}

// cstr is a NUL-terminated string without the NUL.
func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// leafFirstPath turns the probes' path encoding (components leaf first,
// each NUL-terminated) into an absolute path. An empty encoding is "".
func leafFirstPath(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	var tmp [512]byte
	return string(appendLeafFirst(tmp[:0], b))
}

// appendLeafFirst appends the absolute path of a leaf-first encoding.
func appendLeafFirst(out, b []byte) []byte {
	if len(b) == 0 {
		return out
	}
	var idx [64]int // component start offsets, bounded like the walk (48)
	n := 0
	start := 0
	for i := 0; i < len(b) && n < len(idx); i++ {
		if b[i] == 0 {
			if i > start {
				idx[n] = start
				n++
			}
			start = i + 1
		}
	}
	if start < len(b) && n < len(idx) { // unterminated last component
		idx[n] = start
		n++
	}
	if n == 0 {
		return append(out, '/')
	}
	for j := n - 1; j >= 0; j-- {
		c := b[idx[j]:]
		if k := bytes.IndexByte(c, 0); k >= 0 {
			c = c[:k]
		}
		out = append(out, '/')
		out = append(out, c...)
	}
	return out
}

// splitNul splits NUL-separated strings (argv), dropping one trailing NUL.
func splitNul(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	if b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	n := bytes.Count(b, []byte{0}) + 1
	out := make([]string, 0, n)
	for len(b) > 0 || n > 0 {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			out = append(out, string(b))
			break
		}
		out = append(out, string(b[:i]))
		b = b[i+1:]
		n--
	}
	return out
}

// envValue finds NAME=value in a NUL-separated environment block.
func envValue(env []byte, name string) (string, bool) {
	for len(env) > 0 {
		var kv []byte
		if i := bytes.IndexByte(env, 0); i >= 0 {
			kv, env = env[:i], env[i+1:]
		} else {
			kv, env = env, nil
		}
		if len(kv) > len(name) && kv[len(name)] == '=' && string(kv[:len(name)]) == name {
			return string(kv[len(name)+1:]), true
		}
	}
	return "", false
}

// joinBase resolves a path the process passed against the directory the
// probe resolved in the kernel (cwd or dirfd), when the path is relative.
func joinBase(p string, base []byte) string {
	if p == "" {
		return ""
	}
	if p[0] == '/' {
		return path.Clean(p)
	}
	if b := leafFirstPath(base); b != "" {
		return path.Join(b, p)
	}
	return p
}

// nsName names a namespace type as /proc/PID/ns does.
func nsName(flag uint64) string {
	switch flag {
	case unix.CLONE_NEWNS:
		return "mnt"
	case unix.CLONE_NEWUTS:
		return "uts"
	case unix.CLONE_NEWIPC:
		return "ipc"
	case unix.CLONE_NEWUSER:
		return "user"
	case unix.CLONE_NEWPID:
		return "pid"
	case unix.CLONE_NEWNET:
		return "net"
	case unix.CLONE_NEWCGROUP:
		return "cgroup"
	case unix.CLONE_NEWTIME:
		return "time"
	}
	return "ns"
}

// fsTypes names file systems by super_block.s_magic, as /proc/mounts
// does; the probes send the magic because reading the name costs the traced
// process three more kernel reads per open.
var fsTypes = map[uint64]string{
	0xef53: "ext4", 0x58465342: "xfs", 0x9123683e: "btrfs", 0x01021994: "tmpfs",
	0x794c7630: "overlay", 0x9fa0: "proc", 0x62656572: "sysfs", 0x1cd1: "devpts",
	0x63677270: "cgroup2", 0x27e0eb: "cgroup", 0x6e736673: "nsfs", 0xcafe4a11: "bpf",
	0x74726163: "tracefs", 0x64626720: "debugfs", 0x73636673: "securityfs",
	0x6969: "nfs", 0xff534d42: "cifs", 0xfe534d42: "smb2", 0x65735546: "fuse",
	0x4d44: "vfat", 0x2011bab0: "exfat", 0x5346544e: "ntfs", 0x9660: "iso9660",
	0x73717368: "squashfs", 0x858458f6: "ramfs", 0x42494e4d: "binfmt_misc",
	0x50495045: "pipefs", 0x534f434b: "sockfs", 0x09041934: "anon_inode",
	0x19800202: "mqueue", 0x958458f6: "hugetlbfs", 0xde5e81e4: "efivarfs",
	0x28cd3d45: "cramfs", 0xf2f52010: "f2fs", 0x2fc12fc1: "zfs", 0x5a3c69f0: "aufs",
}

func fstypeName(magic uint64) string {
	if magic == 0 {
		return ""
	}
	if n, ok := fsTypes[magic]; ok {
		return n
	}
	return "0x" + strconv.FormatUint(magic, 16)
}

func errnoName(ret int64) string {
	if ret >= 0 || ret < -4095 {
		return ""
	}
	if n := unix.ErrnoName(syscall.Errno(-ret)); n != "" {
		return n
	}
	return "E" + strconv.FormatInt(-ret, 10)
}

// userDev turns a kernel dev_t (major<<20 | minor) into stat(2)'s st_dev.
func userDev(k uint32) uint64 {
	return unix.Mkdev(k>>20, k&0xfffff)
}

func sockAddr(a *probes.VigilRecSockaddr) *vigilv1.SocketAddress {
	switch a.Family {
	case unix.AF_INET:
		return &vigilv1.SocketAddress{Family: "inet", Ip: netip.AddrFrom4([4]byte(a.Addr[:4])).String(), Port: uint32(a.Port)}
	case unix.AF_INET6:
		return &vigilv1.SocketAddress{Family: "inet6", Ip: netip.AddrFrom16(a.Addr).Unmap().String(), Port: uint32(a.Port)}
	case unix.AF_UNIX:
		return &vigilv1.SocketAddress{Family: "unix"}
	}
	return nil
}

// rawSockAddr parses a struct sockaddr as the process passed it.
func rawSockAddr(b []byte) *vigilv1.SocketAddress {
	if len(b) < 2 {
		return nil
	}
	fam := binary.LittleEndian.Uint16(b)
	switch fam {
	case unix.AF_INET:
		if len(b) < 8 {
			return nil
		}
		return &vigilv1.SocketAddress{Family: "inet", Port: uint32(binary.BigEndian.Uint16(b[2:])), Ip: netip.AddrFrom4([4]byte(b[4:8])).String()}
	case unix.AF_INET6:
		if len(b) < 24 {
			return nil
		}
		return &vigilv1.SocketAddress{Family: "inet6", Port: uint32(binary.BigEndian.Uint16(b[2:])), Ip: netip.AddrFrom16([16]byte(b[8:24])).Unmap().String()}
	case unix.AF_UNIX:
		p := b[2:]
		if len(p) > 0 && p[0] == 0 {
			return &vigilv1.SocketAddress{Family: "unix", Path: "@" + string(bytes.TrimRight(p[1:], "\x00"))}
		}
		return &vigilv1.SocketAddress{Family: "unix", Path: cstr(p)}
	}
	return nil
}

func addrString(a *vigilv1.SocketAddress) string {
	if a == nil || a.Ip == "" {
		return ""
	}
	ip, err := netip.ParseAddr(a.Ip)
	if err != nil {
		return ""
	}
	return netip.AddrPortFrom(ip, uint16(a.Port)).String()
}

func protocolName(family, stype, proto uint16) string {
	switch {
	case family == unix.AF_UNIX:
		return "unix"
	case family == unix.AF_PACKET:
		return "packet"
	case stype == unix.SOCK_RAW:
		return "raw"
	case proto == unix.IPPROTO_TCP || proto == unix.IPPROTO_MPTCP || (stype == unix.SOCK_STREAM && proto == 0):
		return "tcp"
	case proto == unix.IPPROTO_UDP || (stype == unix.SOCK_DGRAM && proto == 0):
		return "udp"
	}
	return strconv.Itoa(int(proto))
}

func fdKindName(k uint8) string {
	switch probes.VigilRecFdKind(k) {
	case probes.VigilRecFdKindVIGIL_FD_FILE, probes.VigilRecFdKindVIGIL_FD_DIR, probes.VigilRecFdKindVIGIL_FD_CHAR:
		return "file"
	case probes.VigilRecFdKindVIGIL_FD_PIPE:
		return "pipe"
	case probes.VigilRecFdKindVIGIL_FD_SOCKET:
		return "socket"
	case probes.VigilRecFdKindVIGIL_FD_TTY:
		return "tty"
	case probes.VigilRecFdKindVIGIL_FD_OTHER:
		return "other"
	}
	return "none"
}

func commString(c *[16]int8) string {
	b := unsafe.Slice((*byte)(unsafe.Pointer(&c[0])), len(c))
	return cstr(b)
}

// signed32 reads a syscall argument that the kernel treats as an int.
func signed32(v uint64) int64 { return int64(int32(uint32(v))) }

// Decode decodes one record into r. r.Event is a new event; its Process
// holds only what the record itself says (pid, tid, comm, and for exec the
// new image); the collector replaces it with the process table's message.
func (d *Decoder) Decode(b []byte, r *Record) error {
	*r = Record{}
	h := view[probes.VigilRecHdr](b)
	if h == nil {
		return ErrShortRecord
	}
	if int(h.Size) > len(b) {
		return ErrShortRecord
	}
	// One allocation for the event, its timestamp and, for opens (the bulk
	// of a busy host's records), the open body: fewer objects for the GC.
	var ev *vigilv1.Event
	var ts *timestamppb.Timestamp
	var xa *execAlloc
	var fa *forkAlloc
	var ea *exitAlloc
	switch probes.VigilRecType(h.Type) {
	case probes.VigilRecTypeVIGIL_REC_OPEN:
		a := new(openAlloc)
		ev, ts = &a.ev, &a.ts
		ev.Kind = &a.wrap
		a.wrap.Open = &a.open
	case probes.VigilRecTypeVIGIL_REC_DUP:
		// A shell's redirections: as common as opens in some workloads.
		a := new(dupAlloc)
		ev, ts = &a.ev, &a.ts
		ev.Kind = &a.wrap
		a.wrap.Dup = &a.dup
	case probes.VigilRecTypeVIGIL_REC_EXEC:
		xa = new(execAlloc)
		ev, ts = &xa.ev, &xa.ts
	case probes.VigilRecTypeVIGIL_REC_FORK:
		fa = new(forkAlloc)
		ev, ts = &fa.ev, &fa.ts
	case probes.VigilRecTypeVIGIL_REC_EXIT:
		ea = new(exitAlloc)
		ev, ts = &ea.ev, &ea.ts
	default:
		a := new(eventAlloc)
		ev, ts = &a.ev, &a.ts
	}
	t := d.BootTime.Add(time.Duration(h.Ts))
	ts.Seconds, ts.Nanos = t.Unix(), int32(t.Nanosecond())
	ev.Time = ts
	ev.Tid = h.Tid
	ev.CgroupId = h.CgroupId
	ev.Result = h.Ret
	ev.Syscall = sysName(h.Sys)
	switch probes.VigilRecSys(h.Sys) {
	case probes.VigilRecSysVIGIL_SYS_IO_URING_OPENAT, probes.VigilRecSysVIGIL_SYS_IO_URING_OPENAT2,
		probes.VigilRecSysVIGIL_SYS_IO_URING_CONNECT, probes.VigilRecSysVIGIL_SYS_IO_URING_UNLINKAT,
		probes.VigilRecSysVIGIL_SYS_IO_URING_RENAMEAT:
		ev.IoUring = true
	}
	r.Event = ev
	r.Type = probes.VigilRecType(h.Type)
	// An exec's process is the new image the record describes; the rest
	// (a fork's parent, an exiting process) are usually known.
	switch {
	case xa != nil:
		xa.proc.Pid, xa.proc.Comm = h.Pid, commString(&h.Comm)
		ev.Process = &xa.proc
	case d.Processes != nil:
		ev.Process = d.Processes.Lookup(h.Pid)
	}
	if ev.Process == nil {
		ev.Process = &vigilv1.Process{Pid: h.Pid, Comm: commString(&h.Comm)}
	}
	r.Sys = h.Sys
	var err error
	switch r.Type {
	case probes.VigilRecTypeVIGIL_REC_EXEC:
		err = d.exec(b, h, r, xa)
	case probes.VigilRecTypeVIGIL_REC_FORK:
		err = decodeFork(b, r, fa)
	case probes.VigilRecTypeVIGIL_REC_EXIT:
		err = decodeExit(b, r, ea)
	case probes.VigilRecTypeVIGIL_REC_SYSCALL:
		ev.Errno = errnoName(h.Ret)
		err = decodeSyscall(b, h, r)
	case probes.VigilRecTypeVIGIL_REC_OPEN:
		ev.Errno = errnoName(h.Ret)
		err = decodeOpen(b, h, r)
	case probes.VigilRecTypeVIGIL_REC_SOCK:
		ev.Errno = errnoName(h.Ret)
		err = decodeSock(b, h, r)
	case probes.VigilRecTypeVIGIL_REC_DNS:
		ev.Errno = errnoName(h.Ret)
		err = decodeDNS(b, h, r)
	case probes.VigilRecTypeVIGIL_REC_DUP:
		ev.Errno = errnoName(h.Ret)
		err = decodeDup(b, r)
	default:
		err = fmt.Errorf("%w %d", ErrUnknownRecord, h.Type)
	}
	if err != nil {
		r.Event = nil
	}
	return err
}

func (d *Decoder) exec(b []byte, h *probes.VigilRecHdr, r *Record, pa *execAlloc) error {
	e := view[probes.VigilRecExec](b)
	if e == nil {
		return ErrBadLayout
	}
	s, err := splitStrings(b, h, int(unsafe.Sizeof(*e)))
	if err != nil {
		return err
	}
	ev := r.Event
	ev.Result = 0
	r.StartTime = e.StartTime
	r.ExeSize, r.ExeMtimeNs, r.ExeCtimeNs = int64(e.ExeSize), int64(e.ExeMtime), int64(e.ExeCtime)
	p := ev.Process
	p.Ppid = e.Ppid
	p.NsPid = e.NsPid
	p.ExePath = leafFirstPath(s[1])
	p.Args = splitNul(s[2])
	p.ArgsTruncated = e.ArgsTruncated != 0
	p.Cwd = leafFirstPath(s[3])
	p.Uid, p.Gid, p.Euid, p.Egid = e.Uid, e.Gid, e.Euid, e.Egid
	p.Loginuid = e.Loginuid
	p.Sid = e.Sid
	p.Tty = e.Tty
	st := d.BootTime.Add(time.Duration(e.StartTime))
	pa.start.Seconds, pa.start.Nanos = st.Unix(), int32(st.Nanosecond())
	p.StartTime = &pa.start
	p.ExeInode = e.ExeIno
	p.ExeDev = uint64(e.ExeDev) // kernel encoding, as proctable.ExecInfo wants
	p.ExeFileless = e.Fileless != 0
	p.ExeUpperLayer = e.UpperLayer != 0
	p.ExeOutsideRoot = e.ExeOutsideRoot != 0
	p.Compat32 = e.Elf32 != 0
	p.CapEffective = e.CapEffective
	x := &pa.body
	x.Filename = cstr(s[0])
	x.Execveat = e.Execveat != 0
	x.Flags = e.Flags
	x.Dirfd = e.Dirfd
	if probes.VigilRecExecveat(e.Execveat) == probes.VigilRecExecveatVIGIL_EXECVEAT_FDPATH {
		x.Dirfd, x.Flags = fdPathArgs(x.Filename)
	}
	x.Stdio = pa.stdio[:]
	var remotes [3]string
	anyRemote := false
	for i := range e.Stdio {
		fi := &e.Stdio[i]
		x.Stdio[i] = fdKindName(fi.Kind)
		if probes.VigilRecFdKind(fi.Kind) == probes.VigilRecFdKindVIGIL_FD_SOCKET {
			remotes[i] = addrString(sockAddr(&fi.Remote))
			anyRemote = anyRemote || remotes[i] != ""
		}
	}
	if anyRemote {
		x.StdioRemote = remotes[:]
	}
	pre, ok1 := envValue(s[4], "LD_PRELOAD")
	lib, ok2 := envValue(s[4], "LD_LIBRARY_PATH")
	x.LdPreload, x.LdLibraryPath = pre, lib
	r.EnvTruncated = e.EnvTruncated != 0 && !(ok1 && ok2)
	pa.wrap.Exec = x
	ev.Kind = &pa.wrap
	return nil
}

// fdPathArgs gives the dirfd and flags of an execveat that ran under the
// name the kernel made for it: "/dev/fd/N" for an empty path (which takes
// AT_EMPTY_PATH) and "/dev/fd/N/PATH" for a path relative to the descriptor.
// Flags the name does not show (AT_SYMLINK_NOFOLLOW) are not reported.
func fdPathArgs(name string) (dirfd int32, flags uint32) {
	rest, ok := strings.CutPrefix(name, "/dev/fd/")
	if !ok {
		return -1, 0
	}
	n, path, _ := strings.Cut(rest, "/")
	fd, err := strconv.ParseInt(n, 10, 32)
	if err != nil {
		return -1, 0
	}
	if path == "" {
		flags = unix.AT_EMPTY_PATH
	}
	return int32(fd), flags
}

func decodeFork(b []byte, r *Record, pa *forkAlloc) error {
	f := view[probes.VigilRecFork](b)
	if f == nil || int(f.H.Fixed) != int(unsafe.Sizeof(*f)) {
		return ErrBadLayout
	}
	r.StartTime = f.StartTime
	r.ChildNsPid = f.NsPid
	pa.body.ChildPid = f.ChildPid
	pa.wrap.Fork = &pa.body
	r.Event.Kind = &pa.wrap
	return nil
}

func decodeExit(b []byte, r *Record, pa *exitAlloc) error {
	x := view[probes.VigilRecExit](b)
	if x == nil || int(x.H.Fixed) != int(unsafe.Sizeof(*x)) {
		return ErrBadLayout
	}
	r.StartTime = x.StartTime
	st := syscall.WaitStatus(x.Code)
	ex := &pa.body
	ex.Code = int32(x.Code)
	if st.Signaled() {
		ex.Signal = int32(st.Signal())
	}
	pa.wrap.Exit = ex
	r.Event.Kind = &pa.wrap
	return nil
}

func decodeSyscall(b []byte, h *probes.VigilRecHdr, r *Record) error {
	c := view[probes.VigilRecSyscall](b)
	if c == nil {
		return ErrBadLayout
	}
	s, err := splitStrings(b, h, int(unsafe.Sizeof(*c)))
	if err != nil {
		return err
	}
	a := &c.Args
	ev := r.Event
	str := func(i int) string {
		if c.PathMask&(1<<i) != 0 {
			return leafFirstPath(s[i])
		}
		return cstr(s[i])
	}
	switch probes.VigilRecSys(h.Sys) {
	case probes.VigilRecSysVIGIL_SYS_SETUID, probes.VigilRecSysVIGIL_SYS_SETGID,
		probes.VigilRecSysVIGIL_SYS_SETREUID, probes.VigilRecSysVIGIL_SYS_SETREGID,
		probes.VigilRecSysVIGIL_SYS_SETRESUID, probes.VigilRecSysVIGIL_SYS_SETRESGID:
		set := &vigilv1.SetId{Syscall: ev.Syscall, Ruid: -1, Euid: -1, Suid: -1, Rgid: -1, Egid: -1, Sgid: -1}
		switch probes.VigilRecSys(h.Sys) {
		case probes.VigilRecSysVIGIL_SYS_SETUID:
			set.Euid = signed32(a[0])
		case probes.VigilRecSysVIGIL_SYS_SETGID:
			set.Egid = signed32(a[0])
		case probes.VigilRecSysVIGIL_SYS_SETREUID:
			set.Ruid, set.Euid = signed32(a[0]), signed32(a[1])
		case probes.VigilRecSysVIGIL_SYS_SETREGID:
			set.Rgid, set.Egid = signed32(a[0]), signed32(a[1])
		case probes.VigilRecSysVIGIL_SYS_SETRESUID:
			set.Ruid, set.Euid, set.Suid = signed32(a[0]), signed32(a[1]), signed32(a[2])
		case probes.VigilRecSysVIGIL_SYS_SETRESGID:
			set.Rgid, set.Egid, set.Sgid = signed32(a[0]), signed32(a[1]), signed32(a[2])
		}
		ev.Kind = &vigilv1.Event_SetId{SetId: set}
		if h.Ret == 0 {
			r.Creds = &Creds{Uid: uint32(c.Extra), Gid: uint32(c.Extra >> 32), Euid: uint32(c.Extra2), Egid: uint32(c.Extra2 >> 32)}
		}
	case probes.VigilRecSysVIGIL_SYS_CAPSET:
		ev.Kind = &vigilv1.Event_Capset{Capset: &vigilv1.Capset{Effective: c.Extra, Permitted: c.Extra2, Inheritable: a[2], TargetPid: uint32(a[3])}}
	case probes.VigilRecSysVIGIL_SYS_PTRACE:
		req := int64(a[0])
		ev.Kind = &vigilv1.Event_Ptrace{Ptrace: &vigilv1.Ptrace{Request: req, RequestName: ptraceName(req), TargetPid: uint32(a[1]), Addr: a[2]}}
	case probes.VigilRecSysVIGIL_SYS_MEMFD_CREATE:
		ev.Kind = &vigilv1.Event_MemfdCreate{MemfdCreate: &vigilv1.MemfdCreate{Name: str(0), Flags: uint32(a[1])}}
	case probes.VigilRecSysVIGIL_SYS_INIT_MODULE:
		ev.Kind = &vigilv1.Event_ModuleLoad{ModuleLoad: &vigilv1.ModuleLoad{Syscall: ev.Syscall, Params: str(1)}}
	case probes.VigilRecSysVIGIL_SYS_FINIT_MODULE:
		ev.Kind = &vigilv1.Event_ModuleLoad{ModuleLoad: &vigilv1.ModuleLoad{Syscall: ev.Syscall, Path: str(0), Params: str(1), Flags: uint32(a[2])}}
	case probes.VigilRecSysVIGIL_SYS_MOUNT:
		ev.Kind = &vigilv1.Event_Mount{Mount: &vigilv1.Mount{Source: str(0), Target: str(1), Fstype: str(2), Flags: a[3]}}
	case probes.VigilRecSysVIGIL_SYS_UNSHARE:
		ev.Kind = &vigilv1.Event_Namespace{Namespace: &vigilv1.Namespace{Syscall: ev.Syscall, Flags: a[0], Fd: -1}}
	case probes.VigilRecSysVIGIL_SYS_SETNS:
		p := str(0)
		if c.Extra2 == unix.NSFS_MAGIC {
			// A namespace file: name it as /proc/PID/ns/* links read.
			p = nsName(a[1]) + ":[" + strconv.FormatUint(c.Extra, 10) + "]"
		}
		ev.Kind = &vigilv1.Event_Namespace{Namespace: &vigilv1.Namespace{Syscall: ev.Syscall, Fd: int32(a[0]), Flags: a[1], Path: p}}
	case probes.VigilRecSysVIGIL_SYS_BPF:
		cmd := int32(a[0])
		ev.Kind = &vigilv1.Event_Bpf{Bpf: &vigilv1.Bpf{Cmd: cmd, CmdName: bpfCmdName(cmd), ProgType: uint32(c.Extra)}}
	case probes.VigilRecSysVIGIL_SYS_USERFAULTFD:
		ev.Kind = &vigilv1.Event_Userfaultfd{Userfaultfd: &vigilv1.Userfaultfd{Flags: uint32(a[0])}}
	case probes.VigilRecSysVIGIL_SYS_IO_URING_SETUP:
		ev.Kind = &vigilv1.Event_IoUringSetup{IoUringSetup: &vigilv1.IoUringSetup{Entries: uint32(a[0])}}
	case probes.VigilRecSysVIGIL_SYS_PROCESS_VM_WRITEV:
		var n uint64
		if h.Ret > 0 {
			n = uint64(h.Ret)
		}
		ev.Kind = &vigilv1.Event_ProcessVmWrite{ProcessVmWrite: &vigilv1.ProcessVmWrite{TargetPid: uint32(a[0]), Bytes: n}}
	case probes.VigilRecSysVIGIL_SYS_MPROTECT:
		ev.Kind = &vigilv1.Event_Mprotect{Mprotect: &vigilv1.Mprotect{Addr: a[0], Len: a[1], Prot: uint32(a[2])}}
	case probes.VigilRecSysVIGIL_SYS_UNLINK:
		ev.Kind = &vigilv1.Event_Unlink{Unlink: &vigilv1.FileUnlink{Path: joinBase(cstr(s[0]), s[1])}}
	case probes.VigilRecSysVIGIL_SYS_RMDIR:
		ev.Kind = &vigilv1.Event_Unlink{Unlink: &vigilv1.FileUnlink{Path: joinBase(cstr(s[0]), s[1]), Directory: true}}
	case probes.VigilRecSysVIGIL_SYS_UNLINKAT, probes.VigilRecSysVIGIL_SYS_IO_URING_UNLINKAT:
		ev.Kind = &vigilv1.Event_Unlink{Unlink: &vigilv1.FileUnlink{Path: joinBase(cstr(s[0]), s[1]), Directory: a[2]&unix.AT_REMOVEDIR != 0}}
	case probes.VigilRecSysVIGIL_SYS_RENAME, probes.VigilRecSysVIGIL_SYS_RENAMEAT, probes.VigilRecSysVIGIL_SYS_RENAMEAT2,
		probes.VigilRecSysVIGIL_SYS_IO_URING_RENAMEAT:
		var flags uint32
		if sys := probes.VigilRecSys(h.Sys); sys == probes.VigilRecSysVIGIL_SYS_RENAMEAT2 || sys == probes.VigilRecSysVIGIL_SYS_IO_URING_RENAMEAT {
			flags = uint32(a[4])
		}
		ev.Kind = &vigilv1.Event_Rename{Rename: &vigilv1.FileRename{OldPath: joinBase(cstr(s[0]), s[1]), NewPath: joinBase(cstr(s[2]), s[3]), Flags: flags}}
	case probes.VigilRecSysVIGIL_SYS_CHMOD:
		ev.Kind = &vigilv1.Event_Chmod{Chmod: &vigilv1.FileChmod{Path: joinBase(cstr(s[0]), s[1]), Mode: uint32(a[1])}}
	case probes.VigilRecSysVIGIL_SYS_FCHMODAT:
		ev.Kind = &vigilv1.Event_Chmod{Chmod: &vigilv1.FileChmod{Path: joinBase(cstr(s[0]), s[1]), Mode: uint32(a[2])}}
	case probes.VigilRecSysVIGIL_SYS_FCHMOD:
		ev.Kind = &vigilv1.Event_Chmod{Chmod: &vigilv1.FileChmod{Path: str(0), Mode: uint32(a[1])}}
	case probes.VigilRecSysVIGIL_SYS_CHOWN, probes.VigilRecSysVIGIL_SYS_LCHOWN:
		ev.Kind = &vigilv1.Event_Chown{Chown: &vigilv1.FileChown{Path: joinBase(cstr(s[0]), s[1]), Uid: signed32(a[1]), Gid: signed32(a[2])}}
	case probes.VigilRecSysVIGIL_SYS_FCHOWNAT:
		ev.Kind = &vigilv1.Event_Chown{Chown: &vigilv1.FileChown{Path: joinBase(cstr(s[0]), s[1]), Uid: signed32(a[2]), Gid: signed32(a[3])}}
	case probes.VigilRecSysVIGIL_SYS_FCHOWN:
		ev.Kind = &vigilv1.Event_Chown{Chown: &vigilv1.FileChown{Path: str(0), Uid: signed32(a[1]), Gid: signed32(a[2])}}
	case probes.VigilRecSysVIGIL_SYS_LINK, probes.VigilRecSysVIGIL_SYS_LINKAT:
		ev.Kind = &vigilv1.Event_Link{Link: &vigilv1.FileLink{Target: joinBase(cstr(s[0]), s[1]), LinkPath: joinBase(cstr(s[2]), s[3])}}
	case probes.VigilRecSysVIGIL_SYS_SYMLINK, probes.VigilRecSysVIGIL_SYS_SYMLINKAT:
		// A symlink's target is stored as written, not resolved.
		ev.Kind = &vigilv1.Event_Link{Link: &vigilv1.FileLink{Target: cstr(s[0]), LinkPath: joinBase(cstr(s[2]), s[3]), Symbolic: true}}
	case probes.VigilRecSysVIGIL_SYS_TRUNCATE:
		ev.Kind = &vigilv1.Event_Truncate{Truncate: &vigilv1.FileTruncate{Path: joinBase(cstr(s[0]), s[1]), Length: a[1]}}
	case probes.VigilRecSysVIGIL_SYS_FTRUNCATE:
		ev.Kind = &vigilv1.Event_Truncate{Truncate: &vigilv1.FileTruncate{Path: str(0), Length: a[1]}}
	default:
		return ErrBadLayout
	}
	return nil
}

func decodeOpen(b []byte, h *probes.VigilRecHdr, r *Record) error {
	o := view[probes.VigilRecOpen](b)
	if o == nil {
		return ErrBadLayout
	}
	s, err := splitStrings(b, h, int(unsafe.Sizeof(*o)))
	if err != nil {
		return err
	}
	switch probes.VigilRecSys(h.Sys) {
	case probes.VigilRecSysVIGIL_SYS_OPEN, probes.VigilRecSysVIGIL_SYS_OPENAT,
		probes.VigilRecSysVIGIL_SYS_OPENAT2, probes.VigilRecSysVIGIL_SYS_CREAT,
		probes.VigilRecSysVIGIL_SYS_IO_URING_OPENAT, probes.VigilRecSysVIGIL_SYS_IO_URING_OPENAT2:
	default:
		return ErrBadLayout
	}
	fo := r.Event.GetOpen() // allocated with the event
	fo.Flags = uint32(o.Flags)
	fo.Mode = o.Mode
	fo.Fd = -1
	req := s[1]
	if i := bytes.IndexByte(req, 0); i >= 0 {
		req = req[:i]
	}
	if h.Ret >= 0 {
		// Both paths in one string: usually they are the same, or share it.
		var tmp [512]byte
		b := appendLeafFirst(tmp[:0], s[0])
		np := len(b)
		if !bytes.Equal(b, req) {
			b = append(b, req...)
		}
		all := string(b)
		fo.Path = all[:np]
		if len(all) > np {
			fo.RequestedPath = all[np:]
		} else {
			fo.RequestedPath = fo.Path
		}
		fo.Fd = int32(h.Ret)
		fo.Inode = o.Ino
		fo.Dev = userDev(o.Dev)
		fo.Fstype = fstypeName(o.FsMagic)
		fo.Created = o.Created != 0
	} else {
		fo.RequestedPath = string(req)
		fo.Path = joinBase(fo.RequestedPath, s[2])
	}
	return nil
}

func decodeSock(b []byte, h *probes.VigilRecHdr, r *Record) error {
	k := view[probes.VigilRecSock](b)
	if k == nil {
		return ErrBadLayout
	}
	s, err := splitStrings(b, h, int(unsafe.Sizeof(*k)))
	if err != nil {
		return err
	}
	proto := protocolName(k.Family, k.Stype, k.Proto)
	ev := r.Event
	switch probes.VigilRecSys(h.Sys) {
	case probes.VigilRecSysVIGIL_SYS_CONNECT, probes.VigilRecSysVIGIL_SYS_IO_URING_CONNECT:
		remote := rawSockAddr(s[0])
		if remote == nil {
			remote = sockAddr(&k.Remote)
		}
		if remote != nil && remote.Family == "unix" && proto != "unix" {
			proto = "unix"
		}
		if len(s[1]) > 0 && remote != nil && remote.Family == "unix" {
			// The socket file the kernel connected to, not the name the
			// caller used (a symlink or hard link to docker.sock, a
			// relative path, a bind mount).
			remote.Path = leafFirstPath(s[1])
		}
		ev.Kind = &vigilv1.Event_Connect{Connect: &vigilv1.Connect{Fd: k.Fd, Remote: remote, Local: sockAddr(&k.Local), Protocol: proto}}
	case probes.VigilRecSysVIGIL_SYS_ACCEPT, probes.VigilRecSysVIGIL_SYS_ACCEPT4:
		ev.Kind = &vigilv1.Event_Accept{Accept: &vigilv1.Accept{Fd: k.Fd, NewFd: k.Arg, Remote: sockAddr(&k.Remote), Local: sockAddr(&k.Local), Protocol: proto}}
	case probes.VigilRecSysVIGIL_SYS_BIND:
		// After a successful inet bind the kernel's address has the port it
		// chose for port 0; otherwise the address as the process passed it.
		local := rawSockAddr(s[0])
		if h.Ret == 0 && (k.Local.Family == unix.AF_INET || k.Local.Family == unix.AF_INET6) || local == nil {
			local = sockAddr(&k.Local)
		}
		ev.Kind = &vigilv1.Event_Bind{Bind: &vigilv1.Bind{Fd: k.Fd, Local: local, Protocol: proto}}
	case probes.VigilRecSysVIGIL_SYS_LISTEN:
		ev.Kind = &vigilv1.Event_Listen{Listen: &vigilv1.Listen{Fd: k.Fd, Backlog: k.Arg, Local: sockAddr(&k.Local), Protocol: proto}}
	case probes.VigilRecSysVIGIL_SYS_SOCKET:
		fam := int32(k.Family)
		ev.Kind = &vigilv1.Event_Socket{Socket: &vigilv1.Socket{Family: fam, FamilyName: familyName(fam), Type: k.Arg, Protocol: int32(k.Proto)}}
	default:
		return ErrBadLayout
	}
	return nil
}

func decodeDup(b []byte, r *Record) error {
	d := view[probes.VigilRecDup](b)
	if d == nil || int(d.H.Fixed) != int(unsafe.Sizeof(*d)) {
		return ErrBadLayout
	}
	x := r.Event.GetDup() // allocated with the event
	x.OldFd, x.NewFd, x.OldFdKind = d.OldFd, d.NewFd, fdKindName(d.Old.Kind)
	if probes.VigilRecFdKind(d.Old.Kind) == probes.VigilRecFdKindVIGIL_FD_SOCKET {
		x.Remote = sockAddr(&d.Old.Remote)
	}
	return nil
}

func decodeDNS(b []byte, h *probes.VigilRecHdr, r *Record) error {
	d := view[probes.VigilRecDns](b)
	if d == nil {
		return ErrBadLayout
	}
	s, err := splitStrings(b, h, int(unsafe.Sizeof(*d)))
	if err != nil {
		return err
	}
	server := sockAddr(&d.Server)
	payload, protocol := s[0], "udp"
	if d.Tcp != 0 {
		payload, protocol = stripTCPLength(payload), "tcp"
	}
	if d.Answer != 0 {
		a, err := parseDNSAnswer(payload)
		if err != nil {
			return err
		}
		a.Server = server
		a.Protocol = protocol
		r.Event.Kind = &vigilv1.Event_DnsAnswer{DnsAnswer: a}
		return nil
	}
	q, err := parseDNSQuery(payload)
	if err != nil {
		return err
	}
	q.Server = server
	q.Syscall = r.Event.Syscall
	q.Protocol = protocol
	r.Event.Kind = &vigilv1.Event_DnsQuery{DnsQuery: q}
	return nil
}
