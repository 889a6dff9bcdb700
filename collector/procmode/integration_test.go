package procmode

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/testutil"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// testConfig polls often, so tests do not wait a second per check.
func testConfig() Config {
	return Config{ScanInterval: 200 * time.Millisecond, NetInterval: 100 * time.Millisecond, FileInterval: 100 * time.Millisecond}
}

func isExec(args ...string) func(*vigilv1.Event) bool {
	return func(ev *vigilv1.Event) bool {
		return ev.GetExec() != nil && slices.Equal(ev.Process.Args, args)
	}
}

func isExitOf(pid int) func(*vigilv1.Event) bool {
	return func(ev *vigilv1.Event) bool { return ev.GetExit() != nil && ev.Process.GetPid() == uint32(pid) }
}

func TestWorkloads(t *testing.T) {
	testutil.RequirePrivileged(t)
	cases := []struct {
		name   string
		script string
		cfg    func(*Config)
		// setup runs before the workload starts and returns extra
		// environment for it.
		setup func(t *testing.T) []string
		// ready runs once the workload is traced, before its release.
		ready func(t *testing.T, w *workload)
		check func(t *testing.T, w *workload, out string, s *sink)
	}{
		{
			name:   "a fork and exec chain reports each exec, fork and exit with the right parent and exit code",
			script: `/bin/sh -c '/bin/echo chain-step; exit 3'; echo "rc=$?"`,
			check: func(t *testing.T, w *workload, out string, s *sink) {
				if !strings.Contains(out, "chain-step") || outputValue(out, "rc") != "3" {
					t.Fatalf("workload output = %q, want chain-step and rc=3", out)
				}
				sh := s.waitFor(t, "exec of the inner shell", 5*time.Second, isExec("/bin/sh", "-c", "/bin/echo chain-step; exit 3"))
				echo := s.waitFor(t, "exec of echo", 5*time.Second, isExec("/bin/echo", "chain-step"))
				if filepath.Base(echo.Process.ExePath) != "echo" || echo.Syscall != "execve" {
					t.Errorf("echo exec: exe %q syscall %q", echo.Process.ExePath, echo.Syscall)
				}
				if echo.Process.ParentExecId != sh.Process.ExecId || echo.Process.Ppid != sh.Process.Pid {
					t.Errorf("echo's parent = %s (pid %d), want the inner shell %s (pid %d)",
						echo.Process.ParentExecId, echo.Process.Ppid, sh.Process.ExecId, sh.Process.Pid)
				}
				if len(echo.Process.Lineage) < 2 || echo.Process.Lineage[1].Pid != uint32(w.pid) {
					t.Errorf("echo's lineage = %v, want the inner shell then the workload %d", echo.Process.Lineage, w.pid)
				}
				if echo.CgroupPath == "" {
					t.Errorf("echo exec has no cgroup path")
				}
				fork := s.waitFor(t, "fork of the inner shell", 5*time.Second, func(ev *vigilv1.Event) bool {
					return ev.GetFork() != nil && ev.GetFork().ChildPid == sh.Process.Pid
				})
				if fork.Process.Pid != uint32(w.pid) || fork.GetFork().ChildExecId != sh.Process.ExecId || fork.Syscall != "clone" {
					t.Errorf("fork event: parent %d child exec id %s syscall %s, want parent %d child %s clone",
						fork.Process.Pid, fork.GetFork().ChildExecId, fork.Syscall, w.pid, sh.Process.ExecId)
				}
				exit := s.waitFor(t, "exit of the inner shell", 5*time.Second, isExitOf(int(sh.Process.Pid)))
				if exit.GetExit().Code != 3<<8 || exit.GetExit().Signal != 0 || exit.Syscall != "procexit" {
					t.Errorf("inner shell exit = %v, want code %d and no signal", exit.GetExit(), 3<<8)
				}
				if exit.Process.ExecId != sh.Process.ExecId {
					t.Errorf("exit's process %s, want the inner shell's %s", exit.Process.ExecId, sh.Process.ExecId)
				}
			},
		},
		{
			name:   "an exec with LD_PRELOAD in its environment reports the preloaded library",
			script: `LD_PRELOAD=/nonexistent/vigil-preload.so LD_LIBRARY_PATH=/opt/vigil-lib /bin/echo preloaded 2>/dev/null; echo "rc=$?"`,
			check: func(t *testing.T, w *workload, out string, s *sink) {
				if !strings.Contains(out, "preloaded") || outputValue(out, "rc") != "0" {
					t.Fatalf("output = %q", out)
				}
				x := s.waitFor(t, "exec of echo", 5*time.Second, isExec("/bin/echo", "preloaded")).GetExec()
				if x.LdPreload != "/nonexistent/vigil-preload.so" || x.LdLibraryPath != "/opt/vigil-lib" {
					t.Errorf("ld_preload %q ld_library_path %q", x.LdPreload, x.LdLibraryPath)
				}
			},
		},
		{
			name: "a process stopped with SIGSTOP stays stopped until SIGCONT and then exits normally",
			// The stop goes through the tracer (signal-delivery stop,
			// then group stop), so on a loaded machine it takes a moment:
			// the script waits up to 5s for it, then holds it 0.3s.
			script: `sleep 3 & p=$!; sleep 0.1; kill -STOP $p; i=0; st=R; ` +
				`while [ $i -lt 100 ]; do st=$(cut -d' ' -f3 /proc/$p/stat); case $st in T|t) break;; esac; i=$((i+1)); sleep 0.05; done; ` +
				`sleep 0.3; st2=$(cut -d' ' -f3 /proc/$p/stat); kill -CONT $p; wait $p; echo "stopped=$st held=$st2 rc=$?"`,
			check: func(t *testing.T, w *workload, out string, s *sink) {
				for _, k := range []string{"stopped", "held"} {
					if st := outputValue(out, k); st != "T" && st != "t" {
						t.Errorf("state %s = %q, want T or t (output %q)", k, st, out)
					}
				}
				if outputValue(out, "rc") != "0" {
					t.Errorf("rc = %q after SIGCONT, want 0 (output %q)", outputValue(out, "rc"), out)
				}
			},
		},
		{
			name:   "a process killed by SIGTERM reports the signal to its parent and in its exit event",
			script: `sleep 5 & p=$!; sleep 0.2; kill -TERM $p; wait $p; echo "pid=$p rc=$?"`,
			check: func(t *testing.T, w *workload, out string, s *sink) {
				if outputValue(out, "rc") != "143" {
					t.Fatalf("rc = %q, want 143 (output %q)", outputValue(out, "rc"), out)
				}
				pid, _ := strconv.Atoi(outputValue(out, "pid"))
				exit := s.waitFor(t, "exit of sleep", 5*time.Second, isExitOf(pid))
				if exit.GetExit().Signal != int32(syscall.SIGTERM) || exit.GetExit().Code != int32(syscall.SIGTERM) {
					t.Errorf("exit = %v, want signal %d", exit.GetExit(), syscall.SIGTERM)
				}
			},
		},
		{
			name:   "a process killed by SIGKILL is reaped by its parent and reported",
			script: `sleep 5 & p=$!; sleep 0.2; kill -KILL $p; wait $p; echo "pid=$p rc=$?"`,
			check: func(t *testing.T, w *workload, out string, s *sink) {
				if outputValue(out, "rc") != "137" {
					t.Fatalf("rc = %q, want 137 (output %q)", outputValue(out, "rc"), out)
				}
				pid, _ := strconv.Atoi(outputValue(out, "pid"))
				exit := s.waitFor(t, "exit of sleep", 5*time.Second, isExitOf(pid))
				if exit.GetExit().Signal != int32(syscall.SIGKILL) {
					t.Errorf("exit = %v, want signal %d", exit.GetExit(), syscall.SIGKILL)
				}
			},
		},
		{
			name: "a signal the workload handles reaches its handler",
			script: `/bin/sh -c 'trap "echo got-usr1; exit 7" USR1; echo armed > "$DIR/armed"; sleep 2 & wait' & p=$!; ` +
				`while [ ! -s "$DIR/armed" ]; do sleep 0.02; done; kill -USR1 $p; wait $p; echo "rc=$?"`,
			check: func(t *testing.T, w *workload, out string, s *sink) {
				if !strings.Contains(out, "got-usr1") || outputValue(out, "rc") != "7" {
					t.Errorf("output = %q, want got-usr1 and rc=7", out)
				}
			},
		},
		{
			name:   "a multi-threaded process that execs from a secondary thread is reported under its pid",
			script: `VIGIL_PROCMODE_HELPER=thread-exec "$TESTBIN"; echo "rc=$?"`,
			check: func(t *testing.T, w *workload, out string, s *sink) {
				if !strings.Contains(out, "thread-exec-done") || outputValue(out, "rc") != "0" {
					t.Fatalf("output = %q, want thread-exec-done and rc=0", out)
				}
				pid, _ := strconv.Atoi(outputValue(out, "pid"))
				tid, _ := strconv.Atoi(outputValue(out, "tid"))
				if pid == 0 || tid == pid {
					t.Fatalf("helper did not exec from a secondary thread: pid=%d tid=%d", pid, tid)
				}
				ex := s.waitFor(t, "exec of echo", 5*time.Second, isExec("/bin/echo", "thread-exec-done"))
				if ex.Process.Pid != uint32(pid) || ex.Tid != uint32(pid) {
					t.Errorf("exec reported for pid %d tid %d, want %d", ex.Process.Pid, ex.Tid, pid)
				}
				exit := s.waitFor(t, "exit of echo", 5*time.Second, isExitOf(pid))
				if exit.GetExit().Code != 0 {
					t.Errorf("exit code = %d, want 0", exit.GetExit().Code)
				}
			},
		},
		{
			name: "a multi-threaded process running before the collector attached has every thread traced and its exec reported",
			setup: func(t *testing.T) []string {
				return []string{`VIGIL_PRE=VIGIL_PROCMODE_HELPER=threads-wait-exec "$TESTBIN" "$DIR/go" & h=$!`}
			},
			script: `touch "$DIR/go"; wait $h; echo "rc=$?"`,
			ready: func(t *testing.T, w *workload) {
				deadline := time.Now().Add(10 * time.Second)
				for {
					pid, _ := strconv.Atoi(outputValue(w.output(t), "helper"))
					if pid != 0 && allThreadsTraced(pid) {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("helper %d not fully traced after 10s (output %q)", pid, w.output(t))
					}
					time.Sleep(10 * time.Millisecond)
				}
			},
			check: func(t *testing.T, w *workload, out string, s *sink) {
				helper, _ := strconv.Atoi(outputValue(out, "helper"))
				pid, _ := strconv.Atoi(outputValue(out, "pid"))
				tid, _ := strconv.Atoi(outputValue(out, "tid"))
				if !strings.Contains(out, "thread-exec-done") || outputValue(out, "rc") != "0" || pid != helper || tid == pid {
					t.Fatalf("output = %q, want the helper to exec from a secondary thread and exit 0", out)
				}
				ex := s.waitFor(t, "exec of echo", 5*time.Second, isExec("/bin/echo", "thread-exec-done"))
				if ex.Process.Pid != uint32(helper) {
					t.Errorf("exec reported for pid %d, want %d", ex.Process.Pid, helper)
				}
				if ex.Process.ParentExecId == "" || ex.Process.Ppid != uint32(w.pid) {
					t.Errorf("exec's parent = %d (%q), want the workload %d", ex.Process.Ppid, ex.Process.ParentExecId, w.pid)
				}
				s.waitFor(t, "exit of the helper", 5*time.Second, isExitOf(helper))
			},
		},
		{
			name:   "a child started with vfork (Go's os/exec) is reported with its parent",
			script: `VIGIL_PROCMODE_HELPER=spawn "$TESTBIN"; echo "rc=$?"`,
			check: func(t *testing.T, w *workload, out string, s *sink) {
				helper, _ := strconv.Atoi(outputValue(out, "helper"))
				if helper == 0 || !strings.Contains(out, "spawned") || outputValue(out, "rc") != "0" {
					t.Fatalf("output = %q, want spawned and rc=0", out)
				}
				ex := s.waitFor(t, "exec of echo", 5*time.Second, isExec("/bin/echo", "spawned"))
				if ex.Process.Ppid != uint32(helper) {
					t.Errorf("echo's parent = %d, want the helper %d", ex.Process.Ppid, helper)
				}
				fork := s.waitFor(t, "fork by the helper", 5*time.Second, func(ev *vigilv1.Event) bool {
					return ev.GetFork() != nil && ev.GetFork().ChildPid == ex.Process.Pid
				})
				if fork.Process.Pid != uint32(helper) || fork.GetFork().ChildExecId != ex.Process.ExecId {
					t.Errorf("fork by %d of %s, want by %d of %s", fork.Process.Pid, fork.GetFork().ChildExecId, helper, ex.Process.ExecId)
				}
			},
		},
		{
			name:   "an io_uring set up by a traced process is reported as its setup",
			script: `VIGIL_PROCMODE_HELPER=uring "$TESTBIN"; echo "rc=$?"`,
			check: func(t *testing.T, w *workload, out string, s *sink) {
				ring, _ := strconv.Atoi(outputValue(out, "ring"))
				if ring == 0 || outputValue(out, "rc") != "0" {
					t.Fatalf("helper output = %q", out)
				}
				ev := s.waitFor(t, "io_uring_setup", 5*time.Second, func(ev *vigilv1.Event) bool { return ev.GetIoUringSetup() != nil })
				if ev.Result != int64(ring) || ev.Syscall != "io_uring_setup" || ev.Process.GetComm() == "" {
					t.Errorf("io_uring_setup = %v result %d, want the ring's fd %d", ev.GetIoUringSetup(), ev.Result, ring)
				}
			},
		},
		{
			name:   "a TCP connection to a local listener is reported as listen, connect and accept",
			script: `VIGIL_PROCMODE_HELPER=tcp-pair "$TESTBIN"; echo "rc=$?"`,
			check: func(t *testing.T, w *workload, out string, s *sink) {
				port, _ := strconv.Atoi(outputValue(out, "port"))
				client, _ := strconv.Atoi(outputValue(out, "client"))
				if port == 0 || outputValue(out, "rc") != "0" {
					t.Fatalf("helper output = %q", out)
				}
				ln := s.waitFor(t, "listen", 5*time.Second, func(ev *vigilv1.Event) bool {
					return ev.GetListen() != nil && ev.GetListen().GetLocal().GetPort() == uint32(port)
				})
				if l := ln.GetListen(); l.Protocol != "tcp" || l.Local.Ip != "127.0.0.1" || l.Local.Family != "inet" {
					t.Errorf("listen = %v", l)
				}
				conn := s.waitFor(t, "connect", 5*time.Second, func(ev *vigilv1.Event) bool {
					return ev.GetConnect() != nil && ev.GetConnect().GetRemote().GetPort() == uint32(port)
				})
				if c := conn.GetConnect(); c.Protocol != "tcp" || c.Remote.Ip != "127.0.0.1" || c.Local.GetPort() != uint32(client) || conn.Syscall != "connect" {
					t.Errorf("connect = %v (syscall %s), want from port %d", c, conn.Syscall, client)
				}
				acc := s.waitFor(t, "accept", 5*time.Second, func(ev *vigilv1.Event) bool {
					return ev.GetAccept() != nil && ev.GetAccept().GetLocal().GetPort() == uint32(port)
				})
				if a := acc.GetAccept(); a.Remote.GetPort() != uint32(client) || a.Protocol != "tcp" {
					t.Errorf("accept = %v, want remote port %d", a, client)
				}
				if conn.Process.ExePath == "" || conn.Process.Pid == uint32(w.pid) {
					t.Errorf("connect attributed to %d %q, want the helper", conn.Process.Pid, conn.Process.ExePath)
				}
			},
		},
		{
			name:   "a unix socket connection is reported with the listener's path on every side",
			script: `VIGIL_PROCMODE_HELPER=unix-pair "$TESTBIN" "$DIR/app.sock"; echo "rc=$?"`,
			check: func(t *testing.T, w *workload, out string, s *sink) {
				if !strings.Contains(out, "unix-ok") || outputValue(out, "rc") != "0" {
					t.Fatalf("output = %q", out)
				}
				path := filepath.Join(w.dir, "app.sock")
				ln := s.waitFor(t, "unix listen", 5*time.Second, func(ev *vigilv1.Event) bool {
					return ev.GetListen() != nil && ev.GetListen().GetLocal().GetPath() == path
				})
				if ln.GetListen().Protocol != "unix" || ln.GetListen().Local.Family != "unix" {
					t.Errorf("listen = %v", ln.GetListen())
				}
				conn := s.waitFor(t, "unix connect", 5*time.Second, func(ev *vigilv1.Event) bool {
					return ev.GetConnect() != nil && ev.GetConnect().Protocol == "unix"
				})
				if got := conn.GetConnect().GetRemote().GetPath(); got != path {
					t.Errorf("connect remote path = %q, want %q", got, path)
				}
				s.waitFor(t, "unix accept", 5*time.Second, func(ev *vigilv1.Event) bool {
					return ev.GetAccept() != nil && ev.GetAccept().GetLocal().GetPath() == path
				})
			},
		},
		{
			name:   "a file opened for write is reported as an open with write flags",
			script: `(exec 5>"$DIR/written"; echo data >&5; sleep 0.5); echo "rc=$?"`,
			check: func(t *testing.T, w *workload, out string, s *sink) {
				path := filepath.Join(w.dir, "written")
				ev := s.waitFor(t, "open of the written file", 5*time.Second, func(ev *vigilv1.Event) bool {
					return ev.GetOpen() != nil && ev.GetOpen().Path == path
				})
				o := ev.GetOpen()
				if o.Flags&unix.O_ACCMODE != unix.O_WRONLY || o.Fd != 5 || o.Inode == 0 || o.Fstype == "" || ev.Syscall != "openat" {
					t.Errorf("open = %v (syscall %s), want O_WRONLY on fd 5 with inode and fstype", o, ev.Syscall)
				}
			},
		},
		{
			name:   "a file held by a process that exits before the next poll is reported at its exit",
			script: `(exec 6>"$DIR/quick"; echo hi >&6); echo "rc=$?"`,
			cfg:    func(c *Config) { c.FileInterval = time.Hour },
			check: func(t *testing.T, w *workload, out string, s *sink) {
				path := filepath.Join(w.dir, "quick")
				ev := s.waitFor(t, "open of the quick file", 5*time.Second, func(ev *vigilv1.Event) bool {
					return ev.GetOpen() != nil && ev.GetOpen().Path == path
				})
				if ev.GetOpen().Flags&unix.O_ACCMODE != unix.O_WRONLY {
					t.Errorf("flags = %#o, want O_WRONLY", ev.GetOpen().Flags)
				}
			},
		},
		{
			name:   "an exec with a socket on its stdio reports the socket and its remote address",
			script: `VIGIL_PROCMODE_HELPER=revshell "$TESTBIN" "$LISTEN"; echo "rc=$?"`,
			setup: func(t *testing.T) []string {
				ln, err := net.Listen("tcp4", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ln.Close() })
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						t.Cleanup(func() { c.Close() })
					}
				}()
				return []string{"LISTEN=" + ln.Addr().String()}
			},
			check: func(t *testing.T, w *workload, out string, s *sink) {
				if outputValue(out, "rc") != "0" {
					t.Fatalf("output = %q, want rc=0", out)
				}
				ev := s.waitFor(t, "exec of the shell", 5*time.Second, isExec("/bin/sh", "-c", "exit 0"))
				x := ev.GetExec()
				if !slices.Equal(x.Stdio, []string{"socket", "socket", "socket"}) {
					t.Errorf("stdio = %v, want three sockets", x.Stdio)
				}
				if len(x.StdioRemote) != 3 || !strings.HasPrefix(x.StdioRemote[0], "127.0.0.1:") {
					t.Errorf("stdio_remote = %v, want the listener's address", x.StdioRemote)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var env []string
			if tc.setup != nil {
				env = tc.setup(t)
			}
			w := startWorkload(t, tc.script, env...)
			cfg := testConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			tr := traceWorkload(t, w, cfg)
			if tc.ready != nil {
				tc.ready(t, w)
			}
			w.release(t)
			// A policy pushed while the workload runs changes nothing
			// it produces, and must not race with the tracer or pollers.
			if err := tr.c.ApplyPolicy(&vigilv1.CollectionPolicy{Version: "test", EnabledEvents: Kinds(), RateLimitPerSecond: 1 << 20}); err != nil {
				t.Fatal(err)
			}
			out := w.wait(t, 30*time.Second)
			// The workload's own exit is the last thing the tracer sees.
			tr.sink.waitFor(t, "exit of the workload", 5*time.Second, isExitOf(w.pid))
			tc.check(t, w, out, tr.sink)
			tr.stop(t)
			var h vigilv1.SensorHealth
			tr.c.Health(&h)
			if h.LostRecords != 0 {
				t.Errorf("lost %d events", h.LostRecords)
			}
		})
	}
}

