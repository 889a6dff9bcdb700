package rules_test

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// Synthetic events in the shape collector/decode.go gives real ones:
// Syscall holds Falco's evt.type name, paths are absolute and resolved by
// the kernel, Exec.stdio holds "socket"/"pipe"/"tty"/"file"/"none" with the
// peer address in stdio_remote, Dup.old_fd_kind says what was duplicated,
// Ptrace carries request_name, and failed calls carry a negative result
// with the errno name.

// t0 is when every test scenario starts.
var t0 = time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)

const (
	oRDONLY = 0o0
	oWRONLY = 0o1
	oRDWR   = 0o2
	oCREAT  = 0o100
	oTRUNC  = 0o1000
	oAPPEND = 0o2000
	oCLOEXC = 0o2000000
)

// containerID is the full id of the one container scenarios run in.
const containerID = "4f2a9c1e7b3d5a6f8e0c2b4d6f8a0c1e3b5d7f9a1c3e5b7d9f0a2c4e6b8d0f1a"

var pidSeq uint32 = 1000

// proc is a process as the process table reports it: comm (at most 15
// bytes, as the kernel keeps it), exe path, argv with argv[0] first, root
// unless asUser says otherwise, started by an interactive bash.
func proc(comm, exe string, argv ...string) *vigilv1.Process {
	pidSeq++
	if len(argv) == 0 {
		argv = []string{exe}
	}
	if len(comm) > 15 {
		comm = comm[:15]
	}
	p := &vigilv1.Process{
		ExecId: fmt.Sprintf("boot1-%d-77", pidSeq), Pid: pidSeq, NsPid: pidSeq, Comm: comm, ExePath: exe,
		Args: argv, Cwd: "/root", UserName: "root", GroupName: "root", Loginuid: 4294967295,
		StartTime: timestamppb.New(t0.Add(-time.Second)), Sid: 900,
	}
	return withParents(p, anc{"bash", "/usr/bin/bash"}, anc{"sshd", "/usr/sbin/sshd"}, anc{"systemd", "/usr/lib/systemd/systemd"})
}

// withNsPid gives p the process id its pid namespace numbers it by.
func withNsPid(p *vigilv1.Process, nsPid uint32) *vigilv1.Process {
	p.NsPid = nsPid
	return p
}

// anc names an ancestor by comm and exe path.
type anc struct{ comm, exe string }

// withParents replaces the lineage, nearest first.
func withParents(p *vigilv1.Process, as ...anc) *vigilv1.Process {
	p.Lineage = nil
	for i, a := range as {
		p.Lineage = append(p.Lineage, &vigilv1.Ancestor{
			ExecId: fmt.Sprintf("boot1-%d-anc%d", p.Pid, i), Pid: p.Pid - uint32(100*(i+1)), Comm: a.comm, ExePath: a.exe, Args: []string{a.comm},
		})
	}
	if len(p.Lineage) > 0 {
		p.ParentExecId, p.Ppid = p.Lineage[0].ExecId, p.Lineage[0].Pid
	}
	return p
}

// asUser sets the real and effective uid.
func asUser(p *vigilv1.Process, uid, euid uint32) *vigilv1.Process {
	p.Uid, p.Euid, p.Loginuid = uid, euid, uid
	if uid != 0 {
		p.UserName = "alice"
	}
	return p
}

// withTTY gives the process a controlling terminal (pts/0).
func withTTY(p *vigilv1.Process) *vigilv1.Process {
	p.Tty = 34816
	return p
}

type opt func(*vigilv1.Event)

// inCtr puts the event in the scenario's container.
func inCtr(e *vigilv1.Event) {
	e.Container = &vigilv1.Container{Id: containerID, Name: "web", Image: "docker.io/library/nginx:1.27", Runtime: "containerd"}
}

// after moves the event d past t0.
func after(d time.Duration) opt {
	return func(e *vigilv1.Event) { e.Time = timestamppb.New(t0.Add(d)) }
}

