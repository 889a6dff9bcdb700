package detect

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// pred is a compiled condition.
type pred func(c *evalCtx) bool

// stateLookups are the engine-side tables some fields read (DNS names seen
// in answers, which process created a file).
type stateLookups interface {
	nameOf(ev *vigilv1.Event, ip netip.Addr) (string, bool)
	creatorOf(ev *vigilv1.Event) (string, bool)
}

// threatHit is the list item through which a threat-intelligence list
// matched, reported in Alert.Context.
type threatHit struct {
	list, item string
}

// evalCtx is the per-event evaluation state: the event plus lazily computed
// values several rules share. Pooled by the engine; never shared between
// goroutines.
type evalCtx struct {
	ev       *vigilv1.Event
	evtType  string
	num      uint64
	names    stateLookups
	captures map[string]string
	hit      threatHit

	cmdline, pcmdline, args, fdName string
	cmdlineDone, pcmdlineDone       bool
	argsDone, fdNameDone, fdNameOK  bool
	// The DNS question split (dns.domain, dns.label.longest): a public
	// suffix lookup, done once per event.
	dnsDomain, dnsLongest string
	dnsSplitDone          bool

	scratch []string
}

func (c *evalCtx) reset(ev *vigilv1.Event, num uint64) {
	*c = evalCtx{ev: ev, evtType: evtType(ev), num: num, names: c.names, scratch: c.scratch[:0]}
}

// compiler turns parsed conditions into predicates for one rule set.
type compiler struct {
	fields map[string]*fieldDef
	// macro resolves a macro visible at the point of use.
	macro func(name string) (node, bool)
	// listKinds names the threat-intelligence lists (domains, ips).
	listKinds map[string]string
	// captures are the capture names a sequence step may reference; nil
	// outside sequences.
	captures map[string]bool

	unsupported []string
	needs       map[string]bool
	stack       []string
}

func newCompiler(fields map[string]*fieldDef, listKinds map[string]string) *compiler {
	return &compiler{fields: fields, listKinds: listKinds, needs: map[string]bool{}}
}

func (cp *compiler) reset() {
	cp.unsupported = nil
	cp.stack = cp.stack[:0]
}

func (cp *compiler) noteUnsupported(name string) {
	for _, u := range cp.unsupported {
		if u == name {
			return
		}
	}
	cp.unsupported = append(cp.unsupported, name)
}

func (cp *compiler) field(f fieldRef) (fieldImpl, error) {
	impl, err := lookupField(cp.fields, f)
	if err != nil {
		if u, ok := err.(*unsupportedField); ok {
			cp.noteUnsupported(u.name)
			return fieldImpl{name: f.String(), unsupported: true, str: func(*evalCtx) (string, bool) { return "", false }}, nil
		}
		return fieldImpl{}, err
	}
	for _, n := range impl.needs {
		cp.needs[n] = true
	}
	return applyTransformers(impl, f.transformers)
}

func applyTransformers(impl fieldImpl, ts []string) (fieldImpl, error) {
	for i := len(ts) - 1; i >= 0; i-- {
		in := impl.str
		out := fieldImpl{name: impl.name, typ: ftString, needs: impl.needs}
		switch ts[i] {
		case "tolower":
			out.str = func(c *evalCtx) (string, bool) { s, ok := in(c); return toLowerASCII(s), ok }
		case "toupper":
			out.str = func(c *evalCtx) (string, bool) { s, ok := in(c); return strings.ToUpper(s), ok }
		case "b64":
			out.str = func(c *evalCtx) (string, bool) {
				s, ok := in(c)
				if !ok {
					return "", false
				}
				return b64Decode(s)
			}
		case "basename":
			out.str = func(c *evalCtx) (string, bool) {
				s, ok := in(c)
				if !ok {
					return "", false
				}
				if i := strings.LastIndexByte(s, '/'); i >= 0 {
					s = s[i+1:]
				}
				return s, true
			}
		case "len":
			multi := impl.multi
			out.typ = ftInt
			out.num = func(c *evalCtx) (int64, bool) {
				if multi != nil {
					return int64(len(multi(c))), true
				}
				s, ok := in(c)
				return int64(len(s)), ok
			}
			out.str = strFromOthers(out)
		default:
			return fieldImpl{}, fmt.Errorf("unknown transformer %s", ts[i])
		}
		impl = out
	}
	return impl, nil
}

