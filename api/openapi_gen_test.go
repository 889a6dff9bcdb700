package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"google.golang.org/protobuf/reflect/protoreflect"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

var update = flag.Bool("update", false, "rewrite openapi.json from openapi.in.json and the proto descriptors")

// TestOpenAPIDocumentIsCurrent rebuilds openapi.json: the paths come from
// openapi.in.json, the schemas of the protobuf messages from their
// descriptors, so the document cannot drift from the JSON the server sends.
// Run with -update (or go generate ./api) after changing either.
func TestOpenAPIDocumentIsCurrent(t *testing.T) {
	in, err := os.ReadFile("openapi.in.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := buildOpenAPI(in)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("openapi.json", got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("openapi.json is stale: run go generate ./api and commit it")
	}
	doc, err := openapi3.NewLoader().LoadFromData(got)
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("openapi.json is not valid OpenAPI 3: %v", err)
	}
}

// apiMessages are the messages the API sends or accepts; their schemas and
// those of every message they contain are generated.
var apiMessages = []protoreflect.MessageDescriptor{
	(&vigilv1.Finding{}).ProtoReflect().Descriptor(),
	(&vigilv1.Suppression{}).ProtoReflect().Descriptor(),
	(&vigilv1.SensorStatus{}).ProtoReflect().Descriptor(),
}

