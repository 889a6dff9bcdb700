package detect

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// EngineVersion is the Falco rules engine version this loader is compatible
// with; required_engine_version above it is refused.
const EngineVersion = "0.57.0"

// LoadError is a problem in a rule file, located by file, line and item.
// Warnings (unsupported fields, skipped sources, unknown keys) leave the file
// loaded; errors reject it.
type LoadError struct {
	// File is the rule file ("builtin:name.yaml" for embedded rules).
	File string
	// Line is the line of the item (0 when the file itself is at fault).
	Line int
	// Item names the item: "rule X", "macro X", "list X", "sequence X".
	Item string
	// Reason says what is wrong.
	Reason string
	// Warning is true for problems that do not reject the file: the item
	// concerned is skipped or disabled.
	Warning bool
}

// Error formats the problem as "file:line: item: reason".
func (e LoadError) Error() string {
	item := e.Item
	if item == "" {
		item = "-"
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, item, e.Reason)
}

// HasErrors reports whether any problem is an error rather than a warning.
func HasErrors(errs []LoadError) bool {
	for _, e := range errs {
		if !e.Warning {
			return true
		}
	}
	return false
}

// ruleFile is one source of rules.
type ruleFile struct {
	name string // as reported ("builtin:falco.yaml", "/etc/vigil/rules/x.yaml")
	data []byte
	// readData reads a file next to the rule file (items_file).
	readData func(rel string) ([]byte, error)
}

// LoadRules loads the built-in rules (every *.yaml/*.yml in builtin, in path
// order), then dir's *.yaml/*.yml files in file-name order, so later files
// can disable, append to or override earlier items. builtin and dir may be
// nil/empty. The returned RuleSet holds everything that compiled; errs lists
// every problem (see HasErrors).
func LoadRules(builtin fs.FS, dir string) (*RuleSet, []LoadError) {
	files, errs := collectFiles(builtin, dir)
	rs, lerrs := loadFiles(files)
	return rs, append(errs, lerrs...)
}

// CheckDir validates dir on top of the built-ins, for `backend rules check`.
func CheckDir(builtin fs.FS, dir string) []LoadError {
	if _, err := os.Stat(dir); err != nil {
		return []LoadError{{File: dir, Reason: err.Error()}}
	}
	_, errs := LoadRules(builtin, dir)
	return errs
}

func isRuleFileName(n string) bool {
	return !strings.HasPrefix(path.Base(n), ".") && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml"))
}

func collectFiles(builtin fs.FS, dir string) ([]ruleFile, []LoadError) {
	var files []ruleFile
	var errs []LoadError
	if builtin != nil {
		var names []string
		err := fs.WalkDir(builtin, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && isRuleFileName(p) {
				names = append(names, p)
			}
			return nil
		})
		if err != nil {
			errs = append(errs, LoadError{File: "builtin:", Reason: fmt.Sprintf("list built-in rules: %v", err)})
		}
		sort.Strings(names)
		for _, n := range names {
			data, err := fs.ReadFile(builtin, n)
			if err != nil {
				errs = append(errs, LoadError{File: "builtin:" + n, Reason: err.Error()})
				continue
			}
			base := path.Dir(n)
			files = append(files, ruleFile{name: "builtin:" + n, data: data, readData: func(rel string) ([]byte, error) {
				if !fs.ValidPath(rel) {
					return nil, fmt.Errorf("items_file %q must be a relative path without \"..\" in it", rel)
				}
				return fs.ReadFile(builtin, path.Join(base, rel))
			}})
		}
	}
	if dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, LoadError{File: dir, Reason: fmt.Sprintf("read rules directory: %v", err)})
			return files, errs
		}
		for _, e := range entries {
			n := e.Name()
			if !isRuleFileName(n) {
				continue
			}
			p := filepath.Join(dir, n)
			// Follow symlinks: a mounted ConfigMap's files link into ..data.
			st, err := os.Stat(p)
			if err != nil || !st.Mode().IsRegular() {
				continue
			}
			data, err := os.ReadFile(p)
			if err != nil {
				errs = append(errs, LoadError{File: p, Reason: err.Error()})
				continue
			}
			files = append(files, ruleFile{name: p, data: data, readData: func(rel string) ([]byte, error) {
				if !fs.ValidPath(rel) {
					return nil, fmt.Errorf("items_file %q must be a relative path without \"..\" in it", rel)
				}
				return os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
			}})
		}
	}
	return files, errs
}

// Definitions collected from the files before compiling.

type where struct {
	file string
	line int
}

type listDef struct {
	name  string
	items []string
	kind  string // "", "domains", "ips"
	index int
	at    where
}

// condPos locates a condition's text in its file, so errors in it point at
// the condition's line (its exact line inside a | block). It is cleared when
// an append concatenates text from elsewhere.
type condPos struct {
	line    int
	literal bool
	valid   bool
}

func condPosOf(n *yaml.Node) condPos {
	n = deref(n)
	if n == nil {
		return condPos{}
	}
	return condPos{line: n.Line, literal: n.Style&yaml.LiteralStyle != 0, valid: true}
}

