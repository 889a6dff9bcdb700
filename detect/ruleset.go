package detect

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// RuleSet is a compiled, immutable set of rules, indexed by event type.
type RuleSet struct {
	rules []*compiledRule
	infos []*RuleInfo
	// byType holds, per evt.type, the enabled rules that can match it (rules
	// without an evt.type constraint included), in load order.
	byType  map[string][]*compiledRule
	anyType []*compiledRule
	policy  *vigilv1.CollectionPolicy

	lists, macros int
}

// Rules describes every rule of the set, enabled or not, in load order.
func (rs *RuleSet) Rules() []*RuleInfo {
	if rs == nil {
		return nil
	}
	return rs.infos
}

// Policy is the collection policy for sensors: the config map's collection
// item, with enabled_events derived from the enabled rules when not given.
func (rs *RuleSet) Policy() *vigilv1.CollectionPolicy {
	if rs == nil {
		return &vigilv1.CollectionPolicy{}
	}
	return rs.policy
}

// Counts reports how many rules, macros and lists the set holds.
func (rs *RuleSet) Counts() (rules, macros, lists int) {
	if rs == nil {
		return 0, 0, 0
	}
	return len(rs.rules), rs.macros, rs.lists
}

func (rs *RuleSet) rulesFor(evtType string) []*compiledRule {
	if r, ok := rs.byType[evtType]; ok {
		return r
	}
	return rs.anyType
}

// compiledRule is one rule ready to evaluate.
type compiledRule struct {
	info    *RuleInfo
	cond    pred
	types   map[string]bool // nil: any event type
	output  *outputFormat
	context []compiledContext
	// groupBy are the finding.group_by fields (see Alert.GroupKey).
	groupBy []fieldImpl
	// fingerprint identifies the rule's matching logic; sequence and
	// threshold state survives a reload when it is unchanged.
	fingerprint string
	seq         *sequenceSpec
	thr         *thresholdSpec
	index       int
}

type compiledContext struct {
	key     string
	lit     string
	field   *fieldImpl
	capture string
}

// sequenceSpec is a compiled sequence rule.
type sequenceSpec struct {
	by     keyFunc
	byName string
	within time.Duration
	steps  []compiledStep
	// tree keys the sequence by process tree: later steps match in the
	// first step's process or any descendant.
	tree bool
	// index is set for a two-step sequence whose second step can only
	// match when one capture equals one of the event's field values.
	index *captureIndex
}

// captureIndex says which capture a step's condition requires equal to one
// of fields' values (proc.exepath = $file or evt.arg.filename = $file):
// partial matches are kept by that capture's value and found by a map
// lookup, however many there are.
type captureIndex struct {
	capture string
	fields  []func(*evalCtx) (string, bool)
}

type compiledStep struct {
	name     string
	cond     pred
	types    map[string]bool
	captures []compiledCapture
	// usesCaptures: the condition reads captures, so it is evaluated per
	// partial match instead of once per event.
	usesCaptures bool
}

type compiledCapture struct {
	name  string
	field fieldImpl
}

// thresholdSpec is a compiled threshold rule.
type thresholdSpec struct {
	by       keyFunc
	byName   string
	within   time.Duration
	count    int
	distinct *fieldImpl
}

// keyFunc extracts the grouping key of an event.
type keyFunc func(c *evalCtx) (string, bool)

// SeverityForPriority maps a Falco priority to a GuardDuty-style severity.
func SeverityForPriority(p string) float64 {
	switch strings.ToUpper(p) {
	case "EMERGENCY", "ALERT", "CRITICAL":
		return 9
	case "ERROR":
		return 8
	case "WARNING":
		return 5
	case "NOTICE":
		return 4
	case "INFORMATIONAL", "INFO":
		return 2
	case "DEBUG":
		return 1
	}
	return 5
}

