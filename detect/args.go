package detect

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// Event arguments (evt.arg.NAME) rendered as Falco renders them: flags as
// names joined with '|', numbers in decimal, modes in octal.

type flagName struct {
	bit  uint64
	name string
}

// openFlagNames are the O_* bits after the access mode, in Falco's spelling.
var openFlagNames = []flagName{
	{0o100, "O_CREAT"}, {0o200, "O_EXCL"}, {0o400, "O_NOCTTY"}, {0o1000, "O_TRUNC"},
	{0o2000, "O_APPEND"}, {0o4000, "O_NONBLOCK"}, {0o10000, "O_DSYNC"}, {0o20000, "FASYNC"},
	{0o40000, "O_DIRECT"}, {0o100000, "O_LARGEFILE"}, {0o200000, "O_DIRECTORY"},
	{0o400000, "O_NOFOLLOW"}, {0o1000000, "O_NOATIME"}, {0o2000000, "O_CLOEXEC"},
	{0o4000000, "O_SYNC"}, {0o10000000, "O_PATH"}, {0o20000000, "O_TMPFILE"},
}

func renderOpenFlags(flags uint32, created bool) string {
	var b strings.Builder
	switch flags & 3 {
	case 0:
		b.WriteString("O_RDONLY")
	case 1:
		b.WriteString("O_WRONLY")
	case 2:
		b.WriteString("O_RDWR")
	}
	for _, f := range openFlagNames {
		if uint64(flags)&f.bit == f.bit {
			b.WriteByte('|')
			b.WriteString(f.name)
		}
	}
	if created {
		b.WriteString("|O_F_CREATED")
	}
	return b.String()
}

var memfdFlagNames = []flagName{{1, "MFD_CLOEXEC"}, {2, "MFD_ALLOW_SEALING"}, {4, "MFD_HUGETLB"}, {8, "MFD_NOEXEC_SEAL"}, {16, "MFD_EXEC"}}

var mountFlagNames = []flagName{{1, "RDONLY"}, {2, "NOSUID"}, {4, "NODEV"}, {8, "NOEXEC"}, {16, "SYNCHRONOUS"},
	{32, "REMOUNT"}, {64, "MANDLOCK"}, {1024, "NOATIME"}, {4096, "BIND"}, {8192, "MOVE"}, {16384, "REC"},
	{1 << 18, "PRIVATE"}, {1 << 19, "SLAVE"}, {1 << 20, "SHARED"}}

var cloneNSFlagNames = []flagName{{0x00020000, "CLONE_NEWNS"}, {0x02000000, "CLONE_NEWCGROUP"}, {0x04000000, "CLONE_NEWUTS"},
	{0x08000000, "CLONE_NEWIPC"}, {0x10000000, "CLONE_NEWUSER"}, {0x20000000, "CLONE_NEWPID"}, {0x40000000, "CLONE_NEWNET"},
	{0x00000080, "CLONE_NEWTIME"}}

func renderFlags(v uint64, names []flagName) string {
	var b strings.Builder
	for _, f := range names {
		if v&f.bit == f.bit {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(f.name)
		}
	}
	if b.Len() == 0 {
		return "0"
	}
	return b.String()
}

var modeNames = []flagName{{0o4000, "S_ISUID"}, {0o2000, "S_ISGID"}, {0o1000, "S_ISVTX"},
	{0o400, "S_IRUSR"}, {0o200, "S_IWUSR"}, {0o100, "S_IXUSR"}, {0o40, "S_IRGRP"}, {0o20, "S_IWGRP"},
	{0o10, "S_IXGRP"}, {0o4, "S_IROTH"}, {0o2, "S_IWOTH"}, {0o1, "S_IXOTH"}}

// renderMode renders a file mode as Falco does: octal, then the S_I* names
// ("04755(S_ISUID|S_IRUSR|...)"), so `evt.arg.mode contains S_ISUID` works.
func renderMode(mode uint32) string {
	return "0" + strconv.FormatUint(uint64(mode&0o7777), 8) + "(" + renderFlags(uint64(mode&0o7777), modeNames) + ")"
}

