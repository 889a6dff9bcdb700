package detect

import (
	"fmt"
	"strconv"
	"strings"
)

// The condition parser follows libsinsp's filter grammar (parser.h): not
// binds tighter than and, and tighter than or; a bare identifier in check
// position is a macro reference; list names are expanded where a list value
// is expected. It produces an AST that compile.go turns into closures.

// maxDepth bounds nesting so hostile input cannot exhaust the stack (Falco
// uses 1000 for rule conditions).
const maxDepth = 1000

type node interface{ pos() int }

type andNode struct {
	kids []node
	at   int
}

type orNode struct {
	kids []node
	at   int
}

type notNode struct {
	kid node
	at  int
}

// macroRef is a bare identifier; it is replaced by the macro's AST when the
// condition is compiled.
type macroRef struct {
	name string
	at   int
}

// fieldRef is a field, optionally with an argument and a transformer chain
// (tolower(toupper(x)) applies innermost first).
type fieldRef struct {
	name         string
	arg          string
	hasArg       bool
	transformers []string // outermost first
	at           int
}

func (f fieldRef) String() string {
	s := f.name
	if f.hasArg {
		s += "[" + f.arg + "]"
	}
	for i := len(f.transformers) - 1; i >= 0; i-- {
		s = f.transformers[i] + "(" + s + ")"
	}
	return s
}

// listItem is one value of a list operand, with the list it came from so a
// match through a threat-intelligence list can be reported.
type listItem struct {
	text string
	list string
}

// valueSpec is the right-hand side of a check.
type valueSpec struct {
	kind    valueKind
	text    string     // valScalar: the literal; valCapture: the capture name
	items   []listItem // valList
	field   fieldRef   // valField: val(f) or a transformer
	isQuote bool
}

type valueKind int

const (
	valNone valueKind = iota
	valScalar
	valList
	valField
	valCapture
)

type checkNode struct {
	field fieldRef
	op    string
	value valueSpec
	at    int
}

func (n *andNode) pos() int   { return n.at }
func (n *orNode) pos() int    { return n.at }
func (n *notNode) pos() int   { return n.at }
func (n *macroRef) pos() int  { return n.at }
func (n *checkNode) pos() int { return n.at }

// listLookup resolves a list name to its expanded items during parsing.
type listLookup func(name string) (items []listItem, ok bool)

// ParseError is a condition syntax error at a byte offset.
type ParseError struct {
	// Pos is the byte offset in the condition.
	Pos int
	// Reason says what the parser expected.
	Reason string
}

func (e *ParseError) Error() string { return fmt.Sprintf("at offset %d: %s", e.Pos, e.Reason) }

type parser struct {
	s     string
	i     int
	lists listLookup
	depth int
}

// parseCondition parses a condition. lists may be nil.
func parseCondition(s string, lists listLookup) (node, error) {
	p := &parser{s: s, lists: lists}
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.i < len(p.s) {
		return nil, p.errorf("unexpected %q", p.rest(12))
	}
	return n, nil
}

func (p *parser) errorf(format string, a ...any) error {
	return &ParseError{Pos: p.i, Reason: fmt.Sprintf(format, a...)}
}

func (p *parser) rest(n int) string {
	r := p.s[p.i:]
	if len(r) > n {
		r = r[:n] + "..."
	}
	return r
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func (p *parser) skipSpace() {
	for p.i < len(p.s) && isSpace(p.s[p.i]) {
		p.i++
	}
}

// keyword reports whether the keyword kw starts at the cursor as a whole
// word, and consumes it.
func (p *parser) keyword(kw string) bool {
	p.skipSpace()
	if !strings.HasPrefix(p.s[p.i:], kw) {
		return false
	}
	j := p.i + len(kw)
	if j < len(p.s) && (isIdentChar(p.s[j]) || p.s[j] == '.') {
		return false
	}
	p.i = j
	return true
}

func isIdentStart(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isIdentChar(c byte) bool  { return isIdentStart(c) || c >= '0' && c <= '9' || c == '_' }

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.errorf("expression nested deeper than %d", maxDepth)
	}
	return nil
}