var mitreTacticTags = map[string]string{
	"mitre_reconnaissance": "TA0043", "mitre_resource_development": "TA0042", "mitre_initial_access": "TA0001",
	"mitre_execution": "TA0002", "mitre_persistence": "TA0003", "mitre_privilege_escalation": "TA0004",
	"mitre_defense_evasion": "TA0005", "mitre_credential_access": "TA0006", "mitre_discovery": "TA0007",
	"mitre_lateral_movement": "TA0008", "mitre_collection": "TA0009", "mitre_exfiltration": "TA0010",
	"mitre_command_and_control": "TA0011", "mitre_impact": "TA0040",
}

var (
	techniqueRE = regexp.MustCompile(`^T\d{4}(\.\d{3})?$`)
	tacticRE    = regexp.MustCompile(`^TA\d{4}$`)
)

// mitreFromTags reads ATT&CK ids from Falco-style tags (mitre_execution,
// T1059.004, TA0003).
func mitreFromTags(tags []string) (tactics, techniques []string) {
	seen := map[string]bool{}
	add := func(dst *[]string, v string) {
		if !seen[v] {
			seen[v] = true
			*dst = append(*dst, v)
		}
	}
	for _, t := range tags {
		switch {
		case mitreTacticTags[t] != "":
			add(&tactics, mitreTacticTags[t])
		case tacticRE.MatchString(t):
			add(&tactics, t)
		case techniqueRE.MatchString(t):
			add(&techniques, t)
		}
	}
	return tactics, techniques
}

// defaultFindingType names a finding for a rule without finding metadata:
// Vigil:Runtime/<RuleNameInCamelCase>.
func defaultFindingType(name string) string {
	var b strings.Builder
	up := true
	for _, r := range name {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			up = true
			continue
		}
		if up {
			r = unicode.ToUpper(r)
			up = false
		}
		b.WriteRune(r)
	}
	return "Vigil:Runtime/" + b.String()
}

// syscallKinds maps evt.type values to the Event oneof names the collection
// policy enables.
var syscallKinds = map[string]string{
	"execve": "exec", "execveat": "exec", "clone": "fork", "clone3": "fork", "fork": "fork", "vfork": "fork",
	"procexit": "exit", "exit": "exit", "exit_group": "exit",
	"open": "open", "openat": "open", "openat2": "open", "creat": "open",
	"connect": "connect", "accept": "accept", "accept4": "accept", "bind": "bind", "listen": "listen",
	"sendto": "dns_query", "sendmsg": "dns_query", "sendmmsg": "dns_query", "write": "dns_query", "writev": "dns_query",
	"recvfrom": "dns_answer", "recvmsg": "dns_answer", "read": "dns_answer",
	"socket": "socket", "dup": "dup", "dup2": "dup", "dup3": "dup", "ptrace": "ptrace",
	"memfd_create": "memfd_create", "init_module": "module_load", "finit_module": "module_load",
	"mount": "mount", "unshare": "namespace", "setns": "namespace", "bpf": "bpf", "userfaultfd": "userfaultfd",
	"process_vm_writev": "process_vm_write", "mprotect": "mprotect", "io_uring_setup": "io_uring_setup",
	"unlink": "unlink", "unlinkat": "unlink", "rmdir": "unlink",
	"rename": "rename", "renameat": "rename", "renameat2": "rename",
	"chmod": "chmod", "fchmod": "chmod", "fchmodat": "chmod",
	"chown": "chown", "fchown": "chown", "lchown": "chown", "fchownat": "chown",
	"link": "link", "linkat": "link", "symlink": "link", "symlinkat": "link",
	"truncate": "truncate", "ftruncate": "truncate",
	"setuid": "set_id", "setgid": "set_id", "setreuid": "set_id", "setregid": "set_id", "setresuid": "set_id",
	"setresgid": "set_id", "setfsuid": "set_id", "setfsgid": "set_id", "capset": "capset",
}