// exeFlags is Falco's execve exe_flags (EXE_UPPER_LAYER, EXE_FROM_MEMFD).
func exeFlags(p *vigilv1.Process) string {
	var fl []string
	if p.GetExeUpperLayer() {
		fl = append(fl, "EXE_UPPER_LAYER")
	}
	if p.GetExeFileless() {
		if strings.Contains(p.GetExePath(), "memfd:") {
			fl = append(fl, "EXE_FROM_MEMFD")
		} else {
			fl = append(fl, "EXE_LOWER_LAYER")
		}
	}
	if len(fl) == 0 {
		return "0"
	}
	return strings.Join(fl, "|")
}

var capabilityNames = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
	"CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
	"CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"}

// capNames renders a capability mask as Falco does (names separated by
// spaces).
func capNames(mask uint64) string {
	if mask == 0 {
		return ""
	}
	var b strings.Builder
	for mask != 0 {
		i := bits.TrailingZeros64(mask)
		mask &^= 1 << i
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		if i < len(capabilityNames) {
			b.WriteString(capabilityNames[i])
		} else {
			fmt.Fprintf(&b, "CAP_%d", i)
		}
	}
	return b.String()
}

func sockTuple(c *evalCtx) (string, bool) {
	if _, ok := sockOf(c.ev); !ok {
		return "", false
	}
	return fdName(c)
}

func itoa(v int64) (string, bool) { return strconv.FormatInt(v, 10), true }