// failed makes the system call fail with errno.
func failed(errno string, code int64) opt {
	return func(e *vigilv1.Event) { e.Result, e.Errno = -code, errno }
}

func ev(p *vigilv1.Process, syscall string, result int64, opts []opt) *vigilv1.Event {
	e := &vigilv1.Event{Time: timestamppb.New(t0), Process: p, Tid: p.Pid, Syscall: syscall, Result: result,
		Host: &vigilv1.Host{Hostname: "node-1", InstanceId: "i-0123456789abcdef0", Kernel: "6.1.0"}, SensorId: "sensor-1"}
	apply(e, opts)
	return e
}

func apply(e *vigilv1.Event, opts []opt) {
	for _, o := range opts {
		o(e)
	}
}

// execEv is a successful execve with fds 0-2 as given (default: pipes).
func execEv(p *vigilv1.Process, opts ...opt) *vigilv1.Event {
	e := ev(p, "execve", 0, nil)
	e.Kind = &vigilv1.Event_Exec{Exec: &vigilv1.Exec{Filename: p.ExePath, Stdio: []string{"pipe", "pipe", "pipe"}}}
	apply(e, opts)
	return e
}

// stdio sets what fds 0-2 are at exec; a kind of "tcp:ADDR" is a socket
// connected to ADDR, "unix:" a unix socket pair.
func stdio(kinds ...string) opt {
	return func(e *vigilv1.Event) {
		x := e.GetExec()
		x.Stdio = make([]string, 3)
		x.StdioRemote = nil
		remotes := make([]string, 3)
		any := false
		for i, k := range kinds {
			switch {
			case len(k) > 4 && k[:4] == "tcp:":
				x.Stdio[i], remotes[i], any = "socket", k[4:], true
			case k == "unix:":
				x.Stdio[i] = "socket"
			default:
				x.Stdio[i] = k
			}
		}
		if any {
			x.StdioRemote = remotes
		}
	}
}

// filename sets the path given to execve (a script's path, or a relative one).
func filename(f string) opt {
	return func(e *vigilv1.Event) { e.GetExec().Filename = f }
}

// ldPreload sets LD_PRELOAD at exec.
func ldPreload(v string) opt {
	return func(e *vigilv1.Event) { e.GetExec().LdPreload = v }
}

// execveat makes the exec an execveat(fd, "", AT_EMPTY_PATH); the sensor
// reports the file name as /dev/fd/N.
func execveat(e *vigilv1.Event) {
	e.Syscall = "execveat"
	x := e.GetExec()
	x.Execveat, x.Flags, x.Dirfd, x.Filename = true, 0x1000, 3, "/dev/fd/3"
}

func openEv(p *vigilv1.Process, syscall, path string, flags uint32, opts ...opt) *vigilv1.Event {
	e := ev(p, syscall, 5, nil)
	apply(e, opts)
	o := &vigilv1.FileOpen{Path: path, RequestedPath: path, Flags: flags, Mode: 0o644, Fd: 5, Inode: 4242, Dev: 2049, Fstype: "ext4"}
	switch {
	case e.Result < 0:
		o.Fd, o.Inode, o.Dev, o.Fstype = -1, 0, 0, ""
	case e.Container != nil:
		o.Fstype = "overlay"
	}
	if e.Result >= 0 && flags&oCREAT != 0 {
		o.Created = true
	}
	e.Kind = &vigilv1.Event_Open{Open: o}
	apply(e, opts) // again, now that there is a FileOpen to adjust
	return e
}

func writeEv(p *vigilv1.Process, path string, opts ...opt) *vigilv1.Event {
	return openEv(p, "openat", path, oWRONLY|oCREAT|oTRUNC|oCLOEXC, opts...)
}

func readEv(p *vigilv1.Process, path string, opts ...opt) *vigilv1.Event {
	return openEv(p, "openat", path, oRDONLY|oCLOEXC, opts...)
}