// compile turns the collected definitions into a RuleSet.
func (l *loader) compile() *RuleSet {
	rs := &RuleSet{byType: map[string][]*compiledRule{}, lists: len(l.lists), macros: len(l.macros)}
	l.file = ruleFile{}

	// Lists: expand references to earlier lists, apply Falco's item quoting.
	lists := make([]*listDef, 0, len(l.lists))
	for _, d := range l.lists {
		lists = append(lists, d)
	}
	sort.Slice(lists, func(i, j int) bool { return lists[i].index < lists[j].index })
	expanded := map[string][]listItem{}
	listKinds := map[string]string{}
	for _, d := range lists {
		var items []listItem
		for _, raw := range d.items {
			if sub, ok := expanded[raw]; ok {
				items = append(items, sub...)
				continue
			}
			v, err := listItemFromYAML(raw)
			if err != nil {
				l.errs = append(l.errs, LoadError{File: d.at.file, Line: d.at.line, Item: "list " + d.name, Reason: err.Error()})
				continue
			}
			items = append(items, listItem{text: v, list: d.name})
		}
		if d.kind != "" {
			listKinds[d.name] = d.kind
			if d.kind == "ips" {
				for _, it := range items {
					if _, err := parsePrefix(it.text); err != nil {
						l.errs = append(l.errs, LoadError{File: d.at.file, Line: d.at.line, Item: "list " + d.name, Reason: err.Error()})
					}
				}
			}
		}
		expanded[d.name] = items
	}
	lookupList := func(name string) ([]listItem, bool) {
		it, ok := expanded[name]
		return it, ok
	}

	// Macros: parse in definition order; a macro sees only earlier macros.
	macros := make([]*macroDef, 0, len(l.macros))
	for _, d := range l.macros {
		macros = append(macros, d)
	}
	sort.Slice(macros, func(i, j int) bool { return macros[i].index < macros[j].index })
	for _, d := range macros {
		ast, err := parseCondition(d.cond, lookupList)
		if err != nil {
			d.bad = true
			line := d.at.line
			var pe *ParseError
			if errors.As(err, &pe) {
				line = d.condPos.lineOf(d.cond, pe.Pos, line)
			}
			l.errs = append(l.errs, LoadError{File: d.at.file, Line: line, Item: "macro " + d.name, Reason: "condition " + err.Error()})
			continue
		}
		d.ast = ast
		if err := checkMacroRefs(ast, func(name string) error {
			ref, ok := l.macros[name]
			switch {
			case !ok:
				return fmt.Errorf("undefined macro %s", name)
			case ref.index >= d.index:
				return fmt.Errorf("macro %s is used before its definition", name)
			}
			return nil
		}); err != nil {
			d.bad = true
			l.errs = append(l.errs, LoadError{File: d.at.file, Line: d.at.line, Item: "macro " + d.name, Reason: err.Error()})
		}
	}

	fields := fieldTable()
	cp := newCompiler(fields, listKinds)
	cp.macro = func(name string) (node, bool) {
		d, ok := l.macros[name]
		if !ok || d.bad || d.ast == nil {
			return nil, false
		}
		return d.ast, true
	}

	defs := make([]*ruleDef, 0, len(l.rules))
	for _, d := range l.rules {
		defs = append(defs, d)
	}
	sort.Slice(defs, func(i, j int) bool { return defs[i].index < defs[j].index })
	eventTypes := map[string]bool{}
	allTypes := false
	for i, d := range defs {
		r, warn, err := l.compileRule(cp, d, lookupList)
		loc := d.last
		if err != nil {
			line := loc.line
			var ce *condError
			if errors.As(err, &ce) && loc == d.at {
				line = d.condPos.lineOf(d.cond, ce.pos, line)
			}
			l.errs = append(l.errs, LoadError{File: loc.file, Line: line, Item: d.kind + " " + d.name, Reason: err.Error()})
			continue
		}
		if warn != "" {
			l.errs = append(l.errs, LoadError{File: loc.file, Line: loc.line, Item: d.kind + " " + d.name, Reason: warn, Warning: true})
		}
		r.index = i
		rs.rules = append(rs.rules, r)
		rs.infos = append(rs.infos, r.info)
		if !r.info.Enabled {
			continue
		}
		types := r.allTypes()
		if types == nil {
			allTypes = true
		}
		for t := range types {
			eventTypes[t] = true
		}
	}
	for n := range cp.needs {
		eventTypes["kind:"+n] = true
	}

	// Index: every type some rule names gets its own slice; rules without a
	// constraint join every slice and anyType.
	for t := range eventTypes {
		if strings.HasPrefix(t, "kind:") {
			continue
		}
		rs.byType[t] = nil
	}
	for _, r := range rs.rules {
		if !r.info.Enabled {
			continue
		}
		types := r.allTypes()
		if types == nil {
			rs.anyType = append(rs.anyType, r)
			for t := range rs.byType {
				rs.byType[t] = append(rs.byType[t], r)
			}
			continue
		}
		for t := range types {
			rs.byType[t] = append(rs.byType[t], r)
		}
	}
	rs.policy = l.policy(eventTypes, allTypes)
	return rs
}

