package export

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

// testFinding is a reverse shell in an ECS task's container.
func testFinding(id string) *vigilv1.Finding {
	return &vigilv1.Finding{
		Id: id, Type: "Execution:Runtime/ReverseShell", Severity: 8, SeverityLabel: "High",
		Title: "Reverse shell created by process b4sh in container web.", Description: "A shell's stdio is a socket.",
		CreatedAt: timestamppb.New(t0), UpdatedAt: timestamppb.New(t0.Add(time.Minute)), SchemaVersion: "2.0",
		AccountId: "111122223333", Region: "us-east-1", Partition: "aws",
		Resource: &vigilv1.Resource{
			ResourceType:    "ECSCluster",
			InstanceDetails: &vigilv1.InstanceDetails{InstanceId: "i-0abc"},
			EcsClusterDetails: &vigilv1.EcsClusterDetails{Name: "prod", Arn: "arn:aws:ecs:us-east-1:111122223333:cluster/prod",
				TaskDetails: &vigilv1.EcsTaskDetails{Arn: "arn:aws:ecs:us-east-1:111122223333:task/prod/abc", Family: "app"}},
			ContainerDetails: &vigilv1.ContainerDetails{ContainerRuntime: "containerd", Id: "c0ffee0123456789c0ffee", Name: "web", Image: "registry.example/app:1.4"},
			Hostname:         "ip-10-0-1-17",
		},
		Service: &vigilv1.Service{ServiceName: "vigil", FeatureName: "RuntimeMonitoring", Count: 3,
			EventFirstSeen: timestamppb.New(t0), EventLastSeen: timestamppb.New(t0.Add(time.Minute)),
			RuntimeDetails: &vigilv1.RuntimeDetails{Process: &vigilv1.ProcessDetails{Name: "b4sh", ExecutablePath: "/tmp/b4sh", Pid: 4242,
				CommandLine: "b4sh -i", User: "root", Lineage: []*vigilv1.LineageObject{{Name: "python3", Pid: 4200, ExecutablePath: "/usr/bin/python3"}}}}},
		Evidence:        &vigilv1.Evidence{Rule: "Reverse shell", Output: "reverse shell b4sh", RuleKind: "falco", Fields: map[string]string{"fd.name": "10.0.0.1:4444"}},
		MitreTactics:    []string{"TA0002"},
		MitreTechniques: []string{"T1059.004"},
	}
}

func testAWSConfig() aws.Config {
	return aws.Config{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		RetryMaxAttempts: 1, // the dispatcher retries; keep the SDK from hiding failures
	}
}

