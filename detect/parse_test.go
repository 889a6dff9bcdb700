package detect

import (
	"strings"
	"testing"
)

// render prints an AST back in a canonical, fully parenthesised form so
// tests can state the expected structure.
func render(n node) string {
	switch n := n.(type) {
	case *andNode:
		var p []string
		for _, k := range n.kids {
			p = append(p, render(k))
		}
		return "(" + strings.Join(p, " and ") + ")"
	case *orNode:
		var p []string
		for _, k := range n.kids {
			p = append(p, render(k))
		}
		return "(" + strings.Join(p, " or ") + ")"
	case *notNode:
		return "not " + render(n.kid)
	case *macroRef:
		return "@" + n.name
	case *checkNode:
		s := n.field.String() + " " + n.op
		switch n.value.kind {
		case valScalar:
			s += " <" + n.value.text + ">"
		case valList:
			var items []string
			for _, it := range n.value.items {
				items = append(items, "<"+it.text+">")
			}
			s += " [" + strings.Join(items, ",") + "]"
		case valField:
			s += " val(" + n.value.field.String() + ")"
		case valCapture:
			s += " $" + n.value.text
		}
		return s
	}
	return "?"
}

func TestParseCondition(t *testing.T) {
	lists := func(name string) ([]listItem, bool) {
		switch name {
		case "shells":
			return []listItem{{text: "sh"}, {text: "bash"}}, true
		case "empty_list":
			return nil, true
		case "spaced":
			return []listItem{{text: "puma reactor"}}, true
		}
		return nil, false
	}
	cases := []struct {
		name string
		in   string
		want string
	}{
		{"and binds tighter than or", "a or b and c", "(@a or (@b and @c))"},
		{"not binds tighter than and", "not a and b", "(not @a and @b)"},
		{"parentheses override precedence", "(a or b) and c", "((@a or @b) and @c)"},
		{"not directly followed by a parenthesis", "not(a)", "not @a"},
		{"double not", "not not a", "not not @a"},
		{"equals without blanks", "proc.name=sshd", "proc.name = <sshd>"},
		{"double equals is equals", "proc.name == sshd", "proc.name = <sshd>"},
		{"not-equals followed by a quoted value", `proc.cmdline!= "sh -s"`, "proc.cmdline != <sh -s>"},
		{"numeric comparison", "fd.num>=0", "fd.num >= <0>"},
		{"negative number", "fd.num=-1", "fd.num = <-1>"},
		{"single-quoted value", "fd.typechar='f'", "fd.typechar = <f>"},
		{"bare string with brackets and colons", "proc.pname in (runc:[0:PARENT], runc)", "proc.pname in [<runc:[0:PARENT]>,<runc>]"},
		{"field with index argument", "proc.aname[2]=chef", "proc.aname[2] = <chef>"},
		{"field with quoted key argument", `k8s.pod.label["app.kubernetes.io/name"] = web`, "k8s.pod.label[app.kubernetes.io/name] = <web>"},
		{"exists operator", "proc.pname exists", "proc.pname exists"},
		{"exists inside parentheses", "(not proc.pname exists or a)", "(not proc.pname exists or @a)"},
		{"list expanded from a list name", "proc.name in (shells, zsh)", "proc.name in [<sh>,<bash>,<zsh>]"},
		{"bare list name after in", "proc.name in shells", "proc.name in [<sh>,<bash>]"},
		{"empty list leaves no item", "proc.name in (empty_list, zsh)", "proc.name in [<zsh>]"},
		{"empty list alone", "proc.name in (empty_list)", "proc.name in []"},
		{"list item with a space stays one item", "proc.pname in (spaced)", "proc.pname in [<puma reactor>]"},
		{"quoted list items", `proc.name in ("<NA>","N/A")`, "proc.name in [<<NA>>,<N/A>]"},
		{"identifier in value position is not a macro", "evt.type in (dup, dup2)", "evt.type in [<dup>,<dup2>]"},
		{"transformer on the left", "tolower(proc.name) = bash", "tolower(proc.name) = <bash>"},
		{"nested transformers", "toupper(tolower(proc.name)) = BASH", "toupper(tolower(proc.name)) = <BASH>"},
		{"val on the right", "proc.name = val(proc.pname)", "proc.name = val(proc.pname)"},
		{"transformer on the right", "proc.name = tolower(proc.pname)", "proc.name = val(tolower(proc.pname))"},
		{"capture reference", "proc.exepath = $file", "proc.exepath = $file"},
		{"glob with stars", "fd.nameraw glob '*../*../*'", "fd.nameraw glob <*../*../*>"},
		{"newlines are blanks", "a\n  and\n  b", "(@a and @b)"},
		{"keywords need a word boundary", "andromeda or notable", "(@andromeda or @notable)"},
		{"in directly followed by a parenthesis", "fd.sport in(80,443)", "fd.sport in [<80>,<443>]"},
		{"escaped quote inside a double-quoted string", `proc.cmdline = "sh -c \"x\""`, `proc.cmdline = <sh -c "x">`},
		{"hex escape", `proc.name = "a\x41"`, "proc.name = <aA>"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, err := parseCondition(tc.in, lists)
			if err != nil {
				t.Fatalf("parse %q: %v", tc.in, err)
			}
			if got := render(n); got != tc.want {
				t.Fatalf("parse %q:\n got  %s\n want %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseConditionErrors(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"unbalanced parenthesis", "(a and b", "missing )"},
		{"trailing operator", "a and", "unexpected end"},
		{"missing value", "proc.name =", "missing value"},
		{"unknown operator", "proc.name like x", "expected an operator"},
		{"unterminated string", `proc.name = "abc`, "unterminated"},
		{"invalid escape", `proc.name = "a\q"`, "invalid escape"},
		{"single quote escape in double quotes", `proc.name = "a\'"`, "invalid escape"},
		{"unclosed list", "proc.name in (a, b", "missing ) to close list"},
		{"in without a list", "proc.name in nolist", "not a list"},
		{"stray text", "a b", "unexpected"},
		{"word operator glued to value", "proc.name containsx", "expected an operator"},
		{"val on the left", "val(proc.name) = x", "only allowed on the right"},
		{"deep nesting is bounded", strings.Repeat("(", 2000) + "a" + strings.Repeat(")", 2000), "nested deeper"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseCondition(tc.in, func(string) ([]listItem, bool) { return nil, false })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("parse %q: got error %v, want one containing %q", tc.in, err, tc.want)
			}
		})
	}
}

// TestListItemQuoting covers Falco's quoting of list items as written in
// YAML.
func TestListItemQuoting(t *testing.T) {
	cases := []struct {
		name, yamlItems string
		want            []string
	}{
		{"plain items", `[ash, bash]`, []string{"ash", "bash"}},
		{"double quotes inside single quotes keep parentheses", `['"(systemd)"']`, []string{"(systemd)"}},
		{"a YAML-quoted item with a space is one value", `["puma reactor"]`, []string{"puma reactor"}},
		{"quoted CIDR", `['"10.0.0.0/8"']`, []string{"10.0.0.0/8"}},
		{"integers", `[80, 8080]`, []string{"80", "8080"}},
		{"escaped quotes in a command line", `['"sh -c node -e \"require(''nan'')\""']`, []string{`sh -c node -e "require('nan')"`}},
		{"single quotes inside a double-quoted item", `['"sh -c /bin/sh -c ''date +%%s''"']`, []string{"sh -c /bin/sh -c 'date +%%s'"}},
		{"block sequence", "\n    - falcosecurity/falco\n    - docker.io/falcosecurity/falco", []string{"falcosecurity/falco", "docker.io/falcosecurity/falco"}},
		{"empty list", `[]`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rs, _ := loadYAML(t, "- list: l\n  items: "+tc.yamlItems+"\n"+
				"- rule: r\n  desc: d\n  condition: proc.cmdline in (l)\n  output: o\n  priority: INFO\n")
			var got []string
			// Check through evaluation: each expected item matches as a
			// whole command line, and nothing else does.
			e := NewEngine(EngineConfig{}, nil, nil)
			e.SetRules(rs)
			for _, w := range tc.want {
				p := mkProc("x", "/bin/x")
				p.Comm = w
				p.Args = []string{w}
				if len(fired(e, execEv(p))) != 1 {
					t.Errorf("item %q does not match", w)
				} else {
					got = append(got, w)
				}
			}
			p := mkProc("other", "/bin/other")
			if len(fired(e, execEv(p))) != 0 {
				t.Errorf("an unlisted value matched")
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