func (r *compiledRule) allTypes() map[string]bool {
	if r.seq == nil {
		return r.types
	}
	out := map[string]bool{}
	for _, s := range r.seq.steps {
		if s.types == nil {
			return nil
		}
		for t := range s.types {
			out[t] = true
		}
	}
	return out
}

func checkMacroRefs(n node, check func(string) error) error {
	switch n := n.(type) {
	case *andNode:
		for _, k := range n.kids {
			if err := checkMacroRefs(k, check); err != nil {
				return err
			}
		}
	case *orNode:
		for _, k := range n.kids {
			if err := checkMacroRefs(k, check); err != nil {
				return err
			}
		}
	case *notNode:
		return checkMacroRefs(n.kid, check)
	case *macroRef:
		return check(n.name)
	}
	return nil
}

func (l *loader) policy(types map[string]bool, all bool) *vigilv1.CollectionPolicy {
	p := &vigilv1.CollectionPolicy{
		IgnoredBinaries:    l.coll.ignoredBinaries,
		IgnoredCgroups:     l.coll.ignoredCgroups,
		RateLimitPerSecond: l.coll.ratePerSecond,
		RateLimitBurst:     l.coll.rateBurst,
	}
	switch {
	case l.coll.hasEvents:
		p.EnabledEvents = append([]string(nil), l.coll.enabledEvents...)
	case all:
		// A rule without an evt.type constraint needs every event: empty
		// means all.
	default:
		kinds := map[string]bool{"exec": true, "fork": true, "exit": true}
		for t := range types {
			if k, ok := strings.CutPrefix(t, "kind:"); ok {
				kinds[k] = true
			} else if k, ok := syscallKinds[t]; ok {
				kinds[k] = true
			}
		}
		for k := range kinds {
			p.EnabledEvents = append(p.EnabledEvents, k)
		}
	}
	sort.Strings(p.EnabledEvents)
	h := sha256.New()
	fmt.Fprintf(h, "%q|%q|%q|%d|%d", p.EnabledEvents, p.IgnoredBinaries, p.IgnoredCgroups, p.RateLimitPerSecond, p.RateLimitBurst)
	p.Version = hex.EncodeToString(h.Sum(nil))[:16]
	return p
}

