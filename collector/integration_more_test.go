package collector

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/testutil"
	"github.com/vigilsec/vigil/internal/testutil/uring"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// TestProbesCapturePrivilegeFileAndNetworkCalls performs the privilege,
// evasion, file and socket calls of the capture table and checks each
// decoded event.
func TestProbesCapturePrivilegeFileAndNetworkCalls(t *testing.T) {
	forEachProbeObject(t, func(t *testing.T, object string) {
		cp := startCapture(t, Config{ProbeObject: object})
		dir := t.TempDir()
		me := uint32(os.Getpid())
		unique := fmt.Sprintf("v%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
		mine := func(f func(*vigilv1.Event) bool) func(*vigilv1.Event) bool {
			return func(ev *vigilv1.Event) bool { return ev.Process.GetPid() == me && f(ev) }
		}
		type check = func(t *testing.T, ev *vigilv1.Event)
		cases := []struct {
			name string
			run  func(t *testing.T) (func(*vigilv1.Event) bool, check)
		}{
			{"setresuid shows the requested ids", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				// -1 everywhere changes nothing; raw, so only this thread calls it.
				unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), ^uintptr(0), ^uintptr(0))
				return mine(func(ev *vigilv1.Event) bool { return ev.GetSetId().GetSyscall() == "setresuid" }), func(t *testing.T, ev *vigilv1.Event) {
					s := ev.GetSetId()
					if s.Ruid != -1 || s.Euid != -1 || s.Suid != -1 || ev.Result != 0 {
						t.Errorf("set_id = %v result %d", s, ev.Result)
					}
				}
			}},
			{"capset shows the capability sets", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
				var data [2]unix.CapUserData
				if err := unix.Capget(&hdr, &data[0]); err != nil {
					t.Fatal(err)
				}
				if err := unix.Capset(&hdr, &data[0]); err != nil {
					t.Fatal(err)
				}
				want := uint64(data[0].Effective) | uint64(data[1].Effective)<<32
				return mine(func(ev *vigilv1.Event) bool { return ev.GetCapset() != nil }), func(t *testing.T, ev *vigilv1.Event) {
					if c := ev.GetCapset(); c.Effective != want || c.Permitted == 0 {
						t.Errorf("capset = %v, want effective %#x", c, want)
					}
				}
			}},
			{"ptrace attach names the request and the target", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				const target = 0x3fffffff // no such pid: the attempt fails, and counts
				unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_ATTACH, target, 0, 0, 0, 0)
				return mine(func(ev *vigilv1.Event) bool { return ev.GetPtrace() != nil }), func(t *testing.T, ev *vigilv1.Event) {
					p := ev.GetPtrace()
					if p.RequestName != "PTRACE_ATTACH" || p.TargetPid != target || ev.Errno != "ESRCH" {
						t.Errorf("ptrace = %v errno %s", p, ev.Errno)
					}
				}
			}},
			{"memfd_create shows the name and flags", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				fd, err := unix.MemfdCreate("memfd-"+unique, unix.MFD_CLOEXEC)
				if err != nil {
					t.Fatal(err)
				}
				unix.Close(fd)
				return mine(func(ev *vigilv1.Event) bool { return ev.GetMemfdCreate().GetName() == "memfd-"+unique }), func(t *testing.T, ev *vigilv1.Event) {
					if ev.GetMemfdCreate().Flags != unix.MFD_CLOEXEC || ev.Result < 0 {
						t.Errorf("memfd_create = %v result %d", ev.GetMemfdCreate(), ev.Result)
					}
				}
			}},
			{"unshare shows its namespace flags", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				cmd := exec.Command("/usr/bin/unshare", "--uts", "/bin/true", unique)
				cmd.Env = testEnv
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("unshare: %v %s", err, out)
				}
				pid := uint32(cmd.Process.Pid)
				return func(ev *vigilv1.Event) bool { return ev.Process.Pid == pid && ev.GetNamespace() != nil }, func(t *testing.T, ev *vigilv1.Event) {
					n := ev.GetNamespace()
					if n.Syscall != "unshare" || n.Flags&unix.CLONE_NEWUTS == 0 || ev.Result != 0 {
						t.Errorf("namespace = %v result %d", n, ev.Result)
					}
				}
			}},
			{"setns shows the namespace file it joins", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				fd, err := unix.Open("/proc/self/ns/uts", unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(fd)
				// Joining the namespace the thread is already in changes nothing.
				if err := unix.Setns(fd, unix.CLONE_NEWUTS); err != nil {
					t.Fatal(err)
				}
				return mine(func(ev *vigilv1.Event) bool { return ev.GetNamespace().GetSyscall() == "setns" }), func(t *testing.T, ev *vigilv1.Event) {
					n := ev.GetNamespace()
					if n.Fd != int32(fd) || n.Flags != unix.CLONE_NEWUTS || !strings.Contains(n.Path, "uts:[") {
						t.Errorf("namespace = %v", n)
					}
				}
			}},
			{"bpf program loads name the command and program type", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				attr := make([]byte, 128)
				attr[0] = byte(unix.BPF_PROG_TYPE_SOCKET_FILTER) // no instructions: EINVAL
				unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&attr[0])), uintptr(len(attr)))
				return mine(func(ev *vigilv1.Event) bool { return ev.GetBpf().GetCmdName() == "BPF_PROG_LOAD" }), func(t *testing.T, ev *vigilv1.Event) {
					if ev.GetBpf().ProgType != unix.BPF_PROG_TYPE_SOCKET_FILTER || ev.Result >= 0 {
						t.Errorf("bpf = %v result %d", ev.GetBpf(), ev.Result)
					}
				}
			}},
			{"userfaultfd shows up as a syscall", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				fd, _, _ := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC, 0, 0)
				if int(fd) >= 0 {
					unix.Close(int(fd))
				}
				return mine(func(ev *vigilv1.Event) bool { return ev.GetUserfaultfd() != nil && ev.Syscall == "userfaultfd" }), func(t *testing.T, ev *vigilv1.Event) {
					if ev.GetUserfaultfd().Flags != unix.O_CLOEXEC {
						t.Errorf("userfaultfd = %v", ev.GetUserfaultfd())
					}
				}
			}},
			{"io_uring_setup shows the entries asked for and the ring's fd", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				// struct io_uring_params is 120 bytes; zero asks for defaults.
				var params [120]byte
				fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 8, uintptr(unsafe.Pointer(&params)), 0)
				if errno == 0 {
					unix.Close(int(fd))
				}
				want := int64(fd)
				if errno != 0 {
					want = -int64(errno) // io_uring disabled (sysctl) still counts as an attempt
				}
				return mine(func(ev *vigilv1.Event) bool { return ev.GetIoUringSetup() != nil }), func(t *testing.T, ev *vigilv1.Event) {
					if ev.GetIoUringSetup().Entries != 8 || ev.Syscall != "io_uring_setup" || ev.Result != want {
						t.Errorf("io_uring_setup = %v syscall %s result %d, want 8 entries and result %d", ev.GetIoUringSetup(), ev.Syscall, ev.Result, want)
					}
				}
			}},
			{"an open submitted through an io_uring shows the file the kernel opened", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				ring := newRing(t)
				target := filepath.Join(dir, "uring-"+unique)
				if err := os.WriteFile(target, []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
				// A relative name: the event carries the kernel's path.
				t.Chdir(dir)
				fd, err := ring.Openat(filepath.Base(target), os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				unix.Close(fd)
				return mine(func(ev *vigilv1.Event) bool { return ev.IoUring && ev.GetOpen().GetPath() == target }), func(t *testing.T, ev *vigilv1.Event) {
					o := ev.GetOpen()
					if ev.Syscall != "openat" || o.Fd != int32(fd) || o.Flags&unix.O_ACCMODE != unix.O_RDWR || o.Inode == 0 || o.Created ||
						o.RequestedPath != filepath.Base(target) {
						t.Errorf("open = %v io_uring %v syscall %s, want fd %d read-write through the ring", o, ev.IoUring, ev.Syscall, fd)
					}
				}
			}},
			{"a failed open through an io_uring still shows the path asked for", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				ring := newRing(t)
				t.Chdir(dir)
				missing := "uring-missing-" + unique
				if _, err := ring.Openat(missing, os.O_RDONLY, 0); err != unix.ENOENT {
					t.Fatalf("open of a missing file: %v", err)
				}
				return mine(func(ev *vigilv1.Event) bool { return ev.IoUring && ev.GetOpen().GetRequestedPath() == missing }), func(t *testing.T, ev *vigilv1.Event) {
					if o := ev.GetOpen(); o.Path != filepath.Join(dir, missing) || ev.Errno != "ENOENT" {
						t.Errorf("open = %v errno %s, want %s", o, ev.Errno, filepath.Join(dir, missing))
					}
				}
			}},
			{"an unlink and a rename submitted through an io_uring show their paths", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				ring := newRing(t)
				t.Chdir(dir)
				from, to := "uring-from-"+unique, "uring-to-"+unique
				if err := os.WriteFile(from, []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := ring.Renameat(from, to); err != nil {
					t.Fatal(err)
				}
				if err := ring.Unlinkat(to, 0); err != nil {
					t.Fatal(err)
				}
				rn := cp.waitFor(t, "the rename", func(ev *vigilv1.Event) bool { return ev.IoUring && ev.GetRename() != nil && ev.Process.GetPid() == me })
				if r := rn.GetRename(); r.OldPath != filepath.Join(dir, from) || r.NewPath != filepath.Join(dir, to) || rn.Syscall != "renameat2" || rn.Result != 0 {
					t.Errorf("rename = %v syscall %s result %d", r, rn.Syscall, rn.Result)
				}
				return mine(func(ev *vigilv1.Event) bool { return ev.IoUring && ev.GetUnlink() != nil }), func(t *testing.T, ev *vigilv1.Event) {
					if u := ev.GetUnlink(); u.Path != filepath.Join(dir, to) || u.Directory || ev.Syscall != "unlinkat" || ev.Result != 0 {
						t.Errorf("unlink = %v syscall %s result %d", u, ev.Syscall, ev.Result)
					}
				}
			}},
			{"a connect submitted through an io_uring shows the peer", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				ln, err := net.Listen("tcp4", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				port := ln.Addr().(*net.TCPAddr).Port
				ring := newRing(t)
				s, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(s)
				if err := ring.ConnectInet4(s, [4]byte{127, 0, 0, 1}, port); err != nil {
					t.Fatal(err)
				}
				return mine(func(ev *vigilv1.Event) bool {
						return ev.IoUring && ev.GetConnect().GetRemote().GetPort() == uint32(port)
					}), func(t *testing.T, ev *vigilv1.Event) {
						c := ev.GetConnect()
						if ev.Syscall != "connect" || c.Remote.GetIp() != "127.0.0.1" || c.Local.GetPort() == 0 || c.Protocol != "tcp" || ev.Result != 0 {
							t.Errorf("connect = %v syscall %s result %d", c, ev.Syscall, ev.Result)
						}
					}
			}},
			{"an open of /dev/userfaultfd is a userfaultfd event too", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				if _, err := os.Stat("/dev/userfaultfd"); err != nil {
					t.Skip("no /dev/userfaultfd on this kernel")
				}
				if f, err := os.Open("/dev/userfaultfd"); err == nil {
					f.Close()
				}
				return mine(func(ev *vigilv1.Event) bool { return ev.GetUserfaultfd() != nil && ev.Syscall == "openat" }), func(t *testing.T, ev *vigilv1.Event) {}
			}},
			{"process_vm_writev names the target and the bytes written", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				src, dst := []byte("vigil!"), make([]byte, 6)
				local := []unix.Iovec{{Base: &src[0], Len: uint64(len(src))}}
				remote := []unix.RemoteIovec{{Base: uintptr(unsafe.Pointer(&dst[0])), Len: len(dst)}}
				if _, err := unix.ProcessVMWritev(os.Getpid(), local, remote, 0); err != nil {
					t.Fatal(err)
				}
				return mine(func(ev *vigilv1.Event) bool { return ev.GetProcessVmWrite() != nil }), func(t *testing.T, ev *vigilv1.Event) {
					if w := ev.GetProcessVmWrite(); w.TargetPid != me || w.Bytes != 6 {
						t.Errorf("process_vm_write = %v", w)
					}
				}
			}},
			{"mprotect adding PROT_EXEC shows the protection", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				mem, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Munmap(mem)
				if err := unix.Mprotect(mem, unix.PROT_READ|unix.PROT_EXEC); err != nil {
					t.Fatal(err)
				}
				addr := uint64(uintptr(unsafe.Pointer(&mem[0])))
				return mine(func(ev *vigilv1.Event) bool { return ev.GetMprotect().GetAddr() == addr }), func(t *testing.T, ev *vigilv1.Event) {
					if m := ev.GetMprotect(); m.Prot != unix.PROT_READ|unix.PROT_EXEC || m.Len != 4096 {
						t.Errorf("mprotect = %v", m)
					}
				}
			}},
			{"unlink shows the removed path", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				p := filepath.Join(dir, "unlink-"+unique)
				os.WriteFile(p, nil, 0o600)
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				return mine(func(ev *vigilv1.Event) bool { return ev.GetUnlink().GetPath() == p }), func(t *testing.T, ev *vigilv1.Event) {
					if ev.GetUnlink().Directory || ev.Result != 0 {
						t.Errorf("unlink = %v", ev.GetUnlink())
					}
				}
			}},
			{"chmod through a dirfd shows the absolute path and mode", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				p := filepath.Join(dir, "chmod-"+unique)
				os.WriteFile(p, nil, 0o600)
				dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(dfd)
				if err := unix.Fchmodat(dfd, "chmod-"+unique, 0o640, 0); err != nil {
					t.Fatal(err)
				}
				return mine(func(ev *vigilv1.Event) bool { return ev.GetChmod().GetPath() == p }), func(t *testing.T, ev *vigilv1.Event) {
					if ev.GetChmod().Mode != 0o640 || !strings.HasPrefix(ev.Syscall, "fchmodat") {
						t.Errorf("chmod = %v syscall %s", ev.GetChmod(), ev.Syscall)
					}
				}
			}},
			{"chown shows the path and ids", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				p := filepath.Join(dir, "chown-"+unique)
				os.WriteFile(p, nil, 0o600)
				if err := os.Chown(p, 1, 2); err != nil {
					t.Fatal(err)
				}
				return mine(func(ev *vigilv1.Event) bool { return ev.GetChown().GetPath() == p }), func(t *testing.T, ev *vigilv1.Event) {
					if c := ev.GetChown(); c.Uid != 1 || c.Gid != 2 {
						t.Errorf("chown = %v", c)
					}
				}
			}},
			{"a hard link shows both paths", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				a, b := filepath.Join(dir, "link-a-"+unique), filepath.Join(dir, "link-b-"+unique)
				os.WriteFile(a, nil, 0o600)
				if err := os.Link(a, b); err != nil {
					t.Fatal(err)
				}
				return mine(func(ev *vigilv1.Event) bool { return ev.GetLink().GetLinkPath() == b }), func(t *testing.T, ev *vigilv1.Event) {
					if l := ev.GetLink(); l.Target != a || l.Symbolic {
						t.Errorf("link = %v", l)
					}
				}
			}},
			{"a symlink shows its target as written and the new path", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				b := filepath.Join(dir, "sym-"+unique)
				if err := os.Symlink("../etc/shadow", b); err != nil {
					t.Fatal(err)
				}
				return mine(func(ev *vigilv1.Event) bool { return ev.GetLink().GetLinkPath() == b }), func(t *testing.T, ev *vigilv1.Event) {
					if l := ev.GetLink(); l.Target != "../etc/shadow" || !l.Symbolic {
						t.Errorf("link = %v", l)
					}
				}
			}},
			{"truncate shows the path and length", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				p := filepath.Join(dir, "trunc-"+unique)
				os.WriteFile(p, []byte("0123456789"), 0o600)
				if err := os.Truncate(p, 3); err != nil {
					t.Fatal(err)
				}
				return mine(func(ev *vigilv1.Event) bool { return ev.GetTruncate().GetPath() == p }), func(t *testing.T, ev *vigilv1.Event) {
					if ev.GetTruncate().Length != 3 {
						t.Errorf("truncate = %v", ev.GetTruncate())
					}
				}
			}},
			{"an exec from an overlay's upper layer is marked, one from the lower layer is not", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				root := filepath.Join(dir, "ovl")
				lower, upper, work, merged := filepath.Join(root, "lower"), filepath.Join(root, "upper"), filepath.Join(root, "work"), filepath.Join(root, "merged")
				for _, d := range []string{lower, upper, work, merged} {
					if err := os.MkdirAll(d, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				bin, err := os.ReadFile("/bin/true")
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(lower, "image-true"), bin, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := unix.Mount("overlay", merged, "overlay", 0, "lowerdir="+lower+",upperdir="+upper+",workdir="+work); err != nil {
					t.Skipf("cannot mount overlay here: %v", err)
				}
				t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })
				if err := os.WriteFile(filepath.Join(merged, "dropped-true"), bin, 0o755); err != nil {
					t.Fatal(err)
				}
				for _, name := range []string{"image-true", "dropped-true"} {
					cmd := exec.Command(filepath.Join(merged, name))
					cmd.Env = testEnv
					if out, err := cmd.CombinedOutput(); err != nil {
						t.Fatalf("%s: %v %s", name, err, out)
					}
				}
				image := cp.waitFor(t, "exec from the lower layer", func(ev *vigilv1.Event) bool {
					return ev.GetExec() != nil && strings.HasSuffix(ev.Process.ExePath, "/image-true")
				})
				if image.Process.ExeUpperLayer {
					t.Errorf("exec of an image file marked as upper layer: %v", image.Process)
				}
				return func(ev *vigilv1.Event) bool {
						return ev.GetExec() != nil && strings.HasSuffix(ev.Process.ExePath, "/dropped-true")
					}, func(t *testing.T, ev *vigilv1.Event) {
						if !ev.Process.ExeUpperLayer {
							t.Errorf("exec of a file written in the overlay not marked as upper layer: %v", ev.Process)
						}
					}
			}},
			{"a DNS query by write and its answer by read on a connected socket show the name", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				srvAddr := [4]byte{127, 54, byte(os.Getpid() >> 8), byte(os.Getpid())}
				srv, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(srv)
				if err := unix.Bind(srv, &unix.SockaddrInet4{Port: 53, Addr: srvAddr}); err != nil {
					t.Skipf("cannot bind a DNS server port: %v", err)
				}
				cl, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(cl)
				if err := unix.Connect(cl, &unix.SockaddrInet4{Port: 53, Addr: srvAddr}); err != nil {
					t.Fatal(err)
				}
				name := "write." + unique + ".example"
				if _, err := unix.Write(cl, dnsQuery(t, name, 9)); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 512)
				_, from, err := unix.Recvfrom(srv, buf, 0)
				if err != nil {
					t.Fatal(err)
				}
				if err := unix.Sendto(srv, dnsAnswer(t, name, 9, [4]byte{10, 1, 2, 3}), 0, from); err != nil {
					t.Fatal(err)
				}
				if _, err := unix.Read(cl, buf); err != nil {
					t.Fatal(err)
				}
				q := cp.waitFor(t, "the query", func(ev *vigilv1.Event) bool { return ev.GetDnsQuery().GetName() == name })
				if q.GetDnsQuery().Syscall != "write" || q.GetDnsQuery().Server.GetPort() != 53 {
					t.Errorf("query = %v", q.GetDnsQuery())
				}
				return func(ev *vigilv1.Event) bool { return ev.GetDnsAnswer().GetName() == name }, func(t *testing.T, ev *vigilv1.Event) {
					if a := ev.GetDnsAnswer(); ev.Syscall != "read" || len(a.Addresses) != 1 || a.Addresses[0] != "10.1.2.3" {
						t.Errorf("answer = %v syscall %s", a, ev.Syscall)
					}
				}
			}},
			{"a raw packet socket shows its family", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
				if err != nil {
					t.Fatal(err)
				}
				unix.Close(fd)
				return mine(func(ev *vigilv1.Event) bool { return ev.GetSocket() != nil && ev.Result == int64(fd) }), func(t *testing.T, ev *vigilv1.Event) {
					if s := ev.GetSocket(); s.FamilyName != "AF_PACKET" || s.Type != unix.SOCK_RAW {
						t.Errorf("socket = %v", s)
					}
				}
			}},
		}
		cases = append(cases, struct {
			name string
			run  func(t *testing.T) (func(*vigilv1.Event) bool, check)
		}{"a unix connect through a symlink in another directory shows the socket file it reached", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
			sock := filepath.Join(dir, "runtime-"+unique+".sock")
			ln, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				if c, err := ln.Accept(); err == nil {
					c.Close()
				}
			}()
			other := t.TempDir()
			link := filepath.Join(other, "innocent-"+unique)
			if err := os.Symlink(sock, link); err != nil {
				t.Fatal(err)
			}
			// Dial by a relative name from the link's directory.
			wd, _ := os.Getwd()
			if err := os.Chdir(other); err != nil {
				t.Fatal(err)
			}
			c, err := net.Dial("unix", filepath.Base(link))
			os.Chdir(wd)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			return mine(func(ev *vigilv1.Event) bool { return ev.GetConnect().GetRemote().GetPath() == sock }), func(t *testing.T, ev *vigilv1.Event) {
				if cn := ev.GetConnect(); cn.Protocol != "unix" || ev.Result != 0 {
					t.Errorf("connect = %v result %d", cn, ev.Result)
				}
			}
		}})
		for _, family := range []string{"tcp4", "tcp6", "unix"} {
			cases = append(cases, struct {
				name string
				run  func(t *testing.T) (func(*vigilv1.Event) bool, check)
			}{"bind, listen, connect and accept over " + family + " show both ends", func(t *testing.T) (func(*vigilv1.Event) bool, check) {
				addr := map[string]string{"tcp4": "127.0.0.1:0", "tcp6": "[::1]:0", "unix": filepath.Join(dir, "s-"+family)}[family]
				network := map[string]string{"tcp4": "tcp4", "tcp6": "tcp6", "unix": "unix"}[family]
				ln, err := net.Listen(network, addr)
				if err != nil {
					t.Skipf("no %s on this host: %v", family, err)
				}
				defer ln.Close()
				accepted := make(chan net.Conn, 1)
				go func() {
					c, err := ln.Accept()
					if err == nil {
						accepted <- c
					}
					close(accepted)
				}()
				c, err := net.Dial(network, ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if a := <-accepted; a != nil {
					defer a.Close()
				}
				var wantIP, wantPath, proto string
				var port uint32
				switch family {
				case "tcp4", "tcp6":
					ta := ln.Addr().(*net.TCPAddr)
					wantIP, port, proto = ta.IP.String(), uint32(ta.Port), "tcp"
				default:
					wantPath, proto = addr, "unix"
				}
				endMatches := func(a *vigilv1.SocketAddress) bool {
					if wantPath != "" {
						return a.GetPath() == wantPath
					}
					return a.GetIp() == wantIP && a.GetPort() == port
				}
				cp.waitFor(t, "bind", mine(func(ev *vigilv1.Event) bool { return endMatches(ev.GetBind().GetLocal()) }))
				lst := cp.waitFor(t, "listen", mine(func(ev *vigilv1.Event) bool {
					l := ev.GetListen()
					if wantPath != "" {
						return l.GetLocal().GetFamily() == "unix"
					}
					return l.GetLocal().GetPort() == port
				}))
				if lst.GetListen().Protocol != proto {
					t.Errorf("listen = %v", lst.GetListen())
				}
				if family != "unix" {
					acc := cp.waitFor(t, "accept", mine(func(ev *vigilv1.Event) bool { return ev.Result >= 0 && ev.GetAccept().GetLocal().GetPort() == port }))
					if a := acc.GetAccept(); a.Remote.GetIp() != wantIP || a.NewFd < 0 || a.Protocol != "tcp" {
						t.Errorf("accept = %v", a)
					}
				}
				return mine(func(ev *vigilv1.Event) bool { return endMatches(ev.GetConnect().GetRemote()) }), func(t *testing.T, ev *vigilv1.Event) {
					cn := ev.GetConnect()
					if cn.Protocol != proto || ev.Result != 0 && ev.Errno != "EINPROGRESS" {
						t.Errorf("connect = %v result %d %s", cn, ev.Result, ev.Errno)
					}
					if family != "unix" && cn.Local.GetPort() == 0 {
						t.Errorf("connect has no local port: %v", cn)
					}
				}
			}})
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				match, check := tc.run(t)
				ev := cp.waitFor(t, tc.name, match)
				check(t, ev)
				if t.Failed() {
					t.Logf("event: %v", ev)
				}
				saveSample(t, tc.name, cp.rawFor(ev))
			})
		}
	})
}

// newRing sets up an io_uring for a test, closed at its end. A kernel
// without io_uring, or with it disabled (kernel.io_uring_disabled), cannot
// run the test: it skips, or fails under VIGIL_REQUIRE_PRIVILEGED.
func newRing(t *testing.T) *uring.Ring {
	t.Helper()
	r, err := uring.New()
	if err != nil {
		testutil.SkipOrFail(t, "io_uring unavailable: "+err.Error())
	}
	t.Cleanup(func() { r.Close() })
	return r
}
