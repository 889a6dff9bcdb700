package detect

import (
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"

	"path/filepath"
	"strings"
	"testing"
)

const baseRules = `
- list: shell_binaries
  items: [bash, sh]
- macro: spawned_process
  condition: evt.type in (execve, execveat)
- macro: shell_procs
  condition: proc.name in (shell_binaries)
- rule: Shell spawned
  desc: a shell ran
  condition: spawned_process and shell_procs
  output: "shell %proc.name"
  priority: NOTICE
  tags: [shell]
`

// loadWithUser loads baseRules as built-ins and user as a config map file.
func loadWithUser(t *testing.T, user string) (*RuleSet, []LoadError) {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "50-user.yaml"), user)
	return LoadRules(mapFS("base.yaml", baseRules), dir)
}

func TestOverrides(t *testing.T) {
	zsh := execEv(mkProc("zsh", "/bin/zsh"))
	bash := execEv(mkProc("bash", "/bin/bash"))
	bashInTmp := execEv(func() *vigilv1.Process { p := mkProc("bash", "/bin/bash"); p.Cwd = "/tmp"; return p }())
	cases := []struct {
		name   string
		user   string
		fire   []*vigilv1.Event
		nofire []*vigilv1.Event
		check  func(t *testing.T, rs *RuleSet)
	}{
		{
			name:   "list override append adds items",
			user:   "- list: shell_binaries\n  items: [zsh]\n  override:\n    items: append\n",
			fire:   []*vigilv1.Event{zsh, bash},
			nofire: nil,
		},
		{
			name: "legacy list append adds items",
			user: "- list: shell_binaries\n  items: [zsh]\n  append: true\n",
			fire: []*vigilv1.Event{zsh, bash},
		},
		{
			name:   "list override replace swaps the items",
			user:   "- list: shell_binaries\n  items: [zsh]\n  override:\n    items: replace\n",
			fire:   []*vigilv1.Event{zsh},
			nofire: []*vigilv1.Event{bash},
		},
		{
			name:   "list redefinition replaces it",
			user:   "- list: shell_binaries\n  items: [zsh]\n",
			fire:   []*vigilv1.Event{zsh},
			nofire: []*vigilv1.Event{bash},
		},
		{
			name: "macro override append concatenates the condition",
			user: "- macro: shell_procs\n  condition: or proc.name = zsh\n  override:\n    condition: append\n",
			fire: []*vigilv1.Event{zsh, bash},
		},
		{
			name:   "legacy macro append",
			user:   "- macro: shell_procs\n  condition: and proc.cwd = /tmp\n  append: true\n",
			fire:   []*vigilv1.Event{bashInTmp},
			nofire: []*vigilv1.Event{bash},
		},
		{
			name:   "macro override replace",
			user:   "- macro: shell_procs\n  condition: proc.name = zsh\n  override:\n    condition: replace\n",
			fire:   []*vigilv1.Event{zsh},
			nofire: []*vigilv1.Event{bash},
		},
		{
			name:   "rule override append narrows the condition",
			user:   "- rule: Shell spawned\n  condition: and proc.cwd = /tmp\n  override:\n    condition: append\n",
			fire:   []*vigilv1.Event{bashInTmp},
			nofire: []*vigilv1.Event{bash},
		},
		{
			name:   "legacy rule append",
			user:   "- rule: Shell spawned\n  condition: and proc.cwd = /tmp\n  append: true\n",
			fire:   []*vigilv1.Event{bashInTmp},
			nofire: []*vigilv1.Event{bash},
		},
		{
			name: "rule override replace of condition and append of output, desc and tags",
			user: "- rule: Shell spawned\n  condition: spawned_process and proc.name = zsh\n  output: in %proc.cwd\n  desc: more\n  tags: [custom]\n" +
				"  override:\n    condition: replace\n    output: append\n    desc: append\n    tags: append\n",
			fire:   []*vigilv1.Event{zsh},
			nofire: []*vigilv1.Event{bash},
			check: func(t *testing.T, rs *RuleSet) {
				r := rs.Rules()[0]
				if r.Description != "a shell ran more" || strings.Join(r.Tags, ",") != "shell,custom" {
					t.Fatalf("desc/tags: %q %v", r.Description, r.Tags)
				}
				if out := rs.rules[0].output.render(&evalCtx{ev: zsh}, nil); out != "shell zsh in /" {
					t.Fatalf("output %q", out)
				}
			},
		},
		{
			name:   "rule override replace of enabled disables it",
			user:   "- rule: Shell spawned\n  enabled: false\n  override:\n    enabled: replace\n",
			nofire: []*vigilv1.Event{bash},
		},
		{
			name:   "legacy enabled toggle disables it",
			user:   "- rule: Shell spawned\n  enabled: false\n",
			nofire: []*vigilv1.Event{bash},
		},
		{
			name: "rule override replace of priority and finding",
			user: "- rule: Shell spawned\n  priority: CRITICAL\n  finding: {type: 'Execution:Runtime/Shell', severity: 7}\n" +
				"  override:\n    priority: replace\n    finding: replace\n",
			fire: []*vigilv1.Event{bash},
			check: func(t *testing.T, rs *RuleSet) {
				r := rs.Rules()[0]
				if r.Priority != "CRITICAL" || r.FindingType != "Execution:Runtime/Shell" || r.Severity != 7 {
					t.Fatalf("got %+v", r)
				}
			},
		},
		{
			name: "exceptions appended to a rule exclude matching events",
			user: "- rule: Shell spawned\n  exceptions:\n    - name: cwd\n      fields: [proc.name, proc.cwd]\n      values: [[bash, /tmp]]\n" +
				"  override:\n    exceptions: append\n",
			fire:   []*vigilv1.Event{bash},
			nofire: []*vigilv1.Event{bashInTmp},
		},
		{
			name:   "a rule redefinition replaces it",
			user:   "- rule: Shell spawned\n  desc: d\n  condition: spawned_process and proc.name = zsh\n  output: o\n  priority: INFO\n",
			fire:   []*vigilv1.Event{zsh},
			nofire: []*vigilv1.Event{bash},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rs, errs := loadWithUser(t, tc.user)
			if len(errs) > 0 {
				t.Fatalf("load: %v", errs)
			}
			e := NewEngine(EngineConfig{}, nil, nil)
			e.SetRules(rs)
			for _, ev := range tc.fire {
				if len(fired(e, ev)) != 1 {
					t.Errorf("%s did not fire", ev.Process.Comm+" in "+ev.Process.Cwd)
				}
			}
			for _, ev := range tc.nofire {
				if len(fired(e, ev)) != 0 {
					t.Errorf("%s fired", ev.Process.Comm+" in "+ev.Process.Cwd)
				}
			}
			if tc.check != nil {
				tc.check(t, rs)
			}
		})
	}
}

