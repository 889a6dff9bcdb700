package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vigilsec/vigil/internal/testutil"
)

// dockerDefaultCaps is the capability set Docker (and so the ECS agent)
// gives a container that asks for none.
var dockerDefaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// runInitContainer runs one of the task definition's init containers in a
// busybox container under runc, the way ECS would (entry point, command,
// secrets as environment, task volumes as empty directories), and returns
// the host directory behind each of its mount points.
func runInitContainer(t *testing.T, runc string, c *types.ContainerDefinition, secrets map[string]string) map[string]string {
	t.Helper()
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.Rename(testutil.BusyboxRootfs(t), rootfs); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=/bin"}
	for _, s := range c.Secrets {
		v, ok := secrets[aws.ToString(s.Name)]
		if !ok {
			t.Fatalf("no test value for secret %s", aws.ToString(s.Name))
		}
		env = append(env, aws.ToString(s.Name)+"="+v)
	}
	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "mode=755"}},
	}
	volumes := map[string]string{}
	for _, m := range c.MountPoints {
		dir := t.TempDir()
		// A fresh task volume is a root-owned 0755 directory.
		os.Chmod(dir, 0o755)
		volumes[aws.ToString(m.ContainerPath)] = dir
		opts := []string{"rbind", "rw"}
		if aws.ToBool(m.ReadOnly) {
			opts = []string{"rbind", "ro"}
		}
		mounts = append(mounts, specs.Mount{Destination: aws.ToString(m.ContainerPath), Type: "bind", Source: dir, Options: opts})
		os.MkdirAll(filepath.Join(rootfs, aws.ToString(m.ContainerPath)), 0o755)
	}
	spec := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: "rootfs"},
		Process: &specs.Process{
			User: specs.User{UID: 0, GID: 0},
			Args: append(append([]string{}, c.EntryPoint...), c.Command...),
			Env:  env,
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: dockerDefaultCaps, Effective: dockerDefaultCaps, Permitted: dockerDefaultCaps,
			},
		},
		Mounts: mounts,
		Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
			{Type: specs.MountNamespace}, {Type: specs.PIDNamespace}, {Type: specs.IPCNamespace},
			{Type: specs.UTSNamespace}, {Type: specs.NetworkNamespace},
		}},
	}
	data, _ := json.Marshal(spec)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("vigil-init-%d", time.Now().UnixNano())
	state := t.TempDir()
	cmd := exec.Command(runc, "--root", state, "run", "--bundle", bundle, id)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	exec.Command(runc, "--root", state, "delete", "--force", id).Run()
	if err != nil {
		t.Fatalf("init container %s failed: %v\n%s", aws.ToString(c.Name), err, out.String())
	}
	return volumes
}

type fileWant struct {
	content string      // exact content, or "" to skip
	mode    os.FileMode // permission bits, or 0 to skip
	uid     int         // owner, or -1 to skip
}

func checkFile(t *testing.T, path string, w fileWant) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Errorf("init container did not write %s: %v", path, err)
		return
	}
	if w.content != "" {
		b, _ := os.ReadFile(path)
		if string(b) != w.content {
			t.Errorf("%s = %q, want %q", path, b, w.content)
		}
	}
	if w.mode != 0 && fi.Mode().Perm()|fi.Mode()&os.ModeSticky != w.mode {
		t.Errorf("%s mode = %v, want %v", path, fi.Mode().Perm()|fi.Mode()&os.ModeSticky, w.mode)
	}
	if w.uid >= 0 {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != w.uid {
			t.Errorf("%s owner = %d, want %d", path, st.Uid, w.uid)
		}
	}
}

