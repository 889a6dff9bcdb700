package deploy_test

import (
	"bytes"
	"debug/elf"
	"fmt"
	"go/ast"
	goparser "go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// dockerfile is a Dockerfile as BuildKit's own frontend reads it: the
// parser directives, the stages with typed instructions, and every lint
// warning (what `docker build --check` reports).
type dockerfile struct {
	directives map[string]string
	stages     []instructions.Stage
	warnings   []string
}

func parseDockerfile(t *testing.T, path string) *dockerfile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	df := &dockerfile{directives: map[string]string{}}
	for _, w := range res.Warnings {
		df.warnings = append(df.warnings, w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, desc, url, msg string, loc []parser.Range) {
		df.warnings = append(df.warnings, rule+": "+msg)
	}})
	df.stages, _, err = instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("instructions in %s: %v", path, err)
	}
	// Expand every instruction the way the builder does before running it
	// (quotes removed, flags such as --mount parsed), with the build
	// arguments at their defaults.
	env := buildArgs{"TARGETOS": "linux", "TARGETARCH": "amd64", "VERSION": "dev"}
	lex := shell.NewLex('\\')
	expand := func(word string) (string, error) {
		out, _, err := lex.ProcessWord(word, env)
		return out, err
	}
	for _, st := range df.stages {
		for _, c := range st.Commands {
			if e, ok := c.(instructions.SupportsSingleWordExpansion); ok {
				if err := e.Expand(expand); err != nil {
					t.Fatalf("expand %s: %v", c.Name(), err)
				}
			}
		}
	}
	// Parser directives are "# key=value" comments before the first
	// instruction.
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "#") {
			break
		}
		if k, v, ok := strings.Cut(strings.TrimSpace(line[1:]), "="); ok && !strings.Contains(k, " ") {
			df.directives[strings.ToLower(k)] = v
		}
	}
	return df
}

// buildArgs is the environment instructions are expanded in.
type buildArgs map[string]string

func (b buildArgs) Get(k string) (string, bool) { v, ok := b[k]; return v, ok }