// TestOverrideAppendsAnItemsFile checks a config map can append a file of
// items to a list, as it appends inline items.
func TestOverrideAppendsAnItemsFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "50-user.yaml"), "- list: shell_binaries\n  override: {items: append}\n  items_file: lists/shells.txt\n")
	writeFile(t, filepath.Join(dir, "lists", "shells.txt"), "# ours\nzsh\n")
	rs, errs := LoadRules(mapFS("base.yaml", baseRules), dir)
	if len(errs) > 0 {
		t.Fatalf("load: %v", errs)
	}
	e := NewEngine(EngineConfig{}, nil, nil)
	e.SetRules(rs)
	for _, ev := range []*vigilv1.Event{execEv(mkProc("zsh", "/bin/zsh")), execEv(mkProc("bash", "/bin/bash"))} {
		if len(fired(e, ev)) != 1 {
			t.Errorf("%s did not fire", ev.Process.Comm)
		}
	}
}

func TestOverrideErrors(t *testing.T) {
	cases := []struct{ name, user, want string }{
		{"override of an undefined rule", "- rule: Nope\n  condition: x\n  override:\n    condition: append\n", "cannot override undefined rule"},
		{"append to an undefined list", "- list: nope\n  items: [a]\n  append: true\n", "cannot append to undefined list"},
		{"append to an undefined macro", "- macro: nope\n  condition: a\n  override:\n    condition: append\n", "cannot append to undefined macro"},
		{"priority cannot be appended", "- rule: Shell spawned\n  priority: INFO\n  override:\n    priority: append\n", "cannot be overridden with append"},
		{"every key needs a directive", "- rule: Shell spawned\n  condition: and x\n  output: o\n  override:\n    condition: append\n", "key output needs an override directive"},
		{"override mode must be append or replace", "- list: shell_binaries\n  items: [a]\n  override:\n    items: merge\n", "must be append or replace"},
		{"toggle of an undefined rule", "- rule: Nope\n  enabled: false\n", "cannot enable or disable undefined rule"},
		{"broken YAML", "- rule: [unclosed\n", "invalid YAML"},
		{"not a list of items", "rule: x\n", "must be a list of items"},
		{"newer engine version required", "- required_engine_version: 9.0.0\n", "rules require engine version"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := loadWithUser(t, tc.user)
			found := false
			for _, e := range errs {
				if !e.Warning && strings.Contains(e.Error(), tc.want) {
					found = true
					if !strings.HasSuffix(e.File, "50-user.yaml") || e.Line == 0 {
						t.Errorf("error not located in the user file: %+v", e)
					}
				}
			}
			if !found {
				t.Fatalf("errors %v, want one containing %q", errs, tc.want)
			}
		})
	}
}

