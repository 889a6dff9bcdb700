package charts_test

import (
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from the rendered chart")

const (
	releaseName = "vigil"
	namespace   = "security"
)

// serviceMonitor is the part of the Prometheus operator's ServiceMonitor the
// chart sets; decoding is strict, so a field outside it fails the test.
type serviceMonitor struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
			Relabelings   []struct {
				SourceLabels []string `json:"sourceLabels"`
				TargetLabel  string   `json:"targetLabel"`
			} `json:"relabelings"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// rendered is one rendering of the chart, decoded into API types.
type rendered struct {
	daemonSets      []*appsv1.DaemonSet
	deployments     []*appsv1.Deployment
	services        []*corev1.Service
	secrets         []*corev1.Secret
	configMaps      []*corev1.ConfigMap
	pvcs            []*corev1.PersistentVolumeClaim
	ingresses       []*networkingv1.Ingress
	networkPolicies []*networkingv1.NetworkPolicy
	serviceMonitors []*serviceMonitor
	notes           string
	// manifest is every document in template order, for the golden file.
	manifest string
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load("vigil")
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return ch
}

// render runs the chart through Helm's own values coalescing, schema
// validation and template engine, exactly as `helm template` would.
func render(t *testing.T, overrides map[string]any) (map[string]string, error) {
	t.Helper()
	ch := loadChart(t)
	vals, err := chartutil.ToRenderValues(ch, overrides, chartutil.ReleaseOptions{
		Name: releaseName, Namespace: namespace, Revision: 1, IsInstall: true,
	}, nil)
	if err != nil {
		return nil, err
	}
	return engine.Render(ch, vals)
}

func decode(t *testing.T, files map[string]string) *rendered {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{appsv1.AddToScheme, corev1.AddToScheme, networkingv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatalf("build scheme: %v", err)
		}
	}
	// Strict: an unknown or misspelt field is an error, not a silently
	// dropped setting.
	ser := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Yaml: true, Strict: true})

	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)

	r := &rendered{}
	var manifest strings.Builder
	for _, name := range names {
		text := files[name]
		if strings.HasSuffix(name, "NOTES.txt") {
			r.notes = text
			continue
		}
		for _, doc := range strings.Split(text, "\n---") {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			fmt.Fprintf(&manifest, "---\n# Source: %s\n%s\n", name, strings.TrimLeft(doc, "\n"))
			var head struct {
				Kind string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Fatalf("%s: not YAML: %v\n%s", name, err, doc)
			}
			if head.Kind == "ServiceMonitor" {
				sm := &serviceMonitor{}
				if err := yaml.UnmarshalStrict([]byte(doc), sm); err != nil {
					t.Fatalf("%s: decode ServiceMonitor: %v", name, err)
				}
				r.serviceMonitors = append(r.serviceMonitors, sm)
				continue
			}
			obj, _, err := ser.Decode([]byte(doc), nil, nil)
			if err != nil {
				t.Fatalf("%s: decode into Kubernetes types: %v\n%s", name, err, doc)
			}
			switch o := obj.(type) {
			case *appsv1.DaemonSet:
				r.daemonSets = append(r.daemonSets, o)
			case *appsv1.Deployment:
				r.deployments = append(r.deployments, o)
			case *corev1.Service:
				r.services = append(r.services, o)
			case *corev1.Secret:
				r.secrets = append(r.secrets, o)
			case *corev1.ConfigMap:
				r.configMaps = append(r.configMaps, o)
			case *corev1.PersistentVolumeClaim:
				r.pvcs = append(r.pvcs, o)
			case *networkingv1.Ingress:
				r.ingresses = append(r.ingresses, o)
			case *networkingv1.NetworkPolicy:
				r.networkPolicies = append(r.networkPolicies, o)
			default:
				t.Fatalf("%s: unexpected kind %T", name, obj)
			}
		}
	}
	r.manifest = manifest.String()
	return r
}

func stripComments(doc string) string {
	var out []string
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func (r *rendered) sensor(t *testing.T) (*appsv1.DaemonSet, *corev1.Container) {
	t.Helper()
	if len(r.daemonSets) != 1 {
		t.Fatalf("want 1 sensor DaemonSet, got %d", len(r.daemonSets))
	}
	ds := r.daemonSets[0]
	return ds, &ds.Spec.Template.Spec.Containers[0]
}

func (r *rendered) backend(t *testing.T) (*appsv1.Deployment, *corev1.Container) {
	t.Helper()
	if len(r.deployments) != 1 {
		t.Fatalf("want 1 backend Deployment, got %d", len(r.deployments))
	}
	d := r.deployments[0]
	return d, &d.Spec.Template.Spec.Containers[0]
}

func (r *rendered) secret(name string) *corev1.Secret {
	for _, s := range r.secrets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func (r *rendered) configMap(name string) *corev1.ConfigMap {
	for _, c := range r.configMaps {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// flagValue returns the value of --name=value in args, and whether the flag
// is present at all (a bare --name counts as present with value "").
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if a == "--"+name {
			return "", true
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func mountAt(c *corev1.Container, path string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].MountPath == path {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

func volume(spec *corev1.PodSpec, name string) *corev1.Volume {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	return nil
}

func envVar(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func capNames(caps []corev1.Capability) []string {
	out := make([]string, len(caps))
	for i, c := range caps {
		out[i] = string(c)
	}
	sort.Strings(out)
	return out
}

// checkInvariants holds for every rendering: what must never change whatever
// the values say.
func checkInvariants(t *testing.T, r *rendered, wantCaps []string) {
	t.Helper()
	checkReferences(t, r)

	if len(r.daemonSets) > 0 {
		ds, c := r.sensor(t)
		spec := ds.Spec.Template.Spec
		if !spec.HostPID {
			t.Error("sensor: hostPID is off; host pids and /proc/<pid> would be the pod's own")
		}
		sc := c.SecurityContext
		if sc == nil || sc.Privileged == nil || *sc.Privileged {
			t.Error("sensor: privileged must be explicitly false")
		}
		if sc == nil || sc.Capabilities == nil {
			t.Fatal("sensor: no capabilities block")
		}
		if got := capNames(sc.Capabilities.Drop); !slices.Equal(got, []string{"ALL"}) {
			t.Errorf("sensor: drop = %v, want [ALL] so only the added set remains", got)
		}
		if got := capNames(sc.Capabilities.Add); !slices.Equal(got, wantCaps) {
			t.Errorf("sensor: capabilities add = %v, want exactly %v", got, wantCaps)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Error("sensor: root filesystem should be read-only")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Error("sensor: allowPrivilegeEscalation should be false")
		}
		readOnly := map[string]bool{
			"/sys/kernel/tracing":             true,
			"/host/proc":                      true,
			"/sys/fs/cgroup":                  true,
			"/run/containerd/containerd.sock": true,
			"/sys/fs/bpf":                     false,
			"/var/lib/vigil/spool":            false,
		}
		for path, ro := range readOnly {
			m := mountAt(c, path)
			if m == nil {
				t.Errorf("sensor: nothing mounted at %s", path)
				continue
			}
			if m.ReadOnly != ro {
				t.Errorf("sensor: mount %s readOnly=%v, want %v", path, m.ReadOnly, ro)
			}
			v := volume(&spec, m.Name)
			if v == nil {
				t.Errorf("sensor: mount %s names missing volume %q", path, m.Name)
				continue
			}
			if path != "/var/lib/vigil/spool" && v.HostPath == nil {
				t.Errorf("sensor: %s must come from the host, got %+v", path, v.VolumeSource)
			}
		}
		if v := volume(&spec, "containerd-sock"); v != nil && (v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathSocket) {
			t.Error("sensor: containerd socket volume should be of type Socket")
		}
		if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Port.String() != "metrics" {
			t.Errorf("sensor: liveness probe should GET the metrics port, got %+v", c.LivenessProbe)
		}
		checkResources(t, "sensor", c)
		tokenFromSecret(t, r, c, "VIGIL_SENSOR_TOKEN", "sensor-token")
		if !slices.ContainsFunc(spec.Tolerations, func(tol corev1.Toleration) bool {
			return tol.Operator == corev1.TolerationOpExists && tol.Key == ""
		}) {
			t.Error("sensor: should tolerate every taint so no node goes unwatched")
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Error("sensor: needs no Kubernetes API token")
		}
		if _, ok := flagValue(c.Args, "backend"); !ok {
			t.Error("sensor: no --backend")
		}
	}

	d, c := r.backend(t)
	spec := d.Spec.Template.Spec
	rulesDir, ok := flagValue(c.Args, "rules-dir")
	if !ok {
		t.Fatal("backend: no --rules-dir")
	}
	m := mountAt(c, rulesDir)
	if m == nil {
		t.Fatalf("backend: nothing mounted at --rules-dir %s", rulesDir)
	}
	if m.SubPath != "" {
		t.Error("backend: rules mounted with subPath never see ConfigMap updates")
	}
	v := volume(&spec, m.Name)
	if v == nil || v.ConfigMap == nil || r.configMap(v.ConfigMap.Name) == nil {
		t.Errorf("backend: --rules-dir %s is not the rules ConfigMap", rulesDir)
	}
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.String() != "http" {
			t.Errorf("backend: probes should GET /healthz on the http port, got %+v", p)
		}
	}
	checkResources(t, "backend", c)
	tokenFromSecret(t, r, c, "VIGIL_SENSOR_TOKEN", "sensor-token")
	tokenFromSecret(t, r, c, "VIGIL_API_TOKEN", "api-token")
	if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("backend: should run as non-root")
	}
	if sc := c.SecurityContext; sc == nil || sc.Capabilities == nil || !slices.Equal(capNames(sc.Capabilities.Drop), []string{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Error("backend: should drop every capability and add none")
	}
	_, grpcListen := flagValue(c.Args, "grpc-listen")
	_, httpListen := flagValue(c.Args, "http-listen")
	if !grpcListen || !httpListen {
		t.Errorf("backend: args %v lack --grpc-listen or --http-listen", c.Args)
	}
	if len(r.services) == 0 {
		t.Fatal("no backend Service")
	}
}

// selects reports whether a matchLabels selector matches labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func checkResources(t *testing.T, who string, c *corev1.Container) {
	t.Helper()
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[res]; !ok {
			t.Errorf("%s: no %s request", who, res)
		}
	}
	if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
		t.Errorf("%s: no memory limit", who)
	}
}

func tokenFromSecret(t *testing.T, r *rendered, c *corev1.Container, env, key string) {
	t.Helper()
	e := envVar(c, env)
	if e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
		t.Errorf("%s: %s should come from a Secret, got %+v", c.Name, env, e)
		return
	}
	if e.Value != "" {
		t.Errorf("%s: %s has a literal value", c.Name, env)
	}
	if e.ValueFrom.SecretKeyRef.Key != key {
		t.Errorf("%s: %s reads key %q, want %q", c.Name, env, e.ValueFrom.SecretKeyRef.Key, key)
	}
}

// checkReferences makes sure every name an object points at exists in the
// rendering (unless the values say the user brings it), and that Services
// select pods that have the ports they target.
func checkReferences(t *testing.T, r *rendered) {
	t.Helper()
	type pod struct {
		labels map[string]string
		spec   corev1.PodSpec
	}
	var pods []pod
	for _, ds := range r.daemonSets {
		pods = append(pods, pod{ds.Spec.Template.Labels, ds.Spec.Template.Spec})
		for k, v := range ds.Spec.Selector.MatchLabels {
			if ds.Spec.Template.Labels[k] != v {
				t.Errorf("%s: selector %s=%s does not match its pod template", ds.Name, k, v)
			}
		}
	}
	for _, d := range r.deployments {
		pods = append(pods, pod{d.Spec.Template.Labels, d.Spec.Template.Spec})
		for k, v := range d.Spec.Selector.MatchLabels {
			if d.Spec.Template.Labels[k] != v {
				t.Errorf("%s: selector %s=%s does not match its pod template", d.Name, k, v)
			}
		}
	}
	for _, p := range pods {
		for _, c := range p.spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					continue
				}
				ref := e.ValueFrom.SecretKeyRef
				if s := r.secret(ref.Name); s != nil {
					if _, ok := s.Data[ref.Key]; !ok {
						t.Errorf("%s: env %s wants key %q that Secret %s lacks", c.Name, e.Name, ref.Key, ref.Name)
					}
				} else if !strings.HasPrefix(ref.Name, "user-") {
					t.Errorf("%s: env %s refers to Secret %s that the chart does not render", c.Name, e.Name, ref.Name)
				}
			}
			for _, m := range c.VolumeMounts {
				if volume(&p.spec, m.Name) == nil {
					t.Errorf("%s: mount %s names no volume", c.Name, m.Name)
				}
			}
		}
		for _, v := range p.spec.Volumes {
			switch {
			case v.ConfigMap != nil && r.configMap(v.ConfigMap.Name) == nil:
				t.Errorf("volume %s: ConfigMap %s is not rendered", v.Name, v.ConfigMap.Name)
			case v.Secret != nil:
				s := r.secret(v.Secret.SecretName)
				if s == nil {
					if !strings.HasPrefix(v.Secret.SecretName, "user-") {
						t.Errorf("volume %s: Secret %s is not rendered", v.Name, v.Secret.SecretName)
					}
					continue
				}
				for _, item := range v.Secret.Items {
					if _, ok := s.Data[item.Key]; !ok {
						t.Errorf("volume %s: Secret %s has no key %s", v.Name, s.Name, item.Key)
					}
				}
			}
		}
	}
	for _, svc := range r.services {
		var matched *pod
		for i := range pods {
			ok := len(svc.Spec.Selector) > 0
			for k, v := range svc.Spec.Selector {
				if pods[i].labels[k] != v {
					ok = false
				}
			}
			if ok {
				matched = &pods[i]
			}
		}
		if matched == nil {
			t.Errorf("Service %s selects no pod", svc.Name)
			continue
		}
		for _, port := range svc.Spec.Ports {
			if !slices.ContainsFunc(matched.spec.Containers[0].Ports, func(cp corev1.ContainerPort) bool {
				return cp.Name == port.TargetPort.String()
			}) {
				t.Errorf("Service %s: targetPort %s is not a container port", svc.Name, port.TargetPort.String())
			}
		}
	}
	for _, sm := range r.serviceMonitors {
		found := false
		for _, svc := range r.services {
			sel := true
			for k, v := range sm.Spec.Selector.MatchLabels {
				if svc.Labels[k] != v {
					sel = false
				}
			}
			if sel && slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == sm.Spec.Endpoints[0].Port }) {
				found = true
			}
		}
		if !found {
			t.Errorf("ServiceMonitor %s matches no Service with port %s", sm.Metadata.Name, sm.Spec.Endpoints[0].Port)
		}
	}
	for _, ing := range r.ingresses {
		for _, rule := range ing.Spec.Rules {
			for _, p := range rule.HTTP.Paths {
				if !slices.ContainsFunc(r.services, func(s *corev1.Service) bool { return s.Name == p.Backend.Service.Name }) {
					t.Errorf("Ingress %s routes to missing Service %s", ing.Name, p.Backend.Service.Name)
				}
			}
		}
	}
}

var (
	minimumCaps  = []string{"BPF", "DAC_READ_SEARCH", "PERFMON", "SYS_PTRACE", "SYS_RESOURCE"}
	sysAdminCaps = []string{"DAC_READ_SEARCH", "SYS_ADMIN", "SYS_PTRACE", "SYS_RESOURCE"}
)

func TestChartRendersWhatTheBinariesNeed(t *testing.T) {
	tests := []struct {
		name   string
		golden string
		values map[string]any
		caps   []string
		check  func(t *testing.T, r *rendered)
	}{
		{
			name:   "default values give a least-privilege sensor and a TLS backend on SQLite",
			golden: "default.yaml",
			caps:   minimumCaps,
			check: func(t *testing.T, r *rendered) {
				_, sensor := r.sensor(t)
				d, backend := r.backend(t)
				if m := mountAt(sensor, "/sys/kernel/btf"); m == nil || !m.ReadOnly {
					t.Error("sensor: /sys/kernel/btf should be mounted read-only")
				}
				if sensor.SecurityContext.SeccompProfile == nil || sensor.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeUnconfined {
					t.Error("sensor: default seccomp profile should let bpf() through")
				}
				if v, _ := flagValue(backend.Args, "store"); v != "sqlite:///var/lib/vigil/vigil.db" {
					t.Errorf("backend: --store = %q", v)
				}
				if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
					t.Error("backend: SQLite needs the Recreate strategy")
				}
				if len(r.pvcs) != 1 || volume(&d.Spec.Template.Spec, "data").PersistentVolumeClaim == nil {
					t.Error("backend: SQLite data should live on the PVC")
				}
				for _, f := range []string{"insecure"} {
					if _, ok := flagValue(backend.Args, f); ok {
						t.Errorf("backend: --%s set by default", f)
					}
					if _, ok := flagValue(sensor.Args, f); ok {
						t.Errorf("sensor: --%s set by default", f)
					}
				}
				if len(r.serviceMonitors) != 0 || len(r.ingresses) != 0 || len(r.networkPolicies) != 0 {
					t.Error("ServiceMonitor, Ingress and NetworkPolicy should be off by default")
				}
				checkGeneratedTLS(t, r, sensor, backend)
				tokens := r.secret("vigil-tokens")
				if tokens == nil {
					t.Fatal("no token Secret")
				}
				for _, k := range []string{"sensor-token", "api-token"} {
					if n := len(tokens.Data[k]); n != 40 {
						t.Errorf("generated %s is %d bytes, want 40", k, n)
					}
				}
				if string(tokens.Data["sensor-token"]) == string(tokens.Data["api-token"]) {
					t.Error("sensor and API tokens must differ")
				}
				if cm := r.configMap("vigil-rules"); len(cm.Data) != 0 {
					t.Errorf("by default the rules ConfigMap should be empty (built-in rules, derived policy), got %v", cm.Data)
				}
				if !strings.Contains(r.notes, "port-forward svc/vigil-backend") {
					t.Errorf("NOTES.txt does not say how to reach the web page:\n%s", r.notes)
				}
			},
		},
		{
			name:   "the SYS_ADMIN switch replaces BPF and PERFMON for kernels before 5.8",
			golden: "sysadmin.yaml",
			values: map[string]any{"sensor": map[string]any{"useSysAdmin": true}},
			caps:   sysAdminCaps,
		},
		{
			name:   "a PostgreSQL store reads its URL from the user's Secret and allows several replicas",
			golden: "postgres.yaml",
			values: map[string]any{"backend": map[string]any{
				"replicas": 3,
				"store": map[string]any{"type": "postgres", "postgres": map[string]any{
					"existingSecret": "user-vigil-db", "existingSecretKey": "dsn",
				}},
			}},
			caps: minimumCaps,
			check: func(t *testing.T, r *rendered) {
				d, backend := r.backend(t)
				if *d.Spec.Replicas != 3 {
					t.Errorf("replicas = %d", *d.Spec.Replicas)
				}
				if _, ok := flagValue(backend.Args, "store"); ok {
					t.Error("backend: the store URL carries a password and must not be on the command line")
				}
				e := envVar(backend, "VIGIL_STORE")
				if e == nil || e.ValueFrom.SecretKeyRef.Name != "user-vigil-db" || e.ValueFrom.SecretKeyRef.Key != "dsn" {
					t.Errorf("VIGIL_STORE = %+v", e)
				}
				if len(r.pvcs) != 0 || volume(&d.Spec.Template.Spec, "data").EmptyDir == nil {
					t.Error("no PVC with PostgreSQL")
				}
				if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
					t.Error("PostgreSQL backends can roll")
				}
			},
		},
		{
			name:   "a PostgreSQL URL in values goes into a chart Secret, not the pod spec",
			golden: "postgres-url.yaml",
			values: map[string]any{"backend": map[string]any{"store": map[string]any{
				"type": "postgres", "postgres": map[string]any{"url": "postgres://vigil:s3cret@db:5432/vigil?sslmode=require"},
			}}},
			caps: minimumCaps,
			check: func(t *testing.T, r *rendered) {
				_, backend := r.backend(t)
				e := envVar(backend, "VIGIL_STORE")
				s := r.secret(e.ValueFrom.SecretKeyRef.Name)
				if s == nil || string(s.Data["url"]) != "postgres://vigil:s3cret@db:5432/vigil?sslmode=require" {
					t.Errorf("postgres Secret = %+v", s)
				}
				if strings.Contains(strings.Join(backend.Args, " "), "s3cret") {
					t.Error("password leaked into args")
				}
			},
		},
		{
			name:   "insecure mode passes --insecure to both binaries and mounts no certificates",
			golden: "insecure.yaml",
			values: map[string]any{"tls": map[string]any{"insecure": true}},
			caps:   minimumCaps,
			check: func(t *testing.T, r *rendered) {
				_, sensor := r.sensor(t)
				_, backend := r.backend(t)
				for who, c := range map[string]*corev1.Container{"sensor": sensor, "backend": backend} {
					if _, ok := flagValue(c.Args, "insecure"); !ok {
						t.Errorf("%s: no --insecure", who)
					}
					if mountAt(c, "/etc/vigil/tls") != nil {
						t.Errorf("%s: TLS mounted in insecure mode", who)
					}
				}
				if r.secret("vigil-tls") != nil {
					t.Error("TLS Secret generated in insecure mode")
				}
				if !strings.Contains(r.notes, "WARNING: tls.insecure=true") {
					t.Error("NOTES.txt should warn about insecure mode")
				}
			},
		},
		{
			name:   "user rules and a collection policy land in the ConfigMap at the backend's rules dir",
			golden: "rules.yaml",
			values: map[string]any{
				"backend": map[string]any{"rulesDir": "/config/rules"},
				"rules": map[string]any{
					"50-payments.yaml":    "- rule: Shell in payments\n  desc: shell\n  condition: spawned_process and proc.name = bash\n  output: shell (%proc.cmdline)\n  priority: WARNING\n",
					"blocked-domains.txt": "evil.example\nbad.example\n",
				},
				"collection": map[string]any{
					"enabled_events":        []any{"exec", "connect"},
					"ignored_binaries":      []any{"/usr/bin/node_exporter"},
					"rate_limit_per_second": 500, "rate_limit_burst": 2000,
				},
			},
			caps: minimumCaps,
			check: func(t *testing.T, r *rendered) {
				_, backend := r.backend(t)
				if v, _ := flagValue(backend.Args, "rules-dir"); v != "/config/rules" {
					t.Errorf("--rules-dir = %q", v)
				}
				cm := r.configMap("vigil-rules")
				if !strings.Contains(cm.Data["50-payments.yaml"], "- rule: Shell in payments") {
					t.Errorf("rule file not in ConfigMap: %v", cm.Data)
				}
				if cm.Data["blocked-domains.txt"] != "evil.example\nbad.example\n" {
					t.Errorf("list file changed on its way into the ConfigMap: %q", cm.Data["blocked-domains.txt"])
				}
				// The policy is a rules-file item, as the backend's loader reads it.
				var items []struct {
					Collection struct {
						EnabledEvents   []string `json:"enabled_events"`
						IgnoredBinaries []string `json:"ignored_binaries"`
						IgnoredCgroups  []string `json:"ignored_cgroups"`
						RatePerSecond   int      `json:"rate_limit_per_second"`
						RateBurst       int      `json:"rate_limit_burst"`
					} `json:"collection"`
				}
				if err := yaml.UnmarshalStrict([]byte(cm.Data["collection.yaml"]), &items); err != nil || len(items) != 1 {
					t.Fatalf("collection.yaml is not one collection item: %v\n%s", err, cm.Data["collection.yaml"])
				}
				policy := items[0].Collection
				if policy.IgnoredCgroups != nil {
					t.Errorf("an empty key should be left out so the backend keeps its default: %v", policy.IgnoredCgroups)
				}
				if !slices.Equal(policy.EnabledEvents, []string{"exec", "connect"}) || policy.RatePerSecond != 500 || policy.RateBurst != 2000 || policy.IgnoredBinaries[0] != "/usr/bin/node_exporter" {
					t.Errorf("collection policy = %+v", policy)
				}
			},
		},
		{
			name:   "ServiceMonitors, an Ingress and a priority class appear when asked for",
			golden: "observability.yaml",
			values: map[string]any{
				"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "prometheus"}},
				"sensor":         map[string]any{"priorityClassName": "system-node-critical"},
				"backend": map[string]any{"ingress": map[string]any{
					"enabled": true, "className": "nginx",
					"tls": []any{map[string]any{"secretName": "vigil-web-tls", "hosts": []any{"vigil.example.com"}}},
				}},
			},
			caps: minimumCaps,
			check: func(t *testing.T, r *rendered) {
				if len(r.serviceMonitors) != 2 {
					t.Fatalf("want ServiceMonitors for backend and sensor, got %d", len(r.serviceMonitors))
				}
				for _, sm := range r.serviceMonitors {
					if sm.Metadata.Labels["release"] != "prometheus" || sm.Spec.Endpoints[0].Path != "/metrics" {
						t.Errorf("ServiceMonitor %s: %+v", sm.Metadata.Name, sm)
					}
				}
				if len(r.ingresses) != 1 || *r.ingresses[0].Spec.IngressClassName != "nginx" {
					t.Fatal("no Ingress")
				}
				if port := r.ingresses[0].Spec.Rules[0].HTTP.Paths[0].Backend.Service.Port.Name; port != "http" {
					t.Errorf("Ingress should route to the HTTP port, not %q", port)
				}
				ds, _ := r.sensor(t)
				if ds.Spec.Template.Spec.PriorityClassName != "system-node-critical" {
					t.Error("priorityClassName not set")
				}
			},
		},
		{
			name:   "existing token and TLS Secrets are used and nothing is generated",
			golden: "existing-secrets.yaml",
			values: map[string]any{
				"tokens": map[string]any{"existingSecret": "user-vigil-tokens"},
				"tls":    map[string]any{"existingSecret": "user-vigil-tls"},
			},
			caps: minimumCaps,
			check: func(t *testing.T, r *rendered) {
				if len(r.secrets) != 0 {
					t.Errorf("chart rendered %d Secrets, want none", len(r.secrets))
				}
				_, sensor := r.sensor(t)
				if e := envVar(sensor, "VIGIL_SENSOR_TOKEN"); e.ValueFrom.SecretKeyRef.Name != "user-vigil-tokens" {
					t.Errorf("sensor token from %s", e.ValueFrom.SecretKeyRef.Name)
				}
				d, _ := r.backend(t)
				if v := volume(&d.Spec.Template.Spec, "tls"); v.Secret.SecretName != "user-vigil-tls" {
					t.Errorf("backend TLS from %s", v.Secret.SecretName)
				}
			},
		},
		{
			name:   "a custom BTF file and an emptyDir spool replace the host BTF directory and spool path",
			golden: "btf.yaml",
			values: map[string]any{"sensor": map[string]any{
				"btfPath": "/var/lib/vigil/btf/vmlinux",
				"spool":   map[string]any{"hostPath": "", "maxBytes": 1073741824},
			}},
			caps: minimumCaps,
			check: func(t *testing.T, r *rendered) {
				ds, sensor := r.sensor(t)
				if v, _ := flagValue(sensor.Args, "btf"); v != "/var/lib/vigil/btf/vmlinux" {
					t.Errorf("--btf = %q", v)
				}
				if v, _ := flagValue(sensor.Args, "spool-max-bytes"); v != "1073741824" {
					t.Errorf("--spool-max-bytes = %q", v)
				}
				if m := mountAt(sensor, "/var/lib/vigil/btf"); m == nil || !m.ReadOnly {
					t.Error("BTF directory not mounted read-only")
				}
				if mountAt(sensor, "/sys/kernel/btf") != nil {
					t.Error("/sys/kernel/btf mounted although the kernel has none")
				}
				spool := volume(&ds.Spec.Template.Spec, "spool")
				if spool.EmptyDir == nil || spool.EmptyDir.SizeLimit.Value() != 1073741824 {
					t.Errorf("spool = %+v", spool.VolumeSource)
				}
			},
		},
		{
			name:   "network policies let the sensors reach gRPC and keep everything else to the ports that serve it",
			golden: "networkpolicy.yaml",
			values: map[string]any{"networkPolicy": map[string]any{
				"enabled":  true,
				"grpcFrom": []any{map[string]any{"ipBlock": map[string]any{"cidr": "10.20.0.0/16"}}},
				"httpFrom": []any{map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "monitoring"}}}},
			}},
			caps: minimumCaps,
			check: func(t *testing.T, r *rendered) {
				if len(r.networkPolicies) != 2 {
					t.Fatalf("want policies for backend and sensor, got %d", len(r.networkPolicies))
				}
				ds, _ := r.sensor(t)
				d, _ := r.backend(t)
				var backendPolicy *networkingv1.NetworkPolicy
				for _, np := range r.networkPolicies {
					if selects(np.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels) {
						backendPolicy = np
					}
				}
				if backendPolicy == nil {
					t.Fatal("no policy selects the backend pods")
				}
				var grpcFromSensors, grpcFromBlock, httpRestricted bool
				for _, rule := range backendPolicy.Spec.Ingress {
					port := rule.Ports[0].Port.String()
					for _, peer := range rule.From {
						if port == "grpc" && peer.PodSelector != nil && selects(peer.PodSelector.MatchLabels, ds.Spec.Template.Labels) {
							grpcFromSensors = true
						}
						if port == "grpc" && peer.IPBlock != nil && peer.IPBlock.CIDR == "10.20.0.0/16" {
							grpcFromBlock = true
						}
						if port == "http" && peer.NamespaceSelector != nil {
							httpRestricted = true
						}
					}
				}
				if !grpcFromSensors || !grpcFromBlock || !httpRestricted {
					t.Errorf("backend policy: gRPC from sensors %v, from the ipBlock %v, HTTP restricted %v", grpcFromSensors, grpcFromBlock, httpRestricted)
				}
			},
		},
		{
			name:   "a backend-only install renders no sensor",
			golden: "backend-only.yaml",
			values: map[string]any{"sensor": map[string]any{"enabled": false}, "serviceMonitor": map[string]any{"enabled": true}},
			check: func(t *testing.T, r *rendered) {
				if len(r.daemonSets) != 0 {
					t.Error("sensor rendered although disabled")
				}
				if len(r.serviceMonitors) != 1 {
					t.Errorf("want only the backend ServiceMonitor, got %d", len(r.serviceMonitors))
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := render(t, tt.values)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			r := decode(t, files)
			checkInvariants(t, r, tt.caps)
			if tt.check != nil {
				tt.check(t, r)
			}
			compareGolden(t, tt.golden, redactSecrets(r.manifest))
		})
	}
}

// checkGeneratedTLS verifies that the certificate the chart generates is
// one the sensor will accept for the address it dials.
func checkGeneratedTLS(t *testing.T, r *rendered, sensor, backend *corev1.Container) {
	t.Helper()
	s := r.secret("vigil-tls")
	if s == nil {
		t.Fatal("no generated TLS Secret")
	}
	if s.Type != corev1.SecretTypeTLS {
		t.Errorf("TLS Secret type = %s", s.Type)
	}
	if v, _ := flagValue(sensor.Args, "ca"); v != "/etc/vigil/tls/ca.crt" || mountAt(sensor, "/etc/vigil/tls") == nil {
		t.Errorf("sensor: --ca = %q, mount %v", v, mountAt(sensor, "/etc/vigil/tls"))
	}
	if v, _ := flagValue(backend.Args, "tls-cert"); v != "/etc/vigil/tls/tls.crt" {
		t.Errorf("backend: --tls-cert = %q", v)
	}
	if v, _ := flagValue(backend.Args, "tls-key"); v != "/etc/vigil/tls/tls.key" {
		t.Errorf("backend: --tls-key = %q", v)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.Data["ca.crt"]) {
		t.Fatal("ca.crt is not PEM")
	}
	block, _ := pem.Decode(s.Data["tls.crt"])
	if block == nil {
		t.Fatal("tls.crt is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := flagValue(sensor.Args, "backend")
	host := addr[:strings.LastIndex(addr, ":")]
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: host, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("sensor would reject the backend certificate for %s: %v", host, err)
	}
}

func TestSchemaAndTemplatesRejectBadValues(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		want   string
	}{
		{
			name:   "a string where a boolean belongs is rejected",
			values: map[string]any{"tls": map[string]any{"insecure": "yes"}},
			want:   "insecure",
		},
		{
			name:   "an unknown key such as sensor.privileged is rejected",
			values: map[string]any{"sensor": map[string]any{"privileged": true}},
			want:   "privileged",
		},
		{
			name:   "an unknown store type is rejected",
			values: map[string]any{"backend": map[string]any{"store": map[string]any{"type": "mysql"}}},
			want:   "/backend/store/type",
		},
		{
			name:   "a port out of range is rejected",
			values: map[string]any{"backend": map[string]any{"grpcPort": 70000}},
			want:   "grpcPort",
		},
		{
			name:   "a rule file name with a slash is rejected",
			values: map[string]any{"rules": map[string]any{"../etc/passwd.yaml": "x"}},
			want:   "invalid propertyName '../etc/passwd.yaml'",
		},
		{
			name:   "a rule file may not take the collection policy's name",
			values: map[string]any{"rules": map[string]any{"collection.yaml": "x"}},
			want:   "invalid propertyName 'collection.yaml'",
		},
		{
			name:   "a short hand-written token is rejected",
			values: map[string]any{"tokens": map[string]any{"sensorToken": "abc"}},
			want:   "sensorToken",
		},
		{
			name:   "a misspelt collection policy key is rejected",
			values: map[string]any{"collection": map[string]any{"enabledEvents": []any{"exec"}}},
			want:   "enabledEvents",
		},
		{
			name:   "two backends on SQLite are refused",
			values: map[string]any{"backend": map[string]any{"replicas": 2}},
			want:   "SQLite allows one writer",
		},
		{
			name:   "PostgreSQL without a URL or Secret is refused",
			values: map[string]any{"backend": map[string]any{"store": map[string]any{"type": "postgres"}}},
			want:   "needs backend.store.postgres.existingSecret",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := render(t, tt.values)
			if err == nil {
				t.Fatal("rendered without error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// TestDefaultValuesValidateAgainstTheSchema keeps values.yaml and the schema
// honest with each other: the defaults alone must validate.
func TestDefaultValuesValidateAgainstTheSchema(t *testing.T) {
	ch := loadChart(t)
	if len(ch.Schema) == 0 {
		t.Fatal("chart has no values.schema.json")
	}
	if err := chartutil.ValidateAgainstSchema(ch, ch.Values); err != nil {
		t.Fatalf("values.yaml fails its own schema: %v", err)
	}
}

var secretValue = regexp.MustCompile(`(?m)^(  [-._a-zA-Z0-9]+): "[^"]*"$`)