func unlinkEv(p *vigilv1.Process, path string, opts ...opt) *vigilv1.Event {
	e := ev(p, "unlinkat", 0, nil)
	e.Kind = &vigilv1.Event_Unlink{Unlink: &vigilv1.FileUnlink{Path: path}}
	apply(e, opts)
	return e
}

func renameEv(p *vigilv1.Process, syscall, from, to string, opts ...opt) *vigilv1.Event {
	e := ev(p, syscall, 0, nil)
	e.Kind = &vigilv1.Event_Rename{Rename: &vigilv1.FileRename{OldPath: from, NewPath: to}}
	apply(e, opts)
	return e
}

func linkEv(p *vigilv1.Process, syscall, target, linkPath string, opts ...opt) *vigilv1.Event {
	e := ev(p, syscall, 0, nil)
	e.Kind = &vigilv1.Event_Link{Link: &vigilv1.FileLink{Target: target, LinkPath: linkPath, Symbolic: syscall == "symlink" || syscall == "symlinkat"}}
	apply(e, opts)
	return e
}

func truncateEv(p *vigilv1.Process, syscall, path string, length uint64, opts ...opt) *vigilv1.Event {
	e := ev(p, syscall, 0, nil)
	e.Kind = &vigilv1.Event_Truncate{Truncate: &vigilv1.FileTruncate{Path: path, Length: length}}
	apply(e, opts)
	return e
}

func chmodEv(p *vigilv1.Process, syscall, path string, mode uint32, opts ...opt) *vigilv1.Event {
	e := ev(p, syscall, 0, nil)
	e.Kind = &vigilv1.Event_Chmod{Chmod: &vigilv1.FileChmod{Path: path, Mode: mode}}
	apply(e, opts)
	return e
}

func inet(ip string, port uint32) *vigilv1.SocketAddress {
	fam := "inet"
	for i := 0; i < len(ip); i++ {
		if ip[i] == ':' {
			fam = "inet6"
		}
	}
	return &vigilv1.SocketAddress{Family: fam, Ip: ip, Port: port}
}

func connectEv(p *vigilv1.Process, ip string, port uint32, opts ...opt) *vigilv1.Event {
	e := ev(p, "connect", 0, nil)
	local := inet("10.0.1.5", 40000+port%1000)
	if e.Container != nil {
		local = inet("172.17.0.2", 40000+port%1000)
	}
	e.Kind = &vigilv1.Event_Connect{Connect: &vigilv1.Connect{Fd: 3, Remote: inet(ip, port), Local: local, Protocol: "tcp"}}
	apply(e, opts)
	return e
}

func connectUnixEv(p *vigilv1.Process, path string, opts ...opt) *vigilv1.Event {
	e := ev(p, "connect", 0, nil)
	e.Kind = &vigilv1.Event_Connect{Connect: &vigilv1.Connect{Fd: 3, Remote: &vigilv1.SocketAddress{Family: "unix", Path: path},
		Local: &vigilv1.SocketAddress{Family: "unix"}, Protocol: "unix"}}
	apply(e, opts)
	return e
}

func listenEv(p *vigilv1.Process, port uint32, opts ...opt) *vigilv1.Event {
	e := ev(p, "listen", 0, nil)
	e.Kind = &vigilv1.Event_Listen{Listen: &vigilv1.Listen{Fd: 3, Backlog: 511, Local: inet("0.0.0.0", port), Protocol: "tcp"}}
	apply(e, opts)
	return e
}

func acceptEv(p *vigilv1.Process, port uint32, peer string, opts ...opt) *vigilv1.Event {
	e := ev(p, "accept4", 4, nil)
	e.Kind = &vigilv1.Event_Accept{Accept: &vigilv1.Accept{Fd: 3, NewFd: 4, Local: inet("10.0.1.5", port), Remote: inet(peer, 51515), Protocol: "tcp"}}
	apply(e, opts)
	return e
}