// eventArg reads argument name of the event as text; raw gives numbers
// instead of names for flag-like arguments.
func eventArg(ev *vigilv1.Event, c *evalCtx, name string, raw bool) (string, bool) {
	switch name {
	case "res":
		return itoa(ev.Result)
	case "tuple", "addr":
		if name == "addr" {
			if p := ev.GetPtrace(); p != nil {
				return itoa(int64(p.Addr))
			}
			if m := ev.GetMprotect(); m != nil {
				return itoa(int64(m.Addr))
			}
		}
		return sockTuple(c)
	}
	switch k := ev.Kind.(type) {
	case *vigilv1.Event_Open:
		o := k.Open
		switch name {
		case "flags":
			if raw {
				return itoa(int64(o.Flags))
			}
			return renderOpenFlags(o.Flags, o.Created), true
		case "mode":
			if raw {
				return itoa(int64(o.Mode))
			}
			return renderMode(o.Mode), true
		case "name", "path", "filename":
			return nonEmpty(o.Path)
		case "fd":
			return itoa(int64(o.Fd))
		case "dev":
			return itoa(int64(o.Dev))
		case "ino":
			return itoa(int64(o.Inode))
		}
	case *vigilv1.Event_Exec:
		x := k.Exec
		switch name {
		case "flags":
			return exeFlags(ev.GetProcess()), true
		case "filename", "name", "path", "exe":
			return nonEmpty(x.Filename)
		case "dirfd":
			return itoa(int64(x.Dirfd))
		case "ld_preload":
			return nonEmpty(x.LdPreload)
		}
	case *vigilv1.Event_MemfdCreate:
		switch name {
		case "name":
			return k.MemfdCreate.Name, true
		case "flags":
			if raw {
				return itoa(int64(k.MemfdCreate.Flags))
			}
			return renderFlags(uint64(k.MemfdCreate.Flags), memfdFlagNames), true
		}
	case *vigilv1.Event_Link:
		l := k.Link
		switch name {
		case "target", "oldpath":
			return nonEmpty(l.Target)
		case "linkpath", "newpath":
			return nonEmpty(l.LinkPath)
		}
	case *vigilv1.Event_Rename:
		switch name {
		case "oldpath", "source":
			return nonEmpty(k.Rename.OldPath)
		case "newpath", "target":
			return nonEmpty(k.Rename.NewPath)
		case "flags":
			return itoa(int64(k.Rename.Flags))
		}
	case *vigilv1.Event_Unlink:
		switch name {
		case "name", "path":
			return nonEmpty(k.Unlink.Path)
		}
	case *vigilv1.Event_Chmod:
		switch name {
		case "filename", "path", "name":
			return nonEmpty(k.Chmod.Path)
		case "mode":
			if raw {
				return itoa(int64(k.Chmod.Mode))
			}
			return renderMode(k.Chmod.Mode), true
		}
	case *vigilv1.Event_Chown:
		switch name {
		case "path", "name":
			return nonEmpty(k.Chown.Path)
		case "uid":
			return itoa(k.Chown.Uid)
		case "gid":
			return itoa(k.Chown.Gid)
		}
	case *vigilv1.Event_Truncate:
		switch name {
		case "path", "name":
			return nonEmpty(k.Truncate.Path)
		case "length":
			return itoa(int64(k.Truncate.Length))
		}
	case *vigilv1.Event_Ptrace:
		switch name {
		case "request":
			if raw || k.Ptrace.RequestName == "" {
				return itoa(k.Ptrace.Request)
			}
			return k.Ptrace.RequestName, true
		case "pid":
			return itoa(int64(k.Ptrace.TargetPid))
		}
	case *vigilv1.Event_Socket:
		s := k.Socket
		switch name {
		case "domain":
			if raw || s.FamilyName == "" {
				return itoa(int64(s.Family))
			}
			return s.FamilyName, true
		case "type":
			return itoa(int64(s.Type))
		case "proto":
			return itoa(int64(s.Protocol))
		}
	case *vigilv1.Event_Dup:
		switch name {
		case "fd", "oldfd":
			return itoa(int64(k.Dup.OldFd))
		case "newfd":
			return itoa(int64(k.Dup.NewFd))
		}
	case *vigilv1.Event_Connect, *vigilv1.Event_Accept, *vigilv1.Event_Bind, *vigilv1.Event_Listen:
		if name == "fd" {
			n, ok := fdNum(c)
			if !ok {
				return "", false
			}
			return itoa(n)
		}
		if name == "backlog" {
			return itoa(int64(ev.GetListen().GetBacklog()))
		}
	case *vigilv1.Event_ModuleLoad:
		m := k.ModuleLoad
		switch name {
		case "path", "name":
			return nonEmpty(m.Path)
		case "uargs", "params":
			return m.Params, true
		case "flags":
			return itoa(int64(m.Flags))
		}
	case *vigilv1.Event_Mount:
		m := k.Mount
		switch name {
		case "dev", "source":
			return nonEmpty(m.Source)
		case "dir", "target":
			return nonEmpty(m.Target)
		case "type", "fstype":
			return nonEmpty(m.Fstype)
		case "flags":
			if raw {
				return itoa(int64(m.Flags))
			}
			return renderFlags(m.Flags, mountFlagNames), true
		}
	case *vigilv1.Event_Namespace:
		n := k.Namespace
		switch name {
		case "flags", "nstype":
			if raw {
				return itoa(int64(n.Flags))
			}
			return renderFlags(n.Flags, cloneNSFlagNames), true
		case "fd":
			return itoa(int64(n.Fd))
		case "path":
			return nonEmpty(n.Path)
		}
	case *vigilv1.Event_Bpf:
		switch name {
		case "cmd":
			if raw || k.Bpf.CmdName == "" {
				return itoa(int64(k.Bpf.Cmd))
			}
			return k.Bpf.CmdName, true
		case "prog_type":
			return itoa(int64(k.Bpf.ProgType))
		}
	case *vigilv1.Event_SetId:
		s := k.SetId
		switch name {
		case "uid", "ruid":
			return itoa(s.Ruid)
		case "euid":
			return itoa(s.Euid)
		case "suid":
			return itoa(s.Suid)
		case "gid", "rgid":
			return itoa(s.Rgid)
		case "egid":
			return itoa(s.Egid)
		case "sgid":
			return itoa(s.Sgid)
		}
	case *vigilv1.Event_Capset:
		switch name {
		case "cap_effective":
			return capNames(k.Capset.Effective), true
		case "cap_permitted":
			return capNames(k.Capset.Permitted), true
		case "cap_inheritable":
			return capNames(k.Capset.Inheritable), true
		case "pid":
			return itoa(int64(k.Capset.TargetPid))
		}
	case *vigilv1.Event_ProcessVmWrite:
		switch name {
		case "pid":
			return itoa(int64(k.ProcessVmWrite.TargetPid))
		case "len", "bytes":
			return itoa(int64(k.ProcessVmWrite.Bytes))
		}
	case *vigilv1.Event_IoUringSetup:
		if name == "entries" {
			return itoa(int64(k.IoUringSetup.Entries))
		}
	case *vigilv1.Event_Mprotect:
		switch name {
		case "len":
			return itoa(int64(k.Mprotect.Len))
		case "prot":
			return itoa(int64(k.Mprotect.Prot))
		}
	case *vigilv1.Event_Exit:
		switch name {
		case "status", "code":
			return itoa(int64(k.Exit.Code))
		case "sig":
			return itoa(int64(k.Exit.Signal))
		}
	case *vigilv1.Event_Fork:
		if name == "child_pid" || name == "pid" {
			return itoa(int64(k.Fork.ChildPid))
		}
	case *vigilv1.Event_DnsQuery:
		switch name {
		case "name":
			return nonEmpty(k.DnsQuery.Name)
		case "type":
			return nonEmpty(k.DnsQuery.Type)
		}
	}
	return "", false
}