// redactSecrets replaces Secret data in the golden text: generated tokens
// and certificates differ on every render, and their content is checked by
// decoding instead.
func redactSecrets(manifest string) string {
	docs := strings.Split(manifest, "\n---\n")
	for i, doc := range docs {
		if strings.Contains(doc, "\nkind: Secret\n") {
			docs[i] = secretValue.ReplaceAllString(doc, `$1: "<redacted>"`)
		}
	}
	return strings.Join(docs, "\n---\n")
}

func compareGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test ./charts/ -update): %v", err)
	}
	if string(want) != got {
		t.Errorf("rendered manifests differ from %s (run go test ./charts/ -update and review the diff):\n%s", path, firstDiff(string(want), got))
	}
}

func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d:\n  want %q\n  got  %q", i+1, w, g)
		}
	}
	return ""
}

// TestHelmLintFindsNothing runs the checks of `helm lint --strict` (Chart.yaml,
// values, schema, template rendering, YAML validity, Kubernetes object
// names and API versions) for the default values and for a non-default set.
func TestHelmLintFindsNothing(t *testing.T) {
	kube, err := chartutil.ParseKubeVersion("v1.31.0")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		values map[string]any
	}{
		{name: "the chart lints clean with its defaults"},
		{
			name: "the chart lints clean with PostgreSQL, an ingress and ServiceMonitors",
			values: map[string]any{
				"backend": map[string]any{
					"replicas": 2,
					"store":    map[string]any{"type": "postgres", "postgres": map[string]any{"url": "postgres://v:p@db/vigil"}},
					"ingress":  map[string]any{"enabled": true},
				},
				"serviceMonitor": map[string]any{"enabled": true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			result := lint.AllWithKubeVersion("vigil", tt.values, namespace, kube)
			for _, m := range result.Messages {
				// --strict fails on warnings too; information (such as a
				// missing icon) is only advice.
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m.Error())
				} else {
					t.Logf("helm lint: %s", m.Error())
				}
			}
		})
	}
}
