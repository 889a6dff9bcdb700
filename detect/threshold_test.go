package detect

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

func acceptEv(p *vigilv1.Process, from string, d time.Duration) *vigilv1.Event {
	e := mk(p, "accept4", at(d))
	e.Kind = &vigilv1.Event_Accept{Accept: &vigilv1.Accept{Fd: 3, NewFd: 5, Protocol: "tcp",
		Local:  &vigilv1.SocketAddress{Family: "inet", Ip: "10.0.0.5", Port: 22},
		Remote: &vigilv1.SocketAddress{Family: "inet", Ip: from, Port: 50000}}}
	return e
}

func TestThreshold(t *testing.T) {
	countRule := `
- threshold: Many connections from one address
  desc: d
  condition: evt.type in (accept, accept4) and fd.sport = 22
  by: fd.cip
  count: 3
  within: 1m
  output: "%fd.cip connected many times"
  priority: WARNING
`
	distinctRule := `
- threshold: Many users from one address
  desc: d
  condition: evt.type = execve and proc.name = sshd-session
  by: proc.cwd
  distinct: user.name
  count: 3
  within: 1m
  output: many users
  priority: WARNING
`
	sshd := mkProc("sshd", "/usr/sbin/sshd")
	session := func(user string, d time.Duration) *vigilv1.Event {
		p := mkProc("sshd-session", "/usr/sbin/sshd-session")
		p.UserName = user
		return execEv(p, at(d))
	}
	cases := []struct {
		name   string
		rule   string
		events []*vigilv1.Event
		fires  int
	}{
		{"count events in the window fire", countRule, []*vigilv1.Event{
			acceptEv(sshd, "1.2.3.4", 0), acceptEv(sshd, "1.2.3.4", time.Second), acceptEv(sshd, "1.2.3.4", 2*time.Second)}, 1},
		{"fewer than count do not fire", countRule, []*vigilv1.Event{
			acceptEv(sshd, "1.2.3.4", 0), acceptEv(sshd, "1.2.3.4", time.Second)}, 0},
		{"events spread beyond the window do not fire", countRule, []*vigilv1.Event{
			acceptEv(sshd, "1.2.3.4", 0), acceptEv(sshd, "1.2.3.4", 40*time.Second), acceptEv(sshd, "1.2.3.4", 90*time.Second)}, 0},
		{"events under different keys are counted apart", countRule, []*vigilv1.Event{
			acceptEv(sshd, "1.2.3.4", 0), acceptEv(sshd, "5.6.7.8", time.Second), acceptEv(sshd, "1.2.3.4", 2*time.Second)}, 0},
		{"the count restarts after firing", countRule, []*vigilv1.Event{
			acceptEv(sshd, "1.2.3.4", 0), acceptEv(sshd, "1.2.3.4", 1), acceptEv(sshd, "1.2.3.4", 2),
			acceptEv(sshd, "1.2.3.4", 3), acceptEv(sshd, "1.2.3.4", 4), acceptEv(sshd, "1.2.3.4", 5)}, 2},
		{"distinct values fire at count", distinctRule, []*vigilv1.Event{
			session("a", 0), session("b", time.Second), session("c", 2*time.Second)}, 1},
		{"repeated values are counted once", distinctRule, []*vigilv1.Event{
			session("a", 0), session("a", time.Second), session("b", 2*time.Second), session("b", 3*time.Second)}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := engineFor(t, tc.rule)
			as := fired(e, tc.events...)
			if len(as) != tc.fires {
				t.Fatalf("got %d alerts, want %d", len(as), tc.fires)
			}
			for _, a := range as {
				if a.Rule.Kind != "threshold" || len(a.Events) != 3 || a.Captures["count"] != "3" {
					t.Fatalf("alert %+v captures %v", a.Rule, a.Captures)
				}
			}
		})
	}
}