// compileRule compiles one rule definition. warn is non-empty when the rule
// is disabled for using unsupported fields.
func (l *loader) compileRule(cp *compiler, d *ruleDef, lists listLookup) (*compiledRule, string, error) {
	cp.reset()
	cp.captures = nil
	info := &RuleInfo{
		Name: d.name, Kind: d.kind, Description: strings.TrimSpace(d.desc), Priority: d.priority,
		Tags: d.tags, File: d.at.file, Line: d.at.line, Enabled: d.enabled,
	}
	if info.Kind == "rule" {
		info.Kind = "falco"
	}
	info.Severity = SeverityForPriority(d.priority)
	info.FindingType = defaultFindingType(d.name)
	info.MitreTactics, info.MitreTechniques = mitreFromTags(d.tags)
	if f := d.finding; f != nil {
		if f.typ != "" {
			info.FindingType = f.typ
		}
		if f.hasSev {
			info.Severity = f.severity
		}
		if len(f.tactics) > 0 {
			info.MitreTactics = f.tactics
		}
		if len(f.techniques) > 0 {
			info.MitreTechniques = f.techniques
		}
	}
	r := &compiledRule{info: info}
	fp := sha256.New()
	fmt.Fprintf(fp, "%s|%s|%s|%s|%d|%s|", d.kind, d.cond, d.by, d.within, d.count, d.distinct)

	captureNames := map[string]bool{}
	switch d.kind {
	case "rule", "threshold":
		cond := d.cond
		shift := 0 // bytes added before the rule's own text
		if len(d.exceptions) > 0 {
			suffix, err := exceptionCondition(d.exceptions)
			if err != nil {
				return nil, "", err
			}
			if suffix != "" {
				cond, shift = "("+cond+")"+suffix, 1
			}
		}
		info.Condition = strings.TrimSpace(cond)
		ast, err := parseCondition(cond, lists)
		if err != nil {
			pos := -1
			var pe *ParseError
			if errors.As(err, &pe) && pe.Pos-shift >= 0 && pe.Pos-shift <= len(d.cond) {
				pos = pe.Pos - shift
			}
			return nil, "", &condError{err: fmt.Errorf("condition %w", err), pos: pos}
		}
		if r.cond, err = cp.compile(ast); err != nil {
			return nil, "", &condError{err: err, pos: -1}
		}
		r.types = cp.evtTypes(ast)
		if d.kind == "threshold" {
			spec := &thresholdSpec{count: d.count}
			if spec.within, err = parseWithin(d.within); err != nil {
				return nil, "", err
			}
			if spec.by, spec.byName, _, err = cp.keyFunc(d.by); err != nil {
				return nil, "", err
			}
			if d.distinct != "" {
				f, err := cp.fieldByName(d.distinct)
				if err != nil {
					return nil, "", fmt.Errorf("distinct: %w", err)
				}
				spec.distinct = &f
			}
			r.thr = spec
		}
	case "sequence":
		spec := &sequenceSpec{}
		var err error
		if spec.within, err = parseWithin(d.within); err != nil {
			return nil, "", err
		}
		if spec.by, spec.byName, spec.tree, err = cp.keyFunc(d.by); err != nil {
			return nil, "", err
		}
		var conds []string
		var lastAST node
		for _, st := range d.steps {
			fmt.Fprintf(fp, "%s|%s|%v|", st.name, st.cond, st.captures)
			cp.captures = captureNames
			ast, err := parseCondition(st.cond, lists)
			if err != nil {
				return nil, "", fmt.Errorf("step %s: condition %w", st.name, err)
			}
			lastAST = ast
			cs := compiledStep{name: st.name, usesCaptures: cp.usesCaptures(ast, 0)}
			if cs.cond, err = cp.compile(ast); err != nil {
				return nil, "", fmt.Errorf("step %s: %w", st.name, err)
			}
			cs.types = cp.evtTypes(ast)
			for _, c := range st.captures {
				f, err := cp.fieldByName(c.value)
				if err != nil {
					return nil, "", fmt.Errorf("step %s: capture %s: %w", st.name, c.key, err)
				}
				cs.captures = append(cs.captures, compiledCapture{name: c.key, field: f})
			}
			// Captures become visible to the steps after this one.
			next := map[string]bool{}
			for k := range captureNames {
				next[k] = true
			}
			for _, c := range st.captures {
				next[c.key] = true
			}
			captureNames = next
			spec.steps = append(spec.steps, cs)
			conds = append(conds, st.name+": "+strings.TrimSpace(st.cond))
		}
		info.Condition = strings.Join(conds, "; ")
		if len(spec.steps) == 2 && spec.steps[1].usesCaptures {
			if c, fields, ok := cp.equalityIndex(lastAST, 0); ok {
				spec.index = &captureIndex{capture: c}
				for _, f := range fields {
					spec.index.fields = append(spec.index.fields, f.str)
				}
			}
		}
		r.seq = spec
		cp.captures = nil
	}
	var err error
	if r.output, err = cp.compileOutput(d.output, captureNames); err != nil {
		return nil, "", fmt.Errorf("output: %w", err)
	}
	if d.finding != nil {
		for _, c := range d.finding.context {
			cc := compiledContext{key: c.key}
			switch {
			case c.literal:
				cc.lit = c.value
			case strings.HasPrefix(c.value, "$"):
				name := c.value[1:]
				if !captureNames[name] {
					return nil, "", fmt.Errorf("finding.context.%s: $%s is not captured", c.key, name)
				}
				cc.capture = name
			default:
				if f, ok := cp.knownField(c.value); ok {
					cc.field = &f
				} else {
					cc.lit = c.value
				}
			}
			r.context = append(r.context, cc)
		}
		for _, name := range d.finding.groupBy {
			f, ok := cp.knownField(name)
			if !ok {
				return nil, "", fmt.Errorf("finding.group_by: unknown field %s", name)
			}
			r.groupBy = append(r.groupBy, f)
		}
	}
	fmt.Fprintf(fp, "%s|", info.Condition) // exceptions included
	r.fingerprint = d.name + "/" + hex.EncodeToString(fp.Sum(nil))[:16]
	warn := ""
	if len(cp.unsupported) > 0 {
		info.Enabled = false
		sort.Strings(cp.unsupported)
		warn = "unsupported field(s) " + strings.Join(cp.unsupported, ", ") + "; rule disabled"
		info.Unsupported = append([]string(nil), cp.unsupported...)
	}
	return r, warn, nil
}