func (p *parser) parseOr() (node, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	at := p.i
	first, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	kids := []node{first}
	for p.keyword("or") {
		n, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		kids = append(kids, n)
	}
	if len(kids) == 1 {
		return first, nil
	}
	return &orNode{kids: kids, at: at}, nil
}

func (p *parser) parseAnd() (node, error) {
	at := p.i
	first, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	kids := []node{first}
	for p.keyword("and") {
		n, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		kids = append(kids, n)
	}
	if len(kids) == 1 {
		return first, nil
	}
	return &andNode{kids: kids, at: at}, nil
}

func (p *parser) parseNot() (node, error) {
	p.skipSpace()
	at := p.i
	if p.keyword("not") {
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer func() { p.depth-- }()
		kid, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		return &notNode{kid: kid, at: at}, nil
	}
	return p.parseCheck()
}

var transformerNames = map[string]bool{"tolower": true, "toupper": true, "len": true, "b64": true, "basename": true}

func (p *parser) parseCheck() (node, error) {
	p.skipSpace()
	at := p.i
	if p.i >= len(p.s) {
		return nil, p.errorf("unexpected end of condition")
	}
	if p.s[p.i] == '(' {
		p.i++
		n, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.i >= len(p.s) || p.s[p.i] != ')' {
			return nil, p.errorf("missing )")
		}
		p.i++
		return n, nil
	}
	if !isIdentStart(p.s[p.i]) {
		return nil, p.errorf("expected a field, macro or '(' but found %q", p.rest(12))
	}
	f, isField, err := p.parseFieldOrIdent()
	if err != nil {
		return nil, err
	}
	if !isField {
		if f.name == "and" || f.name == "or" || f.name == "not" {
			return nil, p.errorf("unexpected keyword %q", f.name)
		}
		return &macroRef{name: f.name, at: at}, nil
	}
	op, err := p.parseOp()
	if err != nil {
		return nil, err
	}
	c := &checkNode{field: f, op: op, at: at}
	if op == "exists" {
		return c, nil
	}
	v, err := p.parseValue(op)
	if err != nil {
		return nil, err
	}
	c.value = v
	return c, nil
}

// parseFieldOrIdent reads a field (dotted name, optional [arg]), a
// transformer call around one, or a bare identifier (macro reference).
func (p *parser) parseFieldOrIdent() (fieldRef, bool, error) {
	at := p.i
	j := p.i
	for j < len(p.s) && isIdentChar(p.s[j]) {
		j++
	}
	word := p.s[p.i:j]
	if j < len(p.s) && p.s[j] == '(' && (transformerNames[word] || word == "val") {
		if word == "val" {
			return fieldRef{}, false, p.errorf("val() is only allowed on the right-hand side")
		}
		p.i = j + 1
		p.skipSpace()
		inner, isField, err := p.parseFieldOrIdent()
		if err != nil {
			return fieldRef{}, false, err
		}
		if !isField {
			return fieldRef{}, false, p.errorf("%s() needs a field", word)
		}
		p.skipSpace()
		if p.i >= len(p.s) || p.s[p.i] != ')' {
			return fieldRef{}, false, p.errorf("missing ) after %s(", word)
		}
		p.i++
		inner.transformers = append([]string{word}, inner.transformers...)
		inner.at = at
		return inner, true, nil
	}
	// Dotted field name: each component starts with a letter.
	k := j
	dotted := false
	for k < len(p.s) && p.s[k] == '.' && k+1 < len(p.s) && isIdentStart(p.s[k+1]) {
		k++
		for k < len(p.s) && isIdentChar(p.s[k]) {
			k++
		}
		dotted = true
	}
	if !dotted {
		p.i = j
		return fieldRef{name: word, at: at}, false, nil
	}
	f := fieldRef{name: p.s[p.i:k], at: at}
	p.i = k
	if p.i < len(p.s) && p.s[p.i] == '[' {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '"' || p.s[p.i] == '\'') {
			s, err := p.quoted()
			if err != nil {
				return fieldRef{}, false, err
			}
			f.arg = s
		} else {
			st := p.i
			for p.i < len(p.s) && p.s[p.i] != ']' && p.s[p.i] != '[' && p.s[p.i] != '"' && p.s[p.i] != '\'' && !isSpace(p.s[p.i]) {
				p.i++
			}
			f.arg = p.s[st:p.i]
		}
		if p.i >= len(p.s) || p.s[p.i] != ']' {
			return fieldRef{}, false, p.errorf("missing ] in field argument")
		}
		p.i++
		f.hasArg = true
	}
	return f, true, nil
}

