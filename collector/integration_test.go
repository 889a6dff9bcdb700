package collector

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/testutil"
	"github.com/vigilsec/vigil/internal/testutil/elf32"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// capture runs a real collector for a test and keeps what it emits.
type capture struct {
	c      *Collector
	mu     sync.Mutex
	events []*vigilv1.Event
	raw    map[rawKey][]byte
	cancel context.CancelFunc
	done   chan error
}

type rawKey struct {
	tid uint32
	ts  int64
}

// forEachProbeObject runs f against each build of the probes, so both the
// direct object and the compat object older kernels load are checked on
// this kernel.
func forEachProbeObject(t *testing.T, f func(t *testing.T, object string)) {
	for _, object := range []string{ProbeObjectDirect, ProbeObjectCompat} {
		t.Run(object, func(t *testing.T) { f(t, object) })
	}
}

func startCapture(t *testing.T, cfg Config) *capture {
	t.Helper()
	testutil.RequirePrivileged(t)
	cfg.IncludeSelf = true // the test process performs most actions itself
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	c, err := New(cfg, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if cfg.ProbeObject != "" && cfg.ProbeObject != ProbeObjectAuto && c.object != cfg.ProbeObject {
		t.Fatalf("loaded the %s probes, asked for %s", c.object, cfg.ProbeObject)
	}
	cp := &capture{c: c, raw: make(map[rawKey][]byte), done: make(chan error, 1)}
	c.rawTap = func(b []byte) {
		h := view[rawHdr](b)
		if h == nil {
			return
		}
		cp.mu.Lock()
		cp.raw[rawKey{h.Tid, int64(h.Ts)}] = slices.Clone(b)
		cp.mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cp.cancel = cancel
	out := make(chan *vigilv1.Event, 1024)
	go func() { cp.done <- c.Run(ctx, out) }()
	go func() {
		for ev := range out {
			cp.mu.Lock()
			cp.events = append(cp.events, ev)
			cp.mu.Unlock()
		}
	}()
	// Run attaches before it seeds /proc; a seeded table means capture is on.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if live, _ := c.procs.Len(); live > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("collector did not start within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-cp.done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return cp
}

// waitFor returns the first event that matches, waiting up to 10s.
func (cp *capture) waitFor(t *testing.T, what string, match func(*vigilv1.Event) bool) *vigilv1.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	seen := 0
	for time.Now().Before(deadline) {
		cp.mu.Lock()
		evs := cp.events[seen:]
		cp.mu.Unlock()
		for _, ev := range evs {
			if match(ev) {
				return ev
			}
		}
		seen += len(evs)
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no event for %s within 10s", what)
	return nil
}

// rawFor returns the ring-buffer record an event was decoded from.
func (cp *capture) rawFor(ev *vigilv1.Event) []byte {
	ts := ev.Time.AsTime().Sub(cp.c.dec.BootTime)
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.raw[rawKey{ev.Tid, int64(ts)}]
}

// testEnv is the environment of the processes the tests start, so that the
// captured samples in testdata hold nothing of the machine that ran them.
var testEnv = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}

func self(ev *vigilv1.Event) bool { return ev.Process.GetPid() == uint32(os.Getpid()) }

func dnsQuery(t *testing.T, name string, id uint16) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name + "."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func dnsAnswer(t *testing.T, name string, id uint16, ip [4]byte) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, Response: true, RecursionAvailable: true})
	n := dnsmessage.MustNewName(name + ".")
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	if err := b.Question(dnsmessage.Question{Name: n, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	if err := b.StartAnswers(); err != nil {
		t.Fatal(err)
	}
	if err := b.AResource(dnsmessage.ResourceHeader{Name: n, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: ip}); err != nil {
		t.Fatal(err)
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// sendmmsg sends msgs on fd in one sendmmsg(2), as glibc's resolver does.
func sendmmsg(fd int, msgs [][]byte) error {
	type mmsghdr struct {
		hdr unix.Msghdr
		len uint32
		_   [4]byte
	}
	iovs := make([]unix.Iovec, len(msgs))
	hdrs := make([]mmsghdr, len(msgs))
	for i, m := range msgs {
		iovs[i].Base = &m[0]
		iovs[i].SetLen(len(m))
		hdrs[i].hdr.Iov = &iovs[i]
		hdrs[i].hdr.SetIovlen(1)
	}
	_, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// TestProbesCaptureEachAction performs each action of the capture table on
// this kernel and checks the decoded event's fields.
func TestProbesCaptureEachAction(t *testing.T) {
	forEachProbeObject(t, func(t *testing.T, object string) {
		// The raw_syscalls fallback on, so module loads are seen on kernels
		// without their tracepoints (this one among them).
		cp := startCapture(t, Config{RawSyscallsFallback: true, ProbeObject: object})
		dir := t.TempDir()
		me := uint32(os.Getpid())
		unique := fmt.Sprintf("vigil-%d-%d", os.Getpid(), time.Now().UnixNano())

		cases := []struct {
			name string
			// run performs the action and returns a matcher for its event and
			// a check of the event's fields.
			run func(t *testing.T) (func(*vigilv1.Event) bool, func(t *testing.T, ev *vigilv1.Event))
		}{
			{"a file opened for write through a relative path shows its absolute path", func(t *testing.T) (func(*vigilv1.Event) bool, func(*testing.T, *vigilv1.Event)) {
				cmd := exec.Command("/bin/sh", "-c", "echo x > rel-"+unique)
				cmd.Env = testEnv
				cmd.Dir = dir
				if err := cmd.Run(); err != nil {
					t.Fatal(err)
				}
				want := filepath.Join(dir, "rel-"+unique)
				// The shell's own open: another process (a checker, the
				// sensor's hash worker) may open the same file by its
				// absolute path.
				return func(ev *vigilv1.Event) bool { return ev.GetOpen().GetPath() == want && ev.Process.GetComm() == "sh" }, func(t *testing.T, ev *vigilv1.Event) {
					o := ev.GetOpen()
					if o.RequestedPath != "rel-"+unique || o.Flags&unix.O_WRONLY == 0 || !o.Created || o.Fd < 0 || o.Inode == 0 {
						t.Errorf("open = %v, want requested relative path, O_WRONLY, created, fd and inode", o)
					}
					if ev.Syscall != "openat" && ev.Syscall != "open" {
						t.Errorf("syscall = %q", ev.Syscall)
					}
					if ev.Process.Comm != "sh" || ev.Process.Cwd != dir {
						t.Errorf("process comm %q cwd %q, want sh in %s", ev.Process.Comm, ev.Process.Cwd, dir)
					}
				}
			}},
			{"a failed open shows the requested path resolved and its errno", func(t *testing.T) (func(*vigilv1.Event) bool, func(*testing.T, *vigilv1.Event)) {
				p := filepath.Join(dir, "missing-"+unique)
				_, err := os.Open(p)
				if err == nil {
					t.Fatal("open of a missing file succeeded")
				}
				return func(ev *vigilv1.Event) bool { return self(ev) && ev.GetOpen().GetPath() == p }, func(t *testing.T, ev *vigilv1.Event) {
					if ev.Result != -int64(unix.ENOENT) || ev.Errno != "ENOENT" {
						t.Errorf("result %d errno %q, want ENOENT", ev.Result, ev.Errno)
					}
				}
			}},
			{"a rename shows both paths", func(t *testing.T) (func(*vigilv1.Event) bool, func(*testing.T, *vigilv1.Event)) {
				a, b := filepath.Join(dir, "a-"+unique), filepath.Join(dir, "b-"+unique)
				if err := os.WriteFile(a, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(a, b); err != nil {
					t.Fatal(err)
				}
				return func(ev *vigilv1.Event) bool { return ev.GetRename().GetNewPath() == b }, func(t *testing.T, ev *vigilv1.Event) {
					if ev.GetRename().OldPath != a || ev.Result != 0 || !strings.HasPrefix(ev.Syscall, "rename") {
						t.Errorf("rename = %v result %d syscall %s", ev.GetRename(), ev.Result, ev.Syscall)
					}
				}
			}},
			{"an exec shows full argv and the right parent", func(t *testing.T) (func(*vigilv1.Event) bool, func(*testing.T, *vigilv1.Event)) {
				echo := exec.Command("/bin/echo", "first", "two words", unique)
				echo.Env = testEnv
				if err := echo.Run(); err != nil {
					t.Fatal(err)
				}
				return func(ev *vigilv1.Event) bool { return ev.GetExec() != nil && slices.Contains(ev.Process.Args, unique) }, func(t *testing.T, ev *vigilv1.Event) {
					p := ev.Process
					if !slices.Equal(p.Args, []string{"/bin/echo", "first", "two words", unique}) {
						t.Errorf("args = %q", p.Args)
					}
					if p.Ppid != me {
						t.Errorf("ppid = %d, want %d", p.Ppid, me)
					}
					parent := cp.c.procs.Lookup(me)
					if parent == nil || p.ParentExecId != parent.ExecId || p.ExecId == "" {
						t.Errorf("parent exec id %q, want the test process's %v", p.ParentExecId, parent.GetExecId())
					}
					if p.ExePath != "/usr/bin/echo" && p.ExePath != "/bin/echo" || p.Compat32 {
						t.Errorf("exe = %q compat32 %v", p.ExePath, p.Compat32)
					}
					if ev.GetExec().Filename != "/bin/echo" || ev.Syscall != "execve" || p.Comm != "echo" || p.StartTime == nil {
						t.Errorf("exec = %v syscall %s comm %s", ev.GetExec(), ev.Syscall, p.Comm)
					}
					if ev.CgroupId == 0 || ev.CgroupPath == "" {
						t.Errorf("cgroup id %d path %q", ev.CgroupId, ev.CgroupPath)
					}
				}
			}},
			{"a fork names the child and an exit carries the status", func(t *testing.T) (func(*vigilv1.Event) bool, func(*testing.T, *vigilv1.Event)) {
				cmd := exec.Command("/bin/sh", "-c", "exit 3")
				cmd.Env = testEnv
				_ = cmd.Run()
				child := uint32(cmd.Process.Pid)
				fork := cp.waitFor(t, "fork", func(ev *vigilv1.Event) bool { return ev.GetFork().GetChildPid() == child })
				if fork.Process.Pid != me || fork.GetFork().ChildExecId == "" {
					t.Errorf("fork from %d child exec id %q", fork.Process.Pid, fork.GetFork().ChildExecId)
				}
				return func(ev *vigilv1.Event) bool { return ev.GetExit() != nil && ev.Process.Pid == child }, func(t *testing.T, ev *vigilv1.Event) {
					if ev.GetExit().Code != 3<<8 || ev.Syscall != "procexit" {
						t.Errorf("exit = %v", ev.GetExit())
					}
				}
			}},
			{"a failed mount of /etc on /tmp shows up", func(t *testing.T) (func(*vigilv1.Event) bool, func(*testing.T, *vigilv1.Event)) {
				if err := unix.Mount("/etc", "/tmp", "", 0, ""); err == nil {
					t.Fatal("mount without a type succeeded")
				}
				return func(ev *vigilv1.Event) bool { return self(ev) && ev.GetMount() != nil }, func(t *testing.T, ev *vigilv1.Event) {
					m := ev.GetMount()
					if m.Source != "/etc" || m.Target != "/tmp" || ev.Result >= 0 || ev.Errno == "" {
						t.Errorf("mount = %v result %d errno %s", m, ev.Result, ev.Errno)
					}
				}
			}},
			{"a kernel module load attempt shows up, through raw_syscalls where the kernel lacks its tracepoints", func(t *testing.T) (func(*vigilv1.Event) bool, func(*testing.T, *vigilv1.Event)) {
				f, err := os.CreateTemp("", "vigil-*.ko")
				if err != nil {
					t.Fatal(err)
				}
				defer os.Remove(f.Name())
				defer f.Close()
				// A bogus image: the kernel refuses it (or has no module
				// support at all); the attempt is what must be seen.
				if err := unix.FinitModule(int(f.Fd()), "", 0); err == nil {
					t.Fatal("finit_module of an empty file succeeded")
				}
				name := f.Name()
				return func(ev *vigilv1.Event) bool { return self(ev) && ev.GetModuleLoad() != nil }, func(t *testing.T, ev *vigilv1.Event) {
					m := ev.GetModuleLoad()
					if m.Syscall != "finit_module" || m.Path != name || ev.Result >= 0 || ev.Errno == "" {
						t.Errorf("module load = %v result %d errno %s, want finit_module of %s refused", m, ev.Result, ev.Errno, name)
					}
				}
			}},
			{"execveat of a memfd with AT_EMPTY_PATH shows up as an exec from a memfd", func(t *testing.T) (func(*vigilv1.Event) bool, func(*testing.T, *vigilv1.Event)) {
				cmd := exec.Command(os.Args[0])
				cmd.Env = append(testEnv, "VIGIL_COLLECTOR_HELPER=memfd-exec")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("helper: %v %s", err, out)
				}
				pid := uint32(cmd.Process.Pid)
				// The helper's own exec (of the test binary) comes first.
				return func(ev *vigilv1.Event) bool {
						return ev.GetExec() != nil && ev.Process.Pid == pid && ev.Process.Comm != "collector.test"
					}, func(t *testing.T, ev *vigilv1.Event) {
						x := ev.GetExec()
						if !x.Execveat || x.Flags&unix.AT_EMPTY_PATH == 0 || x.Dirfd < 0 || ev.Syscall != "execveat" {
							t.Errorf("exec = %v syscall %s", x, ev.Syscall)
						}
						if !ev.Process.ExeFileless || !strings.Contains(ev.Process.ExePath, "memfd:vigil-fileless") {
							t.Errorf("exe %q fileless %v, want the memfd", ev.Process.ExePath, ev.Process.ExeFileless)
						}
					}
			}},
			{"a 32-bit program's exec says so (its system calls bypass the per-syscall tracepoints)", func(t *testing.T) (func(*vigilv1.Event) bool, func(*testing.T, *vigilv1.Event)) {
				if runtime.GOARCH != "amd64" {
					t.Skip("the test program is an i386 executable")
				}
				bin := filepath.Join(t.TempDir(), "legacy32")
				if err := os.WriteFile(bin, elf32.ExitProgram(7), 0o755); err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(bin)
				err := cmd.Run()
				if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
					testutil.SkipOrFail(t, fmt.Sprintf("this kernel cannot run an i386 program (no IA32 emulation?): %v", err))
				}
				pid := uint32(cmd.Process.Pid)
				return func(ev *vigilv1.Event) bool { return ev.GetExec() != nil && ev.Process.Pid == pid }, func(t *testing.T, ev *vigilv1.Event) {
					if !ev.Process.Compat32 || ev.Process.ExePath != bin {
						t.Errorf("exe %q compat32 %v, want %s in compatibility mode", ev.Process.ExePath, ev.Process.Compat32, bin)
					}
				}
			}},
			{"a DNS query by plain sendto to 127.0.0.1:53 shows the name", func(t *testing.T) (func(*vigilv1.Event) bool, func(*testing.T, *vigilv1.Event)) {
				fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(fd)
				name := "sendto." + unique + ".example"
				if err := unix.Sendto(fd, dnsQuery(t, name, 0x1234), 0, &unix.SockaddrInet4{Port: 53, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
					t.Fatal(err)
				}
				return func(ev *vigilv1.Event) bool { return ev.GetDnsQuery().GetName() == name }, func(t *testing.T, ev *vigilv1.Event) {
					q := ev.GetDnsQuery()
					if q.Type != "A" || q.Id != 0x1234 || q.Syscall != "sendto" || q.Server.GetIp() != "127.0.0.1" || q.Server.GetPort() != 53 {
						t.Errorf("query = %v", q)
					}
				}
			}},
			{"a glibc-style DNS query by connect and sendmmsg shows the name", func(t *testing.T) (func(*vigilv1.Event) bool, func(*testing.T, *vigilv1.Event)) {
				fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(fd)
				if err := unix.Connect(fd, &unix.SockaddrInet4{Port: 53, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
					t.Fatal(err)
				}
				name := "mmsg." + unique + ".example"
				if err := sendmmsg(fd, [][]byte{dnsQuery(t, name, 1), dnsQuery(t, "second."+name, 2)}); err != nil {
					t.Fatal(err)
				}
				cp.waitFor(t, "second question of the sendmmsg", func(ev *vigilv1.Event) bool { return ev.GetDnsQuery().GetName() == "second."+name })
				return func(ev *vigilv1.Event) bool { return ev.GetDnsQuery().GetName() == name }, func(t *testing.T, ev *vigilv1.Event) {
					q := ev.GetDnsQuery()
					if q.Syscall != "sendmmsg" || q.Server.GetIp() != "127.0.0.1" || q.Server.GetPort() != 53 {
						t.Errorf("query = %v", q)
					}
				}
			}},
			{"a DNS query over TCP, its length and message in one writev as glibc sends it, shows the name", func(t *testing.T) (func(*vigilv1.Event) bool, func(*testing.T, *vigilv1.Event)) {
				fd := tcpDNSPeer(t, 54, func(c net.Conn) { io.Copy(io.Discard, c) })
				name := "tcp." + unique + ".example"
				msg := dnsQuery(t, name, 9)
				if _, err := unix.Writev(fd, [][]byte{{byte(len(msg) >> 8), byte(len(msg))}, msg}); err != nil {
					t.Fatal(err)
				}
				// The same over write(), length and message in one buffer.
				second := dnsQuery(t, "write."+name, 10)
				if _, err := unix.Write(fd, append([]byte{byte(len(second) >> 8), byte(len(second))}, second...)); err != nil {
					t.Fatal(err)
				}
				cp.waitFor(t, "the query written with write()", func(ev *vigilv1.Event) bool { return ev.GetDnsQuery().GetName() == "write."+name })
				return func(ev *vigilv1.Event) bool { return ev.GetDnsQuery().GetName() == name }, func(t *testing.T, ev *vigilv1.Event) {
					q := ev.GetDnsQuery()
					if q.Syscall != "writev" || q.Id != 9 || q.Server.GetPort() != 53 || q.Protocol != "tcp" {
						t.Errorf("query = %v", q)
					}
				}
			}},
			{"a DNS answer over TCP, its length read apart from the message as resolvers do, shows its addresses", func(t *testing.T) (func(*vigilv1.Event) bool, func(*testing.T, *vigilv1.Event)) {
				name := "tcp-answer." + unique + ".example"
				answer := dnsAnswer(t, name, 11, [4]byte{169, 254, 169, 254})
				fd := tcpDNSPeer(t, 55, func(c net.Conn) {
					c.Write(append([]byte{byte(len(answer) >> 8), byte(len(answer))}, answer...))
				})
				// Read as C resolvers do, with read(2): the length, then the message.
				var length [2]byte
				if _, err := unix.Read(fd, length[:]); err != nil {
					t.Fatal(err)
				}
				body := make([]byte, int(length[0])<<8|int(length[1]))
				for got := 0; got < len(body); {
					n, err := unix.Read(fd, body[got:])
					if err != nil || n == 0 {
						t.Fatalf("read the answer: %d bytes, %v", n, err)
					}
					got += n
				}
				return func(ev *vigilv1.Event) bool { return ev.GetDnsAnswer().GetName() == name }, func(t *testing.T, ev *vigilv1.Event) {
					a := ev.GetDnsAnswer()
					if !slices.Equal(a.Addresses, []string{"169.254.169.254"}) || a.Id != 11 || a.Server.GetPort() != 53 || ev.Syscall != "read" || a.Protocol != "tcp" {
						t.Errorf("answer = %v syscall %s", a, ev.Syscall)
					}
				}
			}},
			{"a DNS answer received from port 53 shows its addresses", func(t *testing.T) (func(*vigilv1.Event) bool, func(*testing.T, *vigilv1.Event)) {
				// A private loopback address keeps this test's port 53 its own.
				srvAddr := [4]byte{127, 53, byte(os.Getpid() >> 8), byte(os.Getpid())}
				srv, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(srv)
				if err := unix.Bind(srv, &unix.SockaddrInet4{Port: 53, Addr: srvAddr}); err != nil {
					testutil.SkipOrFail(t, "cannot bind a DNS server port: "+err.Error())
				}
				cl, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(cl)
				name := "answer." + unique + ".example"
				if err := unix.Sendto(cl, dnsQuery(t, name, 7), 0, &unix.SockaddrInet4{Port: 53, Addr: srvAddr}); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 512)
				_, from, err := unix.Recvfrom(srv, buf, 0)
				if err != nil {
					t.Fatal(err)
				}
				if err := unix.Sendto(srv, dnsAnswer(t, name, 7, [4]byte{169, 254, 169, 254}), 0, from); err != nil {
					t.Fatal(err)
				}
				if _, _, err := unix.Recvfrom(cl, buf, 0); err != nil {
					t.Fatal(err)
				}
				return func(ev *vigilv1.Event) bool { return ev.GetDnsAnswer().GetName() == name }, func(t *testing.T, ev *vigilv1.Event) {
					a := ev.GetDnsAnswer()
					if !slices.Equal(a.Addresses, []string{"169.254.169.254"}) || a.Rcode != "NOERROR" || a.Id != 7 || a.Server.GetPort() != 53 || ev.Syscall != "recvfrom" || a.Protocol != "udp" {
						t.Errorf("answer = %v syscall %s", a, ev.Syscall)
					}
				}
			}},
			{"a file duplicated onto stdout puts out no dup event: only sockets do", func(t *testing.T) (func(*vigilv1.Event) bool, func(*testing.T, *vigilv1.Event)) {
				marker := "dup-marker-" + unique
				cmd := exec.Command("/usr/bin/python3", "-c",
					"import os; os.dup2(os.open('/dev/null', os.O_WRONLY), 1); os.execv('/bin/true', ['/bin/true', '"+marker+"'])")
				cmd.Env = testEnv
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%v: %s", err, out)
				}
				return func(ev *vigilv1.Event) bool {
						return ev.GetExec() != nil && slices.Contains(ev.Process.GetArgs(), marker)
					}, func(t *testing.T, ev *vigilv1.Event) {
						// The dup2 came before the exec, in the same process.
						cp.mu.Lock()
						defer cp.mu.Unlock()
						for _, e := range cp.events {
							if e.GetDup() != nil && e.Process.GetPid() == ev.Process.GetPid() {
								t.Errorf("dup of /dev/null reported: %v", e.GetDup())
							}
						}
						if ev.GetExec().GetStdio()[1] != "file" {
							t.Errorf("exec stdio = %v, want stdout a file", ev.GetExec().GetStdio())
						}
					}
			}},
			{"a reverse shell dups a socket onto stdio and execs a renamed shell", func(t *testing.T) (func(*vigilv1.Event) bool, func(*testing.T, *vigilv1.Event)) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				go func() {
					if c, err := ln.Accept(); err == nil {
						io.Copy(io.Discard, c)
						c.Close()
					}
				}()
				shell := filepath.Join(dir, "kworker-"+unique[:12])
				data, err := os.ReadFile("/bin/bash")
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(shell, data, 0o755); err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(os.Args[0], ln.Addr().String(), shell)
				cmd.Env = append(testEnv, "VIGIL_COLLECTOR_HELPER=revshell")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("helper: %v %s", err, out)
				}
				pid := uint32(cmd.Process.Pid)
				port := uint32(ln.Addr().(*net.TCPAddr).Port)
				dup := cp.waitFor(t, "dup2 onto stdout", func(ev *vigilv1.Event) bool {
					return ev.Process.Pid == pid && ev.GetDup().GetNewFd() == 1 && ev.GetDup().OldFdKind == "socket"
				})
				if d := dup.GetDup(); d.OldFdKind != "socket" || d.Remote.GetIp() != "127.0.0.1" || d.Remote.GetPort() != port {
					t.Errorf("dup = %v", d)
				}
				cp.waitFor(t, "connect to the listener", func(ev *vigilv1.Event) bool {
					return ev.Process.Pid == pid && ev.GetConnect().GetRemote().GetPort() == port && ev.GetConnect().Protocol == "tcp"
				})
				return func(ev *vigilv1.Event) bool {
						return ev.GetExec() != nil && ev.Process.Pid == pid && ev.Process.ExePath == shell
					}, func(t *testing.T, ev *vigilv1.Event) {
						x := ev.GetExec()
						want := fmt.Sprintf("127.0.0.1:%d", port)
						if !slices.Equal(x.Stdio, []string{"socket", "socket", "socket"}) || !slices.Equal(x.StdioRemote, []string{want, want, want}) {
							t.Errorf("stdio %q remote %q, want sockets to %s", x.Stdio, x.StdioRemote, want)
						}
						if ev.Process.ExePath != shell {
							t.Errorf("exe = %q", ev.Process.ExePath)
						}
					}
			}},
			{"LD_PRELOAD and LD_LIBRARY_PATH are read at exec", func(t *testing.T) (func(*vigilv1.Event) bool, func(*testing.T, *vigilv1.Event)) {
				cmd := exec.Command("/bin/true", "preload-"+unique)
				cmd.Env = []string{"LD_PRELOAD=/nonexistent/" + unique + ".so", "LD_LIBRARY_PATH=/opt/" + unique}
				_ = cmd.Run()
				return func(ev *vigilv1.Event) bool {
						return ev.GetExec() != nil && slices.Contains(ev.Process.Args, "preload-"+unique)
					}, func(t *testing.T, ev *vigilv1.Event) {
						x := ev.GetExec()
						if x.LdPreload != "/nonexistent/"+unique+".so" || x.LdLibraryPath != "/opt/"+unique {
							t.Errorf("ld_preload %q ld_library_path %q", x.LdPreload, x.LdLibraryPath)
						}
					}
			}},
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

// tcpDNSPeer listens on port 53 of a private loopback address
// (127.SECOND.x.y, so this test's port 53 is its own), runs serve on the
// one connection it accepts, and returns a raw TCP socket connected to it,
// closed when the test ends.
func tcpDNSPeer(t *testing.T, second byte, serve func(net.Conn)) int {
	t.Helper()
	addr := [4]byte{127, second, byte(os.Getpid() >> 8), byte(os.Getpid())}
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IP(addr[:]), Port: 53})
	if err != nil {
		testutil.SkipOrFail(t, "cannot listen on a DNS server port: "+err.Error())
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		if c, err := ln.Accept(); err == nil {
			serve(c)
			c.Close()
		}
	}()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: 53, Addr: addr}); err != nil {
		t.Fatal(err)
	}
	return fd
}