func (b buildArgs) Keys() []string {
	keys := make([]string, 0, len(b))
	for k := range b {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// commands returns the stage's instructions of type T.
func commands[T instructions.Command](s instructions.Stage) []T {
	var out []T
	for _, c := range s.Commands {
		if v, ok := c.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func labels(s instructions.Stage) map[string]string {
	m := map[string]string{}
	for _, l := range commands[*instructions.LabelCommand](s) {
		for _, kv := range l.Labels {
			m[kv.Key] = kv.Value
		}
	}
	return m
}

func exposed(s instructions.Stage) []string {
	var out []string
	for _, e := range commands[*instructions.ExposeCommand](s) {
		out = append(out, e.Ports...)
	}
	return out
}

// goVersion is the language version in go.mod, e.g. "1.26".
func goVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(data))
	if m == nil {
		t.Fatal("no go directive in go.mod")
	}
	return m[1]
}

func TestDockerfiles(t *testing.T) {
	tests := []struct {
		name   string
		file   string
		binary string
		check  func(t *testing.T, final instructions.Stage)
	}{
		{
			name:   "the sensor image runs as root and documents the exact capabilities and host mounts it needs",
			file:   "Dockerfile.sensor",
			binary: "sensor",
			check: func(t *testing.T, final instructions.Stage) {
				if u := commands[*instructions.UserCommand](final); len(u) != 1 || u[0].User != "0:0" {
					t.Errorf("USER = %v, want 0:0 (added capabilities reach only uid 0)", u)
				}
				l := labels(final)
				caps := strings.Split(l["com.vigilsec.sensor.capabilities"], ",")
				sort.Strings(caps)
				if !slices.Equal(caps, sensorUnitCaps) {
					t.Errorf("capabilities label = %v, want %v (the set the chart and systemd unit grant)", caps, sensorUnitCaps)
				}
				legacy := strings.Split(l["com.vigilsec.sensor.capabilities.legacy-kernel"], ",")
				sort.Strings(legacy)
				if want := []string{"CAP_DAC_READ_SEARCH", "CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_RESOURCE"}; !slices.Equal(legacy, want) {
					t.Errorf("legacy-kernel capabilities label = %v, want %v", legacy, want)
				}
				if l["com.vigilsec.sensor.host-pid"] != "required" {
					t.Error("the image should say it needs the host pid namespace")
				}
				// Every host path the ECS daemon mounts is documented on the image.
				raw, err := os.ReadFile("ecs/sensor-daemon.json")
				if err != nil {
					t.Fatal(err)
				}
				td := decodeTaskDefinition(t, []byte(expandPlaceholders(t, string(raw))))
				mounts := l["com.vigilsec.sensor.mounts"]
				for _, v := range td.Volumes {
					if v.Host != nil && !strings.Contains(mounts, *v.Host.SourcePath) {
						t.Errorf("mounts label does not mention %s", *v.Host.SourcePath)
					}
				}
				if !slices.Contains(exposed(final), "9090") {
					t.Error("metrics port 9090 not exposed")
				}
			},
		},
		{
			name:   "the backend image runs as nonroot with its ports, state and rules directories ready",
			file:   "Dockerfile.backend",
			binary: "backend",
			check: func(t *testing.T, final instructions.Stage) {
				if u := commands[*instructions.UserCommand](final); len(u) != 1 || u[0].User != "65532:65532" {
					t.Errorf("USER = %v, want 65532:65532 (distroless nonroot)", u)
				}
				if !strings.HasSuffix(final.BaseName, ":nonroot") {
					t.Errorf("final stage %s is not the nonroot variant", final.BaseName)
				}
				for _, p := range []string{"7443", "8080"} {
					if !slices.Contains(exposed(final), p) {
						t.Errorf("port %s not exposed", p)
					}
				}
				cmd := commands[*instructions.CmdCommand](final)
				if len(cmd) != 1 || cmd[0].PrependShell {
					t.Fatal("want one CMD in exec form with the default flags")
				}
				args := cmd[0].CmdLine
				for _, a := range args {
					name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
					if !slices.Contains(backendFlags, name) {
						t.Errorf("CMD passes --%s, which the backend does not accept", name)
					}
				}
				if dir, _ := argValue(args, "rules-dir"); !slices.ContainsFunc(commands[*instructions.CopyCommand](final), func(c *instructions.CopyCommand) bool {
					return c.DestPath == filepath.Dir(dir)
				}) {
					t.Errorf("--rules-dir %s does not exist in the image", dir)
				}
			},
		},
	}
	wantGo := goVersion(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join("docker", tt.file)
			df := parseDockerfile(t, path)
			for _, w := range df.warnings {
				t.Errorf("BuildKit: %s", w)
			}
			if !strings.HasPrefix(df.directives["syntax"], "docker/dockerfile:1") {
				t.Errorf("syntax directive = %q; RUN --mount needs docker/dockerfile:1", df.directives["syntax"])
			}
			if len(df.stages) < 2 {
				t.Fatalf("%d stages, want a build stage and a final stage", len(df.stages))
			}
			build, final := df.stages[0], df.stages[len(df.stages)-1]
			if !strings.HasPrefix(build.BaseName, "golang:") {
				t.Errorf("build stage from %s, want golang", build.BaseName)
			}
			if !strings.HasPrefix(final.BaseName, "gcr.io/distroless/static") && final.BaseName != "scratch" {
				t.Errorf("final stage from %s, want distroless static or scratch", final.BaseName)
			}
			if !strings.Contains(build.BaseName, "${GO_VERSION}") {
				t.Errorf("build stage %s does not use ARG GO_VERSION", build.BaseName)
			}
			data, _ := os.ReadFile(path)
			if !strings.Contains(string(data), "\nARG GO_VERSION="+wantGo+"\n") {
				t.Errorf("ARG GO_VERSION is not %s, the go directive of go.mod", wantGo)
			}

			var goBuild string
			for _, run := range commands[*instructions.RunCommand](build) {
				if line := strings.Join(run.CmdLine, " "); strings.Contains(line, "go build") {
					goBuild = line
					if !slices.ContainsFunc(instructions.GetMounts(run), func(m *instructions.Mount) bool {
						return m.Type == instructions.MountTypeCache && m.Target == "/root/.cache/go-build"
					}) {
						t.Error("go build has no build cache mount; every rebuild would compile from scratch")
					}
				}
			}
			if goBuild == "" {
				t.Fatal("no go build in the build stage")
			}
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-o /out/" + tt.binary, "./cmd/" + tt.binary, "github.com/vigilsec/vigil/internal/version.Version="} {
				if !strings.Contains(goBuild, want) {
					t.Errorf("go build lacks %q: %s", want, goBuild)
				}
			}
			if err := checkVersionVariable(); err != nil {
				t.Errorf("-X target: %v", err)
			}
			checkMainPackage(t, "../cmd/"+tt.binary)

			dest := ""
			for _, c := range commands[*instructions.CopyCommand](final) {
				if c.From == build.Name && slices.Equal(c.SourcePaths, []string{"/out/" + tt.binary}) {
					dest = c.DestPath
				}
			}
			if dest == "" {
				t.Fatalf("final stage does not copy /out/%s from the %s stage", tt.binary, build.Name)
			}
			entry := commands[*instructions.EntrypointCommand](final)
			if len(entry) != 1 || entry[0].PrependShell {
				t.Fatal("want one ENTRYPOINT in exec form, so signals reach the binary")
			}
			if args := entry[0].CmdLine; len(args) != 1 || args[0] != dest {
				t.Errorf("ENTRYPOINT %v does not run the copied binary %s", args, dest)
			}
			if labels(final)["org.opencontainers.image.source"] == "" {
				t.Error("no org.opencontainers.image.source label")
			}
			checkDockerignore(t, path+".dockerignore")
			tt.check(t, final)
		})
	}
}