// lineOf returns the line of byte offset pos of the condition text, or
// fallback when the text cannot be located.
func (c condPos) lineOf(cond string, pos, fallback int) int {
	if !c.valid {
		return fallback
	}
	if !c.literal || pos < 0 {
		return c.line
	}
	// An error at the end points at the last line with text, not past it.
	pos = min(pos, len(strings.TrimRight(cond, " \t\r\n")))
	return c.line + 1 + strings.Count(cond[:pos], "\n")
}

type macroDef struct {
	name    string
	cond    string
	condPos condPos
	index   int
	at      where
	ast     node
	bad     bool
}

type exceptionDef struct {
	name       string
	fields     []string
	fieldsList bool
	comps      []string
	values     [][]exceptionValue
}

type exceptionValue struct {
	scalar string
	list   []string
	isList bool
}

type findingDef struct {
	typ        string
	severity   float64
	hasSev     bool
	tactics    []string
	techniques []string
	context    []contextDef
	groupBy    []string
}

type contextDef struct {
	key     string
	value   string
	literal bool
}

type stepDef struct {
	name     string
	cond     string
	captures []contextDef
	line     int
}

type ruleDef struct {
	kind        string // falco, sequence, threshold
	name        string
	cond        string
	condPos     condPos
	desc        string
	output      string
	priority    string
	tags        []string
	enabled     bool
	exceptions  []exceptionDef
	finding     *findingDef
	skipUnknown bool
	index       int
	at          where
	last        where

	by       string
	within   string
	steps    []stepDef
	count    int
	distinct string
}

type collectionDef struct {
	enabledEvents   []string
	hasEvents       bool
	ignoredBinaries []string
	ignoredCgroups  []string
	ratePerSecond   uint32
	rateBurst       uint32
}

type loader struct {
	errs []LoadError
	// skipped names rules of other sources; later items that tune them are
	// skipped too instead of failing as undefined.
	skipped map[string]bool
	lists   map[string]*listDef
	macros  map[string]*macroDef
	rules   map[string]*ruleDef
	order   int
	coll    collectionDef
	file    ruleFile
}

func (l *loader) errorf(line int, item, format string, a ...any) {
	l.errs = append(l.errs, LoadError{File: l.file.name, Line: line, Item: item, Reason: fmt.Sprintf(format, a...)})
}

func (l *loader) warnf(line int, item, format string, a ...any) {
	l.errs = append(l.errs, LoadError{File: l.file.name, Line: line, Item: item, Reason: fmt.Sprintf(format, a...), Warning: true})
}

func loadFiles(files []ruleFile) (*RuleSet, []LoadError) {
	l := &loader{lists: map[string]*listDef{}, macros: map[string]*macroDef{}, rules: map[string]*ruleDef{}, skipped: map[string]bool{}}
	for _, f := range files {
		l.file = f
		l.loadFile()
	}
	rs := l.compile()
	return rs, l.errs
}

// loadFile reads every YAML document of one file.
func (l *loader) loadFile() {
	dec := yaml.NewDecoder(bytes.NewReader(l.file.data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			l.errorf(yamlErrorLine(err), "", "invalid YAML: %v", err)
			return
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue
		}
		if root.Kind != yaml.SequenceNode {
			l.errorf(root.Line, "", "a rules file must be a list of items")
			continue
		}
		for _, it := range root.Content {
			l.loadItem(it)
		}
	}
}

func yamlErrorLine(err error) int {
	// yaml.v3 messages read "yaml: line N: ..."
	msg := err.Error()
	if i := strings.Index(msg, "line "); i >= 0 {
		j := i + 5
		k := j
		for k < len(msg) && msg[k] >= '0' && msg[k] <= '9' {
			k++
		}
		if n, err := strconv.Atoi(msg[j:k]); err == nil {
			return n
		}
	}
	return 0
}

// mapping is a YAML mapping with its keys in order.
type mapping struct {
	keys []string
	vals map[string]*yaml.Node
	key  map[string]*yaml.Node
}

// deref follows YAML aliases (*anchor) to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	return n
}

func toMapping(n *yaml.Node) (*mapping, error) {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("expected a mapping")
	}
	m := &mapping{vals: map[string]*yaml.Node{}, key: map[string]*yaml.Node{}}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: keys must be strings", k.Line)
		}
		if _, dup := m.vals[k.Value]; dup {
			return nil, fmt.Errorf("line %d: key %s appears twice", k.Line, k.Value)
		}
		m.keys = append(m.keys, k.Value)
		m.vals[k.Value] = deref(n.Content[i+1])
		m.key[k.Value] = k
	}
	return m, nil
}

func (m *mapping) has(k string) bool { _, ok := m.vals[k]; return ok }

func scalar(n *yaml.Node, what string) (string, error) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("%s must be a string", what)
	}
	if n.Tag == "!!null" {
		return "", nil
	}
	return n.Value, nil
}