// knownArgNames are the argument names some event kind has; any other name
// is reported as an unsupported field at load time.
var knownArgNames = map[string]bool{
	"res": true, "tuple": true, "addr": true, "flags": true, "mode": true, "name": true, "path": true, "filename": true,
	"fd": true, "dev": true, "ino": true, "exe": true, "dirfd": true, "ld_preload": true, "target": true, "linkpath": true,
	"oldpath": true, "newpath": true, "source": true, "uid": true, "gid": true, "length": true, "request": true, "pid": true,
	"domain": true, "type": true, "proto": true, "oldfd": true, "newfd": true, "backlog": true, "uargs": true, "params": true,
	"dir": true, "fstype": true, "nstype": true, "cmd": true, "prog_type": true, "ruid": true, "euid": true, "suid": true,
	"rgid": true, "egid": true, "sgid": true, "cap_effective": true, "cap_permitted": true, "cap_inheritable": true,
	"len": true, "bytes": true, "prot": true, "status": true, "code": true, "sig": true, "child_pid": true,
	"entries": true,
}

func eventArgField(name string, raw bool) (fieldImpl, error) {
	if !knownArgNames[name] {
		return fieldImpl{}, &unsupportedField{name: "evt.arg." + name}
	}
	impl := fieldImpl{str: func(c *evalCtx) (string, bool) { return eventArg(c.ev, c, name, raw) }}
	if name == "flags" && !raw {
		impl.typ = ftFlags
	}
	return impl, nil
}

// renderArgs is evt.args: the event's arguments as name=value pairs, in
// Falco's order for each kind.
func renderArgs(c *evalCtx) (string, bool) {
	var names []string
	switch c.ev.Kind.(type) {
	case *vigilv1.Event_Open:
		names = []string{"fd", "name", "flags", "mode"}
	case *vigilv1.Event_Exec:
		names = []string{"filename", "flags"}
	case *vigilv1.Event_Socket:
		names = []string{"domain", "type", "proto"}
	case *vigilv1.Event_Connect, *vigilv1.Event_Accept:
		names = []string{"fd", "tuple"}
	case *vigilv1.Event_Bind, *vigilv1.Event_Listen:
		names = []string{"fd", "addr"}
	case *vigilv1.Event_Dup:
		names = []string{"oldfd", "newfd"}
	case *vigilv1.Event_Ptrace:
		names = []string{"request", "pid"}
	case *vigilv1.Event_Link:
		names = []string{"target", "linkpath"}
	case *vigilv1.Event_Rename:
		names = []string{"oldpath", "newpath"}
	case *vigilv1.Event_MemfdCreate:
		names = []string{"name", "flags"}
	case *vigilv1.Event_ModuleLoad:
		names = []string{"path", "uargs", "flags"}
	case *vigilv1.Event_Mount:
		names = []string{"dev", "dir", "type", "flags"}
	default:
		names = []string{"res"}
	}
	var b strings.Builder
	b.WriteString("res=")
	b.WriteString(strconv.FormatInt(c.ev.Result, 10))
	for _, n := range names {
		if n == "res" {
			continue
		}
		if v, ok := eventArg(c.ev, c, n, false); ok {
			b.WriteByte(' ')
			b.WriteString(n)
			b.WriteByte('=')
			b.WriteString(v)
		}
	}
	return b.String(), true
}
