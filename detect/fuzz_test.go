package detect

import (
	"os"
	"testing"
	"testing/fstest"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// FuzzParseCondition: the parser and compiler never panic, whatever the
// condition text.
func FuzzParseCondition(f *testing.F) {
	for _, s := range []string{
		"evt.type in (open,openat,openat2) and evt.is_open_write=true and fd.typechar='f' and fd.num>=0",
		`proc.pname in (runc:[0:PARENT], "puma reactor") or not proc.pname exists`,
		"proc.aname[2] startswith google_accounts and tolower(proc.name) = val(proc.pname)",
		`fd.snet in ("10.0.0.0/8") and fd.net != "127.0.0.0/8" and fd.sport in (80, 443)`,
		`proc.cmdline = "sh -c \"x\" \x41" and proc.name regex 'b[a-z]+' and fd.name glob '/home/*/.ssh/*'`,
		"not(a) and (b or c) and len(proc.args) > 3 and fd.name pmatch (/etc, /var/*/log)",
		"proc.exepath = $file and evt.arg.flags contains O_TRUNC",
	} {
		f.Add(s)
	}
	fields := fieldTable()
	lists := func(name string) ([]listItem, bool) {
		if name == "shells" {
			return []listItem{{text: "sh"}, {text: "a b"}}, true
		}
		return nil, false
	}
	f.Fuzz(func(t *testing.T, cond string) {
		n, err := parseCondition(cond, lists)
		if err != nil {
			return
		}
		cp := newCompiler(fields, map[string]string{})
		cp.macro = func(string) (node, bool) { return nil, false }
		cp.captures = map[string]bool{"file": true}
		p, err := cp.compile(n)
		cp.evtTypes(n)
		if err != nil || p == nil {
			return
		}
		// A compiled condition evaluates without panicking on any event.
		c := &evalCtx{}
		for _, ev := range fuzzEvents() {
			c.reset(ev, 1)
			p(c)
		}
	})
}

// FuzzLoadRules: the YAML loader never panics, and whatever it accepts the
// engine can run.
func FuzzLoadRules(f *testing.F) {
	seeds := []string{baseRules, dropExecRule, userRule("x"),
		"- list: l\n  items: ['\"a b\"', 1]\n- rule: r\n  desc: d\n  condition: proc.name in (l)\n  output: '%proc.name $x'\n  priority: info\n  exceptions:\n    - name: e\n      fields: [proc.name]\n      values: [[a]]\n",
		"- threshold: t\n  condition: evt.type = connect\n  by: fd.sip\n  count: 2\n  within: 1m\n  distinct: fd.sport\n  output: o\n  priority: INFO\n",
		"- collection: {enabled_events: [exec], rate_limit_per_second: 5}\n",
	}
	if data, err := os.ReadFile("testdata/falco/falco_rules.yaml"); err == nil {
		seeds = append(seeds, string(data))
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		rs, _ := LoadRules(fstest.MapFS{"f.yaml": {Data: []byte(text)}}, "")
		if rs == nil {
			t.Fatal("LoadRules returned no rule set")
		}
		rs.Policy()
		e := NewEngine(EngineConfig{}, nil, nil)
		e.SetRules(rs)
		for _, ev := range fuzzEvents() {
			e.Process(ev, func(*Alert) {})
		}
	})
}

func fuzzEvents() []*vigilv1.Event {
	p := withParents(mkProc("bash", "/bin/bash", "bash", "-c", "id"), "sshd")
	return []*vigilv1.Event{
		execEv(p, inContainer("alpine:3")),
		openEv(p, "/etc/shadow", 0o1101),
		connectEv(p, "10.0.0.1", 443),
		dnsEv(p, "example.com"),
		dnsAnswerEv(p, "example.com", "10.0.0.1"),
		mk(p, "dup2"),
		{},
	}
}