// dupEv duplicates old onto newfd; remote is the peer of a socket old_fd
// (empty for pipes and files).
func dupEv(p *vigilv1.Process, syscall string, old, newfd int32, kind, remoteIP string, port uint32, opts ...opt) *vigilv1.Event {
	e := ev(p, syscall, int64(newfd), nil)
	d := &vigilv1.Dup{OldFd: old, NewFd: newfd, OldFdKind: kind}
	if kind == "socket" && remoteIP != "" {
		d.Remote = inet(remoteIP, port)
	}
	e.Kind = &vigilv1.Event_Dup{Dup: d}
	apply(e, opts)
	return e
}

func ptraceEv(p *vigilv1.Process, request int64, name string, target uint32, opts ...opt) *vigilv1.Event {
	e := ev(p, "ptrace", 0, nil)
	e.Kind = &vigilv1.Event_Ptrace{Ptrace: &vigilv1.Ptrace{Request: request, RequestName: name, TargetPid: target}}
	apply(e, opts)
	return e
}

func vmWriteEv(p *vigilv1.Process, target uint32, opts ...opt) *vigilv1.Event {
	e := ev(p, "process_vm_writev", 64, nil)
	e.Kind = &vigilv1.Event_ProcessVmWrite{ProcessVmWrite: &vigilv1.ProcessVmWrite{TargetPid: target, Bytes: 64}}
	apply(e, opts)
	return e
}

func moduleEv(p *vigilv1.Process, syscall, path string, opts ...opt) *vigilv1.Event {
	e := ev(p, syscall, 0, nil)
	e.Kind = &vigilv1.Event_ModuleLoad{ModuleLoad: &vigilv1.ModuleLoad{Syscall: syscall, Path: path}}
	apply(e, opts)
	return e
}

func setnsEv(p *vigilv1.Process, path string, nstype uint64, opts ...opt) *vigilv1.Event {
	e := ev(p, "setns", 0, nil)
	e.Kind = &vigilv1.Event_Namespace{Namespace: &vigilv1.Namespace{Syscall: "setns", Flags: nstype, Fd: 3, Path: path}}
	apply(e, opts)
	return e
}

func unshareEv(p *vigilv1.Process, flags uint64, opts ...opt) *vigilv1.Event {
	e := ev(p, "unshare", 0, nil)
	e.Kind = &vigilv1.Event_Namespace{Namespace: &vigilv1.Namespace{Syscall: "unshare", Flags: flags, Fd: -1}}
	apply(e, opts)
	return e
}

func mountEv(p *vigilv1.Process, source, target, fstype string, opts ...opt) *vigilv1.Event {
	e := ev(p, "mount", 0, nil)
	e.Kind = &vigilv1.Event_Mount{Mount: &vigilv1.Mount{Source: source, Target: target, Fstype: fstype}}
	apply(e, opts)
	return e
}

func ioUringEv(p *vigilv1.Process, opts ...opt) *vigilv1.Event {
	e := ev(p, "io_uring_setup", 5, nil)
	e.Kind = &vigilv1.Event_IoUringSetup{IoUringSetup: &vigilv1.IoUringSetup{Entries: 64}}
	apply(e, opts)
	return e
}

func userfaultfdEv(p *vigilv1.Process, opts ...opt) *vigilv1.Event {
	e := ev(p, "userfaultfd", 3, nil)
	e.Kind = &vigilv1.Event_Userfaultfd{Userfaultfd: &vigilv1.Userfaultfd{Flags: 0o2000000}}
	apply(e, opts)
	return e
}

func bpfEv(p *vigilv1.Process, cmd int32, name string, opts ...opt) *vigilv1.Event {
	e := ev(p, "bpf", 3, nil)
	e.Kind = &vigilv1.Event_Bpf{Bpf: &vigilv1.Bpf{Cmd: cmd, CmdName: name}}
	apply(e, opts)
	return e
}

func socketEv(p *vigilv1.Process, family int32, name string, opts ...opt) *vigilv1.Event {
	e := ev(p, "socket", 3, nil)
	e.Kind = &vigilv1.Event_Socket{Socket: &vigilv1.Socket{Family: family, FamilyName: name, Type: 3, Protocol: 768}}
	apply(e, opts)
	return e
}