func buildOpenAPI(in []byte) ([]byte, error) {
	comments, err := protoComments("../proto/vigil/v1")
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(in, &doc); err != nil {
		return nil, fmt.Errorf("parse openapi.in.json: %w", err)
	}
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	seen := map[protoreflect.FullName]bool{}
	var add func(md protoreflect.MessageDescriptor) error
	add = func(md protoreflect.MessageDescriptor) error {
		if seen[md.FullName()] {
			return nil
		}
		seen[md.FullName()] = true
		name := string(md.Name())
		if _, dup := schemas[name]; dup {
			return fmt.Errorf("schema %s defined twice", name)
		}
		props := map[string]any{}
		desc := fmt.Sprintf("The protobuf JSON mapping of %s.", md.FullName())
		if c := comments[name]; c != "" {
			desc = c + "\n\n" + desc
		}
		schemas[name] = map[string]any{
			"type":                 "object",
			"additionalProperties": false,
			"description":          desc,
			"properties":           props,
		}
		fields := md.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			s, nested, err := fieldSchema(fd)
			if err != nil {
				return fmt.Errorf("%s: %w", fd.FullName(), err)
			}
			// OpenAPI 3.0 ignores siblings of $ref, so only inline schemas
			// carry the field's comment.
			if _, ref := s["$ref"]; !ref {
				if c := comments[name+"."+string(fd.Name())]; c != "" {
					s["description"] = c
				}
			}
			props[fd.JSONName()] = s
			for _, n := range nested {
				if err := add(n); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, md := range apiMessages {
		if err := add(md); err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// fieldSchema is the JSON schema of one field under the protobuf JSON
// mapping, and the messages it refers to.
func fieldSchema(fd protoreflect.FieldDescriptor) (map[string]any, []protoreflect.MessageDescriptor, error) {
	if fd.IsMap() {
		v, nested, err := scalarSchema(fd.MapValue())
		if err != nil {
			return nil, nil, err
		}
		return map[string]any{"type": "object", "additionalProperties": v}, nested, nil
	}
	s, nested, err := scalarSchema(fd)
	if err != nil {
		return nil, nil, err
	}
	if fd.IsList() {
		return map[string]any{"type": "array", "items": s}, nested, nil
	}
	return s, nested, nil
}

func scalarSchema(fd protoreflect.FieldDescriptor) (map[string]any, []protoreflect.MessageDescriptor, error) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return map[string]any{"type": "boolean"}, nil, nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return map[string]any{"type": "integer", "format": "int32"}, nil, nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return map[string]any{"type": "integer", "minimum": 0, "maximum": 4294967295}, nil, nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		// protojson writes 64-bit integers as strings: JavaScript numbers
		// lose precision above 2^53.
		return map[string]any{"type": "string", "pattern": "^-?[0-9]+$"}, nil, nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return map[string]any{"type": "string", "pattern": "^[0-9]+$"}, nil, nil
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return map[string]any{"type": "number"}, nil, nil
	case protoreflect.StringKind:
		return map[string]any{"type": "string"}, nil, nil
	case protoreflect.BytesKind:
		return map[string]any{"type": "string", "format": "byte"}, nil, nil
	case protoreflect.EnumKind:
		var names []string
		vals := fd.Enum().Values()
		for i := range vals.Len() {
			names = append(names, string(vals.Get(i).Name()))
		}
		sort.Strings(names)
		return map[string]any{"type": "string", "enum": names}, nil, nil
	case protoreflect.MessageKind, protoreflect.GroupKind:
		md := fd.Message()
		switch md.FullName() {
		case "google.protobuf.Timestamp":
			return map[string]any{"type": "string", "format": "date-time"}, nil, nil
		case "google.protobuf.Duration":
			return map[string]any{"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?s$"}, nil, nil
		}
		if md.ParentFile().Package() != "vigil.v1" {
			return nil, nil, fmt.Errorf("no JSON schema for %s", md.FullName())
		}
		return map[string]any{"$ref": "#/components/schemas/" + string(md.Name())}, []protoreflect.MessageDescriptor{md}, nil
	}
	return nil, nil, fmt.Errorf("no JSON schema for kind %v", fd.Kind())
}

// TestOpenAPIListsEveryFindingsParameter keeps the document's parameters of
// GET /findings and the parser's in step: both directions would otherwise
// drift silently (a documented filter the server refuses, or one it takes
// that nobody can find).
func TestOpenAPIListsEveryFindingsParameter(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(openAPIDocument)
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, p := range doc.Paths.Find("/api/v1/findings").Get.Parameters {
		documented[p.Value.Name] = true
	}
	known := map[string]bool{}
	for name := range stringFilters {
		known[name] = true
	}
	for name := range otherParams {
		known[name] = true
	}
	for name := range known {
		if !documented[name] {
			t.Errorf("the server takes %q but the document does not list it", name)
		}
	}
	for name := range documented {
		if !known[name] {
			t.Errorf("the document lists %q but the server refuses it", name)
		}
	}
}

var (
	protoMessageRe = regexp.MustCompile(`^\s*message\s+(\w+)\s*\{`)
	protoFieldRe   = regexp.MustCompile(`^\s*(?:repeated\s+|optional\s+)?(?:map<[^>]+>|[\w.]+)\s+(\w+)\s*=\s*\d+[^;]*;\s*(?://\s*(.*))?$`)
)

// protoComments returns the leading comments of the messages
// ("Finding") and fields ("Finding.severity_label") in the .proto files of
// dir. The generated Go descriptors carry no comments, and the proto files
// are plain enough (no nested messages) for a line scanner.
func protoComments(dir string) (map[string]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.proto"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no proto files in %s: %v", dir, err)
	}
	out := map[string]string{}
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		var pending []string
		msg := ""
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			switch {
			case strings.HasPrefix(line, "//"):
				pending = append(pending, strings.TrimSpace(strings.TrimPrefix(line, "//")))
				continue
			case protoMessageRe.MatchString(line):
				msg = protoMessageRe.FindStringSubmatch(line)[1]
				out[msg] = strings.Join(pending, " ")
			case msg != "" && protoFieldRe.MatchString(line):
				m := protoFieldRe.FindStringSubmatch(line)
				c := strings.Join(pending, " ")
				if m[2] != "" {
					c = strings.TrimSpace(c + " " + m[2])
				}
				out[msg+"."+m[1]] = c
			}
			pending = nil
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