func TestFalcoWebhookFormat(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		got = append(got, body)
		mu.Unlock()
	}))
	defer srv.Close()
	wh, err := NewWebhook(WebhookConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Export(context.Background(), []*vigilv1.Finding{testFinding("f1")}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("server got %d posts", len(got))
	}
	ev := got[0]
	fields, _ := ev["output_fields"].(map[string]any)
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"the rule is the evidence rule", ev["rule"], "Reverse shell"},
		{"a High finding has Falco priority Error", ev["priority"], "Error"},
		{"the source is syscall", ev["source"], "syscall"},
		{"the hostname is the resource's", ev["hostname"], "ip-10-0-1-17"},
		{"the time is the last event's, RFC 3339", ev["time"], "2026-11-20T10:01:00Z"},
		{"the output ends with the rule's output", strings.HasSuffix(ev["output"].(string), "Error reverse shell b4sh"), true},
		{"the tags carry the type and MITRE ids", strings.Join(toStrings(ev["tags"]), ","), "Execution:Runtime/ReverseShell,TA0002,T1059.004"},
		{"output_fields use Falco's proc names", fields["proc.exepath"], "/tmp/b4sh"},
		{"output_fields carry the short container id", fields["container.id"], "c0ffee012345"},
		{"output_fields split the image", fields["container.image.repository"], "registry.example/app"},
		{"output_fields carry the evidence fields", fields["fd.name"], "10.0.0.1:4444"},
		{"output_fields carry the finding id", fields["vigil.finding.id"], "f1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestDispatcherRetriesAndNeverBlocks(t *testing.T) {
	var calls atomic.Int32
	var status atomic.Int32
	status.Store(503)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Header.Get("X-Block") == "1" {
			<-release
		}
		n := calls.Add(1)
		if n <= 2 {
			w.WriteHeader(int(status.Load())) // fail twice, then accept
		}
	}))
	defer srv.Close()
	defer close(release)

	t.Run("a failing destination is retried until it accepts", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		wh, _ := NewWebhook(WebhookConfig{URL: srv.URL})
		d := NewDispatcher(Config{InitialBackoff: time.Millisecond, MaxAttempts: 5}, []Exporter{wh}, nil, reg)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { d.Run(ctx); close(done) }()
		d.Publish([]*vigilv1.Finding{testFinding("f1")})
		waitFor(t, func() bool { return counterValue(d.sent.WithLabelValues("webhook")) == 1 })
		cancel()
		<-done
		if r := counterValue(d.retries.WithLabelValues("webhook")); r != 2 {
			t.Errorf("retries = %v, want 2", r)
		}
	})

	t.Run("a rejected finding is dropped at once", func(t *testing.T) {
		bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(400) }))
		defer bad.Close()
		wh, _ := NewWebhook(WebhookConfig{URL: bad.URL})
		d := NewDispatcher(Config{InitialBackoff: time.Millisecond}, []Exporter{wh}, nil, nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go d.Run(ctx)
		d.Publish([]*vigilv1.Finding{testFinding("f1")})
		waitFor(t, func() bool { return counterValue(d.failed.WithLabelValues("webhook")) == 1 })
		if r := counterValue(d.retries.WithLabelValues("webhook")); r != 0 {
			t.Errorf("retries = %v, want 0 for a 400", r)
		}
	})

	t.Run("publishing to a stuck destination never blocks", func(t *testing.T) {
		wh, _ := NewWebhook(WebhookConfig{URL: srv.URL, Headers: map[string]string{"X-Block": "1"}})
		d := NewDispatcher(Config{QueueSize: 10}, []Exporter{wh}, nil, nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go d.Run(ctx)
		start := time.Now()
		for i := 0; i < 1000; i++ {
			d.Publish([]*vigilv1.Finding{testFinding("f")})
		}
		if el := time.Since(start); el > time.Second {
			t.Errorf("1000 publishes took %v", el)
		}
		if dropped := counterValue(d.dropped.WithLabelValues("webhook")); dropped < 900 {
			t.Errorf("dropped %v, want the overflow (at least 900) counted", dropped)
		}
	})
}

