package detect

import (
	"encoding/base64"
	"strings"
)

// outputFormat is a compiled rule output: literal text and fields rendered
// from the matching event, as Falco's %field syntax (missing values print
// <NA>), plus $capture references in sequence rules.
type outputFormat struct {
	parts []outputPart
	// fields are the field names the output uses, in order.
	fields []string
}

type outputPart struct {
	lit     string
	field   *fieldImpl
	capture string
}

// compileOutput parses an output format. captures lists the capture names
// that $name may refer to (nil outside sequences).
func (cp *compiler) compileOutput(format string, captures map[string]bool) (*outputFormat, error) {
	out := &outputFormat{}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			out.parts = append(out.parts, outputPart{lit: lit.String()})
			lit.Reset()
		}
	}
	s := format
	for i := 0; i < len(s); {
		c := s[i]
		if c == '$' && captures != nil {
			j := i + 1
			for j < len(s) && isIdentChar(s[j]) {
				j++
			}
			if name := s[i+1 : j]; captures[name] {
				flush()
				out.parts = append(out.parts, outputPart{capture: name})
				i = j
				continue
			}
		}
		if c != '%' {
			lit.WriteByte(c)
			i++
			continue
		}
		if i+1 < len(s) && s[i+1] == '%' {
			lit.WriteByte('%')
			i += 2
			continue
		}
		ref, n, ok := scanOutputField(s[i+1:])
		if !ok {
			lit.WriteByte(c)
			i++
			continue
		}
		impl, err := cp.field(ref)
		if err != nil {
			return nil, err
		}
		flush()
		out.parts = append(out.parts, outputPart{field: &impl})
		out.fields = append(out.fields, ref.String())
		i += 1 + n
	}
	flush()
	return out, nil
}

// scanOutputField reads a field reference after '%': a dotted name with an
// optional [arg], or a transformer around one. Trailing dots belong to the
// text ("... by %proc.name.").
func scanOutputField(s string) (fieldRef, int, bool) {
	j := 0
	for j < len(s) && isIdentChar(s[j]) {
		j++
	}
	if j == 0 || !isIdentStart(s[0]) {
		return fieldRef{}, 0, false
	}
	if j < len(s) && s[j] == '(' && transformerNames[s[:j]] {
		inner, n, ok := scanOutputField(s[j+1:])
		if !ok || j+1+n >= len(s) || s[j+1+n] != ')' {
			return fieldRef{}, 0, false
		}
		inner.transformers = append([]string{s[:j]}, inner.transformers...)
		return inner, j + 1 + n + 1, true
	}
	for j < len(s) && s[j] == '.' && j+1 < len(s) && isIdentStart(s[j+1]) {
		j++
		for j < len(s) && isIdentChar(s[j]) {
			j++
		}
	}
	f := fieldRef{name: s[:j]}
	if !strings.Contains(f.name, ".") {
		return fieldRef{}, 0, false
	}
	if j < len(s) && s[j] == '[' {
		if k := strings.IndexByte(s[j:], ']'); k > 0 {
			f.arg, f.hasArg = strings.Trim(s[j+1:j+k], `"'`), true
			j += k + 1
		}
	}
	return f, j, true
}

func (o *outputFormat) render(c *evalCtx, captures map[string]string) string {
	if o == nil {
		return ""
	}
	var b strings.Builder
	for _, p := range o.parts {
		switch {
		case p.field != nil:
			v, ok := p.field.str(c)
			if !ok {
				v = "<NA>"
			}
			b.WriteString(v)
		case p.capture != "":
			v, ok := captures[p.capture]
			if !ok {
				v = "<NA>"
			}
			b.WriteString(v)
		default:
			b.WriteString(p.lit)
		}
	}
	return b.String()
}

// values returns the output's fields with typed values (nil when missing),
// as Falco's output_fields.
func (o *outputFormat) values(c *evalCtx) map[string]any {
	if o == nil || len(o.fields) == 0 {
		return nil
	}
	out := make(map[string]any, len(o.fields))
	for _, p := range o.parts {
		if p.field == nil {
			continue
		}
		f := p.field
		var v any
		switch {
		case f.multi == nil && f.num != nil && f.typ == ftBool:
			if n, ok := f.num(c); ok {
				v = n != 0
			}
		case f.multi == nil && f.num != nil:
			if n, ok := f.num(c); ok {
				v = n
			}
		default:
			if s, ok := f.str(c); ok {
				v = s
			}
		}
		out[f.name] = v
	}
	return out
}

func b64Decode(s string) (string, bool) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return string(b), true
		}
	}
	return "", false
}