func dnsQueryEv(p *vigilv1.Process, name string, opts ...opt) *vigilv1.Event {
	e := ev(p, "sendmmsg", 1, nil)
	e.Kind = &vigilv1.Event_DnsQuery{DnsQuery: &vigilv1.DnsQuery{Name: name, Type: "A", Id: 4711, Server: inet("127.0.0.53", 53), Syscall: "sendmmsg"}}
	apply(e, opts)
	return e
}

func dnsAnswerEv(p *vigilv1.Process, name string, addrs []string, opts ...opt) *vigilv1.Event {
	e := ev(p, "recvfrom", 64, nil)
	e.Kind = &vigilv1.Event_DnsAnswer{DnsAnswer: &vigilv1.DnsAnswer{Name: name, Type: "A", Id: 4711, Addresses: addrs, Rcode: "NOERROR", Server: inet("127.0.0.53", 53)}}
	apply(e, opts)
	return e
}

func exitEv(p *vigilv1.Process, opts ...opt) *vigilv1.Event {
	e := ev(p, "procexit", 0, nil)
	e.Kind = &vigilv1.Event_Exit{Exit: &vigilv1.Exit{}}
	apply(e, opts)
	return e
}

// sha sets the executable's SHA-256.
func sha(p *vigilv1.Process, h string) *vigilv1.Process {
	p.ExeSha256 = h
	return p
}

// fileless marks the executable as a memfd or deleted file.
func fileless(p *vigilv1.Process) *vigilv1.Process {
	p.ExeFileless = true
	return p
}

// is32 marks the executable as a 32-bit ELF.
func is32(p *vigilv1.Process) *vigilv1.Process {
	p.Compat32 = true
	return p
}

// outsideRoot marks the executable as unreachable from the process's root
// (a detached mount, a memfd, or outside its chroot or container root).
func outsideRoot(p *vigilv1.Process) *vigilv1.Process {
	p.ExeOutsideRoot = true
	return p
}

// upper marks the executable as living in the container's writable layer.
func upper(p *vigilv1.Process) *vigilv1.Process {
	p.ExeUpperLayer = true
	return p
}

// childOf makes p a child of parent: its lineage is the parent, then the
// parent's own ancestors.
func childOf(p, parent *vigilv1.Process) *vigilv1.Process {
	p.Lineage = append([]*vigilv1.Ancestor{{
		ExecId: parent.ExecId, ParentExecId: parent.ParentExecId, Pid: parent.Pid, NsPid: parent.NsPid, Comm: parent.Comm,
		ExePath: parent.ExePath, Args: parent.Args, Uid: parent.Uid, Euid: parent.Euid, StartTime: parent.StartTime,
	}}, parent.Lineage...)
	p.ParentExecId, p.Ppid = parent.ExecId, parent.Pid
	return p
}

// requested sets the path as the process passed it; the event's path stays
// the one the kernel resolved (through symlinks and /proc/self/fd).
func requested(path string) opt {
	return func(e *vigilv1.Event) {
		if o := e.GetOpen(); o != nil {
			o.RequestedPath = path
		}
	}
}

// via sets the system call a DNS query went out with.
func via(syscall string) opt {
	return func(e *vigilv1.Event) {
		e.Syscall = syscall
		if q := e.GetDnsQuery(); q != nil {
			q.Syscall = syscall
		}
	}
}

// image sets the container's image reference (call after inCtr).
func image(ref string) opt {
	return func(e *vigilv1.Event) { e.Container.Image = ref }
}

func mprotectEv(p *vigilv1.Process, prot uint32, opts ...opt) *vigilv1.Event {
	e := ev(p, "mprotect", 0, nil)
	e.Kind = &vigilv1.Event_Mprotect{Mprotect: &vigilv1.Mprotect{Addr: 0x7f0000001000, Len: 4096, Prot: prot}}
	apply(e, opts)
	return e
}