func TestLatestByIDKeepsTheNewestCopy(t *testing.T) {
	a1, b, a2 := testFinding("a"), testFinding("b"), testFinding("a")
	a2.Service.Count = 9
	got := latestByID([]*vigilv1.Finding{a1, b, a2})
	if len(got) != 2 || got[0].Id != "a" || got[0].Service.Count != 9 || got[1].Id != "b" {
		t.Errorf("latestByID = %v", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSecurityHubImportsASFF(t *testing.T) {
	var req struct {
		Findings []map[string]any
	}
	var path, auth string
	fail := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, auth = r.URL.Path, r.Header.Get("Authorization")
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if fail {
			io.WriteString(w, `{"FailedCount":1,"SuccessCount":0,"FailedFindings":[{"Id":"f1","ErrorCode":"InvalidInput","ErrorMessage":"bad"}]}`)
			return
		}
		io.WriteString(w, `{"FailedCount":0,"SuccessCount":1,"FailedFindings":[]}`)
	}))
	defer srv.Close()
	sh, err := NewSecurityHub(SecurityHubConfig{AccountID: "111122223333", Region: "us-east-1", Endpoint: srv.URL}, testAWSConfig())
	if err != nil {
		t.Fatal(err)
	}
	archived := testFinding("f1")
	archived.Service.Archived = true
	if err := sh.Export(context.Background(), []*vigilv1.Finding{archived}); err != nil {
		t.Fatal(err)
	}
	if len(req.Findings) != 1 {
		t.Fatalf("imported %d findings", len(req.Findings))
	}
	f := req.Findings[0]
	resTypes := []string{}
	for _, r := range f["Resources"].([]any) {
		resTypes = append(resTypes, r.(map[string]any)["Type"].(string))
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"the request goes to BatchImportFindings", path, "/findings/import"},
		{"the request is SigV4-signed", strings.HasPrefix(auth, "AWS4-HMAC-SHA256"), true},
		{"the schema is ASFF's", f["SchemaVersion"], "2018-10-08"},
		{"the product is the account's default product", f["ProductArn"], "arn:aws:securityhub:us-east-1:111122223333:product/111122223333/default"},
		{"the type sits in the TTPs namespace", f["Types"].([]any)[0], "TTPs/Execution/Execution:Runtime/ReverseShell"},
		{"the severity label is upper case", f["Severity"].(map[string]any)["Label"], "HIGH"},
		{"an archived finding is an archived record", f["RecordState"], "ARCHIVED"},
		{"the resources are the container, the task and the instance", strings.Join(resTypes, ","), "Container,AwsEcsTask,AwsEc2Instance"},
		{"the process is named", f["Process"].(map[string]any)["Path"], "/tmp/b4sh"},
		{"the last observation is the last event", f["LastObservedAt"], "2026-11-20T10:01:00.000Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	t.Run("failed findings make the export fail", func(t *testing.T) {
		fail = true
		if err := sh.Export(context.Background(), []*vigilv1.Finding{testFinding("f1")}); err == nil || !strings.Contains(err.Error(), "InvalidInput") {
			t.Errorf("err = %v, want the failure reason", err)
		}
	})
}

func TestEventBridgePutsFindingEvents(t *testing.T) {
	var req struct {
		Entries []struct {
			Source, DetailType, Detail, EventBusName string
			Resources                                []string
		}
	}
	var target string
	failed := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target = r.Header.Get("X-Amz-Target")
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if failed > 0 {
			io.WriteString(w, `{"FailedEntryCount":1,"Entries":[{"ErrorCode":"InternalFailure","ErrorMessage":"try again"},{"EventId":"2"}]}`)
			return
		}
		io.WriteString(w, `{"FailedEntryCount":0,"Entries":[{"EventId":"1"},{"EventId":"2"}]}`)
	}))
	defer srv.Close()
	eb, err := NewEventBridge(EventBridgeConfig{EventBusName: "security", Endpoint: srv.URL}, testAWSConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := eb.Export(context.Background(), []*vigilv1.Finding{testFinding("f1"), testFinding("f2")}); err != nil {
		t.Fatal(err)
	}
	if len(req.Entries) != 2 {
		t.Fatalf("put %d entries, want 2", len(req.Entries))
	}
	e := req.Entries[0]
	detail := &vigilv1.Finding{}
	if err := protojson.Unmarshal([]byte(e.Detail), detail); err != nil {
		t.Fatalf("detail is not a finding: %v", err)
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"the call is PutEvents", target, "AWSEvents.PutEvents"},
		{"the bus is the configured one", e.EventBusName, "security"},
		{"the source names Vigil", e.Source, "vigil.findings"},
		{"the detail type names a finding", e.DetailType, "Vigil Runtime Finding"},
		{"the detail is the finding's JSON", detail.GetId(), "f1"},
		{"the detail keeps camelCase names", strings.Contains(e.Detail, `"resourceType"`), true},
		{"the task is the event's resource", strings.Join(e.Resources, ","), "arn:aws:ecs:us-east-1:111122223333:task/prod/abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	t.Run("a failed entry makes the export fail", func(t *testing.T) {
		failed = 1
		err := eb.Export(context.Background(), []*vigilv1.Finding{testFinding("f1"), testFinding("f2")})
		if err == nil || !strings.Contains(err.Error(), "InternalFailure") || errors.Is(err, ErrPermanent) {
			t.Errorf("err = %v, want a retryable failure naming the reason", err)
		}
	})
}

// counterValue reads a counter's current value.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