func stringList(n *yaml.Node, what string) ([]string, error) {
	n = deref(n)
	if n == nil {
		return nil, fmt.Errorf("%s must be a list", what)
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s must be a list", what)
	}
	out := make([]string, 0, len(n.Content))
	for _, c := range n.Content {
		c = deref(c)
		if c == nil || c.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: %s items must be strings or numbers", c.Line, what)
		}
		out = append(out, c.Value)
	}
	return out, nil
}

func boolValue(n *yaml.Node, what string) (bool, error) {
	s, err := scalar(n, what)
	if err != nil {
		return false, err
	}
	switch strings.ToLower(s) {
	case "true", "yes", "on":
		return true, nil
	case "false", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("%s must be true or false, not %q", what, s)
}

var itemKinds = []string{"required_engine_version", "required_plugin_versions", "list", "macro", "rule", "sequence", "threshold", "collection"}

func (l *loader) loadItem(n *yaml.Node) {
	m, err := toMapping(n)
	if err != nil {
		l.errorf(n.Line, "", "item: %v", err)
		return
	}
	kind := ""
	for _, k := range itemKinds {
		if m.has(k) {
			kind = k
			break
		}
	}
	switch kind {
	case "required_engine_version":
		l.engineVersion(m, n.Line)
	case "required_plugin_versions":
		// Container and Kubernetes metadata are built into Vigil's events;
		// no plugin is needed.
	case "list":
		l.loadList(m, n.Line)
	case "macro":
		l.loadMacro(m, n.Line)
	case "rule", "sequence", "threshold":
		l.loadRule(kind, m, n.Line)
	case "collection":
		l.loadCollection(m, n.Line)
	default:
		l.warnf(n.Line, "", "unknown item with keys %s, skipped", strings.Join(m.keys, ", "))
	}
}

func parseSemver(s string) ([3]int, error) {
	var v [3]int
	if n, err := strconv.Atoi(s); err == nil {
		return [3]int{0, n, 0}, nil
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return v, fmt.Errorf("version %q is not x.y.z", s)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return v, fmt.Errorf("version %q is not x.y.z", s)
		}
		v[i] = n
	}
	return v, nil
}

func (l *loader) engineVersion(m *mapping, line int) {
	s, err := scalar(m.vals["required_engine_version"], "required_engine_version")
	if err == nil {
		var req, have [3]int
		if req, err = parseSemver(s); err == nil {
			have, _ = parseSemver(EngineVersion)
			if req[0] != have[0] || req[1] > have[1] || (req[1] == have[1] && req[2] > have[2]) {
				err = fmt.Errorf("rules require engine version %s, but engine version is %s", s, EngineVersion)
			}
		}
	}
	if err != nil {
		l.errorf(line, "required_engine_version", "%v", err)
	}
}

// overrideSpec reads `override: {key: append|replace}`.
func overrideSpec(m *mapping) (map[string]string, error) {
	n, ok := m.vals["override"]
	if !ok {
		return nil, nil
	}
	om, err := toMapping(n)
	if err != nil {
		return nil, fmt.Errorf("override: %w", err)
	}
	out := map[string]string{}
	for _, k := range om.keys {
		v, err := scalar(om.vals[k], "override."+k)
		if err != nil {
			return nil, err
		}
		if v != "append" && v != "replace" {
			return nil, fmt.Errorf("override.%s must be append or replace, not %q", k, v)
		}
		out[k] = v
	}
	return out, nil
}

