package collector

import (
	"strconv"

	"github.com/vigilsec/vigil/collector/probes"
)

// sysNames maps the probes' syscall ids (enum rec_sys in bpf/records.h) to
// Falco's evt.type names. The ids are Vigil's own, the same on every
// architecture. Exit is "procexit" and fork "clone", as Falco names them.
var sysNames = [...]string{
	probes.VigilRecSysVIGIL_SYS_NONE:              "",
	probes.VigilRecSysVIGIL_SYS_EXECVE:            "execve",
	probes.VigilRecSysVIGIL_SYS_EXECVEAT:          "execveat",
	probes.VigilRecSysVIGIL_SYS_CLONE:             "clone",
	probes.VigilRecSysVIGIL_SYS_EXIT:              "procexit",
	probes.VigilRecSysVIGIL_SYS_SETUID:            "setuid",
	probes.VigilRecSysVIGIL_SYS_SETGID:            "setgid",
	probes.VigilRecSysVIGIL_SYS_SETREUID:          "setreuid",
	probes.VigilRecSysVIGIL_SYS_SETREGID:          "setregid",
	probes.VigilRecSysVIGIL_SYS_SETRESUID:         "setresuid",
	probes.VigilRecSysVIGIL_SYS_SETRESGID:         "setresgid",
	probes.VigilRecSysVIGIL_SYS_CAPSET:            "capset",
	probes.VigilRecSysVIGIL_SYS_PTRACE:            "ptrace",
	probes.VigilRecSysVIGIL_SYS_MEMFD_CREATE:      "memfd_create",
	probes.VigilRecSysVIGIL_SYS_INIT_MODULE:       "init_module",
	probes.VigilRecSysVIGIL_SYS_FINIT_MODULE:      "finit_module",
	probes.VigilRecSysVIGIL_SYS_MOUNT:             "mount",
	probes.VigilRecSysVIGIL_SYS_UNSHARE:           "unshare",
	probes.VigilRecSysVIGIL_SYS_SETNS:             "setns",
	probes.VigilRecSysVIGIL_SYS_BPF:               "bpf",
	probes.VigilRecSysVIGIL_SYS_USERFAULTFD:       "userfaultfd",
	probes.VigilRecSysVIGIL_SYS_PROCESS_VM_WRITEV: "process_vm_writev",
	probes.VigilRecSysVIGIL_SYS_MPROTECT:          "mprotect",
	probes.VigilRecSysVIGIL_SYS_OPEN:              "open",
	probes.VigilRecSysVIGIL_SYS_OPENAT:            "openat",
	probes.VigilRecSysVIGIL_SYS_OPENAT2:           "openat2",
	probes.VigilRecSysVIGIL_SYS_CREAT:             "creat",
	probes.VigilRecSysVIGIL_SYS_UNLINK:            "unlink",
	probes.VigilRecSysVIGIL_SYS_UNLINKAT:          "unlinkat",
	probes.VigilRecSysVIGIL_SYS_RMDIR:             "rmdir",
	probes.VigilRecSysVIGIL_SYS_RENAME:            "rename",
	probes.VigilRecSysVIGIL_SYS_RENAMEAT:          "renameat",
	probes.VigilRecSysVIGIL_SYS_RENAMEAT2:         "renameat2",
	probes.VigilRecSysVIGIL_SYS_CHMOD:             "chmod",
	probes.VigilRecSysVIGIL_SYS_FCHMOD:            "fchmod",
	probes.VigilRecSysVIGIL_SYS_FCHMODAT:          "fchmodat",
	probes.VigilRecSysVIGIL_SYS_CHOWN:             "chown",
	probes.VigilRecSysVIGIL_SYS_LCHOWN:            "lchown",
	probes.VigilRecSysVIGIL_SYS_FCHOWN:            "fchown",
	probes.VigilRecSysVIGIL_SYS_FCHOWNAT:          "fchownat",
	probes.VigilRecSysVIGIL_SYS_LINK:              "link",
	probes.VigilRecSysVIGIL_SYS_LINKAT:            "linkat",
	probes.VigilRecSysVIGIL_SYS_SYMLINK:           "symlink",
	probes.VigilRecSysVIGIL_SYS_SYMLINKAT:         "symlinkat",
	probes.VigilRecSysVIGIL_SYS_TRUNCATE:          "truncate",
	probes.VigilRecSysVIGIL_SYS_FTRUNCATE:         "ftruncate",
	probes.VigilRecSysVIGIL_SYS_CONNECT:           "connect",
	probes.VigilRecSysVIGIL_SYS_ACCEPT:            "accept",
	probes.VigilRecSysVIGIL_SYS_ACCEPT4:           "accept4",
	probes.VigilRecSysVIGIL_SYS_BIND:              "bind",
	probes.VigilRecSysVIGIL_SYS_LISTEN:            "listen",
	probes.VigilRecSysVIGIL_SYS_SOCKET:            "socket",
	probes.VigilRecSysVIGIL_SYS_SENDTO:            "sendto",
	probes.VigilRecSysVIGIL_SYS_SENDMSG:           "sendmsg",
	probes.VigilRecSysVIGIL_SYS_SENDMMSG:          "sendmmsg",
	probes.VigilRecSysVIGIL_SYS_WRITE:             "write",
	probes.VigilRecSysVIGIL_SYS_WRITEV:            "writev",
	probes.VigilRecSysVIGIL_SYS_IO_URING_SETUP:    "io_uring_setup",
	// Opens and connects completed by an io_uring carry the name of the
	// system call they stand for, so rules about either see them.
	probes.VigilRecSysVIGIL_SYS_IO_URING_OPENAT:   "openat",
	probes.VigilRecSysVIGIL_SYS_IO_URING_OPENAT2:  "openat2",
	probes.VigilRecSysVIGIL_SYS_IO_URING_CONNECT:  "connect",
	probes.VigilRecSysVIGIL_SYS_IO_URING_UNLINKAT: "unlinkat",
	probes.VigilRecSysVIGIL_SYS_IO_URING_RENAMEAT: "renameat2",
	probes.VigilRecSysVIGIL_SYS_RECVFROM:          "recvfrom",
	probes.VigilRecSysVIGIL_SYS_RECVMSG:           "recvmsg",
	probes.VigilRecSysVIGIL_SYS_READ:              "read",
	probes.VigilRecSysVIGIL_SYS_DUP:               "dup",
	probes.VigilRecSysVIGIL_SYS_DUP2:              "dup2",
	probes.VigilRecSysVIGIL_SYS_DUP3:              "dup3",
	probes.VigilRecSysVIGIL_SYS_MAX:               "",
}