var wordOps = []string{"contains", "icontains", "bcontains", "startswith", "bstartswith", "endswith",
	"glob", "iglob", "regex", "in", "intersects", "pmatch", "exists"}

func (p *parser) parseOp() (string, error) {
	p.skipSpace()
	r := p.s[p.i:]
	for _, op := range []string{"==", "!=", "<=", ">=", "=", "<", ">"} {
		if strings.HasPrefix(r, op) {
			p.i += len(op)
			if op == "==" {
				op = "="
			}
			return op, nil
		}
	}
	for _, op := range wordOps {
		if strings.HasPrefix(r, op) {
			j := p.i + len(op)
			if j == len(p.s) && op == "exists" {
				p.i = j
				return op, nil
			}
			if j < len(p.s) && (isSpace(p.s[j]) || (p.s[j] == '(' && (op == "in" || op == "intersects" || op == "pmatch"))) {
				p.i = j
				return op, nil
			}
			if j < len(p.s) && p.s[j] == ')' && op == "exists" {
				p.i = j
				return op, nil
			}
		}
	}
	return "", p.errorf("expected an operator but found %q", p.rest(12))
}

func isListOp(op string) bool { return op == "in" || op == "intersects" || op == "pmatch" }

func (p *parser) parseValue(op string) (valueSpec, error) {
	p.skipSpace()
	if p.i >= len(p.s) {
		return valueSpec{}, p.errorf("missing value after %s", op)
	}
	// val(field) or transformer(field) on the right-hand side.
	j := p.i
	for j < len(p.s) && isIdentChar(p.s[j]) {
		j++
	}
	if w := p.s[p.i:j]; j < len(p.s) && p.s[j] == '(' && (w == "val" || transformerNames[w]) {
		p.i = j + 1
		p.skipSpace()
		f, isField, err := p.parseFieldOrIdent()
		if err != nil {
			return valueSpec{}, err
		}
		if !isField {
			return valueSpec{}, p.errorf("%s() needs a field", w)
		}
		p.skipSpace()
		if p.i >= len(p.s) || p.s[p.i] != ')' {
			return valueSpec{}, p.errorf("missing ) after %s(", w)
		}
		p.i++
		if w != "val" {
			f.transformers = append([]string{w}, f.transformers...)
		}
		return valueSpec{kind: valField, field: f}, nil
	}
	if isListOp(op) {
		if p.s[p.i] == '(' {
			p.i++
			items, err := p.listItems()
			if err != nil {
				return valueSpec{}, err
			}
			return valueSpec{kind: valList, items: items}, nil
		}
		// A bare list name: `x in my_list`.
		if isIdentStart(p.s[p.i]) {
			name := p.s[p.i:j]
			if items, ok := p.lookupList(name); ok {
				p.i = j
				return valueSpec{kind: valList, items: items}, nil
			}
			return valueSpec{}, p.errorf("%s needs a list in parentheses or a list name, %q is not a list", op, name)
		}
		return valueSpec{}, p.errorf("%s needs a list", op)
	}
	if p.s[p.i] == '$' {
		st := p.i + 1
		k := st
		for k < len(p.s) && isIdentChar(p.s[k]) {
			k++
		}
		if k == st {
			return valueSpec{}, p.errorf("$ needs a capture name")
		}
		p.i = k
		return valueSpec{kind: valCapture, text: p.s[st:k]}, nil
	}
	if p.s[p.i] == '"' || p.s[p.i] == '\'' {
		s, err := p.quoted()
		if err != nil {
			return valueSpec{}, err
		}
		return valueSpec{kind: valScalar, text: s, isQuote: true}, nil
	}
	s := p.bare()
	if s == "" {
		return valueSpec{}, p.errorf("missing value after %s", op)
	}
	return valueSpec{kind: valScalar, text: s}, nil
}