// compile compiles a parsed condition, expanding macros.
func (cp *compiler) compile(n node) (pred, error) {
	switch n := n.(type) {
	case *andNode:
		kids, err := cp.compileAll(n.kids)
		if err != nil {
			return nil, err
		}
		if len(kids) == 2 {
			a, b := kids[0], kids[1]
			return func(c *evalCtx) bool { return a(c) && b(c) }, nil
		}
		return func(c *evalCtx) bool {
			for _, k := range kids {
				if !k(c) {
					return false
				}
			}
			return true
		}, nil
	case *orNode:
		kids, err := cp.compileAll(n.kids)
		if err != nil {
			return nil, err
		}
		if len(kids) == 2 {
			a, b := kids[0], kids[1]
			return func(c *evalCtx) bool { return a(c) || b(c) }, nil
		}
		return func(c *evalCtx) bool {
			for _, k := range kids {
				if k(c) {
					return true
				}
			}
			return false
		}, nil
	case *notNode:
		k, err := cp.compile(n.kid)
		if err != nil {
			return nil, err
		}
		return func(c *evalCtx) bool { return !k(c) }, nil
	case *macroRef:
		for _, s := range cp.stack {
			if s == n.name {
				return nil, fmt.Errorf("macro %s refers to itself", n.name)
			}
		}
		if cp.macro == nil {
			return nil, fmt.Errorf("undefined macro %s", n.name)
		}
		body, ok := cp.macro(n.name)
		if !ok {
			return nil, fmt.Errorf("undefined macro %s", n.name)
		}
		cp.stack = append(cp.stack, n.name)
		p, err := cp.compile(body)
		cp.stack = cp.stack[:len(cp.stack)-1]
		if err != nil {
			return nil, fmt.Errorf("in macro %s: %w", n.name, err)
		}
		return p, nil
	case *checkNode:
		p, err := cp.compileCheck(n)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", n.field.String(), n.op, err)
		}
		return p, nil
	}
	return nil, fmt.Errorf("unknown node %T", n)
}