func TestExceptions(t *testing.T) {
	rule := func(ex string) string {
		return "- rule: r\n  desc: d\n  condition: evt.type = openat\n  output: o\n  priority: INFO\n  exceptions:\n" + ex
	}
	writer := func(comm, path string) *vigilv1.Event { return openEv(mkProc(comm, "/usr/bin/"+comm), path, 1) }
	cases := []struct {
		name   string
		ex     string
		fire   []*vigilv1.Event
		nofire []*vigilv1.Event
	}{
		{
			name:   "list form compares every field with =",
			ex:     "    - name: e\n      fields: [proc.name, fd.directory]\n      values: [[apk, /usr/lib]]\n",
			fire:   []*vigilv1.Event{writer("apk", "/etc/x"), writer("vi", "/usr/lib/x")},
			nofire: []*vigilv1.Event{writer("apk", "/usr/lib/x")},
		},
		{
			name:   "a value may be a list when the comparison is in",
			ex:     "    - name: e\n      fields: [proc.name, fd.directory]\n      comps: [in, =]\n      values: [[[apk, npm], /usr/lib]]\n",
			fire:   []*vigilv1.Event{writer("vi", "/usr/lib/x")},
			nofire: []*vigilv1.Event{writer("apk", "/usr/lib/x"), writer("npm", "/usr/lib/y")},
		},
		{
			name:   "scalar form uses in",
			ex:     "    - name: e\n      fields: proc.name\n      values: [apk, npm]\n",
			fire:   []*vigilv1.Event{writer("vi", "/x")},
			nofire: []*vigilv1.Event{writer("apk", "/x"), writer("npm", "/y")},
		},
		{
			name:   "startswith comparison and quoted values with spaces",
			ex:     "    - name: e\n      fields: [fd.name, proc.name]\n      comps: [startswith, =]\n      values: [['/var/my dir', vi]]\n",
			fire:   []*vigilv1.Event{writer("vi", "/var/other")},
			nofire: []*vigilv1.Event{writer("vi", "/var/my dir/file")},
		},
		{
			name: "an exception without values does nothing",
			ex:   "    - name: e\n      fields: [proc.name]\n",
			fire: []*vigilv1.Event{writer("vi", "/x")},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := engineFor(t, rule(tc.ex))
			for _, ev := range tc.fire {
				if len(fired(e, ev)) != 1 {
					t.Errorf("%s %s did not fire", ev.Process.Comm, ev.GetOpen().Path)
				}
			}
			for _, ev := range tc.nofire {
				if len(fired(e, ev)) != 0 {
					t.Errorf("%s %s fired", ev.Process.Comm, ev.GetOpen().Path)
				}
			}
		})
	}
}

func TestMacroVisibility(t *testing.T) {
	// A rule may use a macro defined after it; a macro may not.
	_, errs := LoadRules(mapFS("r.yaml", `
- rule: r
  desc: d
  condition: later
  output: o
  priority: INFO
- macro: later
  condition: proc.name = x
`), "")
	if len(errs) != 0 {
		t.Fatalf("rule using a later macro: %v", errs)
	}
	// The upstream file's `dup` macro names itself as a value.
	e := engineFor(t, `
- macro: dup
  condition: (evt.type in (dup, dup2, dup3))
- rule: r
  desc: d
  condition: dup
  output: o
  priority: INFO
`)
	ev := mk(mkProc("sh", "/bin/sh"), "dup2")
	if len(fired(e, ev)) != 1 {
		t.Fatal("dup macro did not match dup2")
	}
}

