package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// ecsCapabilities are the values ECS accepts in linuxParameters.capabilities
// (KernelCapabilities in the ECS API reference, as documented in
// aws-sdk-go-v2/service/ecs/types). BPF and PERFMON are not among them, which
// is why the ECS sensor takes SYS_ADMIN.
var ecsCapabilities = []string{
	"ALL", "AUDIT_CONTROL", "AUDIT_WRITE", "BLOCK_SUSPEND", "CHOWN", "DAC_OVERRIDE",
	"DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER", "KILL", "LEASE",
	"LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN",
	"NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP",
	"SETUID", "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE", "SYS_NICE",
	"SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME",
	"SYS_TTY_CONFIG", "SYSLOG", "WAKE_ALARM",
}

// ecsSensorCaps is the sensor's capability set on ECS on EC2.
var ecsSensorCaps = []string{"DAC_READ_SEARCH", "SYS_ADMIN", "SYS_PTRACE", "SYS_RESOURCE"}

// placeholders are the ${NAME}s the task definition files leave for
// envsubst, with values shaped like the real ones.
var placeholders = map[string]string{
	"AWS_REGION":          "eu-west-1",
	"EXECUTION_ROLE_ARN":  "arn:aws:iam::111122223333:role/vigil-ecs-execution",
	"VIGIL_VERSION":       "0.1.0",
	"VIGIL_BACKEND":       "backend.vigil.local:7443",
	"SENSOR_TOKEN_ARN":    "arn:aws:secretsmanager:eu-west-1:111122223333:secret:vigil/sensor-token-AbCdEf",
	"API_TOKEN_ARN":       "arn:aws:secretsmanager:eu-west-1:111122223333:secret:vigil/api-token-AbCdEf",
	"STORE_URL_ARN":       "arn:aws:secretsmanager:eu-west-1:111122223333:secret:vigil/store-url-AbCdEf",
	"TLS_CA_ARN":          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:vigil/tls-ca-AbCdEf",
	"TLS_CERT_ARN":        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:vigil/tls-cert-AbCdEf",
	"TLS_KEY_ARN":         "arn:aws:secretsmanager:eu-west-1:111122223333:secret:vigil/tls-key-AbCdEf",
	"RULES_PARAMETER_ARN": "arn:aws:ssm:eu-west-1:111122223333:parameter/vigil/rules/50-custom.yaml",
}

var placeholder = regexp.MustCompile(`\$\{([A-Z_]+)\}`)

// expandPlaceholders does what the documented envsubst step does, and fails
// on a placeholder the documentation does not list. envsubst replaces every
// $NAME and ${NAME} it sees, so no other "$" may appear in the files: a
// shell variable in an init container's script would be emptied.
func expandPlaceholders(t *testing.T, text string) string {
	t.Helper()
	out := placeholder.ReplaceAllStringFunc(text, func(m string) string {
		name := placeholder.FindStringSubmatch(m)[1]
		v, ok := placeholders[name]
		if !ok {
			t.Errorf("undocumented placeholder ${%s}", name)
		}
		return v
	})
	if i := strings.Index(out, "$"); i >= 0 {
		t.Errorf("a %q outside the placeholders would be replaced by envsubst: ...%s...", "$", out[max(0, i-30):min(len(out), i+30)])
	}
	return out
}

// decodeTaskDefinition decodes JSON into the SDK's input type, refusing any
// field the ECS API does not have.
func decodeTaskDefinition(t *testing.T, data []byte) *ecs.RegisterTaskDefinitionInput {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	in := &ecs.RegisterTaskDefinitionInput{}
	if err := dec.Decode(in); err != nil {
		t.Fatalf("decode into ecs.RegisterTaskDefinitionInput: %v", err)
	}
	return in
}