func TestDetachOnCancel(t *testing.T) {
	testutil.RequirePrivileged(t)
	script := `(while :; do echo x >> "$DIR/beat"; sleep 0.05; done) & echo "loop=$!"; ` +
		`sleep 30 & echo "stopped=$!"; kill -STOP $!; sleep 0.3; echo ready`
	w := startWorkload(t, script)
	tr := traceWorkload(t, w, testConfig())
	w.release(t)
	out := w.wait(t, 10*time.Second)
	loop, _ := strconv.Atoi(outputValue(out, "loop"))
	stopped, _ := strconv.Atoi(outputValue(out, "stopped"))
	if loop == 0 || stopped == 0 || !strings.Contains(out, "ready") {
		t.Fatalf("output = %q", out)
	}
	t.Cleanup(func() {
		syscall.Kill(loop, syscall.SIGKILL)
		syscall.Kill(stopped, syscall.SIGKILL)
	})
	if !tracedByUs(loop) || !tracedByUs(stopped) {
		t.Fatalf("before cancel: TracerPid loop=%d stopped=%d, want a thread of %d", tracerPid(loop), tracerPid(stopped), os.Getpid())
	}
	tr.stop(t)

	cases := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"the running loop is no longer traced", func(t *testing.T) {
			if got := tracerPid(loop); got != 0 {
				t.Errorf("TracerPid = %d, want 0", got)
			}
		}},
		{"the running loop keeps running after the detach", func(t *testing.T) {
			size := func() int64 {
				fi, err := os.Stat(filepath.Join(w.dir, "beat"))
				if err != nil {
					return 0
				}
				return fi.Size()
			}
			before := size()
			time.Sleep(400 * time.Millisecond)
			if after := size(); after <= before {
				t.Errorf("heartbeat file did not grow after detach (%d -> %d); state %s", before, after, procStateLetter(loop))
			}
		}},
		{"the stopped process stays stopped, untraced", func(t *testing.T) {
			if got := tracerPid(stopped); got != 0 {
				t.Errorf("TracerPid = %d, want 0", got)
			}
			if st := procStateLetter(stopped); st != "T" {
				t.Errorf("state = %q, want T (stopped)", st)
			}
		}},
		{"the stopped process resumes on SIGCONT", func(t *testing.T) {
			syscall.Kill(stopped, syscall.SIGCONT)
			deadline := time.Now().Add(2 * time.Second)
			for procStateLetter(stopped) == "T" && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if st := procStateLetter(stopped); st != "S" && st != "R" {
				t.Errorf("state after SIGCONT = %q, want S or R", st)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, tc.check)
	}
}