// bare reads Falco's BareStr: anything but parentheses, quotes, blanks, '='
// and ','. Brackets and colons are allowed (runc:[0:PARENT]).
func (p *parser) bare() string {
	st := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == '(' || c == ')' || c == '"' || c == '\'' || isSpace(c) || c == '=' || c == ',' {
			break
		}
		p.i++
	}
	return p.s[st:p.i]
}

func (p *parser) listItems() ([]listItem, error) {
	var items []listItem
	for {
		p.skipSpace()
		if p.i >= len(p.s) {
			return nil, p.errorf("missing ) to close list")
		}
		switch p.s[p.i] {
		case ')':
			p.i++
			return items, nil
		case ',':
			// Falco tolerates the stray comma an empty list leaves behind.
			p.i++
			continue
		case '"', '\'':
			s, err := p.quoted()
			if err != nil {
				return nil, err
			}
			items = append(items, listItem{text: s})
		default:
			s := p.bare()
			if s == "" {
				return nil, p.errorf("unexpected %q in list", p.rest(8))
			}
			if sub, ok := p.lookupList(s); ok {
				items = append(items, sub...)
			} else {
				items = append(items, listItem{text: s})
			}
		}
		p.skipSpace()
		if p.i < len(p.s) && p.s[p.i] != ',' && p.s[p.i] != ')' {
			return nil, p.errorf("expected , or ) in list but found %q", p.rest(8))
		}
	}
}

func (p *parser) lookupList(name string) ([]listItem, bool) {
	if p.lists == nil {
		return nil, false
	}
	return p.lists(name)
}

// quoted reads a '...' or "..." string with Falco's escapes
// (libsinsp escaping.cpp): \b \f \n \r \t \\ \/ \xHH, "\ ", and the quote
// character of the string itself.
func (p *parser) quoted() (string, error) {
	s, n, err := unquote(p.s[p.i:])
	if err != nil {
		return "", &ParseError{Pos: p.i, Reason: err.Error()}
	}
	p.i += n
	return s, nil
}

// unquote decodes a quoted string at the start of s and returns it with the
// number of bytes consumed.
func unquote(s string) (string, int, error) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		if c == q {
			return b.String(), i + 1, nil
		}
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(s) {
			break
		}
		switch e := s[i]; e {
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case '\\', '/', ' ':
			b.WriteByte(e)
		case '"', '\'':
			if e != q {
				return "", 0, fmt.Errorf("invalid escape \\%c in %c-quoted string", e, q)
			}
			b.WriteByte(e)
		case 'x':
			if i+2 >= len(s) {
				return "", 0, fmt.Errorf("short \\x escape")
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", 0, fmt.Errorf("invalid \\x escape")
			}
			b.WriteByte(byte(v))
			i += 2
		default:
			return "", 0, fmt.Errorf("invalid escape \\%c", e)
		}
	}
	return "", 0, fmt.Errorf("unterminated %c-quoted string", q)
}

// listItemFromYAML applies Falco's list-item quoting: an item that starts
// with a quote is a quoted string (so '"(systemd)"' is (systemd)); other
// items are literal, spaces included ("puma reactor").
func listItemFromYAML(s string) (string, error) {
	if len(s) > 0 && (s[0] == '"' || s[0] == '\'') {
		v, n, err := unquote(s)
		if err != nil {
			return "", err
		}
		if n != len(s) {
			return "", fmt.Errorf("text after the closing quote in %q", s)
		}
		return v, nil
	}
	return s, nil
}
