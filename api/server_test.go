package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

const taskArn = "arn:aws:ecs:us-east-1:123456789012:task/prod/0f1e2d3c4b5a"

// seed raises four findings, a minute apart (A first), and archives C:
//
//	A  Execution:Runtime/ReverseShell           8.0  host web-1 (i-0abc), pod shop/cart-7d9, nginx:1.27
//	B  Execution:Runtime/SuspiciousTool         5.0  host web-2, ECS cluster prod, redis:7
//	C  PrivilegeEscalation:Runtime/DockerSocket 7.5  host db-1 (i-0def), no container; archived
//	D  CryptoCurrency:Runtime/BitcoinTool.B!DNS 2.0  host web-1 (i-0abc), pod payments/pay-1, alpine:3.20
func seed(fx *fixture) map[string]string {
	fx.t.Helper()
	specs := map[string]spec{
		"A": {typ: "Execution:Runtime/ReverseShell", rule: "Reverse shell", severity: 8, host: "web-1", inst: "i-0abc",
			container: "c0ffee01", image: "nginx:1.27", ns: "shop", pod: "cart-7d9"},
		"B": {typ: "Execution:Runtime/SuspiciousTool", rule: "Suspicious tool", severity: 5, host: "web-2",
			container: "beef02", image: "redis:7", cluster: "prod", taskArn: taskArn},
		"C": {typ: "PrivilegeEscalation:Runtime/DockerSocketAccessed", rule: "Docker socket", severity: 7.5, host: "db-1", inst: "i-0def"},
		"D": {typ: "CryptoCurrency:Runtime/BitcoinTool.B!DNS", rule: "Bitcoin domain", severity: 2, host: "web-1", inst: "i-0abc",
			container: "d00d04", image: "alpine:3.20", ns: "payments", pod: "pay-1"},
	}
	ids := map[string]string{}
	for _, k := range []string{"A", "B", "C", "D"} {
		changed := fx.raise(specs[k])
		if len(changed) != 1 {
			fx.t.Fatalf("raising %s changed %d findings, want 1", k, len(changed))
		}
		ids[k] = changed[0].GetId()
	}
	fx.do(http.MethodPost, "/api/v1/findings/"+ids["C"]+"/archive", nil, http.StatusOK)
	return ids
}

// names maps the findings of a page back to the seed's letters.
func names(ids map[string]string, fs []*vigilv1.Finding) []string {
	byID := map[string]string{}
	for k, v := range ids {
		byID[v] = k
	}
	var out []string
	for _, f := range fs {
		n, ok := byID[f.GetId()]
		if !ok {
			n = "?" + f.GetId()
		}
		out = append(out, n)
	}
	return out
}

