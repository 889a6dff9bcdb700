package charts_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"

	"github.com/vigilsec/vigil/internal/testutil"
)

// configMapDir lays out a ConfigMap volume the way the kubelet's atomic
// writer does: the files in a timestamped directory, a ..data symlink to it,
// and one symlink per key through ..data. update swaps in new contents the
// same way, so a watcher sees what it would see in a pod.
type configMapDir struct {
	t    *testing.T
	root string
	keys []string
	seq  int
}

func newConfigMapDir(t *testing.T, data map[string]string) *configMapDir {
	d := &configMapDir{t: t, root: t.TempDir()}
	os.Chmod(d.root, 0o755)
	d.update(data)
	return d
}

func (d *configMapDir) update(data map[string]string) {
	t := d.t
	d.seq++
	ts := fmt.Sprintf("..%s_%d", time.Now().UTC().Format("2006_01_02_15_04_05"), d.seq)
	dir := filepath.Join(d.root, ts)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for k, v := range data {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := os.Readlink(filepath.Join(d.root, "..data"))
	tmp := filepath.Join(d.root, "..data_tmp")
	os.Remove(tmp)
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(d.root, "..data")); err != nil {
		t.Fatal(err)
	}
	for k := range data {
		link := filepath.Join(d.root, k)
		if _, err := os.Lstat(link); err != nil {
			if err := os.Symlink(filepath.Join("..data", k), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, k := range d.keys {
		if _, ok := data[k]; !ok {
			os.Remove(filepath.Join(d.root, k))
		}
	}
	d.keys = d.keys[:0]
	for k := range data {
		d.keys = append(d.keys, k)
	}
	if old != "" {
		os.RemoveAll(filepath.Join(d.root, old))
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ruleNames asks the running backend which rules it has loaded.
func ruleNames(t *testing.T, base, token string) (map[string]bool, int) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/api/v1/rules", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0
	}
	defer resp.Body.Close()
	var out struct {
		Rules []struct {
			Name string `json:"name"`
		} `json:"rules"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	names := map[string]bool{}
	for _, r := range out.Rules {
		names[r.Name] = true
	}
	return names, resp.StatusCode
}

func waitFor(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

const (
	ruleOne = "- rule: Chart test rule one\n  desc: first\n  condition: spawned_process and proc.name = chart-test-one\n  output: one (%proc.cmdline)\n  priority: WARNING\n"
	ruleTwo = "- rule: Chart test rule two\n  desc: second\n  condition: spawned_process and proc.name = chart-test-two\n  output: two (%proc.cmdline)\n  priority: WARNING\n"
)

// TestBackendRunsAsTheChartDeploysIt starts the real backend in a real
// container (runc) exactly as the chart's Deployment describes it: its
// arguments, the tokens from the chart's Secret, the generated certificate,
// the rules ConfigMap laid out as the kubelet does, a non-root user with no
// capabilities, a read-only root and the RuntimeDefault seccomp profile.
// Then it checks what the chart promises: the probes' /healthz answers, the
// API wants the token from the Secret, a sensor trusting the generated CA
// can open TLS to the address it dials, /metrics serves the ServiceMonitor,
// and a ConfigMap update reaches the backend without a restart.
func TestBackendRunsAsTheChartDeploysIt(t *testing.T) {
	testutil.RequirePrivileged(t)
	runc, err := exec.LookPath("runc")
	if err != nil {
		testutil.SkipOrFail(t, "runc not installed (apt-get install runc)")
	}
	if _, err := os.Stat("../cmd/backend"); err != nil {
		testutil.SkipOrFail(t, "cmd/backend is not in the tree yet")
	}
	grpcPort, httpPort := freePort(t), freePort(t)
	files, err := render(t, map[string]any{
		"backend": map[string]any{"grpcPort": grpcPort, "httpPort": httpPort},
		"rules":   map[string]any{"50-chart-test.yaml": ruleOne},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := decode(t, files)
	d, c := r.backend(t)
	_, sensor := r.sensor(t)
	spec := d.Spec.Template.Spec
	tokens := r.secret("vigil-tokens")
	tlsSecret := r.secret("vigil-tls")

	bin := filepath.Join(t.TempDir(), "vigil-backend")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/backend")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build backend: %v\n%s", err, out)
	}

	// The pod's volumes, as the kubelet would provide them.
	var rules *configMapDir
	volumeDirs := map[string]string{}
	for _, v := range spec.Volumes {
		dir := t.TempDir()
		os.Chmod(dir, 0o755)
		switch {
		case v.ConfigMap != nil:
			cm := r.configMap(v.ConfigMap.Name)
			rules = newConfigMapDir(t, cm.Data)
			dir = rules.root
		case v.Secret != nil:
			s := r.secret(v.Secret.SecretName)
			for _, item := range v.Secret.Items {
				if err := os.WriteFile(filepath.Join(dir, item.Path), s.Data[item.Key], 0o644); err != nil {
					t.Fatal(err)
				}
			}
		case v.PersistentVolumeClaim != nil:
			// fsGroup: the volume is made group-writable for the pod's group.
			gid := int(*spec.SecurityContext.FSGroup)
			os.Chown(dir, 0, gid)
			os.Chmod(dir, 0o2775)
		case v.EmptyDir != nil:
			os.Chmod(dir, 0o1777)
		}
		volumeDirs[v.Name] = dir
	}
	if rules == nil {
		t.Fatal("no ConfigMap volume")
	}

	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	for _, dir := range []string{"usr/local/bin", "proc", "dev", "sys", "etc"} {
		os.MkdirAll(filepath.Join(rootfs, dir), 0o755)
	}
	data, _ := os.ReadFile(bin)
	os.WriteFile(filepath.Join(rootfs, "usr/local/bin/vigil-backend"), data, 0o755)
	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
	}
	for _, m := range c.VolumeMounts {
		os.MkdirAll(filepath.Join(rootfs, m.MountPath), 0o755)
		opt := "rw"
		if m.ReadOnly {
			opt = "ro"
		}
		mounts = append(mounts, specs.Mount{Destination: m.MountPath, Type: "bind", Source: volumeDirs[m.Name], Options: []string{"rbind", opt}})
	}
	env := []string{"PATH=/usr/local/bin"}
	for _, e := range c.Env {
		ref := e.ValueFrom.SecretKeyRef
		env = append(env, e.Name+"="+string(r.secret(ref.Name).Data[ref.Key]))
	}
	psc, sc := spec.SecurityContext, c.SecurityContext
	if len(sc.Capabilities.Add) != 0 {
		t.Fatal("the harness models a backend without added capabilities")
	}
	oci := &specs.Spec{
		Version:  specs.Version,
		Hostname: "vigil-backend",
		Root:     &specs.Root{Path: "rootfs", Readonly: *sc.ReadOnlyRootFilesystem},
		Process: &specs.Process{
			User: specs.User{
				UID: uint32(*psc.RunAsUser), GID: uint32(*psc.RunAsGroup),
				AdditionalGids: []uint32{uint32(*psc.FSGroup)},
			},
			Args:            append([]string{"/usr/local/bin/vigil-backend"}, c.Args...),
			Env:             env,
			Cwd:             "/",
			NoNewPrivileges: !*sc.AllowPrivilegeEscalation,
			Capabilities:    &specs.LinuxCapabilities{},
		},
		Mounts: mounts,
		// The pod network is the host's here, so the test can reach the
		// ports the chart opens.
		Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
			{Type: specs.MountNamespace}, {Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
		}},
	}
	if psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault {
		oci.Linux.Seccomp = seccomp.DefaultProfile(oci)
	}
	var log bytes.Buffer
	ctr := testutil.StartBundle(t, runc, bundle, "vigil-chart-backend", oci, &log, &log)
	exited := ctr.Exited
	fail := func(format string, a ...any) {
		t.Helper()
		t.Fatalf(format+"\nbackend log:\n%s", append(a, tail(log.String(), 40))...)
	}

	base := "http://127.0.0.1:" + strconv.Itoa(httpPort)
	probe := c.ReadinessProbe.HTTPGet
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			fail("the backend exited")
		default:
		}
		resp, err := http.Get(base + probe.Path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			fail("readiness probe %s never answered 200", probe.Path)
		}
		time.Sleep(200 * time.Millisecond)
	}

	t.Run("the API wants the token from the chart's Secret", func(t *testing.T) {
		if _, code := ruleNames(t, base, ""); code != http.StatusUnauthorized {
			t.Errorf("without a token: %d, want 401", code)
		}
		names, code := ruleNames(t, base, string(tokens.Data["api-token"]))
		if code != http.StatusOK {
			t.Fatalf("with the api-token: %d", code)
		}
		if !names["Chart test rule one"] {
			t.Errorf("the rule from values.yaml is not loaded; rules: %d", len(names))
		}
	})

	t.Run("a sensor trusting the chart's CA completes TLS with the address it dials", func(t *testing.T) {
		addr, _ := flagValue(sensor.Args, "backend")
		host := addr[:strings.LastIndex(addr, ":")]
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(tlsSecret.Data["ca.crt"])
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(grpcPort),
			&tls.Config{RootCAs: pool, ServerName: host, NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatalf("TLS to the gRPC port as %s: %v", host, err)
		}
		conn.Close()
	})

	t.Run("the ServiceMonitor's /metrics path serves Prometheus metrics", func(t *testing.T) {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "vigil_") {
			t.Errorf("/metrics: %d, %d bytes, no vigil_ series", resp.StatusCode, len(body))
		}
	})

	t.Run("a ConfigMap update reaches the running backend through the ..data swap", func(t *testing.T) {
		rules.update(map[string]string{"50-chart-test.yaml": ruleTwo})
		token := string(tokens.Data["api-token"])
		waitFor(t, "the backend to load the updated rules", 60*time.Second, func() bool {
			names, _ := ruleNames(t, base, token)
			return names["Chart test rule two"] && !names["Chart test rule one"]
		})
	})

	select {
	case <-exited:
		fail("the backend exited during the test")
	default:
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