func TestThreatLists(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "c2-domains.txt"), "# known C2\nEvil.example.\npool.minexmr.com\n")
	writeFile(t, filepath.Join(dir, "bad-ips.txt"), "203.0.113.0/24\n198.51.100.7\n")
	writeFile(t, filepath.Join(dir, "intel.yaml"), `
- list: c2_domains
  kind: domains
  items_file: c2-domains.txt
- list: bad_ips
  kind: ips
  items: ["192.0.2.1"]
  items_file: bad-ips.txt
- rule: C2 domain queried
  desc: d
  condition: evt.type = sendto and dns.qname in (c2_domains)
  output: "query %dns.qname"
  priority: WARNING
  finding: {type: "Backdoor:Runtime/C&CActivity.B!DNS", severity: 8}
- rule: Known bad address contacted
  desc: d
  condition: evt.type = connect and fd.sip in (bad_ips)
  output: "connect %fd.sip"
  priority: WARNING
`)
	rs, errs := LoadRules(nil, dir)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	e := NewEngine(EngineConfig{}, nil, nil)
	e.SetRules(rs)
	p := mkProc("curl", "/usr/bin/curl")
	cases := []struct {
		name     string
		ev       *vigilv1.Event
		wantList string
		wantItem string
		ctxKey   string
	}{
		{"a listed domain matches", dnsEv(p, "evil.example"), "c2_domains", "evil.example", "domain"},
		{"a subdomain of a listed domain matches", dnsEv(p, "a.b.EVIL.example."), "c2_domains", "evil.example", "domain"},
		{"a domain that only ends with the same letters does not match", dnsEv(p, "notevil.example"), "", "", ""},
		{"an address inside a listed CIDR matches", connectEv(p, "203.0.113.77", 443), "bad_ips", "203.0.113.0/24", "remoteIp"},
		{"a listed single address matches", connectEv(p, "198.51.100.7", 443), "bad_ips", "198.51.100.7", "remoteIp"},
		{"an inline item matches", connectEv(p, "192.0.2.1", 443), "bad_ips", "192.0.2.1", "remoteIp"},
		{"an address outside the list does not match", connectEv(p, "198.51.100.8", 443), "", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			as := fired(e, tc.ev)
			if tc.wantList == "" {
				if len(as) != 0 {
					t.Fatalf("fired %v", ruleNames(as))
				}
				return
			}
			if len(as) != 1 {
				t.Fatalf("got %d alerts", len(as))
			}
			c := as[0].Context
			if c["threatListName"] != tc.wantList || c["threatListItem"] != tc.wantItem || c[tc.ctxKey] == "" {
				t.Fatalf("context %v", c)
			}
		})
	}
}

func TestThreatListErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "bad.yaml"), "- list: ips\n  kind: ips\n  items: [not-an-ip]\n- list: f\n  kind: domains\n  items_file: ../../etc/passwd\n")
	_, errs := LoadRules(nil, dir)
	if !containsReason(errs, "not an IP address or CIDR") || !containsReason(errs, `relative path without ".." in it`) {
		t.Fatalf("errors %v", errs)
	}
}

func TestCollectionPolicy(t *testing.T) {
	rules := `
- rule: exec rule
  desc: d
  condition: evt.type = execve and proc.name = x
  output: o
  priority: INFO
- rule: open rule
  desc: d
  condition: evt.type in (open, openat) and fd.name = /x
  output: o
  priority: INFO
- rule: k8s
  desc: d
  condition: evt.type = connect and fd.sip.name = kubernetes
  output: o
  priority: INFO
- rule: disabled everywhere
  desc: d
  condition: proc.name = x
  output: o
  priority: INFO
  enabled: false
`
	cases := []struct {
		name  string
		extra string
		want  []string
	}{
		{"derived from the enabled rules plus the process table's needs", "",
			[]string{"connect", "dns_answer", "exec", "exit", "fork", "open"}},
		{"an enabled rule without evt.type needs every event", "- rule: disabled everywhere\n  enabled: true\n", nil},
		{"an explicit collection item wins", "- collection:\n    enabled_events: [exec, connect]\n    ignored_binaries: [/usr/bin/top]\n    rate_limit_per_second: 500\n    rate_limit_burst: 1000\n",
			[]string{"connect", "exec"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rs, errs := LoadRules(mapFS("r.yaml", rules+tc.extra), "")
			if len(errs) != 0 {
				t.Fatal(errs)
			}
			p := rs.Policy()
			if !slices.Equal(p.EnabledEvents, tc.want) {
				t.Fatalf("enabled_events %v, want %v", p.EnabledEvents, tc.want)
			}
			if p.Version == "" {
				t.Fatal("policy has no version")
			}
			if strings.Contains(tc.extra, "collection") && (p.RateLimitPerSecond != 500 || p.RateLimitBurst != 1000 || p.IgnoredBinaries[0] != "/usr/bin/top") {
				t.Fatalf("policy %v", p)
			}
		})
	}
}

func TestFileCreatedBy(t *testing.T) {
	e := engineFor(t, `
- rule: Run a file a downloader wrote
  desc: d
  condition: evt.type = execve and file.created_by in (/usr/bin/curl, /usr/bin/wget)
  output: "%proc.exepath created by %file.created_by"
  priority: WARNING
`)
	curl := mkProc("curl", "/usr/bin/curl")
	ev := openEv(curl, "/tmp/dl", oWronly|0o100, inCtr("c1"))
	ev.GetOpen().Created = true
	run := execEv(mkProc("dl", "/tmp/dl"), inCtr("c1"))
	runElsewhere := execEv(mkProc("dl", "/tmp/dl"), inCtr("c2"))
	if n := len(fired(e, ev, runElsewhere)); n != 0 {
		t.Fatal("a file of another container matched")
	}
	as := fired(e, run)
	if len(as) != 1 || as[0].Output != "/tmp/dl created by /usr/bin/curl" {
		t.Fatalf("alerts %+v", as)
	}
}
