package deploy_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

// renderChartWorkloads renders the chart and returns its sensor DaemonSet
// (nil when disabled) and backend Deployment.
func renderChartWorkloads(t *testing.T, values map[string]any) (*appsv1.DaemonSet, *appsv1.Deployment) {
	t.Helper()
	ch, err := loader.Load("../charts/vigil")
	if err != nil {
		t.Fatal(err)
	}
	vals, err := chartutil.ToRenderValues(ch, values, chartutil.ReleaseOptions{Name: "vigil", Namespace: "vigil", IsInstall: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatal(err)
	}
	var ds *appsv1.DaemonSet
	if text := strings.TrimSpace(files["vigil/templates/sensor-daemonset.yaml"]); text != "" {
		ds = &appsv1.DaemonSet{}
		if err := yaml.UnmarshalStrict([]byte(text), ds); err != nil {
			t.Fatalf("decode DaemonSet: %v", err)
		}
	}
	d := &appsv1.Deployment{}
	if err := yaml.UnmarshalStrict([]byte(files["vigil/templates/backend-deployment.yaml"]), d); err != nil {
		t.Fatalf("decode Deployment: %v", err)
	}
	return ds, d
}

// TestEveryArtefactPassesOnlyContractFlags collects the command line each
// artefact gives the sensor and the backend and checks every flag against
// the binaries' command-line contract (docs/architecture.md and the issue),
// so a renamed or misspelt flag shows up here rather than as a crash loop
// on somebody's cluster.
func TestEveryArtefactPassesOnlyContractFlags(t *testing.T) {
	type cmdline struct {
		where  string
		binary string // sensor or backend
		args   []string
	}
	var all []cmdline

	for _, values := range []map[string]any{
		nil,
		{"tls": map[string]any{"insecure": true}},
		{"sensor": map[string]any{"btfPath": "/var/lib/vigil/btf/vmlinux"}},
		{"backend": map[string]any{"store": map[string]any{"type": "postgres", "postgres": map[string]any{"url": "postgres://v:p@db/v"}}}},
	} {
		ds, d := renderChartWorkloads(t, values)
		all = append(all,
			cmdline{"chart sensor", "sensor", ds.Spec.Template.Spec.Containers[0].Args},
			cmdline{"chart backend", "backend", d.Spec.Template.Spec.Containers[0].Args})
	}

	for file, containers := range map[string]map[string]string{
		"sensor-daemon.json":   {"sensor": "sensor"},
		"backend.json":         {"backend": "backend"},
		"fargate-sidecar.json": {"vigil-sensor": "sensor"},
	} {
		raw := readFile(t, filepath.Join("ecs", file))
		td := decodeTaskDefinition(t, []byte(expandPlaceholders(t, raw)))
		for name, binary := range containers {
			all = append(all, cmdline{file, binary, container(td, name).Command})
		}
	}

	tpl := loadTemplate(t)
	for _, conds := range []map[string]bool{{"UsePostgres": false}, {"UsePostgres": true}} {
		all = append(all,
			cmdline{"cloudformation sensor", "sensor", container(taskDefinitionFromTemplate(t, tpl, "SensorTaskDefinition", conds), "sensor").Command},
			cmdline{"cloudformation backend", "backend", container(taskDefinitionFromTemplate(t, tpl, "BackendTaskDefinition", conds), "backend").Command})
	}

	for unitFile, binary := range map[string]string{"vigil-sensor.service": "sensor", "vigil-backend.service": "backend"} {
		u := parseUnit(t, filepath.Join("systemd", unitFile))
		all = append(all, cmdline{unitFile, binary, u.execStartArgs(t)[1:]})
	}

	df := parseDockerfile(t, "docker/Dockerfile.backend")
	for _, c := range commands[*instructions.CmdCommand](df.stages[len(df.stages)-1]) {
		all = append(all, cmdline{"Dockerfile.backend CMD", "backend", c.CmdLine})
	}

	contract := map[string][]string{"sensor": sensorFlags, "backend": backendFlags}
	for _, c := range all {
		if len(c.args) == 0 {
			t.Errorf("%s: no arguments", c.where)
		}
		for _, a := range c.args {
			if !strings.HasPrefix(a, "--") {
				t.Errorf("%s: %q is not a --flag", c.where, a)
				continue
			}
			name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
			if !slices.Contains(contract[c.binary], name) {
				t.Errorf("%s: --%s is not a %s flag", c.where, name, c.binary)
			}
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