// TestHealthReportsCoverage runs unprivileged: it only builds a collector.
func TestHealthReportsCoverage(t *testing.T) {
	cases := []struct {
		name        string
		cfg         Config
		wantLoaded  []string
		wantSkipped map[string]string
	}{
		{
			name:       "the default configuration runs ptrace and socket polling and names every eBPF-only kind",
			cfg:        Config{},
			wantLoaded: []string{"ptrace-exec", "procfs-net"},
			wantSkipped: map[string]string{
				"dns_query": NotAvailable, "ptrace": NotAvailable, "mount": NotAvailable, "module_load": NotAvailable,
				"unlink": NotAvailable, "open": "procfs-fd polling disabled (file_interval)",
			},
		},
		{
			name:       "file polling on adds procfs-fd and stops reporting open as skipped",
			cfg:        Config{FileInterval: 3 * time.Second},
			wantLoaded: []string{"ptrace-exec", "procfs-net", "procfs-fd"},
			wantSkipped: map[string]string{
				"dns_answer": NotAvailable, "set_id": NotAvailable,
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.cfg, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			var h vigilv1.SensorHealth
			c.Health(&h)
			if h.Mode != "procfs" {
				t.Errorf("mode = %q", h.Mode)
			}
			if !slices.Equal(h.LoadedProbes, tc.wantLoaded) {
				t.Errorf("loaded = %v, want %v", h.LoadedProbes, tc.wantLoaded)
			}
			got := make(map[string]string)
			for _, s := range h.SkippedProbes {
				got[s.Name] = s.Reason
			}
			for k, want := range tc.wantSkipped {
				if got[k] != want {
					t.Errorf("skipped[%s] = %q, want %q", k, got[k], want)
				}
			}
			for _, k := range []string{"exec", "fork", "exit", "connect", "accept", "listen"} {
				if _, ok := got[k]; ok {
					t.Errorf("%s reported as skipped", k)
				}
			}
			if len(h.SkippedProbes)+len(Kinds()) < len(allKinds) {
				t.Errorf("%d skipped + %d produced < %d kinds", len(h.SkippedProbes), len(Kinds()), len(allKinds))
			}
		})
	}
}