// condError is an error in a rule's condition; pos is the byte offset in
// the rule's own condition text, or -1 when unknown.
type condError struct {
	err error
	pos int
}

func (e *condError) Error() string { return e.err.Error() }
func (e *condError) Unwrap() error { return e.err }

func parseWithin(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := time.ParseDuration(d + "h"); err == nil {
			return n * 24, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("within must be a positive duration like 30s, 10m or 1h, not %q", s)
	}
	return d, nil
}

// fieldByName compiles a field written as text (capture, distinct, context).
func (cp *compiler) fieldByName(s string) (fieldImpl, error) {
	p := &parser{s: strings.TrimSpace(s)}
	f, isField, err := p.parseFieldOrIdent()
	if err != nil {
		return fieldImpl{}, err
	}
	if !isField || p.i != len(p.s) {
		return fieldImpl{}, fmt.Errorf("%q is not a field", s)
	}
	return cp.field(f)
}

// knownField compiles s when it names a supported field, without reporting
// anything when it does not (finding context values may be plain text).
func (cp *compiler) knownField(s string) (fieldImpl, bool) {
	p := &parser{s: strings.TrimSpace(s)}
	if p.s == "" || !isIdentStart(p.s[0]) {
		return fieldImpl{}, false
	}
	f, isField, err := p.parseFieldOrIdent()
	if err != nil || !isField || p.i != len(p.s) {
		return fieldImpl{}, false
	}
	if _, err := lookupField(cp.fields, f); err != nil {
		return fieldImpl{}, false
	}
	impl, err := cp.field(f)
	return impl, err == nil
}