func TestListFindingsFilters(t *testing.T) {
	fx := newFixture(t)
	ids := seed(fx)
	between := t0.Add(2*time.Minute + 30*time.Second).Format(time.RFC3339) // after B, before C
	tests := []struct {
		name  string
		query string
		want  []string // sorted
	}{
		{"no filter lists every finding", "", []string{"A", "B", "C", "D"}},
		{"an exact type matches only that type", "type=Execution:Runtime/ReverseShell", []string{"A"}},
		{"a type ending in a star matches the prefix", "type=Execution:*", []string{"A", "B"}},
		{"severityMin keeps findings at or above it", "severityMin=7", []string{"A", "C"}},
		{"severityMax keeps findings at or below it", "severityMax=5", []string{"B", "D"}},
		{"a severity range keeps findings inside it", "severityMin=4&severityMax=7.9", []string{"B", "C"}},
		{"updatedAfter keeps findings updated since then", "updatedAfter=" + url.QueryEscape(between), []string{"C", "D"}},
		{"updatedBefore keeps findings updated until then", "updatedBefore=" + url.QueryEscape(between), []string{"A", "B"}},
		{"archived=true keeps archived findings", "archived=true", []string{"C"}},
		{"archived=false keeps active findings", "archived=false", []string{"A", "B", "D"}},
		{"archived=any keeps both", "archived=any", []string{"A", "B", "C", "D"}},
		{"cluster matches the ECS cluster name", "cluster=prod", []string{"B"}},
		{"cluster matches the ECS cluster ARN", "cluster=" + url.QueryEscape("arn:aws:ecs:us-east-1:123456789012:cluster/prod"), []string{"B"}},
		{"taskArn matches the ECS task", "taskArn=" + url.QueryEscape(taskArn), []string{"B"}},
		{"namespace matches the Kubernetes namespace", "namespace=shop", []string{"A"}},
		{"pod matches the Kubernetes pod", "pod=pay-1", []string{"D"}},
		{"image matches the container image", "image=nginx:1.27", []string{"A"}},
		{"image ending in a star matches the prefix", "image=" + url.QueryEscape("redis*"), []string{"B"}},
		{"containerId matches the container", "containerId=beef02", []string{"B"}},
		{"instanceId matches the EC2 instance", "instanceId=i-0abc", []string{"A", "D"}},
		{"hostname matches the host", "hostname=web-1", []string{"A", "D"}},
		{"rule matches the rule name", "rule=" + url.QueryEscape("Docker socket"), []string{"C"}},
		{"filters combine with and", "hostname=web-1&severityMin=5", []string{"A"}},
		{"a filter that matches nothing returns an empty list", "hostname=nowhere", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page := decodePage(t, fx.do(http.MethodGet, "/api/v1/findings?"+tc.query, nil, http.StatusOK))
			got := names(ids, page.Findings)
			sort.Strings(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestListFindingsSortsAndPages(t *testing.T) {
	fx := newFixture(t)
	ids := seed(fx)
	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{"the default order is newest last seen first", "archived=any", []string{"D", "C", "B", "A"}},
		{"order=asc lists oldest first", "order=asc", []string{"A", "B", "C", "D"}},
		{"sortBy=severity lists the most severe first", "sortBy=severity", []string{"A", "C", "B", "D"}},
		{"sortBy=severity with order=asc lists the least severe first", "sortBy=severity&order=asc", []string{"D", "B", "C", "A"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			whole := decodePage(t, fx.do(http.MethodGet, "/api/v1/findings?"+tc.query, nil, http.StatusOK))
			if got := names(ids, whole.Findings); !slices.Equal(got, tc.want) {
				t.Fatalf("one page: got %v, want %v", got, tc.want)
			}
			if whole.NextToken != "" {
				t.Fatalf("a page holding everything has nextToken %q", whole.NextToken)
			}
			// Walk the same list a finding at a time and then three at a time.
			for _, limit := range []int{1, 3} {
				var walked []string
				token := ""
				for pages := 0; ; pages++ {
					if pages > 10 {
						t.Fatal("pagination does not end")
					}
					q := tc.query + "&limit=" + strconv.Itoa(limit)
					if token != "" {
						q += "&nextToken=" + url.QueryEscape(token)
					}
					page := decodePage(t, fx.do(http.MethodGet, "/api/v1/findings?"+q, nil, http.StatusOK))
					if len(page.Findings) > limit {
						t.Fatalf("limit %d returned %d findings", limit, len(page.Findings))
					}
					walked = append(walked, names(ids, page.Findings)...)
					if page.NextToken == "" {
						break
					}
					token = page.NextToken
				}
				if !slices.Equal(walked, tc.want) {
					t.Fatalf("limit %d: pages gave %v, want %v", limit, walked, tc.want)
				}
			}
		})
	}
}

func TestBadParametersAreNamed(t *testing.T) {
	fx := newFixture(t)
	seed(fx)
	page := decodePage(t, fx.do(http.MethodGet, "/api/v1/findings?limit=1&sortBy=severity", nil, http.StatusOK))
	if page.NextToken == "" {
		t.Fatal("want a nextToken for the mismatched-token case")
	}
	tests := []struct {
		name, query, param string
	}{
		{"a limit of zero is refused", "limit=0", "limit"},
		{"a limit above 1000 is refused", "limit=1001", "limit"},
		{"a limit that is not a number is refused", "limit=ten", "limit"},
		{"a severity above 10 is refused", "severityMin=11", "severityMin"},
		{"a severity that is not a number is refused", "severityMax=high", "severityMax"},
		{"a severity range upside down is refused", "severityMin=8&severityMax=2", "severityMin"},
		{"a time that is not RFC 3339 is refused", "updatedAfter=yesterday", "updatedAfter"},
		{"a time range upside down is refused", "updatedAfter=2026-03-05T00:00:00Z&updatedBefore=2026-03-04T00:00:00Z", "updatedAfter"},
		{"archived must be true, false or any", "archived=maybe", "archived"},
		{"sortBy must be a known key", "sortBy=name", "sortBy"},
		{"order must be asc or desc", "order=up", "order"},
		{"a star inside a type is refused", "type=Exec*ution", "type"},
		{"an unknown parameter is refused rather than ignored", "hostnmae=web-1", "hostnmae"},
		{"a parameter given twice is refused", "hostname=a&hostname=b", "hostname"},
		{"an empty value is refused", "pod=", "pod"},
		{"a token that was never issued is refused", "nextToken=bm90LWEtdG9rZW4", "nextToken"},
		{"a token from another sort order is refused", "nextToken=" + url.QueryEscape(page.NextToken), "nextToken"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := decodeErr(t, fx.do(http.MethodGet, "/api/v1/findings?"+tc.query, nil, http.StatusBadRequest))
			if e.Parameter != tc.param {
				t.Fatalf("parameter %q, want %q (error %q)", e.Parameter, tc.param, e.Error)
			}
		})
	}
}

func TestGetAndArchiveFinding(t *testing.T) {
	fx := newFixture(t)
	ids := seed(fx)
	f := decodeFinding(t, fx.do(http.MethodGet, "/api/v1/findings/"+ids["A"], nil, http.StatusOK))
	if f.GetType() != "Execution:Runtime/ReverseShell" || f.GetSeverityLabel() != "High" {
		t.Fatalf("got %s %s, want the reverse shell finding labelled High", f.GetType(), f.GetSeverityLabel())
	}
	if got := f.GetService().GetRuntimeDetails().GetProcess().GetLineage(); len(got) != 2 || got[0].GetName() != "nginx" {
		t.Fatalf("lineage %v, want nginx then containerd-shim", got)
	}
	steps := []struct {
		name, path   string
		wantArchived bool
	}{
		{"archive sets archived", "/archive", true},
		{"archiving twice keeps it archived", "/archive", true},
		{"unarchive clears archived", "/unarchive", false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got := decodeFinding(t, fx.do(http.MethodPost, "/api/v1/findings/"+ids["A"]+st.path, nil, http.StatusOK))
			if got.GetService().GetArchived() != st.wantArchived {
				t.Fatalf("response says archived=%v, want %v", got.GetService().GetArchived(), st.wantArchived)
			}
			again := decodeFinding(t, fx.do(http.MethodGet, "/api/v1/findings/"+ids["A"], nil, http.StatusOK))
			if again.GetService().GetArchived() != st.wantArchived {
				t.Fatalf("stored archived=%v, want %v", again.GetService().GetArchived(), st.wantArchived)
			}
			list := decodePage(t, fx.do(http.MethodGet, "/api/v1/findings?archived=true", nil, http.StatusOK))
			if in := slices.Contains(names(ids, list.Findings), "A"); in != st.wantArchived {
				t.Fatalf("A in archived list = %v, want %v", in, st.wantArchived)
			}
		})
	}
}

func TestUnknownIdsAre404(t *testing.T) {
	fx := newFixture(t)
	seed(fx)
	tests := []struct{ name, method, path string }{
		{"getting an unknown finding", http.MethodGet, "/api/v1/findings/0123456789abcdef0123456789abcdef"},
		{"archiving an unknown finding", http.MethodPost, "/api/v1/findings/0123456789abcdef0123456789abcdef/archive"},
		{"unarchiving an unknown finding", http.MethodPost, "/api/v1/findings/nope/unarchive"},
		{"getting an unknown suppression", http.MethodGet, "/api/v1/suppressions/nope"},
		{"deleting an unknown suppression", http.MethodDelete, "/api/v1/suppressions/nope"},
	}
	for _, tc := range tests {
		t.Run(tc.name+" is 404", func(t *testing.T) {
			decodeErr(t, fx.do(tc.method, tc.path, nil, http.StatusNotFound))
		})
	}
	t.Run("an unknown API path is a JSON 404", func(t *testing.T) {
		decodeErr(t, fx.raw(http.MethodGet, "/api/v1/nothing-here", nil, apiToken, http.StatusNotFound))
	})
}

func TestSuppressions(t *testing.T) {
	fx := newFixture(t)
	seed(fx)
	body := []byte(`{"name":"nginx shells are the health check","description":"known","filter":{"type":"Execution:Runtime/ReverseShell","image":"nginx:1.27"}}`)
	resp, b := fx.send(http.MethodPost, "/api/v1/suppressions", body, apiToken)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	fx.validate(http.MethodPost, "/api/v1/suppressions", body, apiToken, resp, b)
	created := &vigilv1.Suppression{}
	if err := protojson.Unmarshal(b, created); err != nil {
		t.Fatal(err)
	}
	if created.GetId() == "" || created.GetCreatedAt() == nil {
		t.Fatalf("created suppression lacks id or time: %v", created)
	}
	if loc := resp.Header.Get("Location"); loc != "/api/v1/suppressions/"+created.GetId() {
		t.Fatalf("Location %q", loc)
	}

	t.Run("the suppression is listed and can be read back", func(t *testing.T) {
		var list struct{ Suppressions []json.RawMessage }
		if err := json.Unmarshal(fx.do(http.MethodGet, "/api/v1/suppressions", nil, http.StatusOK), &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Suppressions) != 1 {
			t.Fatalf("%d suppressions listed, want 1", len(list.Suppressions))
		}
		one := &vigilv1.Suppression{}
		if err := protojson.Unmarshal(fx.do(http.MethodGet, "/api/v1/suppressions/"+created.GetId(), nil, http.StatusOK), one); err != nil {
			t.Fatal(err)
		}
		if one.GetFilter().GetImage() != "nginx:1.27" {
			t.Fatalf("read back %v", one)
		}
	})
	t.Run("a new matching finding is archived as it arrives", func(t *testing.T) {
		changed := fx.raise(spec{typ: "Execution:Runtime/ReverseShell", rule: "Reverse shell", severity: 8, host: "web-3",
			container: "feed05", image: "nginx:1.27"})
		f := decodeFinding(t, fx.do(http.MethodGet, "/api/v1/findings/"+changed[0].GetId(), nil, http.StatusOK))
		if !f.GetService().GetArchived() {
			t.Fatal("the matching finding is not archived")
		}
	})
	t.Run("a new finding that does not match stays active", func(t *testing.T) {
		changed := fx.raise(spec{typ: "Execution:Runtime/ReverseShell", rule: "Reverse shell", severity: 8, host: "web-3",
			container: "feed06", image: "httpd:2.4"})
		f := decodeFinding(t, fx.do(http.MethodGet, "/api/v1/findings/"+changed[0].GetId(), nil, http.StatusOK))
		if f.GetService().GetArchived() {
			t.Fatal("a finding the suppression does not match was archived")
		}
	})
	t.Run("deleting the suppression removes it", func(t *testing.T) {
		fx.do(http.MethodDelete, "/api/v1/suppressions/"+created.GetId(), nil, http.StatusNoContent)
		fx.do(http.MethodDelete, "/api/v1/suppressions/"+created.GetId(), nil, http.StatusNotFound)
		changed := fx.raise(spec{typ: "Execution:Runtime/ReverseShell", rule: "Reverse shell", severity: 8, host: "web-4",
			container: "feed07", image: "nginx:1.27"})
		f := decodeFinding(t, fx.do(http.MethodGet, "/api/v1/findings/"+changed[0].GetId(), nil, http.StatusOK))
		if f.GetService().GetArchived() {
			t.Fatal("a deleted suppression still archives")
		}
	})

	bad := []struct{ name, body, param string }{
		{"a suppression without a name is refused", `{"filter":{"hostname":"web-1"}}`, "name"},
		{"a suppression without a filter is refused", `{"name":"all"}`, "filter"},
		{"a suppression with an empty filter is refused", `{"name":"all","filter":{}}`, "filter"},
		{"a suppression with a bad severity is refused", `{"name":"x","filter":{"severityMin":12}}`, "filter.severityMin"},
		{"a body that is not JSON is refused", `{"name":`, "body"},
		{"a body with unknown fields is refused", `{"name":"x","filter":{"hostname":"a"},"colour":"red"}`, "body"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			e := decodeErr(t, fx.do(http.MethodPost, "/api/v1/suppressions", []byte(tc.body), http.StatusBadRequest))
			if e.Parameter != tc.param {
				t.Fatalf("parameter %q, want %q (%s)", e.Parameter, tc.param, e.Error)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	fx := newFixture(t)
	ids := seed(fx)
	endpoints := []struct{ method, path, body string }{
		{http.MethodGet, "/api/v1/findings", ""},
		{http.MethodGet, "/api/v1/findings/" + ids["A"], ""},
		{http.MethodPost, "/api/v1/findings/" + ids["A"] + "/archive", ""},
		{http.MethodPost, "/api/v1/findings/" + ids["A"] + "/unarchive", ""},
		{http.MethodGet, "/api/v1/suppressions", ""},
		{http.MethodPost, "/api/v1/suppressions", `{"name":"x","filter":{"hostname":"a"}}`},
		{http.MethodGet, "/api/v1/suppressions/x", ""},
		{http.MethodDelete, "/api/v1/suppressions/x", ""},
		{http.MethodGet, "/api/v1/sensors", ""},
		{http.MethodGet, "/api/v1/rules", ""},
		{http.MethodGet, "/api/v1/rules/errors", ""},
	}
	tokens := []struct {
		name   string
		header string
		status int
	}{
		{"no token is 401", "", http.StatusUnauthorized},
		{"a wrong token is 401", "Bearer wrong-token-0123456789", http.StatusUnauthorized},
		{"the API token under another scheme is 401", "Basic " + apiToken, http.StatusUnauthorized},
		{"a sensor token is 403", "Bearer " + sensorToken, http.StatusForbidden},
	}
	for _, tk := range tokens {
		for _, ep := range endpoints {
			t.Run(tk.name+": "+ep.method+" "+ep.path, func(t *testing.T) {
				req, err := http.NewRequest(ep.method, fx.url+ep.path, strings.NewReader(ep.body))
				if err != nil {
					t.Fatal(err)
				}
				if tk.header != "" {
					req.Header.Set("Authorization", tk.header)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var e apiErr
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != tk.status || e.Error == "" {
					t.Fatalf("status %d (%q), want %d with a message", resp.StatusCode, e.Error, tk.status)
				}
				if tk.status == http.StatusForbidden && !strings.Contains(e.Error, "sensor token") {
					t.Fatalf("403 message %q does not say why", e.Error)
				}
			})
		}
	}
	t.Run("the refusals are validated against the document", func(t *testing.T) {
		fx.do(http.MethodGet, "/api/v1/findings", nil, http.StatusUnauthorized, "wrong-token-0123456789")
		fx.do(http.MethodGet, "/api/v1/findings", nil, http.StatusForbidden, sensorToken)
	})
	t.Run("health, metrics, the OpenAPI document and the page need no token", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/metrics", "/api/v1/openapi.json", "/", "/app.js"} {
			fx.raw(http.MethodGet, p, nil, "", http.StatusOK)
		}
	})
	t.Run("refused tokens are counted", func(t *testing.T) {
		metrics := string(fx.raw(http.MethodGet, "/metrics", nil, "", http.StatusOK))
		for _, want := range []string{`vigil_api_auth_failures_total{reason="sensor_token"}`, `vigil_api_auth_failures_total{reason="missing"}`, `vigil_api_requests_total{code="200",route="POST /api/v1/findings/{id}/archive"}`} {
			if !strings.Contains(metrics, want) {
				t.Fatalf("metrics lack %s", want)
			}
		}
	})
}

func TestSensorsRulesAndHealth(t *testing.T) {
	fx := newFixture(t)
	hello := &vigilv1.Hello{SensorId: "sensor-a", BootId: "boot-1", Version: "v0.1.0",
		Host: &vigilv1.Host{Hostname: "web-1", Kernel: "6.1.0-18-amd64", InstanceId: "i-0abc"}}
	health := &vigilv1.SensorHealth{SensorId: "sensor-a", Version: "v0.1.0", Kernel: "6.1.0-18-amd64",
		LoadedProbes:  []string{"sched_process_exec", "sys_enter_openat"},
		SkippedProbes: []*vigilv1.SkippedProbe{{Name: "sys_enter_bpf", Reason: "disabled by policy"}},
		EventsTotal:   12345, SpoolLimitBytes: 1 << 30, Mode: "ebpf"}
	if err := fx.store.RecordHealth(t.Context(), hello, health); err != nil {
		t.Fatal(err)
	}
	t.Run("sensors lists each sensor's coverage", func(t *testing.T) {
		var body struct{ Sensors []json.RawMessage }
		if err := json.Unmarshal(fx.do(http.MethodGet, "/api/v1/sensors", nil, http.StatusOK), &body); err != nil {
			t.Fatal(err)
		}
		if len(body.Sensors) != 1 {
			t.Fatalf("%d sensors, want 1", len(body.Sensors))
		}
		s := &vigilv1.SensorStatus{}
		if err := protojson.Unmarshal(body.Sensors[0], s); err != nil {
			t.Fatal(err)
		}
		if s.GetSensorId() != "sensor-a" || s.GetVersion() != "v0.1.0" || s.GetHealth().GetKernel() != "6.1.0-18-amd64" ||
			len(s.GetHealth().GetLoadedProbes()) != 2 || s.GetHealth().GetSkippedProbes()[0].GetReason() != "disabled by policy" ||
			s.GetLastContact() == nil {
			t.Fatalf("sensor status %v", s)
		}
	})
	t.Run("rules lists the rule set in force", func(t *testing.T) {
		var body struct {
			Rules []struct {
				Name, FindingType, File string
				Severity                float64
				Enabled                 bool
			}
		}
		if err := json.Unmarshal(fx.do(http.MethodGet, "/api/v1/rules", nil, http.StatusOK), &body); err != nil {
			t.Fatal(err)
		}
		if len(body.Rules) != 1 || body.Rules[0].Name != "Reverse shell" || !body.Rules[0].Enabled ||
			body.Rules[0].FindingType != "Execution:Runtime/ReverseShell" || body.Rules[0].Severity != 8 {
			t.Fatalf("rules %+v", body.Rules)
		}
	})
	t.Run("rules/errors says which file was rejected, where and why", func(t *testing.T) {
		var body struct {
			Errors []struct {
				File, Reason string
				Line         int
				Warning      bool
			}
		}
		if err := json.Unmarshal(fx.do(http.MethodGet, "/api/v1/rules/errors", nil, http.StatusOK), &body); err != nil {
			t.Fatal(err)
		}
		var rejected bool
		for _, e := range body.Errors {
			if strings.HasSuffix(e.File, "broken.yaml") && !e.Warning && e.Line > 0 && e.Reason != "" {
				rejected = true
			}
		}
		if !rejected {
			t.Fatalf("errors %+v do not reject broken.yaml with a line and reason", body.Errors)
		}
	})
	t.Run("healthz answers ok", func(t *testing.T) {
		fx.do(http.MethodGet, "/healthz", nil, http.StatusOK, "")
	})
}

func TestSecurityHeaders(t *testing.T) {
	fx := newFixture(t)
	for _, p := range []string{"/", "/app.js", "/api/v1/findings", "/healthz"} {
		t.Run("every response to "+p+" carries the strict headers", func(t *testing.T) {
			resp, _ := fx.send(http.MethodGet, p, nil, apiToken)
			csp := resp.Header.Get("Content-Security-Policy")
			for _, d := range []string{"default-src 'self'", "script-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"} {
				if !strings.Contains(csp, d) {
					t.Fatalf("CSP %q lacks %q", csp, d)
				}
			}
			if strings.Contains(csp, "unsafe") {
				t.Fatalf("CSP %q allows unsafe sources", csp)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatal("no X-Content-Type-Options: nosniff")
			}
		})
	}
	t.Run("the page's script never writes markup", func(t *testing.T) {
		js := string(fx.raw(http.MethodGet, "/app.js", nil, "", http.StatusOK))
		for _, bad := range []string{".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
			if strings.Contains(js, bad) {
				t.Fatalf("app.js uses %s", bad)
			}
		}
	})
}

// TestEveryOperationIsCovered checks that the tests above reach every
// operation the OpenAPI document lists, so no response shape goes
// unvalidated.
func TestEveryOperationIsCovered(t *testing.T) {
	fx := newFixture(t)
	ids := seed(fx)
	sup := decodeFindingFreeSuppression(t, fx.do(http.MethodPost, "/api/v1/suppressions", []byte(`{"name":"x","filter":{"hostname":"web-9"}}`), http.StatusCreated))
	calls := []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/api/v1/findings?limit=2", 200},
		{http.MethodGet, "/api/v1/findings/" + ids["A"], 200},
		{http.MethodPost, "/api/v1/findings/" + ids["A"] + "/archive", 200},
		{http.MethodPost, "/api/v1/findings/" + ids["A"] + "/unarchive", 200},
		{http.MethodGet, "/api/v1/suppressions", 200},
		{http.MethodGet, "/api/v1/suppressions/" + sup, 200},
		{http.MethodDelete, "/api/v1/suppressions/" + sup, 204},
		{http.MethodGet, "/api/v1/sensors", 200},
		{http.MethodGet, "/api/v1/rules", 200},
		{http.MethodGet, "/api/v1/rules/errors", 200},
		{http.MethodGet, "/api/v1/openapi.json", 200},
		{http.MethodGet, "/healthz", 200},
		{http.MethodGet, "/metrics", 200},
	}
	for _, c := range calls {
		fx.do(c.method, c.path, nil, c.status)
	}
	for path, item := range fx.doc.Paths.Map() {
		for method, op := range item.Operations() {
			if !fx.operations[op.OperationID] {
				t.Errorf("%s %s (%s): no response was validated", method, path, op.OperationID)
			}
		}
	}
}

func decodeFindingFreeSuppression(t *testing.T, b []byte) string {
	t.Helper()
	s := &vigilv1.Suppression{}
	if err := protojson.Unmarshal(b, s); err != nil {
		t.Fatal(err)
	}
	return s.GetId()
}

func TestLargeResponsesAreCompressed(t *testing.T) {
	fx := newFixture(t)
	for i := range 30 {
		fx.raise(spec{typ: "Execution:Runtime/SuspiciousTool", rule: "Suspicious tool", severity: 5, host: "web-" + strconv.Itoa(i), extraEvents: 3})
	}
	tests := []struct {
		name, acceptEncoding, wantEncoding string
	}{
		{"a client that accepts gzip gets gzip", "gzip", "gzip"},
		{"a client that does not gets plain JSON", "identity", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, fx.url+"/api/v1/findings?limit=30", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+apiToken)
			req.Header.Set("Accept-Encoding", tc.acceptEncoding)
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if got := resp.Header.Get("Content-Encoding"); got != tc.wantEncoding {
				t.Fatalf("Content-Encoding %q, want %q", got, tc.wantEncoding)
			}
			if resp.Header.Get("Content-Security-Policy") == "" {
				t.Fatal("the compressed response lost its security headers")
			}
		})
	}
}