func (cp *compiler) compileAll(ns []node) ([]pred, error) {
	out := make([]pred, len(ns))
	for i, n := range ns {
		p, err := cp.compile(n)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

func present(f fieldImpl) pred {
	if f.multi != nil {
		m := f.multi
		return func(c *evalCtx) bool { return len(m(c)) > 0 }
	}
	if f.num != nil {
		n := f.num
		return func(c *evalCtx) bool { _, ok := n(c); return ok }
	}
	if f.ip != nil {
		ip := f.ip
		return func(c *evalCtx) bool { _, ok := ip(c); return ok }
	}
	s := f.str
	return func(c *evalCtx) bool { _, ok := s(c); return ok }
}

func (cp *compiler) compileCheck(n *checkNode) (pred, error) {
	f, err := cp.field(n.field)
	if err != nil {
		return nil, err
	}
	if f.unsupported {
		// The rule is disabled; do not judge the value against a type we
		// do not know.
		return func(*evalCtx) bool { return false }, nil
	}
	if n.op == "exists" {
		return present(f), nil
	}
	switch n.value.kind {
	case valField:
		g, err := cp.field(n.value.field)
		if err != nil {
			return nil, err
		}
		if g.unsupported {
			return func(*evalCtx) bool { return false }, nil
		}
		return dynamicCompare(f, n.op, g.str)
	case valCapture:
		if cp.captures == nil {
			return nil, fmt.Errorf("$%s: captures are only allowed in sequence steps", n.value.text)
		}
		if !cp.captures[n.value.text] {
			return nil, fmt.Errorf("$%s is not captured by an earlier step", n.value.text)
		}
		name := n.value.text
		return dynamicCompare(f, n.op, func(c *evalCtx) (string, bool) {
			v, ok := c.captures[name]
			return v, ok
		})
	case valList:
		if !isListOp(n.op) {
			return nil, fmt.Errorf("a list needs in, intersects or pmatch")
		}
		return cp.compileListOp(f, n.op, n.value.items)
	}
	if isListOp(n.op) {
		// Falco accepts a single value where a list is expected.
		return cp.compileListOp(f, n.op, []listItem{{text: n.value.text}})
	}
	return compileScalar(f, n.op, n.value.text)
}

// multiOf gives every value of a field: its values for multi-valued fields,
// or its single string value.
func anyString(f fieldImpl, test func(string) bool) pred {
	if f.multi != nil {
		m := f.multi
		return func(c *evalCtx) bool {
			for _, v := range m(c) {
				if test(v) {
					return true
				}
			}
			return false
		}
	}
	s := f.str
	return func(c *evalCtx) bool {
		v, ok := s(c)
		return ok && test(v)
	}
}

// noneString is the negation counterpart for != on multi-valued fields: true
// when the field has values and none of them equals.
func noneString(f fieldImpl, eq func(string) bool) pred {
	if f.multi != nil {
		m := f.multi
		return func(c *evalCtx) bool {
			vs := m(c)
			if len(vs) == 0 {
				return false
			}
			for _, v := range vs {
				if eq(v) {
					return false
				}
			}
			return true
		}
	}
	s := f.str
	return func(c *evalCtx) bool {
		v, ok := s(c)
		return ok && !eq(v)
	}
}

func parseNumber(s string) (int64, error) {
	switch strings.ToLower(s) {
	case "true":
		return 1, nil
	case "false":
		return 0, nil
	}
	if v, err := strconv.ParseInt(s, 0, 64); err == nil {
		return v, nil
	}
	if v, err := strconv.ParseUint(s, 0, 64); err == nil {
		return int64(v), nil
	}
	fv, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return int64(fv), nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func numCompare(op string, a, b int64) bool {
	switch op {
	case "=":
		return a == b
	case "!=":
		return a != b
	case "<":
		return a < b
	case "<=":
		return a <= b
	case ">":
		return a > b
	case ">=":
		return a >= b
	}
	return false
}

func isNumOp(op string) bool {
	return op == "=" || op == "!=" || op == "<" || op == "<=" || op == ">" || op == ">="
}

func compileScalar(f fieldImpl, op, v string) (pred, error) {
	switch f.typ {
	case ftInt, ftBool:
		if isNumOp(op) {
			want, err := parseNumber(v)
			if err != nil {
				return nil, err
			}
			if f.typ == ftBool && op != "=" && op != "!=" {
				return nil, fmt.Errorf("operator %s does not apply to a bool", op)
			}
			if f.multi != nil {
				eq := func(s string) bool {
					n, err := strconv.ParseInt(s, 10, 64)
					return err == nil && numCompare(op, n, want)
				}
				if op == "!=" {
					return noneString(f, func(s string) bool {
						n, err := strconv.ParseInt(s, 10, 64)
						return err == nil && n == want
					}), nil
				}
				return anyString(f, eq), nil
			}
			num := f.num
			return func(c *evalCtx) bool {
				n, ok := num(c)
				return ok && numCompare(op, n, want)
			}, nil
		}
	case ftIP, ftNet:
		if op == "=" || op == "!=" {
			pfx, err := parsePrefix(v)
			if err != nil {
				return nil, err
			}
			if f.typ == ftIP && !strings.Contains(v, "/") {
				addr := pfx.Addr()
				return ipPred(f, op == "!=", func(a netip.Addr) bool { return a == addr }), nil
			}
			return ipPred(f, op == "!=", pfx.Contains), nil
		}
	}
	switch op {
	case "<", "<=", ">", ">=":
		return nil, fmt.Errorf("operator %s needs a numeric field", op)
	}
	test, err := stringTest(op, v, f.typ == ftFlags)
	if err != nil {
		return nil, err
	}
	if op == "!=" {
		return noneString(f, func(s string) bool { return s == v }), nil
	}
	return anyString(f, test), nil
}

// ipPred tests a field's addresses; neg gives != semantics (true when the
// field has addresses and none matches).
func ipPred(f fieldImpl, neg bool, test func(netip.Addr) bool) pred {
	if f.multi != nil {
		m := f.multi
		return func(c *evalCtx) bool {
			vs := m(c)
			if len(vs) == 0 {
				return false
			}
			for _, s := range vs {
				a, err := netip.ParseAddr(s)
				if err == nil && test(a.Unmap()) {
					return !neg
				}
			}
			return neg
		}
	}
	ipf := f.ip
	return func(c *evalCtx) bool {
		a, ok := ipf(c)
		if !ok {
			return false
		}
		return test(a) != neg
	}
}

// stringTest compiles a string operator against a constant.
func stringTest(op, v string, flags bool) (func(string) bool, error) {
	switch op {
	case "=":
		return func(s string) bool { return s == v }, nil
	case "!=":
		return func(s string) bool { return s != v }, nil
	case "contains":
		if flags {
			return func(s string) bool { return hasFlag(s, v) }, nil
		}
		return func(s string) bool { return strings.Contains(s, v) }, nil
	case "icontains":
		lv := toLowerASCII(v)
		return func(s string) bool { return containsFold(s, lv) }, nil
	case "bcontains", "bstartswith":
		b, err := hex.DecodeString(strings.ReplaceAll(v, " ", ""))
		if err != nil {
			return nil, fmt.Errorf("%s needs hex bytes: %w", op, err)
		}
		bs := string(b)
		if op == "bcontains" {
			return func(s string) bool { return strings.Contains(s, bs) }, nil
		}
		return func(s string) bool { return strings.HasPrefix(s, bs) }, nil
	case "startswith":
		return func(s string) bool { return strings.HasPrefix(s, v) }, nil
	case "endswith":
		return func(s string) bool { return strings.HasSuffix(s, v) }, nil
	case "glob":
		return func(s string) bool { return globMatch(v, s, false) }, nil
	case "iglob":
		lv := toLowerASCII(v)
		return func(s string) bool { return globMatch(lv, s, true) }, nil
	case "regex":
		re, err := regexp.Compile(`^(?:` + v + `)$`)
		if err != nil {
			return nil, fmt.Errorf("bad regex: %w", err)
		}
		return re.MatchString, nil
	}
	return nil, fmt.Errorf("unknown operator %s", op)
}

func hasFlag(s, flag string) bool {
	for s != "" {
		i := strings.IndexByte(s, '|')
		tok := s
		if i >= 0 {
			tok, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		if tok == flag {
			return true
		}
	}
	return false
}

// dynamicCompare compares a field with a value computed per event (val(),
// a transformer, or a sequence capture).
func dynamicCompare(f fieldImpl, op string, rhs func(c *evalCtx) (string, bool)) (pred, error) {
	if isListOp(op) {
		op = "="
	}
	switch op {
	case "=", "!=", "contains", "icontains", "startswith", "endswith", "glob", "iglob", "<", "<=", ">", ">=":
	default:
		return nil, fmt.Errorf("operator %s does not take a computed value", op)
	}
	numeric := f.typ == ftInt && op != "contains" && op != "icontains" && op != "startswith" && op != "endswith" && op != "glob" && op != "iglob"
	lhs := f.str
	return func(c *evalCtx) bool {
		r, ok := rhs(c)
		if !ok {
			return false
		}
		l, ok := lhs(c)
		if !ok {
			return false
		}
		if numeric {
			a, err1 := strconv.ParseInt(l, 10, 64)
			b, err2 := strconv.ParseInt(r, 10, 64)
			if err1 != nil || err2 != nil {
				return false
			}
			return numCompare(op, a, b)
		}
		switch op {
		case "=":
			return l == r
		case "!=":
			return l != r
		case "contains":
			return strings.Contains(l, r)
		case "icontains":
			return containsFold(l, toLowerASCII(r))
		case "startswith":
			return strings.HasPrefix(l, r)
		case "endswith":
			return strings.HasSuffix(l, r)
		case "glob":
			return globMatch(r, l, false)
		case "iglob":
			return globMatch(toLowerASCII(r), l, true)
		}
		return false
	}, nil
}

// smallSet is the size up to which a list is matched by scanning.
const smallSet = 8

// valueSet is a compiled list operand.
type valueSet struct {
	exact    map[string]string // value -> threat list ("" for plain lists)
	domains  map[string]string // domain -> threat list, matches subdomains
	nums     map[int64]struct{}
	addrs    map[netip.Addr]string
	prefixes []setPrefix
	pm       []pmatchEntry
	threat   bool
}

type setPrefix struct {
	p    netip.Prefix
	list string
}

type pmatchEntry struct {
	prefix string
	glob   bool
	list   string
}

func (cp *compiler) compileListOp(f fieldImpl, op string, items []listItem) (pred, error) {
	vs := &valueSet{exact: map[string]string{}}
	for _, it := range items {
		kind := cp.listKinds[it.list]
		if kind != "" {
			vs.threat = true
		}
		list := ""
		if kind != "" {
			list = it.list
		}
		switch {
		case op == "pmatch":
			p := it.text
			vs.pm = append(vs.pm, pmatchEntry{prefix: p, glob: strings.ContainsAny(p, "*?["), list: list})
		case f.typ == ftInt || f.typ == ftBool:
			n, err := parseNumber(it.text)
			if err != nil {
				return nil, err
			}
			if vs.nums == nil {
				vs.nums = map[int64]struct{}{}
			}
			vs.nums[n] = struct{}{}
		case f.typ == ftIP || f.typ == ftNet:
			pfx, err := parsePrefix(it.text)
			if err != nil {
				return nil, err
			}
			if f.typ == ftIP && pfx.IsSingleIP() {
				if vs.addrs == nil {
					vs.addrs = map[netip.Addr]string{}
				}
				vs.addrs[pfx.Addr()] = list
			} else {
				vs.prefixes = append(vs.prefixes, setPrefix{p: pfx, list: list})
			}
		case kind == "domains":
			if vs.domains == nil {
				vs.domains = map[string]string{}
			}
			vs.domains[normalizeDomain(it.text)] = list
		default:
			vs.exact[it.text] = list
		}
	}
	if op == "pmatch" {
		return anyString(f, func(s string) bool { return vs.pmatch(s) }), nil
	}
	switch f.typ {
	case ftInt, ftBool:
		if f.multi != nil {
			return anyString(f, func(s string) bool {
				n, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					return false
				}
				_, ok := vs.nums[n]
				return ok
			}), nil
		}
		num := f.num
		return func(c *evalCtx) bool {
			n, ok := num(c)
			if !ok {
				return false
			}
			_, in := vs.nums[n]
			return in
		}, nil
	case ftIP, ftNet:
		test := func(c *evalCtx, a netip.Addr) bool {
			if list, ok := vs.addrs[a]; ok {
				if list != "" {
					c.hit = threatHit{list: list, item: a.String()}
				}
				return true
			}
			for _, p := range vs.prefixes {
				if p.p.Contains(a) {
					if p.list != "" {
						c.hit = threatHit{list: p.list, item: p.p.String()}
					}
					return true
				}
			}
			return false
		}
		if f.multi != nil {
			m := f.multi
			return func(c *evalCtx) bool {
				for _, s := range m(c) {
					if a, err := netip.ParseAddr(s); err == nil && test(c, a.Unmap()) {
						return true
					}
				}
				return false
			}, nil
		}
		ipf := f.ip
		return func(c *evalCtx) bool {
			a, ok := ipf(c)
			return ok && test(c, a)
		}, nil
	}
	// Small plain sets are scanned: comparing a few strings (most differ in
	// length) is cheaper than hashing.
	if !vs.threat && vs.domains == nil && len(vs.exact) <= smallSet {
		small := make([]string, 0, len(vs.exact))
		for k := range vs.exact {
			small = append(small, k)
		}
		in := func(s string) bool {
			for _, v := range small {
				if len(v) == len(s) && v == s {
					return true
				}
			}
			return false
		}
		return anyString(f, in), nil
	}
	// Most lookups miss: a length and first-byte filter rejects most
	// misses before hashing.
	var lenMask uint64
	var firstBytes [4]uint64
	for k := range vs.exact {
		lenMask |= 1 << min(len(k), 63)
		if len(k) > 0 {
			firstBytes[k[0]>>6] |= 1 << (k[0] & 63)
		}
	}
	lookup := func(c *evalCtx, s string) bool {
		if vs.domains == nil && (lenMask&(1<<min(len(s), 63)) == 0 || (len(s) > 0 && firstBytes[s[0]>>6]&(1<<(s[0]&63)) == 0)) {
			return false
		}
		if list, ok := vs.exact[s]; ok {
			if list != "" {
				c.hit = threatHit{list: list, item: s}
			}
			return true
		}
		if vs.domains != nil {
			d := normalizeDomain(s)
			for d != "" {
				if list, ok := vs.domains[d]; ok {
					c.hit = threatHit{list: list, item: d}
					return true
				}
				i := strings.IndexByte(d, '.')
				if i < 0 {
					break
				}
				d = d[i+1:]
			}
		}
		return false
	}
	if f.multi != nil {
		m := f.multi
		return func(c *evalCtx) bool {
			for _, s := range m(c) {
				if lookup(c, s) {
					return true
				}
			}
			return false
		}, nil
	}
	str := f.str
	return func(c *evalCtx) bool {
		s, ok := str(c)
		return ok && lookup(c, s)
	}, nil
}

func normalizeDomain(s string) string {
	s = strings.TrimSuffix(s, ".")
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// pmatch is Falco's path-prefix match: the path equals a prefix or lies
// below it, component-wise; prefixes may contain glob characters.
func (vs *valueSet) pmatch(s string) bool {
	for _, e := range vs.pm {
		p := strings.TrimSuffix(e.prefix, "/")
		if !e.glob {
			if s == p || strings.HasPrefix(s, p+"/") || p == "" {
				return true
			}
			continue
		}
		// Compare the first len(components(p)) components of s by glob.
		pc := strings.Split(strings.TrimPrefix(p, "/"), "/")
		sc := strings.Split(strings.TrimPrefix(s, "/"), "/")
		if len(sc) < len(pc) {
			continue
		}
		ok := true
		for i := range pc {
			if !globMatch(pc[i], sc[i], false) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// globMatch matches Falco globs: * matches any run of characters (slashes
// included), ? one character, [...] a class. fold compares ASCII letters
// case-insensitively (the pattern must already be lower case).
func globMatch(pattern, s string, fold bool) bool {
	px, sx := 0, 0
	nextPx, nextSx := -1, -1
	for px < len(pattern) || sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				nextPx, nextSx = px, sx+1
				px++
				continue
			case '?':
				if sx < len(s) {
					px++
					sx++
					continue
				}
			case '[':
				if sx < len(s) {
					if ok, n := matchClass(pattern[px:], s[sx], fold); n > 0 {
						if ok {
							px += n
							sx++
							continue
						}
					} else if s[sx] == '[' {
						px++
						sx++
						continue
					}
				}
			case '\\':
				if px+1 < len(pattern) && sx < len(s) && pattern[px+1] == s[sx] {
					px += 2
					sx++
					continue
				}
			default:
				if sx < len(s) {
					sc := s[sx]
					if fold && sc >= 'A' && sc <= 'Z' {
						sc += 'a' - 'A'
					}
					if sc == c {
						px++
						sx++
						continue
					}
				}
			}
		}
		if nextSx > 0 && nextSx <= len(s) {
			px, sx = nextPx, nextSx
			continue
		}
		return false
	}
	return true
}

// matchClass matches one [...] class at the start of p; n is its length, 0
// when p has no closing bracket.
func matchClass(p string, c byte, fold bool) (bool, int) {
	if fold && c >= 'A' && c <= 'Z' {
		c += 'a' - 'A'
	}
	i := 1
	neg := false
	if i < len(p) && (p[i] == '!' || p[i] == '^') {
		neg = true
		i++
	}
	matched := false
	first := true
	for i < len(p) && (p[i] != ']' || first) {
		first = false
		lo := p[i]
		hi := lo
		if i+2 < len(p) && p[i+1] == '-' && p[i+2] != ']' {
			hi = p[i+2]
			i += 2
		}
		if lo <= c && c <= hi {
			matched = true
		}
		i++
	}
	if i >= len(p) {
		return false, 0
	}
	return matched != neg, i + 1
}

func toLowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// containsFold reports whether sub (lower case) occurs in s, ignoring ASCII
// case, without allocating.
func containsFold(s, sub string) bool {
	if len(sub) == 0 {
		return true
	}
	first := sub[0]
	for i := 0; i+len(sub) <= len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != first {
			continue
		}
		j := 1
		for ; j < len(sub); j++ {
			d := s[i+j]
			if d >= 'A' && d <= 'Z' {
				d += 'a' - 'A'
			}
			if d != sub[j] {
				break
			}
		}
		if j == len(sub) {
			return true
		}
	}
	return false
}

// evtTypes computes the event types a condition can match: nil means any.
// It drives the per-type rule index.
func (cp *compiler) evtTypes(n node) map[string]bool {
	switch n := n.(type) {
	case *andNode:
		var out map[string]bool
		for _, k := range n.kids {
			t := cp.evtTypes(k)
			if t == nil {
				continue
			}
			if out == nil {
				out = t
				continue
			}
			inter := map[string]bool{}
			for x := range out {
				if t[x] {
					inter[x] = true
				}
			}
			out = inter
		}
		return out
	case *orNode:
		out := map[string]bool{}
		for _, k := range n.kids {
			t := cp.evtTypes(k)
			if t == nil {
				return nil
			}
			for x := range t {
				out[x] = true
			}
		}
		return out
	case *macroRef:
		for _, s := range cp.stack {
			if s == n.name {
				return nil
			}
		}
		body, ok := cp.macro(n.name)
		if !ok {
			return nil
		}
		cp.stack = append(cp.stack, n.name)
		defer func() { cp.stack = cp.stack[:len(cp.stack)-1] }()
		return cp.evtTypes(body)
	case *checkNode:
		if n.field.name != "evt.type" || len(n.field.transformers) > 0 || n.field.hasArg {
			return nil
		}
		switch {
		case n.op == "=" && n.value.kind == valScalar:
			return map[string]bool{n.value.text: true}
		case n.op == "in" && n.value.kind == valList:
			out := map[string]bool{}
			for _, it := range n.value.items {
				out[it.text] = true
			}
			return out
		}
	}
	// not, !=, other fields: no constraint we can use.
	return nil
}
