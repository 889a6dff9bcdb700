//go:build e2e

// Package e2e runs Vigil end to end: the real sensor and backend binaries,
// real probes, real containers (containerd and runc), real attacks, and
// findings read back through the REST API.
package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"google.golang.org/protobuf/encoding/protojson"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// env is everything a scenario may use: the binaries, the work directory
// (world-readable, so unprivileged scenario users can run files from it),
// the running services and the API.
type env struct {
	t        *testing.T
	root     string // repository root
	work     string
	sensor   string
	backend  string
	attacker string
	ctrd     string // containerd socket
	api      *apiClient
	dns      string // stub resolver address (127.0.0.1:53)
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// buildBinaries builds the sensor, the backend and the attacker into dir.
func buildBinaries(t *testing.T, root, dir string) (sensor, backend, attacker string) {
	t.Helper()
	for _, b := range []struct{ out, pkg string }{
		{"sensor", "./cmd/sensor"}, {"backend", "./cmd/backend"}, {"attacker", "./test/e2e/attacker"},
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", b.pkg, err, out)
		}
	}
	return filepath.Join(dir, "sensor"), filepath.Join(dir, "backend"), filepath.Join(dir, "attacker")
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

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// daemon is a background process whose output goes to a log file that is
// printed when the test fails.
type daemon struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startDaemon(t *testing.T, name, logDir string, envv []string, bin string, args ...string) *daemon {
	t.Helper()
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), envv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	d := &daemon{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(d.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log (last 6000 bytes):\n%s", name, tailBytes(b, 6000))
		}
	})
	return d
}

func (d *daemon) running() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

func tailBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// apiClient reads findings and sensors through the REST API.
type apiClient struct {
	base, token string
	http        *http.Client
}

func (c *apiClient) get(path string, q url.Values, out any) error {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	return json.Unmarshal(body, out)
}

// findings lists every finding matching q (following nextToken).
func (c *apiClient) findings(q url.Values) ([]*vigilv1.Finding, error) {
	var all []*vigilv1.Finding
	q = cloneValues(q)
	q.Set("limit", "1000")
	for {
		var page struct {
			Findings  []json.RawMessage `json:"findings"`
			NextToken string            `json:"nextToken"`
		}
		if err := c.get("/api/v1/findings", q, &page); err != nil {
			return nil, err
		}
		for _, raw := range page.Findings {
			f := &vigilv1.Finding{}
			if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, f); err != nil {
				return nil, fmt.Errorf("decode finding: %w", err)
			}
			all = append(all, f)
		}
		if page.NextToken == "" {
			return all, nil
		}
		q.Set("nextToken", page.NextToken)
	}
}

func (c *apiClient) sensors() ([]*vigilv1.SensorStatus, error) {
	var page struct {
		Sensors []json.RawMessage `json:"sensors"`
	}
	if err := c.get("/api/v1/sensors", nil, &page); err != nil {
		return nil, err
	}
	var out []*vigilv1.SensorStatus
	for _, raw := range page.Sensors {
		s := &vigilv1.SensorStatus{}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// stubResolver answers every A question on 127.0.0.1:53 with 127.0.0.1,
// except names under rebind.vigil.test, which it answers with the instance
// metadata address (for the DNS-rebinding scenario). Nothing leaves loopback.
type stubResolver struct {
	conn *net.UDPConn
	mu   sync.Mutex
	seen []string
}

func startStubResolver(t *testing.T, addr string) *stubResolver {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		t.Fatalf("stub resolver on %s: %v", addr, err)
	}
	s := &stubResolver{conn: conn}
	t.Cleanup(func() { conn.Close() })
	go s.serve()
	return s
}

func (s *stubResolver) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		var p dnsmessage.Parser
		hdr, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		name := strings.TrimSuffix(strings.ToLower(q.Name.String()), ".")
		s.mu.Lock()
		s.seen = append(s.seen, name)
		s.mu.Unlock()
		answer := [4]byte{127, 0, 0, 1}
		if strings.HasSuffix(name, "rebind.vigil.test") {
			answer = [4]byte{169, 254, 169, 254}
		}
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: hdr.ID, Response: true, Authoritative: true, RecursionAvailable: true})
		b.EnableCompression()
		_ = b.StartQuestions()
		_ = b.Question(q)
		_ = b.StartAnswers()
		if q.Type == dnsmessage.TypeA {
			_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5}, dnsmessage.AResource{A: answer})
		}
		msg, err := b.Finish()
		if err == nil {
			_, _ = s.conn.WriteToUDP(msg, from)
		}
	}
}

// run runs a command and returns its combined output; failure of the
// command itself is reported but is not fatal (many attacks are refused by
// the kernel, which is the point).
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Logf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// mustRun is run, failing the test when the command fails.
func mustRun(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, mode); err != nil {
		t.Fatal(err)
	}
}

// tcpListener accepts one connection, sends script, and returns what the
// peer wrote back (for reverse and bind shells).
func tcpListener(t *testing.T, script string) (addr string, result <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 1)
	go func() {
		defer ln.Close()
		_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(30 * time.Second))
		c, err := ln.Accept()
		if err != nil {
			ch <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, script)
		b, _ := io.ReadAll(bufio.NewReader(c))
		ch <- string(b)
	}()
	return ln.Addr().String(), ch
}
