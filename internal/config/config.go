// Package config loads a binary's typed configuration from a YAML file, then
// VIGIL_* environment variables, then command-line flags, each layer
// overriding the one before.
//
// A configuration is a struct whose fields carry `yaml` tags; the zero-value
// struct handed to Load holds the defaults. Every leaf field becomes a flag
// and an environment variable. A field's flag name comes from its `flag` tag
// when it has one (`flag:"grpc-listen"`), otherwise from its YAML path joined
// with dashes (`spool.max_bytes` -> `--spool-max-bytes`); its environment
// variable is VIGIL_ followed by the flag name in upper case with
// underscores (VIGIL_SPOOL_MAX_BYTES), or its `env` tag. A `flag:"-"` tag
// keeps a field off the command line (secrets: file or environment only,
// never visible in ps), and without an `env` tag out of the environment too.
//
// This is written by hand because no well-kept library maps one struct onto
// YAML, environment and flags with these names and also yields the field list
// the configuration reference is generated from.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Field describes one configurable leaf of a configuration struct.
type Field struct {
	// Path is the YAML path, dot separated (spool.max_bytes).
	Path string
	// Flag is the flag name without dashes; empty when the field has none.
	Flag string
	// Env is the environment variable; empty when the field has none.
	Env string
	// Default is the default value, formatted as a flag value.
	Default string
	// Type names the value's kind for people (string, bool, duration, ...).
	Type string
	// GoField locates the field in source: the struct type's package path,
	// type name and field name, for the reference generator.
	GoPackage, GoType, GoField string

	value reflect.Value
}

// Fields lists every leaf of cfg (a pointer to a struct) in declaration order.
func Fields(cfg any) ([]Field, error) {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, errors.New("config: want a pointer to a struct")
	}
	var out []Field
	walk(v.Elem(), "", "", &out)
	return out, nil
}

func walk(v reflect.Value, path, flagPrefix string, out *[]Field) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		key, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if key == "-" {
			continue
		}
		fv := v.Field(i)
		if opts == "inline" && isSection(sf.Type) {
			// An inline section's keys sit at its parent's level, in YAML
			// and on the command line alike.
			walk(fv, path, flagPrefix, out)
			continue
		}
		if key == "" {
			key = strings.ToLower(sf.Name)
		}
		p := joinPath(path, key)
		flagTag := sf.Tag.Get("flag")
		if isSection(sf.Type) {
			prefix := flagPrefix + strings.ReplaceAll(key, "_", "-") + "-"
			if flagTag != "" && flagTag != "-" {
				prefix = flagTag + "-"
			}
			walk(fv, p, prefix, out)
			continue
		}
		f := Field{
			Path: p, Type: typeName(sf.Type), Default: format(fv),
			GoPackage: t.PkgPath(), GoType: t.Name(), GoField: sf.Name,
			value: fv,
		}
		switch flagTag {
		case "-":
		case "":
			f.Flag = flagPrefix + strings.ReplaceAll(key, "_", "-")
		default:
			f.Flag = flagTag
		}
		if f.Flag != "" {
			f.Env = "VIGIL_" + strings.ToUpper(strings.ReplaceAll(f.Flag, "-", "_"))
		}
		if env := sf.Tag.Get("env"); env != "" {
			f.Env = env
		}
		*out = append(*out, f)
	}
}

func joinPath(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

var durationType = reflect.TypeOf(time.Duration(0))

// isSection reports whether a field is a nested struct of settings rather
// than a leaf value.
func isSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t != reflect.TypeOf(time.Time{})
}

func typeName(t reflect.Type) string {
	if t == durationType {
		return "duration"
	}
	switch t.Kind() {
	case reflect.Slice:
		return "list of " + typeName(t.Elem())
	case reflect.Map:
		return "map"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	}
	return t.Kind().String()
}

func format(v reflect.Value) string {
	if v.Type() == durationType {
		return time.Duration(v.Int()).String()
	}
	switch v.Kind() {
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = format(v.Index(i))
		}
		return strings.Join(parts, ",")
	case reflect.Map:
		if v.Len() == 0 {
			return ""
		}
		b, _ := yaml.Marshal(v.Interface())
		return strings.TrimSpace(string(b))
	}
	return fmt.Sprint(v.Interface())
}

// set parses s into v, the way flags and environment variables are written.
func set(v reflect.Value, s string) error {
	if v.Type() == durationType {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 0, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 0, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetFloat(n)
	case reflect.Slice:
		var parts []string
		if s != "" {
			parts = strings.Split(s, ",")
		}
		sl := reflect.MakeSlice(v.Type(), len(parts), len(parts))
		for i, p := range parts {
			if err := set(sl.Index(i), strings.TrimSpace(p)); err != nil {
				return err
			}
		}
		v.Set(sl)
	case reflect.Map:
		m := reflect.New(v.Type())
		if err := yaml.Unmarshal([]byte(s), m.Interface()); err != nil {
			return err
		}
		v.Set(m.Elem())
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}

// fieldValue adapts a Field to flag.Value.
type fieldValue struct{ f *Field }

func (fv fieldValue) String() string {
	if fv.f == nil || !fv.f.value.IsValid() {
		return ""
	}
	return format(fv.f.value)
}
func (fv fieldValue) Set(s string) error { return set(fv.f.value, s) }
func (fv fieldValue) IsBoolFlag() bool   { return fv.f.value.Kind() == reflect.Bool }

// Load fills cfg (a pointer to a struct holding the defaults) from, in order:
// the YAML file named by --config or VIGIL_CONFIG, the VIGIL_* environment,
// and the flags in args. It returns the arguments left after the flags. A
// YAML key the struct does not have is an error that names it.
func Load(cfg any, name string, args []string, usage func(*flag.FlagSet)) ([]string, error) {
	fields, err := Fields(cfg)
	if err != nil {
		return nil, err
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	configPath := os.Getenv("VIGIL_CONFIG")
	fs.StringVar(&configPath, "config", configPath, "YAML configuration `file` (env VIGIL_CONFIG); flags and VIGIL_* variables override it")
	for i := range fields {
		f := &fields[i]
		if f.Flag == "" {
			continue
		}
		fs.Var(fieldValue{f}, f.Flag, fmt.Sprintf("%s (env %s, yaml %s)", f.Type, f.Env, f.Path))
	}
	if usage != nil {
		fs.Usage = func() { usage(fs) }
	}
	// Flags are parsed twice: first to find --config, then, after the file
	// and the environment are applied, again so flags win.
	probe := flag.NewFlagSet(name, flag.ContinueOnError)
	probe.SetOutput(discard{})
	probe.StringVar(&configPath, "config", configPath, "")
	for i := range fields {
		if fields[i].Flag != "" {
			probe.Var(noopValue{fields[i].value.Kind() == reflect.Bool}, fields[i].Flag, "")
		}
	}
	_ = probe.Parse(args)

	if configPath != "" {
		if err := loadFile(cfg, configPath); err != nil {
			return nil, err
		}
	}
	for i := range fields {
		f := &fields[i]
		if f.Env == "" {
			continue
		}
		if s, ok := os.LookupEnv(f.Env); ok {
			if err := set(f.value, s); err != nil {
				return nil, fmt.Errorf("environment %s=%q: %w", f.Env, s, err)
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return fs.Args(), nil
}

func loadFile(cfg any, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	// An empty file decodes to io.EOF: nothing to apply.
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

type noopValue struct{ isBool bool }

func (noopValue) String() string     { return "" }
func (noopValue) Set(string) error   { return nil }
func (n noopValue) IsBoolFlag() bool { return n.isBool }