// registerThroughSDK sends the input through the real SDK client (its
// parameter validation and JSON serializer) to a local endpoint and returns
// the request body the ECS API would have received.
func registerThroughSDK(t *testing.T, in *ecs.RegisterTaskDefinitionInput) []byte {
	t.Helper()
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("X-Amz-Target"); got != "AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition" {
			t.Errorf("X-Amz-Target = %q", got)
		}
		body, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		io.WriteString(w, `{"taskDefinition":{"family":"`+aws.ToString(in.Family)+`","revision":1,"status":"ACTIVE"}}`)
	}))
	defer srv.Close()
	client := ecs.New(ecs.Options{
		Region:           "eu-west-1",
		BaseEndpoint:     aws.String(srv.URL),
		Credentials:      aws.AnonymousCredentials{},
		RetryMaxAttempts: 1,
	})
	out, err := client.RegisterTaskDefinition(context.Background(), in)
	if err != nil {
		t.Fatalf("RegisterTaskDefinition through the SDK: %v", err)
	}
	if out.TaskDefinition == nil || aws.ToString(out.TaskDefinition.Family) != aws.ToString(in.Family) {
		t.Fatalf("unexpected response %+v", out.TaskDefinition)
	}
	return body
}

func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(va, vb)
}

func container(td *ecs.RegisterTaskDefinitionInput, name string) *types.ContainerDefinition {
	for i := range td.ContainerDefinitions {
		if aws.ToString(td.ContainerDefinitions[i].Name) == name {
			return &td.ContainerDefinitions[i]
		}
	}
	return nil
}

