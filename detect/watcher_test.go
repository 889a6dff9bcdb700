package detect

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// configMap mimics how the kubelet lays out a mounted ConfigMap: files live
// in a timestamped directory, ..data links to it, and each visible file
// links through ..data. An update writes a new directory and renames a new
// ..data link over the old one.
type configMap struct {
	t   *testing.T
	dir string
	gen int
}

func newConfigMap(t *testing.T, files map[string]string) *configMap {
	cm := &configMap{t: t, dir: t.TempDir()}
	cm.update(files)
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(cm.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return cm
}

func (cm *configMap) update(files map[string]string) {
	cm.gen++
	ts := filepath.Join(cm.dir, "..2026_11_26_00_00_0"+string(rune('0'+cm.gen)))
	for name, text := range files {
		writeFile(cm.t, filepath.Join(ts, name), text)
	}
	tmp := filepath.Join(cm.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		cm.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(cm.dir, "..data")); err != nil {
		cm.t.Fatal(err)
	}
}

func userRule(name string) string {
	return "- rule: " + name + "\n  desc: d\n  condition: evt.type = execve and proc.name = " + name + "\n  output: o\n  priority: INFO\n"
}

func hasRule(rs *RuleSet, name string) bool {
	for _, r := range rs.Rules() {
		if r.Name == name {
			return true
		}
	}
	return false
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWatcherReload(t *testing.T) {
	cm := newConfigMap(t, map[string]string{"rules.yaml": userRule("first")})
	reg := prometheus.NewRegistry()
	engine := NewEngine(EngineConfig{}, nil, reg)
	sets := make(chan *RuleSet, 10)
	w := NewWatcher(WatcherConfig{Builtin: mapFS("base.yaml", baseRules), Dir: cm.dir, Debounce: 50 * time.Millisecond},
		func(rs *RuleSet) { engine.SetRules(rs); sets <- rs }, nil, reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	rs := <-sets
	if !hasRule(rs, "first") || !hasRule(rs, "Shell spawned") || len(w.Errors()) != 0 {
		t.Fatalf("initial set: %v errors %v", rs.Rules(), w.Errors())
	}
	// Give the watcher a moment to register its watch before the swap.
	time.Sleep(100 * time.Millisecond)

	t.Run("a broken file keeps the previous set and says where", func(t *testing.T) {
		cm.update(map[string]string{"rules.yaml": userRule("second") + "- rule: broken\n  desc: d\n  condition: proc.name = (\n  output: o\n  priority: INFO\n"})
		waitFor(t, "the reload to fail", func() bool { return HasErrors(w.Errors()) })
		errs := w.Errors()
		var e LoadError
		for _, x := range errs {
			if !x.Warning {
				e = x
			}
		}
		if !strings.HasSuffix(e.File, "rules.yaml") || e.Line != 8 || e.Item != "rule broken" || !strings.Contains(e.Reason, "condition") {
			t.Fatalf("error %+v", e)
		}
		if !hasRule(engine.RuleSet(), "first") || hasRule(engine.RuleSet(), "second") || !hasRule(w.RuleSet(), "first") {
			t.Fatal("the previous rule set is not in force")
		}
		if got := metricValue(t, w.reloads.WithLabelValues("failure")); got < 1 {
			t.Fatalf("failure reloads = %v", got)
		}
		if got := metricValue(t, w.errGauge); got != 1 {
			t.Fatalf("load errors gauge = %v", got)
		}
	})

	t.Run("a fixed file takes over", func(t *testing.T) {
		cm.update(map[string]string{"rules.yaml": userRule("third")})
		select {
		case rs := <-sets:
			if !hasRule(rs, "third") || hasRule(rs, "first") {
				t.Fatalf("new set: %v", rs.Rules())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no reload after the fix")
		}
		if len(w.Errors()) != 0 || !hasRule(engine.RuleSet(), "third") {
			t.Fatalf("errors %v", w.Errors())
		}
		if got := metricValue(t, w.reloads.WithLabelValues("success")); got < 2 {
			t.Fatalf("success reloads = %v", got)
		}
		if got := metricValue(t, w.loaded); got != 2 {
			t.Fatalf("rules loaded gauge = %v", got)
		}
	})

	t.Run("an unchanged directory does not reload", func(t *testing.T) {
		if w.Reload() {
			t.Fatal("reloaded without a change")
		}
	})
}

func TestWatcherPlainDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), userRule("one"))
	sets := make(chan *RuleSet, 10)
	w := NewWatcher(WatcherConfig{Dir: dir, Debounce: 30 * time.Millisecond}, func(rs *RuleSet) { sets <- rs }, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = w.Run(ctx) }()
	<-sets
	time.Sleep(100 * time.Millisecond)
	writeFile(t, filepath.Join(dir, "b.yaml"), userRule("two"))
	select {
	case rs := <-sets:
		if !hasRule(rs, "one") || !hasRule(rs, "two") {
			t.Fatalf("set %v", rs.Rules())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a new file was not picked up")
	}
}

func TestWatcherStartsWithBrokenDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), "- rule: [")
	var got *RuleSet
	w := NewWatcher(WatcherConfig{Builtin: mapFS("base.yaml", baseRules), Dir: dir}, func(rs *RuleSet) { got = rs }, nil, nil)
	if got == nil || !hasRule(got, "Shell spawned") || !HasErrors(w.Errors()) {
		t.Fatalf("want the built-ins alone and the error reported; got %v, %v", got, w.Errors())
	}
}

func TestCheckDir(t *testing.T) {
	good, bad := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(good, "a.yaml"), userRule("ok"))
	writeFile(t, filepath.Join(bad, "a.yaml"), "- macro: m\n  condition: proc.name in (\n")
	cases := []struct {
		name    string
		dir     string
		wantErr bool
	}{
		{"a valid directory has no errors", good, false},
		{"an invalid directory reports errors", bad, true},
		{"a missing directory is an error", filepath.Join(good, "nope"), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := HasErrors(CheckDir(mapFS("base.yaml", baseRules), tc.dir)); got != tc.wantErr {
				t.Fatalf("HasErrors = %v", got)
			}
		})
	}
}