func TestApplyPolicyFiltersEvents(t *testing.T) {
	ev := func(kind, exe, cgroup string) (string, *vigilv1.Event) {
		e := &vigilv1.Event{Process: &vigilv1.Process{Pid: 42, ExePath: exe}, CgroupPath: cgroup, Syscall: kind}
		return kind, e
	}
	cases := []struct {
		name   string
		policy *vigilv1.CollectionPolicy
		kind   string
		exe    string
		cgroup string
		want   bool
	}{
		{"an empty policy keeps every kind", &vigilv1.CollectionPolicy{}, "fork", "/bin/sh", "/a", true},
		{"a kind left out of enabled_events is dropped", &vigilv1.CollectionPolicy{EnabledEvents: []string{"exec"}}, "fork", "/bin/sh", "/a", false},
		{"a kind in enabled_events is kept", &vigilv1.CollectionPolicy{EnabledEvents: []string{"exec", "connect"}}, "connect", "/bin/sh", "/a", true},
		{"an eBPF-only kind in enabled_events is accepted", &vigilv1.CollectionPolicy{EnabledEvents: []string{"dns_query", "exec"}}, "exec", "/bin/sh", "/a", true},
		{"an ignored binary's events are dropped", &vigilv1.CollectionPolicy{IgnoredBinaries: []string{"/usr/bin/noisy"}}, "exec", "/usr/bin/noisy", "/a", false},
		{"an ignored cgroup's events are dropped", &vigilv1.CollectionPolicy{IgnoredCgroups: []string{"/ecs/task/noisy"}}, "exec", "/bin/sh", "/ecs/task/noisy", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Config{}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.ApplyPolicy(tc.policy); err != nil {
				t.Fatal(err)
			}
			c.emit(ev(tc.kind, tc.exe, tc.cgroup))
			got := len(c.queue) == 1
			if got != tc.want {
				t.Errorf("emitted = %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("an unknown kind in a policy is refused", func(t *testing.T) {
		c, err := New(Config{}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.ApplyPolicy(&vigilv1.CollectionPolicy{EnabledEvents: []string{"teleport"}}); err == nil {
			t.Error("ApplyPolicy accepted an unknown kind")
		}
	})
	t.Run("a rate limit drops a flood but never an exit", func(t *testing.T) {
		c, err := New(Config{}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.ApplyPolicy(&vigilv1.CollectionPolicy{RateLimitPerSecond: 1, RateLimitBurst: 2}); err != nil {
			t.Fatal(err)
		}
		for range 10 {
			c.emit(ev("connect", "/bin/x", ""))
		}
		c.emit(ev("exit", "/bin/x", ""))
		if n := len(c.queue); n != 3 {
			t.Errorf("emitted %d, want 2 connects and the exit", n)
		}
		var h vigilv1.SensorHealth
		c.Health(&h)
		if h.RateLimited != 8 {
			t.Errorf("rate_limited = %d, want 8", h.RateLimited)
		}
	})
}

func TestHealthWhenNothingCanBeTraced(t *testing.T) {
	testutil.RequirePrivileged(t)
	// A process can have one tracer: a second collector on the same tree is
	// refused, as the sidecar is when the workload is already traced or
	// SYS_PTRACE is missing.
	w := startWorkload(t, `exit 0`)
	first := traceWorkload(t, w, testConfig())
	cfg := testConfig()
	cfg.RootPid = uint32(w.pid)
	second, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- second.Run(ctx, make(chan *vigilv1.Event, 16)) }()
	deadline := time.Now().Add(10 * time.Second)
	var h vigilv1.SensorHealth
	for {
		second.Health(&h)
		if len(h.SkippedProbes) > 0 && h.SkippedProbes[0].Name == "ptrace-exec" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health never reported ptrace-exec as skipped: loaded %v", h.LoadedProbes)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cases := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"ptrace-exec is no longer listed as loaded", func(t *testing.T) {
			if slices.Contains(h.LoadedProbes, "ptrace-exec") {
				t.Errorf("loaded = %v", h.LoadedProbes)
			}
		}},
		{"the reason names the refusal and the capability to add", func(t *testing.T) {
			r := h.SkippedProbes[0].Reason
			if !strings.Contains(r, "operation not permitted") || !strings.Contains(r, "SYS_PTRACE") {
				t.Errorf("reason = %q", r)
			}
		}},
		{"the first collector still traces the workload", func(t *testing.T) {
			if !tracedByUs(w.pid) {
				t.Errorf("workload lost its tracer")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, tc.check)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	w.release(t)
	w.wait(t, 10*time.Second)
	first.stop(t)
}