// keyFunc compiles a `by` key: a keyword or a field.
func (cp *compiler) keyFunc(by string) (keyFunc, string, bool, error) {
	hostKey := func(c *evalCtx) string {
		if h := c.ev.GetHost(); h != nil {
			if h.InstanceId != "" {
				return h.InstanceId
			}
			if h.Hostname != "" {
				return h.Hostname
			}
		}
		return c.ev.SensorId
	}
	switch by {
	case "process":
		return func(c *evalCtx) (string, bool) { return nonEmpty(c.ev.GetProcess().GetExecId()) }, by, false, nil
	case "process_tree":
		return func(c *evalCtx) (string, bool) { return nonEmpty(c.ev.GetProcess().GetExecId()) }, by, true, nil
	case "container":
		return func(c *evalCtx) (string, bool) {
			if ct := c.ev.GetContainer(); ct != nil && ct.Id != "" {
				return ct.Id, true
			}
			return "host:" + hostKey(c), true
		}, by, false, nil
	case "host":
		return func(c *evalCtx) (string, bool) { return hostKey(c), true }, by, false, nil
	case "user":
		return func(c *evalCtx) (string, bool) {
			p := c.ev.GetProcess()
			if p == nil {
				return "", false
			}
			return hostKey(c) + "/" + fmt.Sprint(p.Uid), true
		}, by, false, nil
	}
	f, err := cp.fieldByName(by)
	if err != nil {
		return nil, "", false, fmt.Errorf("by: %w (use a field or one of process, process_tree, container, host, user)", err)
	}
	return f.str, by, false, nil
}

// equalityIndex finds a capture the condition n can only be true with: one
// that n requires, in every way it can match, to equal one of the returned
// fields' values (FIELD = $capture, compared as strings). An and needs one
// such conjunct; an or needs every branch to have one, for the same
// capture. ok is false when no capture qualifies.
func (cp *compiler) equalityIndex(n node, depth int) (capture string, fields []fieldImpl, ok bool) {
	if depth > maxDepth {
		return "", nil, false
	}
	switch n := n.(type) {
	case *andNode:
		for _, k := range n.kids {
			if c, f, ok := cp.equalityIndex(k, depth+1); ok {
				return c, f, true
			}
		}
	case *orNode:
		for i, k := range n.kids {
			c, f, ok := cp.equalityIndex(k, depth+1)
			if !ok || (i > 0 && c != capture) {
				return "", nil, false
			}
			capture, fields = c, append(fields, f...)
		}
		return capture, fields, len(n.kids) > 0
	case *macroRef:
		if body, ok := cp.macro(n.name); ok {
			return cp.equalityIndex(body, depth+1)
		}
	case *checkNode:
		if n.op != "=" || n.value.kind != valCapture || len(n.field.transformers) > 0 {
			return "", nil, false
		}
		f, err := cp.field(n.field)
		// Numbers compare by value ("010" = "10"), several values by any:
		// neither is a plain string lookup.
		if err != nil || f.unsupported || f.str == nil || f.multi != nil || f.typ == ftInt {
			return "", nil, false
		}
		return n.value.text, []fieldImpl{f}, true
	}
	return "", nil, false
}

// usesCaptures reports whether a condition reads $captures, through
// macros too.
func (cp *compiler) usesCaptures(n node, depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch n := n.(type) {
	case *andNode:
		for _, k := range n.kids {
			if cp.usesCaptures(k, depth+1) {
				return true
			}
		}
	case *orNode:
		for _, k := range n.kids {
			if cp.usesCaptures(k, depth+1) {
				return true
			}
		}
	case *notNode:
		return cp.usesCaptures(n.kid, depth+1)
	case *macroRef:
		if body, ok := cp.macro(n.name); ok {
			return cp.usesCaptures(body, depth+1)
		}
	case *checkNode:
		return n.value.kind == valCapture
	}
	return false
}
