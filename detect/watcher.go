package detect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
)

// WatcherConfig says which rules a Watcher loads.
type WatcherConfig struct {
	// Builtin holds the embedded rules, loaded first.
	Builtin fs.FS
	// Dir is the config map directory loaded after the built-ins; empty
	// means built-ins only.
	Dir string
	// Debounce is how long the watcher waits for a burst of file changes to
	// settle before reloading. Default 250ms.
	Debounce time.Duration
	// Resync rescans the directory periodically in case a change
	// notification was missed (or the directory appears later). Default 30s.
	Resync time.Duration
}

// Watcher keeps a RuleSet in step with a rules directory. A reload that has
// errors is rejected: the last good set stays in force and Errors() says
// why.
type Watcher struct {
	cfg      WatcherConfig
	log      *slog.Logger
	onChange func(*RuleSet)

	mu       sync.Mutex
	current  *RuleSet
	errs     []LoadError
	lastHash string

	reloads  *prometheus.CounterVec
	loaded   prometheus.Gauge
	errGauge prometheus.Gauge
	lastGood prometheus.Gauge
}

// NewWatcher loads the rules once and returns a watcher; onChange (may be
// nil) is called with every rule set that takes effect, the first one
// included. If the directory has errors at start, the built-in rules alone
// are used.
func NewWatcher(cfg WatcherConfig, onChange func(*RuleSet), log *slog.Logger, reg prometheus.Registerer) *Watcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = 250 * time.Millisecond
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	w := &Watcher{cfg: cfg, log: log.With("component", "detect"), onChange: onChange}
	w.reloads = registerCollector(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_detect_rules_reload_total", Help: "Rule reloads by result (success, failure, unchanged)."}, []string{"result"}))
	w.loaded = registerCollector(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_detect_rules_loaded", Help: "Rules in the rule set in force (enabled or not)."}))
	w.errGauge = registerCollector(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_detect_rules_load_errors", Help: "Errors (not warnings) found by the last load attempt."}))
	w.lastGood = registerCollector(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_detect_rules_last_success_timestamp_seconds", Help: "When a rule set last took effect."}))
	w.reload(true)
	return w
}

// RuleSet returns the rule set in force.
func (w *Watcher) RuleSet() *RuleSet {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.current
}

// Errors returns the problems of the last load attempt (warnings included).
func (w *Watcher) Errors() []LoadError {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]LoadError(nil), w.errs...)
}

// Reload rescans the directory now and reports whether a new set took
// effect.
func (w *Watcher) Reload() bool { return w.reload(false) }

func (w *Watcher) reload(initial bool) bool {
	hash := dirHash(w.cfg.Dir)
	w.mu.Lock()
	if !initial && hash == w.lastHash {
		w.mu.Unlock()
		w.reloads.WithLabelValues("unchanged").Inc()
		return false
	}
	w.mu.Unlock()

	rs, errs := LoadRules(w.cfg.Builtin, w.cfg.Dir)
	nerr := 0
	for _, e := range errs {
		if e.Warning {
			w.log.Warn("rule load warning", "file", e.File, "line", e.Line, "item", e.Item, "reason", e.Reason)
		} else {
			nerr++
			w.log.Error("rule load error", "file", e.File, "line", e.Line, "item", e.Item, "reason", e.Reason)
		}
	}
	w.errGauge.Set(float64(nerr))

	w.mu.Lock()
	w.errs = errs
	w.lastHash = hash
	if nerr > 0 {
		if initial {
			// Nothing good yet: run the built-ins alone rather than nothing.
			base, berrs := LoadRules(w.cfg.Builtin, "")
			if HasErrors(berrs) {
				w.log.Error("built-in rules have errors", "errors", len(berrs))
			}
			w.current = base
		}
		cur := w.current
		w.mu.Unlock()
		w.reloads.WithLabelValues("failure").Inc()
		w.log.Error("rules rejected; keeping the previous rule set", "dir", w.cfg.Dir, "errors", nerr)
		if initial && cur != nil {
			w.publish(cur)
		}
		return false
	}
	w.current = rs
	w.mu.Unlock()
	w.reloads.WithLabelValues("success").Inc()
	w.lastGood.SetToCurrentTime()
	rules, macros, lists := rs.Counts()
	w.log.Info("rules loaded", "dir", w.cfg.Dir, "rules", rules, "macros", macros, "lists", lists, "warnings", len(errs))
	w.publish(rs)
	return true
}

func (w *Watcher) publish(rs *RuleSet) {
	rules, _, _ := rs.Counts()
	w.loaded.Set(float64(rules))
	if w.onChange != nil {
		w.onChange(rs)
	}
}

// dirHash fingerprints the directory's visible files (following the
// ConfigMap symlinks), so a notification that changed nothing is ignored.
func dirHash(dir string) string {
	if dir == "" {
		return ""
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "error:" + err.Error()
	}
	h := sha256.New()
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Run watches the directory until ctx ends. Kubernetes updates a mounted
// ConfigMap by swapping the ..data symlink, so the directory itself is
// watched and rescanned on any event in it.
func (w *Watcher) Run(ctx context.Context) error {
	if w.cfg.Dir == "" {
		<-ctx.Done()
		return nil
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("create file watcher: %w", err)
	}
	defer fw.Close()
	watching := fw.Add(w.cfg.Dir) == nil
	if !watching {
		w.log.Warn("rules directory not watchable yet; rescanning periodically", "dir", w.cfg.Dir)
	}
	resync := time.NewTicker(w.cfg.Resync)
	defer resync.Stop()
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if filepath.Clean(ev.Name) == filepath.Clean(w.cfg.Dir) && ev.Op&(fsnotify.Remove|fsnotify.Rename) != 0 {
				// The directory itself went away; the resync re-adds the
				// watch when it is back.
				watching = false
			}
			// Any change in the directory (a file, or the ..data link) means
			// a rescan once the burst settles.
			debounce = time.After(w.cfg.Debounce)
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			w.log.Warn("file watcher error", "err", err)
		case <-debounce:
			debounce = nil
			w.Reload()
		case <-resync.C:
			if !watching {
				watching = fw.Add(w.cfg.Dir) == nil
			}
			w.Reload()
		}
	}
}
