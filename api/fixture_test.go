package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilsec/vigil/api"
	"github.com/vigilsec/vigil/detect"
	"github.com/vigilsec/vigil/findings"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

const (
	apiToken    = "api-token-0123456789abcdef"
	sensorToken = "sensor-token-0123456789abcdef"
)

// t0 is the fixture's clock at start; every raise moves it on a minute so
// findings have distinct update and last-seen times.
var t0 = time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)

// fixture is a real server on a real SQLite store. Every response that goes
// through do is validated against the OpenAPI document.
type fixture struct {
	t      *testing.T
	url    string
	store  findings.Store
	router routers.Router
	doc    *openapi3.T
	reg    *prometheus.Registry

	mu  sync.Mutex
	now time.Time
	seq uint64
	// operations records the OpenAPI operations whose responses were
	// validated, by operation id.
	operations map[string]bool
}

// builtinRules is a small rule file in the detection engine's own
// language; the fixture loads it with a real detect.Watcher.
const builtinRules = `
- rule: Reverse shell
  desc: A shell whose standard streams are a socket.
  condition: evt.type = execve and proc.name = sh
  output: "Reverse shell (command=%proc.cmdline)"
  priority: CRITICAL
  tags: [mitre_execution]
  finding:
    type: Execution:Runtime/ReverseShell
    severity: 8
    tactics: [TA0002]
    techniques: [T1059.004]
`

// brokenRules is a config-map file the watcher must reject.
const brokenRules = "- rule: Broken\n  desc: x\n  condition: evt.type = execve and (\n  output: x\n  priority: WARNING\n"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	fx := &fixture{t: t, now: t0, operations: map[string]bool{}}
	log := slog.New(slog.DiscardHandler)
	fx.reg = prometheus.NewRegistry()
	store, err := findings.OpenConfig(t.Context(), findings.StoreConfig{
		URL: "sqlite://" + filepath.Join(t.TempDir(), "vigil.db"),
		Now: fx.clock,
	}, log, fx.reg)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	fx.store = store
	rulesDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(rulesDir, "broken.yaml"), []byte(brokenRules), 0o644); err != nil {
		t.Fatal(err)
	}
	rules := detect.NewWatcher(detect.WatcherConfig{
		Builtin: fstest.MapFS{"vigil_rules.yaml": {Data: []byte(builtinRules)}},
		Dir:     rulesDir,
	}, nil, log, fx.reg)
	srv, err := api.NewServer(api.Config{APITokens: []string{apiToken}, SensorTokens: []string{sensorToken}},
		api.Deps{Findings: store, Suppressions: store, Sensors: store, Rules: rules}, log, fx.reg)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	fx.url = hs.URL

	doc, err := openapi3.NewLoader().LoadFromData(fx.raw(http.MethodGet, "/api/v1/openapi.json", nil, "", http.StatusOK))
	if err != nil {
		t.Fatalf("load served openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("served openapi.json is invalid: %v", err)
	}
	// The test server's address is not in the document's servers list.
	doc.Servers = openapi3.Servers{{URL: hs.URL}}
	fx.doc = doc
	if fx.router, err = legacy.NewRouter(doc); err != nil {
		t.Fatalf("openapi router: %v", err)
	}
	return fx
}

func (fx *fixture) clock() time.Time {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	return fx.now
}

// raw does one request without validation and checks its status.
func (fx *fixture) raw(method, path string, body []byte, token string, want int) []byte {
	fx.t.Helper()
	resp, b := fx.send(method, path, body, token)
	if resp.StatusCode != want {
		fx.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, resp.StatusCode, want, b)
	}
	return b
}

func (fx *fixture) send(method, path string, body []byte, token string) (*http.Response, []byte) {
	fx.t.Helper()
	req, err := http.NewRequest(method, fx.url+path, bytes.NewReader(body))
	if err != nil {
		fx.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fx.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		fx.t.Fatal(err)
	}
	return resp, b
}

// do sends a request with the API token unless another is given, checks
// the status, and validates the response against the OpenAPI document.
func (fx *fixture) do(method, path string, body []byte, want int, token ...string) []byte {
	fx.t.Helper()
	tok := apiToken
	if len(token) > 0 {
		tok = token[0]
	}
	resp, b := fx.send(method, path, body, tok)
	if resp.StatusCode != want {
		fx.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, resp.StatusCode, want, b)
	}
	fx.validate(method, path, body, tok, resp, b)
	return b
}