// checkOverrideKeys enforces Falco's override matrix and that every key in
// the item is covered by the override.
func checkOverrideKeys(m *mapping, ov map[string]string, nameKey string, appendable, replaceable []string) error {
	for k, mode := range ov {
		allowed := replaceable
		if mode == "append" {
			allowed = appendable
		}
		found := false
		for _, a := range allowed {
			if a == k {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("key %s cannot be overridden with %s", k, mode)
		}
		if !m.has(k) {
			return fmt.Errorf("override of %s has no %s key", k, k)
		}
	}
	for _, k := range m.keys {
		if k == nameKey || k == "override" {
			continue
		}
		if _, ok := ov[k]; !ok {
			return fmt.Errorf("key %s needs an override directive (append or replace)", k)
		}
	}
	return nil
}

// itemHeader reads what list and macro items share: the name, the
// override directives and the legacy append flag. ok is false when the item
// was rejected (the error is recorded).
func (l *loader) itemHeader(m *mapping, line int, kind string) (name, item string, ov map[string]string, appendMode, ok bool) {
	name, err := scalar(m.vals[kind], kind)
	if err != nil || name == "" {
		l.errorf(line, kind, "%s needs a name", kind)
		return "", "", nil, false, false
	}
	item = kind + " " + name
	if ov, err = overrideSpec(m); err != nil {
		l.errorf(line, item, "%v", err)
		return "", "", nil, false, false
	}
	if n, has := m.vals["append"]; has {
		if appendMode, err = boolValue(n, "append"); err != nil {
			l.errorf(line, item, "%v", err)
			return "", "", nil, false, false
		}
	}
	return name, item, ov, appendMode, true
}

func (l *loader) loadList(m *mapping, line int) {
	name, item, ov, appendMode, ok := l.itemHeader(m, line, "list")
	if !ok {
		return
	}
	for _, k := range m.keys {
		switch k {
		case "list", "items", "append", "override", "kind", "items_file":
		default:
			l.warnf(m.key[k].Line, item, "unknown key %s ignored", k)
		}
	}
	if ov != nil {
		if err := checkOverrideKeys(itemsFileAsItems(m), ov, "list", []string{"items"}, []string{"items"}); err != nil {
			l.errorf(line, item, "%v", err)
			return
		}
		appendMode = ov["items"] == "append"
	}
	var items []string
	if n, ok := m.vals["items"]; ok {
		var err error
		if items, err = stringList(n, "items"); err != nil {
			l.errorf(line, item, "%v", err)
			return
		}
	} else if !m.has("items_file") {
		l.errorf(line, item, "list needs items or items_file")
		return
	}
	kind := ""
	if n, ok := m.vals["kind"]; ok {
		kind, _ = scalar(n, "kind")
		switch kind {
		case "domains", "ips":
		default:
			l.errorf(line, item, "kind must be domains or ips, not %q", kind)
			return
		}
	}
	if n, ok := m.vals["items_file"]; ok {
		rel, err := scalar(n, "items_file")
		if err == nil {
			var data []byte
			data, err = l.file.readData(rel)
			if err == nil {
				items = append(items, parseItemsFile(data)...)
			}
		}
		if err != nil {
			l.errorf(n.Line, item, "items_file: %v", err)
			return
		}
	}
	prev := l.lists[name]
	switch {
	case appendMode && prev == nil:
		l.errorf(line, item, "cannot append to undefined list %s", name)
	case appendMode:
		prev.items = append(prev.items, items...)
		if kind != "" {
			prev.kind = kind
		}
	case prev != nil:
		prev.items, prev.kind, prev.at = items, kind, where{l.file.name, line}
	default:
		l.order++
		l.lists[name] = &listDef{name: name, items: items, kind: kind, index: l.order, at: where{l.file.name, line}}
	}
}

// itemsFileAsItems lets the items override cover items_file: a config map
// appends a file of indicators to a list as it appends inline items.
func itemsFileAsItems(m *mapping) *mapping {
	if !m.has("items_file") {
		return m
	}
	out := &mapping{vals: map[string]*yaml.Node{}, key: map[string]*yaml.Node{}}
	for _, k := range m.keys {
		name := k
		if k == "items_file" {
			if m.has("items") {
				continue
			}
			name = "items"
		}
		out.keys = append(out.keys, name)
		out.vals[name], out.key[name] = m.vals[k], m.key[k]
	}
	return out
}

// parseItemsFile reads one item per line; blank lines and # comments are
// skipped.
func parseItemsFile(data []byte) []string {
	var out []string
	for _, ln := range strings.Split(string(data), "\n") {
		if i := strings.IndexByte(ln, '#'); i >= 0 {
			ln = ln[:i]
		}
		if ln = strings.TrimSpace(ln); ln != "" {
			out = append(out, ln)
		}
	}
	return out
}

func (l *loader) loadMacro(m *mapping, line int) {
	name, item, ov, appendMode, ok := l.itemHeader(m, line, "macro")
	if !ok {
		return
	}
	for _, k := range m.keys {
		switch k {
		case "macro", "condition", "append", "override":
		default:
			l.warnf(m.key[k].Line, item, "unknown key %s ignored", k)
		}
	}
	if ov != nil {
		if err := checkOverrideKeys(m, ov, "macro", []string{"condition"}, []string{"condition"}); err != nil {
			l.errorf(line, item, "%v", err)
			return
		}
		appendMode = ov["condition"] == "append"
	}
	cond, err := scalar(m.vals["condition"], "condition")
	if err != nil || strings.TrimSpace(cond) == "" {
		l.errorf(line, item, "macro needs a condition")
		return
	}
	prev := l.macros[name]
	switch {
	case appendMode && prev == nil:
		l.errorf(line, item, "cannot append to undefined macro %s", name)
	case appendMode:
		prev.cond = prev.cond + " " + cond
		prev.at, prev.condPos = where{l.file.name, line}, condPos{}
	case prev != nil:
		prev.cond, prev.at, prev.condPos = cond, where{l.file.name, line}, condPosOf(m.vals["condition"])
	default:
		l.order++
		l.macros[name] = &macroDef{name: name, cond: cond, index: l.order, at: where{l.file.name, line}, condPos: condPosOf(m.vals["condition"])}
	}
}

var ruleKeys = map[string]bool{
	"rule": true, "sequence": true, "threshold": true, "condition": true, "desc": true, "output": true, "priority": true,
	"tags": true, "enabled": true, "source": true, "exceptions": true, "override": true, "append": true, "finding": true,
	"warn_evttypes": true, "skip-if-unknown-filter": true, "capture": true, "capture_duration": true,
	"by": true, "within": true, "steps": true, "count": true, "distinct": true,
}

func (l *loader) loadRule(kind string, m *mapping, line int) {
	name, err := scalar(m.vals[kind], kind)
	if err != nil || name == "" {
		l.errorf(line, kind, "%s needs a name", kind)
		return
	}
	item := kind + " " + name
	if kind == "rule" {
		item = "rule " + name
	}
	for _, k := range m.keys {
		if !ruleKeys[k] {
			l.warnf(m.key[k].Line, item, "unknown key %s ignored", k)
		}
	}
	if n, ok := m.vals["source"]; ok {
		src, _ := scalar(n, "source")
		if src != "" && src != "syscall" {
			l.warnf(line, item, "source %s is not supported (only syscall); rule skipped", src)
			l.skipped[name] = true
			return
		}
	}
	if l.skipped[name] && l.rules[name] == nil && !m.has("condition") && !m.has("steps") {
		l.warnf(line, item, "rule %s was skipped (not a syscall rule); this change is skipped too", name)
		return
	}
	ov, err := overrideSpec(m)
	if err != nil {
		l.errorf(line, item, "%v", err)
		return
	}
	prev := l.rules[name]
	if prev != nil && prev.kind != kind && (ov != nil || !m.has("condition") && !m.has("steps")) {
		l.errorf(line, item, "%s is a %s rule, not a %s", name, prev.kind, kind)
		return
	}
	here := where{l.file.name, line}
	switch {
	case ov != nil:
		if prev == nil {
			l.errorf(line, item, "cannot override undefined rule %s", name)
			return
		}
		appendable := []string{"condition", "output", "desc", "tags", "exceptions"}
		replaceable := []string{"condition", "output", "desc", "priority", "tags", "exceptions", "enabled",
			"warn_evttypes", "skip-if-unknown-filter", "capture", "capture_duration", "finding", "by", "within", "steps", "count", "distinct"}
		if err := checkOverrideKeys(m, ov, kind, appendable, replaceable); err != nil {
			l.errorf(line, item, "%v", err)
			return
		}
		upd, err := l.parseRuleFields(kind, m, false)
		if err != nil {
			l.errorf(line, item, "%v", err)
			return
		}
		for k, mode := range ov {
			l.applyRuleKey(prev, upd, k, mode == "append")
		}
		prev.last = here
	case m.has("append"):
		app, err := boolValue(m.vals["append"], "append")
		if err != nil {
			l.errorf(line, item, "%v", err)
			return
		}
		if app {
			if prev == nil {
				l.errorf(line, item, "cannot append to undefined rule %s", name)
				return
			}
			upd, err := l.parseRuleFields(kind, m, false)
			if err != nil {
				l.errorf(line, item, "%v", err)
				return
			}
			for _, k := range []string{"condition", "output", "desc", "tags", "exceptions"} {
				if m.has(k) {
					l.applyRuleKey(prev, upd, k, true)
				}
			}
			prev.last = here
			return
		}
		fallthrough
	default:
		if !m.has("condition") && !m.has("steps") && m.has("enabled") {
			// The legacy toggle form: `- rule: X` + `enabled: false`.
			if prev == nil {
				l.errorf(line, item, "cannot enable or disable undefined rule %s", name)
				return
			}
			en, err := boolValue(m.vals["enabled"], "enabled")
			if err != nil {
				l.errorf(line, item, "%v", err)
				return
			}
			prev.enabled = en
			prev.last = here
			return
		}
		r, err := l.parseRuleFields(kind, m, true)
		if err != nil {
			l.errorf(line, item, "%v", err)
			return
		}
		r.at, r.last = here, here
		if prev != nil {
			r.index = prev.index
		} else {
			l.order++
			r.index = l.order
		}
		l.rules[name] = r
	}
}

// applyRuleKey copies one key from upd into r, appending or replacing.
func (l *loader) applyRuleKey(r, upd *ruleDef, key string, appendMode bool) {
	switch key {
	case "condition":
		if appendMode {
			r.cond = r.cond + " " + upd.cond
			r.condPos = condPos{}
		} else {
			r.cond, r.condPos = upd.cond, upd.condPos
		}
	case "output":
		if appendMode {
			r.output = r.output + " " + upd.output
		} else {
			r.output = upd.output
		}
	case "desc":
		if appendMode {
			r.desc = r.desc + " " + upd.desc
		} else {
			r.desc = upd.desc
		}
	case "tags":
		if appendMode {
			r.tags = append(append([]string(nil), r.tags...), upd.tags...)
		} else {
			r.tags = upd.tags
		}
	case "exceptions":
		if !appendMode {
			r.exceptions = upd.exceptions
			return
		}
		for _, ue := range upd.exceptions {
			merged := false
			for i := range r.exceptions {
				if r.exceptions[i].name == ue.name {
					r.exceptions[i].values = append(r.exceptions[i].values, ue.values...)
					merged = true
				}
			}
			if !merged {
				r.exceptions = append(r.exceptions, ue)
			}
		}
	case "priority":
		r.priority = upd.priority
	case "enabled":
		r.enabled = upd.enabled
	case "skip-if-unknown-filter":
		r.skipUnknown = upd.skipUnknown
	case "finding":
		r.finding = upd.finding
	case "by":
		r.by = upd.by
	case "within":
		r.within = upd.within
	case "steps":
		r.steps = upd.steps
	case "count":
		r.count = upd.count
	case "distinct":
		r.distinct = upd.distinct
	}
}

var priorities = map[string]string{
	"emergency": "EMERGENCY", "alert": "ALERT", "critical": "CRITICAL", "error": "ERROR", "warning": "WARNING",
	"notice": "NOTICE", "informational": "INFORMATIONAL", "info": "INFORMATIONAL", "debug": "DEBUG",
}

// parseRuleFields reads the keys present in m. full requires the keys a new
// definition must have.
func (l *loader) parseRuleFields(kind string, m *mapping, full bool) (*ruleDef, error) {
	name, _ := scalar(m.vals[kind], kind)
	r := &ruleDef{kind: kind, name: name, enabled: true}
	var err error
	str := func(k string) (string, error) {
		if n, ok := m.vals[k]; ok {
			return scalar(n, k)
		}
		return "", nil
	}
	if r.cond, err = str("condition"); err != nil {
		return nil, err
	}
	if n, ok := m.vals["condition"]; ok {
		r.condPos = condPosOf(n)
	}
	if r.desc, err = str("desc"); err != nil {
		return nil, err
	}
	if r.output, err = str("output"); err != nil {
		return nil, err
	}
	r.output = strings.TrimSpace(r.output)
	if p, err := str("priority"); err != nil {
		return nil, err
	} else if p != "" {
		norm, ok := priorities[strings.ToLower(strings.TrimSpace(p))]
		if !ok {
			return nil, fmt.Errorf("invalid priority %q", p)
		}
		r.priority = norm
	}
	if n, ok := m.vals["tags"]; ok {
		if r.tags, err = stringList(n, "tags"); err != nil {
			return nil, err
		}
	}
	if n, ok := m.vals["enabled"]; ok {
		if r.enabled, err = boolValue(n, "enabled"); err != nil {
			return nil, err
		}
	}
	if n, ok := m.vals["skip-if-unknown-filter"]; ok {
		if r.skipUnknown, err = boolValue(n, "skip-if-unknown-filter"); err != nil {
			return nil, err
		}
	}
	if n, ok := m.vals["exceptions"]; ok {
		if r.exceptions, err = parseExceptions(n); err != nil {
			return nil, err
		}
	}
	if n, ok := m.vals["finding"]; ok {
		if r.finding, err = parseFinding(n); err != nil {
			return nil, err
		}
	}
	if r.by, err = str("by"); err != nil {
		return nil, err
	}
	if r.within, err = str("within"); err != nil {
		return nil, err
	}
	if r.distinct, err = str("distinct"); err != nil {
		return nil, err
	}
	if c, err := str("count"); err != nil {
		return nil, err
	} else if c != "" {
		if r.count, err = strconv.Atoi(c); err != nil || r.count < 1 {
			return nil, fmt.Errorf("count must be a positive number, not %q", c)
		}
	}
	if n, ok := m.vals["steps"]; ok {
		if r.steps, err = parseSteps(n); err != nil {
			return nil, err
		}
	}
	if !full {
		return r, nil
	}
	var missing []string
	switch kind {
	case "rule", "threshold":
		if strings.TrimSpace(r.cond) == "" {
			missing = append(missing, "condition")
		}
	case "sequence":
		if len(r.steps) < 2 {
			return nil, fmt.Errorf("a sequence needs at least two steps")
		}
	}
	if kind != "rule" {
		if r.by == "" {
			missing = append(missing, "by")
		}
		if r.within == "" {
			missing = append(missing, "within")
		}
	}
	if kind == "threshold" && r.count == 0 {
		missing = append(missing, "count")
	}
	if r.output == "" {
		missing = append(missing, "output")
	}
	if r.priority == "" {
		missing = append(missing, "priority")
	}
	if kind == "rule" && r.desc == "" && !m.has("desc") {
		missing = append(missing, "desc")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing required key(s): %s", strings.Join(missing, ", "))
	}
	return r, nil
}

func parseExceptions(n *yaml.Node) ([]exceptionDef, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("exceptions must be a list")
	}
	var out []exceptionDef
	for _, en := range n.Content {
		m, err := toMapping(en)
		if err != nil {
			return nil, fmt.Errorf("exception: %w", err)
		}
		var e exceptionDef
		if e.name, err = scalar(m.vals["name"], "exception name"); err != nil || e.name == "" {
			return nil, fmt.Errorf("line %d: exception needs a name", en.Line)
		}
		if fn, ok := m.vals["fields"]; ok {
			if fn.Kind == yaml.SequenceNode {
				e.fieldsList = true
				if e.fields, err = stringList(fn, "fields"); err != nil {
					return nil, err
				}
			} else {
				f, err := scalar(fn, "fields")
				if err != nil {
					return nil, err
				}
				e.fields = []string{f}
			}
		}
		if cn, ok := m.vals["comps"]; ok {
			if cn.Kind == yaml.SequenceNode {
				if e.comps, err = stringList(cn, "comps"); err != nil {
					return nil, err
				}
			} else {
				c, err := scalar(cn, "comps")
				if err != nil {
					return nil, err
				}
				e.comps = []string{c}
			}
		}
		if vn, ok := m.vals["values"]; ok {
			if vn.Kind != yaml.SequenceNode {
				return nil, fmt.Errorf("line %d: exception values must be a list", vn.Line)
			}
			for _, row := range vn.Content {
				if !e.fieldsList {
					if row.Kind != yaml.ScalarNode {
						return nil, fmt.Errorf("line %d: exception %s has one field, so each value must be a string", row.Line, e.name)
					}
					e.values = append(e.values, []exceptionValue{{scalar: row.Value}})
					continue
				}
				if row.Kind != yaml.SequenceNode {
					return nil, fmt.Errorf("line %d: exception %s values must be lists, one value per field", row.Line, e.name)
				}
				var vals []exceptionValue
				for _, v := range row.Content {
					switch v.Kind {
					case yaml.ScalarNode:
						vals = append(vals, exceptionValue{scalar: v.Value})
					case yaml.SequenceNode:
						l, err := stringList(v, "exception value")
						if err != nil {
							return nil, err
						}
						vals = append(vals, exceptionValue{list: l, isList: true})
					default:
						return nil, fmt.Errorf("line %d: bad exception value", v.Line)
					}
				}
				e.values = append(e.values, vals)
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func parseFinding(n *yaml.Node) (*findingDef, error) {
	m, err := toMapping(n)
	if err != nil {
		return nil, fmt.Errorf("finding: %w", err)
	}
	f := &findingDef{}
	for _, k := range m.keys {
		v := m.vals[k]
		switch k {
		case "type":
			if f.typ, err = scalar(v, "finding.type"); err != nil {
				return nil, err
			}
			if !strings.Contains(f.typ, ":") || !strings.Contains(f.typ, "/") {
				return nil, fmt.Errorf("finding.type %q is not ThreatPurpose:ResourceType/ThreatFamily", f.typ)
			}
		case "severity":
			s, err := scalar(v, "finding.severity")
			if err != nil {
				return nil, err
			}
			sev, err := strconv.ParseFloat(s, 64)
			if err != nil {
				switch strings.ToLower(s) {
				case "critical":
					sev = 9
				case "high":
					sev = 8
				case "medium":
					sev = 5
				case "low":
					sev = 2
				default:
					return nil, fmt.Errorf("finding.severity must be 1-10 or low/medium/high/critical, not %q", s)
				}
			}
			if sev < 1 || sev > 10 {
				return nil, fmt.Errorf("finding.severity must be between 1 and 10")
			}
			f.severity, f.hasSev = sev, true
		case "tactics":
			if f.tactics, err = stringList(v, "finding.tactics"); err != nil {
				return nil, err
			}
		case "techniques":
			if f.techniques, err = stringList(v, "finding.techniques"); err != nil {
				return nil, err
			}
		case "context":
			cm, err := toMapping(v)
			if err != nil {
				return nil, fmt.Errorf("finding.context: %w", err)
			}
			for _, ck := range cm.keys {
				cd, err := contextEntry(ck, cm.vals[ck])
				if err != nil {
					return nil, err
				}
				f.context = append(f.context, cd)
			}
		case "group_by":
			if f.groupBy, err = stringList(v, "finding.group_by"); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("unknown key finding.%s", k)
		}
	}
	return f, nil
}

// contextEntry reads `key: field.name` or `key: "literal"`: a quoted YAML
// scalar or a word without dots is a literal.
func contextEntry(key string, v *yaml.Node) (contextDef, error) {
	if v.Kind != yaml.ScalarNode {
		return contextDef{}, fmt.Errorf("line %d: context %s must be a field name or a quoted string", v.Line, key)
	}
	s := v.Value
	// '"text"' (quotes inside the YAML string) forces a literal; otherwise
	// the compiler decides: a known field or $capture is rendered, anything
	// else is literal text.
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return contextDef{key: key, value: s[1 : len(s)-1], literal: true}, nil
	}
	return contextDef{key: key, value: s}, nil
}

func parseSteps(n *yaml.Node) ([]stepDef, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("steps must be a list")
	}
	var out []stepDef
	for i, sn := range n.Content {
		m, err := toMapping(sn)
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", i+1, err)
		}
		st := stepDef{name: fmt.Sprintf("step%d", i+1), line: sn.Line}
		for _, k := range m.keys {
			v := m.vals[k]
			switch k {
			case "name":
				if st.name, err = scalar(v, "step name"); err != nil {
					return nil, err
				}
			case "condition":
				if st.cond, err = scalar(v, "step condition"); err != nil {
					return nil, err
				}
			case "capture":
				cm, err := toMapping(v)
				if err != nil {
					return nil, fmt.Errorf("step %s capture: %w", st.name, err)
				}
				for _, ck := range cm.keys {
					f, err := scalar(cm.vals[ck], "capture "+ck)
					if err != nil {
						return nil, err
					}
					st.captures = append(st.captures, contextDef{key: ck, value: f})
				}
			default:
				return nil, fmt.Errorf("line %d: unknown step key %s", m.key[k].Line, k)
			}
		}
		if strings.TrimSpace(st.cond) == "" {
			return nil, fmt.Errorf("line %d: step %s needs a condition", sn.Line, st.name)
		}
		out = append(out, st)
	}
	return out, nil
}

func (l *loader) loadCollection(m *mapping, line int) {
	n := m.vals["collection"]
	cm, err := toMapping(n)
	if err != nil {
		l.errorf(line, "collection", "%v", err)
		return
	}
	for _, k := range cm.keys {
		v := cm.vals[k]
		switch k {
		case "enabled_events":
			evs, err := stringList(v, k)
			if err != nil {
				l.errorf(v.Line, "collection", "%v", err)
				continue
			}
			l.coll.enabledEvents, l.coll.hasEvents = evs, true
		case "ignored_binaries":
			if l.coll.ignoredBinaries, err = stringList(v, k); err != nil {
				l.errorf(v.Line, "collection", "%v", err)
			}
		case "ignored_cgroups":
			if l.coll.ignoredCgroups, err = stringList(v, k); err != nil {
				l.errorf(v.Line, "collection", "%v", err)
			}
		case "rate_limit_per_second", "rate_limit_burst":
			s, _ := scalar(v, k)
			x, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				l.errorf(v.Line, "collection", "%s must be a non-negative number, not %q", k, s)
				continue
			}
			if k == "rate_limit_per_second" {
				l.coll.ratePerSecond = uint32(x)
			} else {
				l.coll.rateBurst = uint32(x)
			}
		default:
			l.warnf(cm.key[k].Line, "collection", "unknown key %s ignored", k)
		}
	}
}