// TestInitContainersWriteSecretsWhereTheBinariesReadThem runs the shell
// one-liners of the ECS init containers for real, from both the JSON task
// definitions and the CloudFormation template: quoting mistakes in JSON or
// YAML folding, a wrong path, or a key the backend's user cannot read would
// only show at task start otherwise.
func TestInitContainersWriteSecretsWhereTheBinariesReadThem(t *testing.T) {
	testutil.RequirePrivileged(t)
	runc, err := exec.LookPath("runc")
	if err != nil {
		testutil.SkipOrFail(t, "runc not installed (apt-get install runc)")
	}
	// Multi-line values with quotes and a % sign, as PEM and YAML have.
	rules := "- rule: Test rule\n  desc: 100% \"quoted\" $HOME\n  condition: evt.type = execve\n"
	cert := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
	key := "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"
	ca := "-----BEGIN CERTIFICATE-----\nCAFE\n-----END CERTIFICATE-----"
	secrets := map[string]string{"VIGIL_RULES": rules, "VIGIL_TLS_CERT": cert, "VIGIL_TLS_KEY": key, "VIGIL_CA_PEM": ca}

	fromJSON := func(file string) *ecs.RegisterTaskDefinitionInput {
		return decodeTaskDefinition(t, []byte(expandPlaceholders(t, readFile(t, filepath.Join("ecs", file)))))
	}
	tpl := loadTemplate(t)
	fromCFN := func(name string) *ecs.RegisterTaskDefinitionInput {
		return taskDefinitionFromTemplate(t, tpl, name, map[string]bool{"UsePostgres": false})
	}

	checkBackendConfig := func(t *testing.T, td *ecs.RegisterTaskDefinitionInput) {
		backend := container(td, "backend")
		rulesDir, _ := commandFlag(backend, "rules-dir")
		certPath, _ := commandFlag(backend, "tls-cert")
		keyPath, _ := commandFlag(backend, "tls-key")
		vols := runInitContainer(t, runc, container(td, "config"), secrets)
		// Map the backend's paths onto the volumes the init container wrote.
		hostPath := func(p string) string {
			for _, m := range backend.MountPoints {
				cp := aws.ToString(m.ContainerPath)
				if rest, ok := strings.CutPrefix(p, cp+"/"); ok {
					return filepath.Join(vols[cp], rest)
				}
			}
			t.Fatalf("%s is on no volume of the backend", p)
			return ""
		}
		uid := 65532
		checkFile(t, hostPath(rulesDir+"/50-custom.yaml"), fileWant{content: rules + "\n", uid: uid})
		checkFile(t, hostPath(certPath), fileWant{content: cert + "\n", uid: uid})
		checkFile(t, hostPath(keyPath), fileWant{content: key + "\n", mode: 0o400, uid: uid})
		checkFile(t, vols["/var/lib/vigil"], fileWant{uid: uid})
		checkFile(t, vols["/tmp"], fileWant{mode: 0o777 | os.ModeSticky, uid: -1})
		if u := aws.ToString(backend.User); u != "65532:65532" {
			t.Errorf("backend runs as %q, but the files belong to 65532", u)
		}
	}
	checkSensorCA := func(t *testing.T, td *ecs.RegisterTaskDefinitionInput, sensorName string) {
		sensor := container(td, sensorName)
		caPath, _ := commandFlag(sensor, "ca")
		vols := runInitContainer(t, runc, container(td, "tls-ca"), secrets)
		checkFile(t, filepath.Join(vols[filepath.Dir(caPath)], filepath.Base(caPath)), fileWant{content: ca + "\n", mode: 0o444, uid: -1})
	}

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"backend.json's config container writes rules, certificate and key for the backend's user", func(t *testing.T) { checkBackendConfig(t, fromJSON("backend.json")) }},
		{"the template's backend config container does the same", func(t *testing.T) { checkBackendConfig(t, fromCFN("BackendTaskDefinition")) }},
		{"sensor-daemon.json's tls-ca container writes the CA where --ca points", func(t *testing.T) { checkSensorCA(t, fromJSON("sensor-daemon.json"), "sensor") }},
		{"the template's sensor tls-ca container does the same", func(t *testing.T) { checkSensorCA(t, fromCFN("SensorTaskDefinition"), "sensor") }},
		{"the Fargate sidecar's tls-ca container does the same", func(t *testing.T) { checkSensorCA(t, fromJSON("fargate-sidecar.json"), "vigil-sensor") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}
