package config

import (
	"fmt"
	"go/ast"
	"go/build"
	"go/doc/comment"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
)

// Reference renders the configuration reference of cfg as a Markdown table:
// YAML key, flag, environment variable, default and meaning. The meaning is
// each field's doc comment, read from the Go source, so the comment written
// for programmers is the text users read and nothing is written twice.
func Reference(cfg any, title string) (string, error) {
	fields, err := Fields(cfg)
	if err != nil {
		return "", err
	}
	docs := sourceDocs{}
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", title)
	b.WriteString("Set each key in the YAML file given with `--config`, in its environment variable, or with its flag; later ones win.\n\n")
	b.WriteString("| key | flag | environment | default | meaning |\n| --- | --- | --- | --- | --- |\n")
	for _, f := range fields {
		text, err := docs.lookup(f.GoPackage, f.GoType, f.GoField)
		if err != nil {
			return "", err
		}
		flagName, env := "", ""
		if f.Flag != "" {
			flagName = "`--" + f.Flag + "`"
			env = "`" + f.Env + "`"
		}
		def := f.Default
		if def != "" {
			def = "`" + strings.ReplaceAll(def, "|", `\|`) + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", f.Path, flagName, env, def,
			strings.ReplaceAll(text, "|", `\|`))
	}
	return b.String(), nil
}

// sourceDocs reads and caches field doc comments per package.
type sourceDocs map[string]map[string]string

func (d sourceDocs) lookup(pkgPath, typ, field string) (string, error) {
	fieldsDocs, ok := d[pkgPath]
	if !ok {
		var err error
		fieldsDocs, err = parseFieldDocs(pkgPath)
		if err != nil {
			return "", err
		}
		d[pkgPath] = fieldsDocs
	}
	return fieldsDocs[typ+"."+field], nil
}

// parseFieldDocs returns "Type.Field" -> first paragraph of the doc comment
// for every struct field in the package's Go files.
func parseFieldDocs(pkgPath string) (map[string]string, error) {
	bp, err := build.Import(pkgPath, ".", build.FindOnly)
	if err != nil {
		return nil, fmt.Errorf("find source of %s: %w", pkgPath, err)
	}
	fset := token.NewFileSet()
	matches, _ := filepath.Glob(filepath.Join(bp.Dir, "*.go"))
	out := map[string]string{}
	for _, path := range matches {
		file, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", path, err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return true
			}
			for _, f := range st.Fields.List {
				text := ""
				if f.Doc != nil {
					text = f.Doc.Text()
				} else if f.Comment != nil {
					text = f.Comment.Text()
				}
				text = firstParagraph(text)
				for _, name := range f.Names {
					out[ts.Name.Name+"."+name.Name] = text
				}
			}
			return true
		})
	}
	return out, nil
}

func firstParagraph(text string) string {
	var p comment.Parser
	parsed := p.Parse(text)
	var pr comment.Printer
	out := string(pr.Text(parsed))
	if i := strings.Index(out, "\n\n"); i >= 0 {
		out = out[:i]
	}
	return strings.Join(strings.Fields(out), " ")
}
