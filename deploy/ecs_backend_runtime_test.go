package deploy_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vigilsec/vigil/internal/testutil"
)

// serverCert makes a CA and a server certificate for name, in PEM.
func serverCert(t *testing.T, name string) (caPEM, certPEM, keyPEM string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vigil-test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})),
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

// TestECSBackendTaskStartsFromItsInitContainer runs the CloudFormation
// template's backend task (SQLite) the way ECS would: the config init
// container writes the rules and TLS files from secrets into the task
// volumes, then the backend container starts on those volumes as its
// non-root user with no capabilities and a read-only root. The backend must
// come up, load the rules from the SSM parameter and serve TLS for the
// Cloud Map name the sensors dial.
func TestECSBackendTaskStartsFromItsInitContainer(t *testing.T) {
	testutil.RequirePrivileged(t)
	runc, err := exec.LookPath("runc")
	if err != nil {
		testutil.SkipOrFail(t, "runc not installed (apt-get install runc)")
	}
	if _, err := os.Stat("../cmd/backend"); err != nil {
		testutil.SkipOrFail(t, "cmd/backend is not in the tree yet")
	}
	td := taskDefinitionFromTemplate(t, loadTemplate(t), "BackendTaskDefinition", map[string]bool{"UsePostgres": false})
	const name = "backend.vigil.local"
	caPEM, certPEM, keyPEM := serverCert(t, name)
	rule := "- rule: ECS test rule\n  desc: from the SSM parameter\n  condition: spawned_process and proc.name = ecs-test\n  output: ecs (%proc.cmdline)\n  priority: WARNING\n"
	secrets := map[string]string{
		"VIGIL_RULES": rule, "VIGIL_TLS_CERT": certPEM, "VIGIL_TLS_KEY": keyPEM,
		"VIGIL_SENSOR_TOKEN": "sensor-token-0123456789abcdef", "VIGIL_API_TOKEN": "api-token-0123456789abcdef",
	}

	// The init container writes into the task volumes; the backend mounts
	// the same volumes.
	cfg := container(td, "config")
	byPath := runInitContainer(t, runc, cfg, secrets)
	volumes := map[string]string{}
	for _, m := range cfg.MountPoints {
		volumes[aws.ToString(m.SourceVolume)] = byPath[aws.ToString(m.ContainerPath)]
	}

	backend := container(td, "backend")
	bin := filepath.Join(t.TempDir(), "vigil-backend")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/backend")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build backend: %v\n%s", err, out)
	}
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	for _, d := range []string{"usr/local/bin", "proc", "dev", "sys", "etc"} {
		os.MkdirAll(filepath.Join(rootfs, d), 0o755)
	}
	data, _ := os.ReadFile(bin)
	os.WriteFile(filepath.Join(rootfs, "usr/local/bin/vigil-backend"), data, 0o755)

	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "mode=755"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
	}
	for _, m := range backend.MountPoints {
		dir, ok := volumes[aws.ToString(m.SourceVolume)]
		if !ok {
			t.Fatalf("volume %s is not prepared by the config container", aws.ToString(m.SourceVolume))
		}
		os.MkdirAll(filepath.Join(rootfs, aws.ToString(m.ContainerPath)), 0o755)
		opt := "rw"
		if aws.ToBool(m.ReadOnly) {
			opt = "ro"
		}
		mounts = append(mounts, specs.Mount{Destination: aws.ToString(m.ContainerPath), Type: "bind", Source: dir, Options: []string{"rbind", opt}})
	}
	env := []string{"PATH=/usr/local/bin"}
	for _, s := range backend.Secrets {
		env = append(env, aws.ToString(s.Name)+"="+secrets[aws.ToString(s.Name)])
	}
	// awsvpc gives the task its own address; here it shares the host's, so
	// the listen ports move to free ones. Nothing else of the command changes.
	grpcPort, httpPort := freeTCPPort(t), freeTCPPort(t)
	var args []string
	for _, a := range backend.Command {
		switch {
		case strings.HasPrefix(a, "--grpc-listen="):
			a = "--grpc-listen=127.0.0.1:" + strconv.Itoa(grpcPort)
		case strings.HasPrefix(a, "--http-listen="):
			a = "--http-listen=127.0.0.1:" + strconv.Itoa(httpPort)
		}
		args = append(args, a)
	}
	var uid, gid uint32
	if _, err := fmt.Sscanf(aws.ToString(backend.User), "%d:%d", &uid, &gid); err != nil {
		t.Fatalf("user %q: %v", aws.ToString(backend.User), err)
	}
	if !slices.Equal(backend.LinuxParameters.Capabilities.Drop, []string{"ALL"}) || len(backend.LinuxParameters.Capabilities.Add) != 0 {
		t.Fatal("the harness models a backend with every capability dropped")
	}
	oci := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: "rootfs", Readonly: aws.ToBool(backend.ReadonlyRootFilesystem)},
		Process: &specs.Process{
			User: specs.User{UID: uid, GID: gid},
			Args: append([]string{"/usr/local/bin/vigil-backend"}, args...),
			Env:  env, Cwd: "/",
			Capabilities: &specs.LinuxCapabilities{},
		},
		Mounts: mounts,
		Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
			{Type: specs.MountNamespace}, {Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
		}},
	}
	var log bytes.Buffer
	ctr := testutil.StartBundle(t, runc, bundle, "vigil-ecs-backend", oci, &log, &log)
	defer ctr.Stop()
	exited := ctr.Exited

	base := "http://127.0.0.1:" + strconv.Itoa(httpPort)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("the backend exited:\n%s", tailLines(log.String(), 30))
		default:
		}
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz never answered 200:\n%s", tailLines(log.String(), 30))
		}
		time.Sleep(200 * time.Millisecond)
	}

	req, _ := http.NewRequest("GET", base+"/api/v1/rules", nil)
	req.Header.Set("Authorization", "Bearer "+secrets["VIGIL_API_TOKEN"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Rules []struct {
			Name string `json:"name"`
		} `json:"rules"`
	}
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	found := false
	for _, r := range list.Rules {
		found = found || r.Name == "ECS test rule"
	}
	if !found {
		t.Errorf("the rule from the SSM parameter is not loaded (%d rules, status %d)", len(list.Rules), resp.StatusCode)
	}

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(caPEM))
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(grpcPort),
		&tls.Config{RootCAs: pool, ServerName: name, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatalf("TLS as %s with the certificate from Secrets Manager: %v", name, err)
	}
	conn.Close()

	if _, err := os.Stat(filepath.Join(volumes["data"], "vigil.db")); err != nil {
		t.Errorf("the SQLite database is not on the data volume: %v", err)
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