func TestFileOrder(t *testing.T) {
	// Files in the directory load in name order: 20- overrides 10-.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "20-b.yaml"), "- list: shell_binaries\n  items: [ksh]\n")
	writeFile(t, filepath.Join(dir, "10-a.yml"), "- list: shell_binaries\n  items: [zsh]\n")
	writeFile(t, filepath.Join(dir, "notes.txt"), "not rules")
	writeFile(t, filepath.Join(dir, ".hidden.yaml"), "garbage: [")
	rs, errs := LoadRules(mapFS("base.yaml", baseRules), dir)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	e := NewEngine(EngineConfig{}, nil, nil)
	e.SetRules(rs)
	if len(fired(e, execEv(mkProc("ksh", "/bin/ksh")))) != 1 || len(fired(e, execEv(mkProc("zsh", "/bin/zsh")))) != 0 {
		t.Fatal("later file did not win")
	}
}

func TestWarnings(t *testing.T) {
	rs, errs := LoadRules(mapFS("w.yaml", `
- rule: k8s audit rule
  desc: d
  condition: ka.verb = create
  output: o
  priority: INFO
  source: k8s_audit
- required_plugin_versions:
    - name: container
      version: 0.4.0
- something_else: 1
- rule: kept
  desc: d
  condition: proc.name = x
  output: o
  priority: INFO
  colour: blue
- rule: k8s audit rule
  enabled: false
`), "")
	if HasErrors(errs) {
		t.Fatalf("warnings only expected: %v", errs)
	}
	want := []string{
		"builtin:w.yaml:2: rule k8s audit rule: source k8s_audit is not supported (only syscall); rule skipped",
		"builtin:w.yaml:11: -: unknown item with keys something_else, skipped",
		"builtin:w.yaml:17: rule kept: unknown key colour ignored",
		"builtin:w.yaml:18: rule k8s audit rule: rule k8s audit rule was skipped (not a syscall rule); this change is skipped too",
	}
	if len(errs) != len(want) {
		t.Fatalf("got %v", errs)
	}
	for i, e := range errs {
		if !e.Warning || e.Error() != want[i] {
			t.Errorf("warning %d = %q, want %q", i, e.Error(), want[i])
		}
	}
	if len(rs.Rules()) != 1 || rs.Rules()[0].Name != "kept" {
		t.Fatalf("rules %v", rs.Rules())
	}
}

func TestYAMLAliases(t *testing.T) {
	e := engineFor(t, `
- list: shells
  items: &shells [bash, sh]
- list: more_shells
  items: *shells
- rule: r
  desc: &d shared description
  condition: proc.name in (more_shells)
  output: *d
  priority: INFO
`)
	if len(fired(e, execEv(mkProc("sh", "/bin/sh")))) != 1 {
		t.Fatal("aliased items did not load")
	}
}

func TestErrorLines(t *testing.T) {
	cases := []struct {
		name, text string
		line       int
	}{
		{"a parse error inside a | block names its own line", `- rule: r
  desc: d
  condition: |
    evt.type = execve
    and proc.name in (a, b
  output: o
  priority: INFO
`, 5},
		{"a parse error in a folded condition names the condition line", `- rule: r
  desc: d
  condition: >
    evt.type = execve
    and proc.name = (
  output: o
  priority: INFO
`, 3},
		{"a compile error names the condition line", `- rule: r
  desc: d
  output: o
  condition: proc.pid = abc
  priority: INFO
`, 4},
		{"a macro's error inside a | block", `- macro: m
  condition: |
    proc.name = a or
    proc.name = (
`, 4},
		{"an output error names the rule", `- rule: r
  desc: d
  condition: proc.name = a
  output: "%container.label"
  priority: INFO
`, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := LoadRules(mapFS("r.yaml", tc.text), "")
			if !HasErrors(errs) || errs[0].Line != tc.line {
				t.Fatalf("errors %v, want line %d", errs, tc.line)
			}
		})
	}
}