func commandFlag(c *types.ContainerDefinition, name string) (string, bool) {
	for _, a := range c.Command {
		if a == "--"+name {
			return "", true
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func hasSecret(c *types.ContainerDefinition, name string) bool {
	return slices.ContainsFunc(c.Secrets, func(s types.Secret) bool { return aws.ToString(s.Name) == name })
}

func mountsOf(c *types.ContainerDefinition) map[string]types.MountPoint {
	m := map[string]types.MountPoint{}
	for _, mp := range c.MountPoints {
		m[aws.ToString(mp.ContainerPath)] = mp
	}
	return m
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

// checkTaskDefinitionRules checks what the ECS API would reject at
// registration or at task start, independent of which task it is.
func checkTaskDefinitionRules(t *testing.T, td *ecs.RegisterTaskDefinitionInput) {
	t.Helper()
	if !slices.Contains(types.NetworkMode("").Values(), td.NetworkMode) {
		t.Errorf("networkMode %q is not an ECS value", td.NetworkMode)
	}
	if td.PidMode != "" && !slices.Contains(types.PidMode("").Values(), td.PidMode) {
		t.Errorf("pidMode %q is not an ECS value", td.PidMode)
	}
	fargate := slices.Contains(td.RequiresCompatibilities, types.CompatibilityFargate)
	for _, c := range td.RequiresCompatibilities {
		if !slices.Contains(types.Compatibility("").Values(), c) {
			t.Errorf("compatibility %q is not an ECS value", c)
		}
	}
	if fargate && (td.Cpu == nil || td.Memory == nil || td.NetworkMode != types.NetworkModeAwsvpc) {
		t.Error("Fargate needs task-level cpu and memory and awsvpc networking")
	}
	volumes := map[string]types.Volume{}
	for _, v := range td.Volumes {
		volumes[aws.ToString(v.Name)] = v
		if fargate && v.Host != nil && v.Host.SourcePath != nil {
			t.Errorf("volume %s: Fargate allows no host paths", aws.ToString(v.Name))
		}
	}
	names := map[string]bool{}
	essential := false
	for _, c := range td.ContainerDefinitions {
		name := aws.ToString(c.Name)
		names[name] = true
		if c.Essential == nil || *c.Essential {
			essential = true
		}
		if td.Memory == nil && c.Memory == nil && c.MemoryReservation == nil {
			t.Errorf("%s: without task memory each container needs memory or memoryReservation", name)
		}
		if c.Privileged != nil && *c.Privileged {
			t.Errorf("%s: privileged", name)
		}
		for _, mp := range c.MountPoints {
			if _, ok := volumes[aws.ToString(mp.SourceVolume)]; !ok {
				t.Errorf("%s: mount of undeclared volume %s", name, aws.ToString(mp.SourceVolume))
			}
		}
		if lp := c.LinuxParameters; lp != nil && lp.Capabilities != nil {
			for _, capName := range append(slices.Clone(lp.Capabilities.Add), lp.Capabilities.Drop...) {
				if !slices.Contains(ecsCapabilities, capName) {
					t.Errorf("%s: capability %s is not one ECS accepts", name, capName)
				}
			}
			if fargate && len(lp.Capabilities.Add) > 0 && !slices.Equal(lp.Capabilities.Add, []string{"SYS_PTRACE"}) {
				t.Errorf("%s: Fargate allows adding only SYS_PTRACE, got %v", name, lp.Capabilities.Add)
			}
		}
		if lc := c.LogConfiguration; lc == nil || lc.LogDriver != types.LogDriverAwslogs {
			t.Errorf("%s: logs should go to awslogs", name)
		} else {
			for _, k := range []string{"awslogs-group", "awslogs-region", "awslogs-stream-prefix"} {
				if lc.Options[k] == "" {
					t.Errorf("%s: awslogs option %s missing", name, k)
				}
			}
		}
		for _, env := range c.Environment {
			if strings.Contains(aws.ToString(env.Name), "TOKEN") {
				t.Errorf("%s: %s is a plain environment value; tokens belong in secrets", name, aws.ToString(env.Name))
			}
		}
	}
	for _, c := range td.ContainerDefinitions {
		for _, d := range c.DependsOn {
			if !names[aws.ToString(d.ContainerName)] {
				t.Errorf("%s: depends on unknown container %s", aws.ToString(c.Name), aws.ToString(d.ContainerName))
			}
			if !slices.Contains(types.ContainerCondition("").Values(), d.Condition) {
				t.Errorf("%s: dependsOn condition %q", aws.ToString(c.Name), d.Condition)
			}
		}
	}
	if !essential {
		t.Error("no essential container")
	}
}

// checkEC2Sensor is what the sensor needs as an ECS daemon on EC2, whether
// the task definition comes from the JSON file or the CloudFormation template.
func checkEC2Sensor(t *testing.T, td *ecs.RegisterTaskDefinitionInput) {
	t.Helper()
	if td.PidMode != types.PidModeHost {
		t.Errorf("pidMode = %q, want host so host pids and /proc are the node's", td.PidMode)
	}
	if td.NetworkMode != types.NetworkModeHost {
		t.Errorf("networkMode = %q, want host so the ECS agent on localhost:51678 is reachable", td.NetworkMode)
	}
	if !slices.Equal(td.RequiresCompatibilities, []types.Compatibility{types.CompatibilityEc2}) {
		t.Errorf("requiresCompatibilities = %v, want EC2 only", td.RequiresCompatibilities)
	}
	c := container(td, "sensor")
	if c == nil {
		t.Fatal("no sensor container")
	}
	if c.Privileged == nil || *c.Privileged {
		t.Error("sensor: privileged must be explicitly false")
	}
	caps := c.LinuxParameters.Capabilities
	if !slices.Equal(caps.Drop, []string{"ALL"}) {
		t.Errorf("sensor: drop = %v, want [ALL]", caps.Drop)
	}
	if got := sortedCopy(caps.Add); !slices.Equal(got, ecsSensorCaps) {
		t.Errorf("sensor: capabilities add = %v, want exactly %v", got, ecsSensorCaps)
	}
	want := map[string]struct {
		host     string
		readOnly bool
	}{
		"/sys/kernel/btf":                 {"/sys/kernel/btf", true},
		"/sys/kernel/tracing":             {"/sys/kernel/tracing", true},
		"/sys/fs/bpf":                     {"/sys/fs/bpf", false},
		"/host/proc":                      {"/proc", true},
		"/sys/fs/cgroup":                  {"/sys/fs/cgroup", true},
		"/run/containerd/containerd.sock": {"/run/containerd/containerd.sock", true},
		"/var/lib/vigil/spool":            {"/var/lib/vigil/spool", false},
	}
	mounts := mountsOf(c)
	for path, w := range want {
		mp, ok := mounts[path]
		if !ok {
			t.Errorf("sensor: nothing mounted at %s", path)
			continue
		}
		if aws.ToBool(mp.ReadOnly) != w.readOnly {
			t.Errorf("sensor: %s readOnly = %v, want %v", path, aws.ToBool(mp.ReadOnly), w.readOnly)
		}
		var host string
		for _, v := range td.Volumes {
			if aws.ToString(v.Name) == aws.ToString(mp.SourceVolume) && v.Host != nil {
				host = aws.ToString(v.Host.SourcePath)
			}
		}
		if host != w.host {
			t.Errorf("sensor: %s comes from host path %q, want %q", path, host, w.host)
		}
	}
	for _, v := range td.Volumes {
		if v.Host != nil && strings.Contains(aws.ToString(v.Host.SourcePath), "docker.sock") {
			t.Error("sensor: the Docker socket is not needed and grants root on the host")
		}
	}
	for _, f := range []string{"backend", "ca", "spool-dir", "metrics-listen"} {
		if _, ok := commandFlag(c, f); !ok {
			t.Errorf("sensor: no --%s", f)
		}
	}
	if ca, _ := commandFlag(c, "ca"); !strings.HasPrefix(ca, aws.ToString(mountsOf(c)["/etc/vigil/tls"].ContainerPath)+"/") {
		t.Errorf("sensor: --ca %s is not on the TLS volume", ca)
	}
	if !hasSecret(c, "VIGIL_SENSOR_TOKEN") {
		t.Error("sensor: VIGIL_SENSOR_TOKEN should come from a secret")
	}
}

func checkBackend(t *testing.T, td *ecs.RegisterTaskDefinitionInput) {
	t.Helper()
	if td.NetworkMode != types.NetworkModeAwsvpc {
		t.Errorf("networkMode = %q, want awsvpc", td.NetworkMode)
	}
	c := container(td, "backend")
	if c == nil {
		t.Fatal("no backend container")
	}
	ports := map[int32]bool{}
	for _, p := range c.PortMappings {
		ports[aws.ToInt32(p.ContainerPort)] = true
	}
	if !ports[7443] || !ports[8080] {
		t.Errorf("backend: port mappings %v lack gRPC 7443 or HTTP 8080", ports)
	}
	for _, s := range []string{"VIGIL_SENSOR_TOKEN", "VIGIL_API_TOKEN"} {
		if !hasSecret(c, s) {
			t.Errorf("backend: %s not from a secret", s)
		}
	}
	rulesDir, ok := commandFlag(c, "rules-dir")
	if !ok {
		t.Fatal("backend: no --rules-dir")
	}
	mp, ok := mountsOf(c)[rulesDir]
	if !ok {
		t.Fatalf("backend: nothing mounted at --rules-dir %s", rulesDir)
	}
	// The rules reach the volume through the init container, which must
	// finish first and write into that same volume.
	cfg := container(td, "config")
	if cfg == nil || !hasSecret(cfg, "VIGIL_RULES") {
		t.Fatal("no config init container reading VIGIL_RULES")
	}
	if !slices.ContainsFunc(c.DependsOn, func(d types.ContainerDependency) bool {
		return aws.ToString(d.ContainerName) == "config" && d.Condition == types.ContainerConditionSuccess
	}) {
		t.Error("backend does not wait for the config container to succeed")
	}
	if cm, ok := mountsOf(cfg)[rulesDir]; !ok || aws.ToString(cm.SourceVolume) != aws.ToString(mp.SourceVolume) {
		t.Error("config container does not write into the rules volume")
	}
	if !strings.Contains(cfg.Command[0], "> "+rulesDir+"/") {
		t.Errorf("config container writes rules elsewhere than %s: %s", rulesDir, cfg.Command[0])
	}
	for _, f := range []string{"tls-cert", "tls-key"} {
		if _, ok := commandFlag(c, f); !ok {
			t.Errorf("backend: no --%s", f)
		}
	}
	if _, ok := commandFlag(c, "insecure"); ok {
		t.Error("backend: --insecure in a shipped task definition")
	}
	if u := aws.ToString(c.User); u == "" || strings.HasPrefix(u, "0") || u == "root" {
		t.Errorf("backend: runs as %q, want a non-root user", u)
	}
}

func TestTaskDefinitionsAreValidECSInput(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		check func(t *testing.T, td *ecs.RegisterTaskDefinitionInput)
	}{
		{
			name:  "the EC2 daemon sensor shares the host's pids and network with the minimum capabilities",
			file:  "sensor-daemon.json",
			check: checkEC2Sensor,
		},
		{
			name: "the backend runs in awsvpc with its tokens from secrets and rules written to --rules-dir",
			file: "backend.json",
			check: func(t *testing.T, td *ecs.RegisterTaskDefinitionInput) {
				checkBackend(t, td)
				c := container(td, "backend")
				if !hasSecret(c, "VIGIL_STORE") {
					t.Error("backend: the store URL carries a password and should be a secret")
				}
			},
		},
		{
			name: "the Fargate sidecar runs the procfs mode with SYS_PTRACE only and the task's pid namespace",
			file: "fargate-sidecar.json",
			check: func(t *testing.T, td *ecs.RegisterTaskDefinitionInput) {
				if td.PidMode != types.PidModeTask {
					t.Errorf("pidMode = %q, want task (the only value Fargate allows)", td.PidMode)
				}
				if !slices.Equal(td.RequiresCompatibilities, []types.Compatibility{types.CompatibilityFargate}) {
					t.Errorf("requiresCompatibilities = %v", td.RequiresCompatibilities)
				}
				c := container(td, "vigil-sensor")
				if c == nil {
					t.Fatal("no vigil-sensor container")
				}
				if mode, _ := commandFlag(c, "mode"); mode != "procfs" {
					t.Errorf("--mode = %q, want procfs (Fargate has no eBPF)", mode)
				}
				if !slices.Equal(c.LinuxParameters.Capabilities.Add, []string{"SYS_PTRACE"}) {
					t.Errorf("capabilities add = %v, want [SYS_PTRACE]", c.LinuxParameters.Capabilities.Add)
				}
				if aws.ToBool(c.Essential) {
					t.Error("the sidecar should not take the application down when it stops")
				}
				app := container(td, "app")
				if !slices.ContainsFunc(app.DependsOn, func(d types.ContainerDependency) bool {
					return aws.ToString(d.ContainerName) == "vigil-sensor"
				}) {
					t.Error("the app should start after the sensor so its first exec is seen")
				}
				if !hasSecret(c, "VIGIL_SENSOR_TOKEN") {
					t.Error("sidecar: VIGIL_SENSOR_TOKEN should come from a secret")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("ecs", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			data := []byte(expandPlaceholders(t, string(raw)))
			td := decodeTaskDefinition(t, data)
			checkTaskDefinitionRules(t, td)
			tt.check(t, td)
			// Field names must be the API's own: JSON decoding in Go
			// ignores case, the ECS API does not.
			sent := registerThroughSDK(t, td)
			if !sameJSON(t, sent, data) {
				t.Errorf("the SDK would send something other than the file says:\nfile: %s\nsent: %s", data, sent)
			}
		})
	}
}

// TestEnvsubstFillsTheTaskDefinitions runs the documented step itself:
// envsubst with the placeholders in the environment must give exactly what
// the other tests decode.
func TestEnvsubstFillsTheTaskDefinitions(t *testing.T) {
	envsubst, err := exec.LookPath("envsubst")
	if err != nil {
		t.Skip("envsubst is not installed (Debian package gettext-base)")
	}
	for _, file := range []string{"sensor-daemon.json", "backend.json", "fargate-sidecar.json"} {
		t.Run(file+" comes out of envsubst as the tests expect", func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("ecs", file))
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(envsubst)
			cmd.Stdin = bytes.NewReader(raw)
			cmd.Env = []string{"PATH=/usr/bin:/bin"}
			for k, v := range placeholders {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			got, err := cmd.Output()
			if err != nil {
				t.Fatalf("envsubst: %v", err)
			}
			if want := expandPlaceholders(t, string(raw)); string(got) != want {
				t.Errorf("envsubst output differs from the expansion the tests check")
			}
		})
	}
}