func (fx *fixture) validate(method, path string, body []byte, token string, resp *http.Response, b []byte) {
	fx.t.Helper()
	req, err := http.NewRequest(method, fx.url+path, bytes.NewReader(body))
	if err != nil {
		fx.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	route, params, err := fx.router.FindRoute(req)
	if err != nil {
		fx.t.Fatalf("%s %s is not in the OpenAPI document: %v", method, path, err)
	}
	reqIn := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	// A request the server accepted must be one the document allows, so
	// the document cannot lag behind the parameters the server knows.
	if resp.StatusCode/100 == 2 {
		if err := openapi3filter.ValidateRequest(context.Background(), reqIn); err != nil {
			fx.t.Fatalf("%s %s: accepted request does not match the OpenAPI document: %v", method, path, err)
		}
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: reqIn,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(b)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		fx.t.Fatalf("%s %s: response %d does not match the OpenAPI document: %v\nbody: %.2000s", method, path, resp.StatusCode, err, b)
	}
	fx.mu.Lock()
	fx.operations[route.Operation.OperationID] = true
	fx.mu.Unlock()
}

// spec describes one alert the fixture raises.
type spec struct {
	typ, rule   string
	severity    float64
	host, inst  string
	container   string
	image       string
	cluster     string
	taskArn     string
	ns, pod     string
	args        []string
	exePath     string
	sensorID    string
	extraEvents int
	tactics     []string
}

// raise sends the alerts through the store's real write path (one sensor
// batch), a minute after the previous raise, and returns the findings the
// batch created or updated.
func (fx *fixture) raise(specs ...spec) []*vigilv1.Finding {
	fx.t.Helper()
	fx.mu.Lock()
	fx.now = fx.now.Add(time.Minute)
	now := fx.now
	fx.seq++
	seq := fx.seq
	fx.mu.Unlock()
	var alerts []*detect.Alert
	for _, s := range specs {
		alerts = append(alerts, alertOf(s, now))
	}
	cr, ok := fx.store.(findings.ChangeReporter)
	if !ok {
		fx.t.Fatal("the SQLite store does not report changes")
	}
	changed, dup, err := cr.ApplyBatchChanges(context.Background(), findings.BatchKey{SensorID: "sensor-a", BootID: "boot-1", Sequence: seq}, len(alerts), alerts)
	if err != nil || dup {
		fx.t.Fatalf("apply batch: dup=%v err=%v", dup, err)
	}
	return changed
}

func alertOf(s spec, now time.Time) *detect.Alert {
	if s.exePath == "" {
		s.exePath = "/bin/sh"
	}
	if s.args == nil {
		s.args = []string{"sh", "-c", "id"}
	}
	ts := timestamppb.New(now)
	ev := &vigilv1.Event{
		Time:     ts,
		Syscall:  "execve",
		SensorId: firstNonEmpty(s.sensorID, "sensor-a"),
		Host:     &vigilv1.Host{Hostname: s.host, InstanceId: s.inst, Kernel: "6.1.0"},
		Process: &vigilv1.Process{
			ExecId: "exec-3", ParentExecId: "exec-2", Pid: 4242, Ppid: 4200, NsPid: 42, Comm: "sh",
			ExePath: s.exePath, Args: s.args, Cwd: "/srv", Uid: 0, StartTime: ts,
			Lineage: []*vigilv1.Ancestor{
				{ExecId: "exec-2", ParentExecId: "exec-1", Pid: 4200, Comm: "nginx", ExePath: "/usr/sbin/nginx", Args: []string{"nginx", "-g", "daemon off;"}},
				{ExecId: "exec-1", ParentExecId: "exec-0", Pid: 4100, Comm: "containerd-shim", ExePath: "/usr/bin/containerd-shim-runc-v2"},
			},
		},
		Kind: &vigilv1.Event_Exec{Exec: &vigilv1.Exec{Filename: s.exePath, Stdio: []string{"socket", "socket", "socket"}}},
	}
	if s.container != "" {
		ev.Container = &vigilv1.Container{Id: s.container, Image: s.image, Runtime: "containerd", Name: "app"}
	}
	if s.pod != "" {
		ev.Kubernetes = &vigilv1.Kubernetes{PodName: s.pod, Namespace: s.ns, PodUid: "uid-" + s.pod, ContainerName: "app"}
	}
	if s.taskArn != "" {
		ev.Ecs = &vigilv1.Ecs{Cluster: s.cluster, TaskArn: s.taskArn, TaskFamily: "web", TaskRevision: "3", LaunchType: "EC2"}
	}
	events := []*vigilv1.Event{ev}
	for i := 0; i < s.extraEvents; i++ {
		open := &vigilv1.Event{Time: ts, Syscall: "openat", SensorId: ev.SensorId, Host: ev.Host, Process: ev.Process,
			Kind: &vigilv1.Event_Open{Open: &vigilv1.FileOpen{Path: "/etc/shadow", Flags: 0}}}
		events = append([]*vigilv1.Event{open}, events...)
	}
	if s.tactics == nil {
		s.tactics = []string{"TA0002"}
	}
	return &detect.Alert{
		Rule:   &detect.RuleInfo{Name: s.rule, Kind: "falco", FindingType: s.typ, Severity: s.severity, Priority: "WARNING", MitreTactics: s.tactics},
		Time:   now,
		Output: "A shell ran: " + strings.Join(s.args, " "),
		Events: events,
	}
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

type findingPage struct {
	Findings  []*vigilv1.Finding
	NextToken string
}

func decodePage(t *testing.T, b []byte) findingPage {
	t.Helper()
	var raw struct {
		Findings  []json.RawMessage `json:"findings"`
		NextToken string            `json:"nextToken"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("decode page: %v: %s", err, b)
	}
	p := findingPage{NextToken: raw.NextToken}
	for _, r := range raw.Findings {
		f := &vigilv1.Finding{}
		if err := protojson.Unmarshal(r, f); err != nil {
			t.Fatalf("decode finding: %v", err)
		}
		p.Findings = append(p.Findings, f)
	}
	return p
}

func decodeFinding(t *testing.T, b []byte) *vigilv1.Finding {
	t.Helper()
	f := &vigilv1.Finding{}
	if err := protojson.Unmarshal(b, f); err != nil {
		t.Fatalf("decode finding: %v: %s", err, b)
	}
	return f
}

type apiErr struct {
	Error     string `json:"error"`
	Parameter string `json:"parameter"`
}

func decodeErr(t *testing.T, b []byte) apiErr {
	t.Helper()
	var e apiErr
	if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
		t.Fatalf("not an error body: %s", b)
	}
	return e
}