// exceptionCondition builds Falco's exception suffix:
// " and not ((f1 c1 v1 and f2 c2 v2) or (...))".
func exceptionCondition(ex []exceptionDef) (string, error) {
	var b strings.Builder
	for _, e := range ex {
		if len(e.values) == 0 {
			continue
		}
		if len(e.fields) == 0 {
			return "", fmt.Errorf("exception %s has values but no fields", e.name)
		}
		comps := e.comps
		if len(comps) == 0 {
			def := "="
			if !e.fieldsList {
				def = "in"
			}
			for range e.fields {
				comps = append(comps, def)
			}
		}
		if len(comps) != len(e.fields) {
			return "", fmt.Errorf("exception %s has %d fields but %d comps", e.name, len(e.fields), len(comps))
		}
		for _, c := range comps {
			if !validOp(c) {
				return "", fmt.Errorf("exception %s: unknown comparison %q", e.name, c)
			}
		}
		if !e.fieldsList {
			if !isListOp(comps[0]) {
				return "", fmt.Errorf("exception %s: with a single field, comps must be in, pmatch or intersects", e.name)
			}
			var vals []string
			for _, row := range e.values {
				vals = append(vals, quoteValue(row[0].scalar))
			}
			fmt.Fprintf(&b, " and not %s %s (%s)", e.fields[0], comps[0], strings.Join(vals, ", "))
			continue
		}
		b.WriteString(" and not (")
		for i, row := range e.values {
			if len(row) != len(e.fields) {
				return "", fmt.Errorf("exception %s: a value has %d items for %d fields", e.name, len(row), len(e.fields))
			}
			if i > 0 {
				b.WriteString(" or ")
			}
			b.WriteString("(")
			for j, v := range row {
				if j > 0 {
					b.WriteString(" and ")
				}
				var val string
				switch {
				case v.isList:
					q := make([]string, len(v.list))
					for k, s := range v.list {
						q[k] = quoteValue(s)
					}
					val = "(" + strings.Join(q, ", ") + ")"
				case isListOp(comps[j]):
					val = "(" + quoteValue(v.scalar) + ")"
				default:
					val = quoteValue(v.scalar)
				}
				fmt.Fprintf(&b, "%s %s %s", e.fields[j], comps[j], val)
			}
			b.WriteString(")")
		}
		b.WriteString(")")
	}
	return b.String(), nil
}

func validOp(op string) bool {
	switch op {
	case "=", "==", "!=", "<", "<=", ">", ">=":
		return true
	}
	for _, w := range wordOps {
		if w == op && op != "exists" {
			return true
		}
	}
	return false
}

// quoteValue quotes a value that would not survive as a bare string.
func quoteValue(s string) string {
	if s == "" {
		return `""`
	}
	if s[0] == '"' || s[0] == '\'' {
		return s
	}
	if strings.ContainsAny(s, " \t\n()\"',=") {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	}
	return s
}
