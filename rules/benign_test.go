package rules_test

import (
	"fmt"
	"testing"
	"time"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// benignStory is everyday work told as the events the sensor would send.
type benignStory struct {
	name   string
	events []*vigilv1.Event
}

func benignStories() []benignStory {
	var s []benignStory
	add := func(name string, evs ...*vigilv1.Event) { s = append(s, benignStory{name, evs}) }
	at := func(i int) opt { return after(time.Duration(i) * 100 * time.Millisecond) }

	// apt-get install in a container: the download method connects out,
	// dpkg unpacks (a setuid binary among the files), maintainer scripts add
	// a system user and enable a unit, then the new tool runs.
	aptGet := proc("apt-get", "/usr/bin/apt-get", "apt-get", "install", "-y", "jq", "sudo")
	method := childOf(proc("http", "/usr/lib/apt/methods/http", "/usr/lib/apt/methods/http"), aptGet)
	dpkg := childOf(proc("dpkg", "/usr/bin/dpkg", "/usr/bin/dpkg", "--unpack", "jq.deb"), aptGet)
	postinst := childOf(proc("sudo.postinst", "/usr/bin/dash", "/bin/sh", "/var/lib/dpkg/info/sudo.postinst", "configure"), dpkg)
	addgroup := childOf(proc("addgroup", "/usr/bin/perl", "/usr/sbin/addgroup", "--system", "sudo"), postinst)
	helper := childOf(proc("deb-systemd-hel", "/usr/bin/perl", "/usr/bin/deb-systemd-helper", "enable", "sudo.service"), postinst)
	add("apt-get installs packages in a container",
		execEv(aptGet, inCtr, withTTYStdio),
		execEv(method, inCtr, at(1)),
		connectEv(method, "151.101.2.132", 80, inCtr, at(2)),
		dnsQueryEv(method, "deb.debian.org", inCtr, at(2)),
		execEv(dpkg, inCtr, at(3)),
		writeEv(dpkg, "/usr/bin/jq.dpkg-new", inCtr, at(4)),
		renameEv(dpkg, "rename", "/usr/bin/jq.dpkg-new", "/usr/bin/jq", inCtr, at(4)),
		writeEv(dpkg, "/usr/bin/sudo.dpkg-new", inCtr, at(5)),
		chmodEv(dpkg, "fchmod", "/usr/bin/sudo.dpkg-new", 0o4755, inCtr, at(5)),
		execEv(postinst, inCtr, at(6)),
		execEv(addgroup, inCtr, at(7)),
		writeEv(addgroup, "/etc/group+", inCtr, at(7)),
		renameEv(addgroup, "rename", "/etc/group+", "/etc/group", inCtr, at(7)),
		execEv(helper, inCtr, at(8)),
		linkEv(helper, "symlink", "/lib/systemd/system/sudo.service", "/etc/systemd/system/multi-user.target.wants/sudo.service", inCtr, at(8)),
		execEv(proc("jq", "/usr/bin/jq", "jq", "."), inCtr, at(9)),
	)

	// A Go build and its tests on a CI host: the go tool writes and runs
	// its own binaries under /tmp/go-build*, links, and runs test
	// binaries that talk to a local server.
	goTool := proc("go", "/usr/local/go/bin/go", "go", "test", "./...")
	link := childOf(proc("link", "/usr/local/go/pkg/tool/linux_amd64/link", "link", "-o", "/tmp/go-build1/b001/pkg.test"), goTool)
	testBin := childOf(proc("pkg.test", "/tmp/go-build1/b001/pkg.test", "/tmp/go-build1/b001/pkg.test", "-test.v"), goTool)
	add("go test builds and runs test binaries",
		execEv(goTool),
		connectEv(goTool, "142.250.74.113", 443, at(1)),
		execEv(link, at(2)),
		writeEv(link, "/tmp/go-build1/b001/pkg.test", at(3)),
		chmodEv(link, "fchmod", "/tmp/go-build1/b001/pkg.test", 0o755, at(3)),
		execEv(testBin, at(4)),
		listenEv(testBin, 40123, at(5)),
		connectEv(testBin, "127.0.0.1", 40123, at(5)),
		acceptEv(testBin, 40123, "127.0.0.1", at(5)),
	)

	// git over https with a hook, and tar.
	git := proc("git", "/usr/bin/git", "git", "clone", "https://github.com/x/y")
	remote := childOf(proc("git-remote-http", "/usr/lib/git-core/git-remote-https", "git-remote-https", "origin"), git)
	hook := childOf(proc("post-checkout", "/usr/bin/dash", "/bin/sh", ".git/hooks/post-checkout"), git)
	tar := proc("tar", "/usr/bin/tar", "tar", "czf", "repo.tgz", "repo")
	gz := childOf(proc("gzip", "/usr/bin/gzip", "gzip"), tar)
	add("git clones over https and tar packs the result",
		execEv(git), execEv(remote, at(1)),
		dnsQueryEv(remote, "github.com", at(1)),
		connectEv(remote, "140.82.121.3", 443, at(2)),
		writeEv(git, "/home/ci/y/.git/objects/pack/pack-1.pack", at(3)),
		execEv(hook, at(4)),
		execEv(tar, at(5)), execEv(gz, stdio("pipe", "file", "pipe"), at(5)),
		readEv(tar, "/home/ci/y/README", at(6)),
		writeEv(tar, "/home/ci/repo.tgz", at(6)),
	)

	// A GitLab shell runner feeding a job script to bash, which downloads
	// and unpacks an artefact and builds a shared library with gcc.
	runner := proc("gitlab-runner", "/usr/bin/gitlab-runner", "gitlab-runner", "run")
	job := childOf(proc("bash", "/usr/bin/bash", "bash", "--login"), runner)
	curlJob := childOf(proc("curl", "/usr/bin/curl", "curl", "-fsSLo", "dep.tgz", "https://x/dep.tgz"), job)
	ld := childOf(proc("ld", "/usr/bin/x86_64-linux-gnu-ld.bfd", "/usr/bin/ld", "-shared", "-o", "libx.so"), job)
	unit := childOf(proc("unit-tests", "/builds/p/unit-tests", "./unit-tests"), job)
	add("a CI job downloads, builds and tests",
		connectEv(runner, "10.0.9.9", 443),
		execEv(job, at(1)),
		execEv(curlJob, at(2)), connectEv(curlJob, "10.0.9.10", 443, at(2)),
		writeEv(curlJob, "/builds/p/dep.tgz", at(3)),
		execEv(ld, at(4)), writeEv(ld, "/builds/p/libx.so", at(4)),
		execEv(unit, at(5)), readEv(unit, "/builds/p/libx.so", at(5)),
	)

	// nginx under load with logrotate's copytruncate at midnight.
	nginx := proc("nginx", "/usr/sbin/nginx", "nginx: worker process")
	var load []*vigilv1.Event
	for i := 0; i < 300; i++ {
		load = append(load,
			acceptEv(nginx, 443, fmt.Sprintf("198.51.100.%d", i%200), inCtr, after(time.Duration(i)*time.Millisecond)),
			readEv(nginx, "/usr/share/nginx/html/index.html", inCtr, after(time.Duration(i)*time.Millisecond)),
			connectEv(nginx, fmt.Sprintf("10.0.4.%d", i%8), 8080, inCtr, failed("EINPROGRESS", 115), after(time.Duration(i)*time.Millisecond)))
	}
	load = append(load, openEv(nginx, "openat", "/var/log/nginx/access.log", oWRONLY|oAPPEND|oCREAT, inCtr))
	add("nginx serves and proxies under load", load...)

	cron := proc("cron", "/usr/sbin/cron", "/usr/sbin/cron", "-f")
	daily := childOf(proc("sh", "/usr/bin/dash", "/bin/sh", "-c", "test -x /usr/sbin/anacron || run-parts --report /etc/cron.daily"), cron)
	logrotate := childOf(proc("logrotate", "/usr/sbin/logrotate", "/usr/sbin/logrotate", "/etc/logrotate.conf"), daily)
	savelog := childOf(proc("savelog", "/usr/bin/savelog", "savelog", "-q", "/var/log/dmesg"), daily)
	loop := proc("sh", "/usr/bin/dash", "/bin/sh", "-c", "while true; do date >> /var/tmp/tick; sleep 1; done")
	add("cron rotates logs and a shell loop ticks",
		execEv(daily), execEv(logrotate, at(1)),
		renameEv(logrotate, "rename", "/var/log/syslog", "/var/log/syslog.1", at(2)),
		truncateEv(logrotate, "ftruncate", "/var/log/nginx/access.log", 0, at(2)),
		unlinkEv(logrotate, "/var/log/syslog.7.gz", at(2)),
		execEv(savelog, at(3)), renameEv(savelog, "rename", "/var/log/dmesg", "/var/log/dmesg.0", at(3)),
		execEv(loop, at(4)), openEv(childOf(proc("date", "/usr/bin/date", "date"), loop), "openat", "/var/tmp/tick", oWRONLY|oAPPEND|oCREAT, at(5)),
	)

	// containerd and runc start a container: the shim talks to containerd,
	// runc clones itself into a sealed memfd, sets up mounts and the device
	// cgroup program, and starts the entrypoint.
	shim := proc("containerd-shim", "/usr/bin/containerd-shim-runc-v2", "/usr/bin/containerd-shim-runc-v2", "-namespace", "k8s.io")
	runc := childOf(proc("runc", "/usr/sbin/runc", "runc", "create"), shim)
	runcInit := childOf(fileless(proc("runc:[2:INIT]", "/memfd:runc_cloned:/proc/self/exe (deleted)", "runc", "init")), runc)
	entry := childOf(proc("nginx", "/usr/sbin/nginx", "nginx", "-g", "daemon off;"), runcInit)
	add("a container runtime starts a container",
		connectUnixEv(shim, "/run/containerd/containerd.sock"),
		execEv(runc, at(1)),
		execEv(runcInit, inCtr, at(2)),
		mountEv(runcInit, "proc", "/proc", "proc", inCtr, at(3)),
		mountEv(runcInit, "tmpfs", "/dev", "tmpfs", inCtr, at(3)),
		bpfEv(runc, 5, "BPF_PROG_LOAD", at(3)),
		execEv(entry, inCtr, at(4)),
		listenEv(entry, 80, inCtr, at(5)),
	)

	// dockerd starting on a host: its own chains flushed, modules loaded.
	dockerd := proc("dockerd", "/usr/sbin/dockerd", "/usr/sbin/dockerd", "-H", "fd://")
	ipt := childOf(proc("iptables", "/usr/sbin/iptables", "iptables", "--wait", "-t", "nat", "-F", "DOCKER"), dockerd)
	iptX := childOf(proc("iptables", "/usr/sbin/iptables", "iptables", "--wait", "-t", "filter", "-X", "DOCKER-ISOLATION-STAGE-1"), dockerd)
	modprobe := childOf(proc("modprobe", "/usr/bin/kmod", "modprobe", "br_netfilter"), dockerd)
	add("dockerd starts and sets up its firewall chains",
		execEv(ipt), execEv(iptX, at(1)), execEv(modprobe, at(2)),
		moduleEv(modprobe, "finit_module", "/usr/lib/modules/6.1.0-28-amd64/kernel/net/bridge/br_netfilter.ko", at(2)),
	)

	// An operator logs in with ssh and uses sudo; another runs a shell in
	// a container with kubectl exec -it.
	sshd := proc("sshd", "/usr/sbin/sshd", "sshd: /usr/sbin/sshd -D")
	session := childOf(proc("sshd", "/usr/sbin/sshd", "sshd: alice [priv]"), sshd)
	login := childOf(asUser(withTTY(proc("bash", "/usr/bin/bash", "-bash")), 1000, 1000), session)
	sudo := childOf(asUser(withTTY(proc("sudo", "/usr/bin/sudo", "sudo", "systemctl", "restart", "nginx")), 1000, 0), login)
	ctl := childOf(withTTY(proc("systemctl", "/usr/bin/systemctl", "systemctl", "restart", "nginx")), sudo)
	execShell := childOf(withTTY(proc("bash", "/bin/bash", "bash")), childOf(proc("runc", "/usr/sbin/runc", "runc", "exec"), shim))
	add("operators log in over ssh, use sudo, and exec into a container",
		acceptEv(sshd, 22, "203.0.113.50"),
		execEv(login, withTTYStdio, at(1)),
		readEv(session, "/etc/shadow", at(1)),
		execEv(sudo, withTTYStdio, at(2)),
		readEv(sudo, "/etc/sudoers", at(2)),
		execEv(ctl, withTTYStdio, at(3)),
		execEv(execShell, inCtr, withTTYStdio, at(4)),
		execEv(childOf(withTTY(proc("ls", "/bin/ls", "ls", "-la")), execShell), inCtr, withTTYStdio, at(5)),
		openEv(proc("python3", "/usr/bin/python3.11", "python3"), "openat", "/root/.python_history", oWRONLY|oCREAT|oTRUNC, at(6)),
	)

	// Instance boot: cloud-init installs the key, the SSM agent its sudoers.
	add("an instance boots and its agents provision it",
		writeEv(proc("cloud-init", "/usr/bin/python3.11", "/usr/bin/python3", "/usr/bin/cloud-init", "modules"), "/home/admin/.ssh/authorized_keys"),
		writeEv(proc("amazon-ssm-agen", "/usr/bin/amazon-ssm-agent", "/usr/bin/amazon-ssm-agent"), "/etc/sudoers.d/ssm-agent-users", at(1)),
	)

	// The Vigil sensor itself running as a DaemonSet container.
	sensor := proc("vigil-sensor", "/usr/local/bin/vigil-sensor", "/usr/local/bin/vigil-sensor")
	img := image("ghcr.io/vigilsec/vigil-sensor:0.1.0")
	add("the Vigil sensor starts in its DaemonSet container",
		mountEv(sensor, "tracefs", "/sys/kernel/tracing", "tracefs", inCtr, img),
		bpfEv(sensor, 5, "BPF_PROG_LOAD", inCtr, img, at(1)),
		connectUnixEv(sensor, "/run/containerd/containerd.sock", inCtr, img, at(2)),
		openEv(sensor, "openat", "/proc/1234/mem", oRDONLY, inCtr, img, at(3)),
		readEv(sensor, "/proc/1234/environ", inCtr, img, at(3)),
	)
	return s
}

// withTTYStdio gives an exec a terminal on fds 0-2.
func withTTYStdio(e *vigilv1.Event) {
	x := e.GetExec()
	x.Stdio, x.StdioRemote = []string{"tty", "tty", "tty"}, nil
}

// TestEverydayWorkIsQuiet runs stories of ordinary work (package installs,
// builds, CI jobs, web servers, cron, container starts, operators) through
// the catalogue: none may raise anything of Medium severity or above.
func TestEverydayWorkIsQuiet(t *testing.T) {
	rs := loadCatalogue(t, configMap)
	for _, st := range benignStories() {
		t.Run(st.name, func(t *testing.T) {
			for _, a := range run(rs, st.events) {
				if a.Rule.Severity >= 5 {
					t.Errorf("%s (%s, severity %v): %s", a.Rule.Name, a.Rule.FindingType, a.Rule.Severity, a.Output)
				} else {
					t.Logf("low: %s: %s", a.Rule.Name, a.Output)
				}
			}
		})
	}
}