func sysName(sys uint16) string {
	if int(sys) < len(sysNames) {
		return sysNames[sys]
	}
	return ""
}

// ptraceRequests names the ptrace requests detection cares about.
var ptraceRequests = map[int64]string{
	0: "PTRACE_TRACEME", 1: "PTRACE_PEEKTEXT", 2: "PTRACE_PEEKDATA", 3: "PTRACE_PEEKUSR",
	4: "PTRACE_POKETEXT", 5: "PTRACE_POKEDATA", 6: "PTRACE_POKEUSR", 7: "PTRACE_CONT",
	8: "PTRACE_KILL", 9: "PTRACE_SINGLESTEP", 12: "PTRACE_GETREGS", 13: "PTRACE_SETREGS",
	14: "PTRACE_GETFPREGS", 15: "PTRACE_SETFPREGS", 16: "PTRACE_ATTACH", 17: "PTRACE_DETACH",
	24: "PTRACE_SYSCALL", 0x4200: "PTRACE_SETOPTIONS", 0x4201: "PTRACE_GETEVENTMSG",
	0x4202: "PTRACE_GETSIGINFO", 0x4203: "PTRACE_SETSIGINFO", 0x4204: "PTRACE_GETREGSET",
	0x4205: "PTRACE_SETREGSET", 0x4206: "PTRACE_SEIZE", 0x4207: "PTRACE_INTERRUPT",
	0x4208: "PTRACE_LISTEN",
}

func ptraceName(req int64) string {
	if n, ok := ptraceRequests[req]; ok {
		return n
	}
	return "PTRACE_" + strconv.FormatInt(req, 10)
}

var bpfCmds = [...]string{
	"BPF_MAP_CREATE", "BPF_MAP_LOOKUP_ELEM", "BPF_MAP_UPDATE_ELEM", "BPF_MAP_DELETE_ELEM",
	"BPF_MAP_GET_NEXT_KEY", "BPF_PROG_LOAD", "BPF_OBJ_PIN", "BPF_OBJ_GET", "BPF_PROG_ATTACH",
	"BPF_PROG_DETACH", "BPF_PROG_TEST_RUN", "BPF_PROG_GET_NEXT_ID", "BPF_MAP_GET_NEXT_ID",
	"BPF_PROG_GET_FD_BY_ID", "BPF_MAP_GET_FD_BY_ID", "BPF_OBJ_GET_INFO_BY_FD", "BPF_PROG_QUERY",
	"BPF_RAW_TRACEPOINT_OPEN", "BPF_BTF_LOAD", "BPF_BTF_GET_FD_BY_ID", "BPF_TASK_FD_QUERY",
	"BPF_MAP_LOOKUP_AND_DELETE_ELEM", "BPF_MAP_FREEZE", "BPF_BTF_GET_NEXT_ID",
	"BPF_MAP_LOOKUP_BATCH", "BPF_MAP_LOOKUP_AND_DELETE_BATCH", "BPF_MAP_UPDATE_BATCH",
	"BPF_MAP_DELETE_BATCH", "BPF_LINK_CREATE", "BPF_LINK_UPDATE", "BPF_LINK_GET_FD_BY_ID",
	"BPF_LINK_GET_NEXT_ID", "BPF_ENABLE_STATS", "BPF_ITER_CREATE", "BPF_LINK_DETACH",
	"BPF_PROG_BIND_MAP", "BPF_TOKEN_CREATE",
}

func bpfCmdName(cmd int32) string {
	if cmd >= 0 && int(cmd) < len(bpfCmds) {
		return bpfCmds[cmd]
	}
	return "BPF_CMD_" + strconv.Itoa(int(cmd))
}

var familyNames = map[int32]string{1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET"}

func familyName(f int32) string {
	if n, ok := familyNames[f]; ok {
		return n
	}
	return "AF_" + strconv.Itoa(int(f))
}