// goFiles parses the non-test Go files of dir.
func goFiles(dir string, mode goparser.Mode) ([]*ast.File, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []*ast.File
	fset := token.NewFileSet()
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := goparser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, mode)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// checkVersionVariable makes sure the variable the ldflags set exists, so
// images report their version instead of "dev".
func checkVersionVariable() error {
	files, err := goFiles("../internal/version", goparser.SkipObjectResolution)
	if err != nil {
		return err
	}
	for _, f := range files {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				if slices.ContainsFunc(spec.(*ast.ValueSpec).Names, func(n *ast.Ident) bool { return n.Name == "Version" }) {
					return nil
				}
			}
		}
	}
	return fmt.Errorf("no var Version in internal/version")
}

// checkMainPackage verifies the package the image builds is a main package.
// cmd/ belongs to another stage of the project; until it lands the check
// says so in the log rather than failing the images' other checks.
func checkMainPackage(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		t.Logf("%s does not exist yet; the image will build once it does", dir)
		return
	}
	files, err := goFiles(dir, goparser.PackageClauseOnly)
	if err != nil {
		t.Fatalf("parse %s: %v", dir, err)
	}
	if len(files) == 0 {
		t.Errorf("%s has no Go files", dir)
	}
	for _, f := range files {
		if f.Name.Name != "main" {
			t.Errorf("%s is package %s, not main", dir, f.Name.Name)
		}
	}
}

// checkDockerignore makes sure the context filter keeps what the build needs.
func checkDockerignore(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no %s: the whole checkout (including .git) would be sent as context", path)
	}
	needed := []string{"go.mod", "go.sum", "cmd/sensor/main.go", "collector/bpf_bpfel.o", "proto/vigil/v1/event.pb.go", "charts/vigil/values.yaml"}
	for _, line := range strings.Split(string(data), "\n") {
		pattern := strings.TrimSpace(line)
		if pattern == "" || strings.HasPrefix(pattern, "#") {
			continue
		}
		pattern = strings.TrimPrefix(pattern, "**/")
		for _, n := range needed {
			if ok, _ := filepath.Match(pattern, n); ok || strings.HasPrefix(n, pattern+"/") {
				t.Errorf("%s: %q excludes %s, which the build needs", path, line, n)
			}
		}
	}
}

// TestDockerfileBuildStepMakesAStaticBinary runs each Dockerfile's go build
// line itself (in a shell with the build arguments set, as BuildKit does,
// with /out moved to a temporary directory) and checks the result is what a distroless static image can
// run: no ELF interpreter, no shared libraries, the version stamped in.
func TestDockerfileBuildStepMakesAStaticBinary(t *testing.T) {
	for _, tt := range []struct{ file, binary string }{
		{"Dockerfile.sensor", "sensor"},
		{"Dockerfile.backend", "backend"},
	} {
		t.Run(tt.file+" builds a static "+tt.binary, func(t *testing.T) {
			if _, err := os.Stat("../cmd/" + tt.binary); err != nil {
				t.Skipf("cmd/%s is not in the tree yet", tt.binary)
			}
			df := parseDockerfile(t, filepath.Join("docker", tt.file))
			var line string
			for _, run := range commands[*instructions.RunCommand](df.stages[0]) {
				if l := strings.Join(run.CmdLine, " "); strings.Contains(l, "go build") {
					line = l
				}
			}
			out := t.TempDir()
			line = strings.ReplaceAll(line, "/out/", out+"/")
			// BuildKit runs a shell-form RUN with the build arguments in the
			// environment; VERSION gets a value that can be found again.
			const version = "v0.0.0-dockerfile-test"
			cmd := exec.Command("sh", "-c", line)
			cmd.Dir = ".."
			cmd.Env = append(os.Environ(), "TARGETOS=linux", "TARGETARCH="+runtime.GOARCH, "VERSION="+version)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", line, err, b)
			}
			path := filepath.Join(out, tt.binary)
			f, err := elf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Error("the binary needs a dynamic loader; distroless/static has none")
				}
			}
			if libs, _ := f.ImportedLibraries(); len(libs) != 0 {
				t.Errorf("the binary links %v", libs)
			}
			deps, err := exec.Command("go", "list", "-deps", "../cmd/"+tt.binary).Output()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(deps), "github.com/vigilsec/vigil/internal/version\n") {
				// The linker drops -X for a package the program does not use.
				t.Logf("cmd/%s does not use internal/version yet, so it cannot report its version", tt.binary)
				return
			}
			data, _ := os.ReadFile(path)
			if !bytes.Contains(data, []byte(version)) {
				t.Errorf("the binary does not carry the version %s", version)
			}
		})
	}
}
