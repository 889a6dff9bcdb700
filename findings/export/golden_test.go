package export

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestExportFormatsMatchGolden pins what each exporter emits for one
// finding: the Falco event and the ASFF finding.
func TestExportFormatsMatchGolden(t *testing.T) {
	f := testFinding("0123456789abcdef0123456789abcdef")
	tests := []struct {
		name   string
		golden string
		value  any
	}{
		{"the Falco event matches its golden file", "falco_event.json", ToFalco(f)},
		{"the Security Hub request matches its golden file", "securityhub_request.json", securityHubWire(t, f)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []byte
			var err error
			if raw, ok := tt.value.(json.RawMessage); ok {
				// Re-encode: the SDK writes map keys in random order.
				var v any
				if err := json.Unmarshal(raw, &v); err != nil {
					t.Fatal(err)
				}
				got, err = json.MarshalIndent(v, "", "  ")
			} else {
				got, err = json.MarshalIndent(tt.value, "", "  ")
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs (run with -update if intended):\n%s", path, got)
			}
		})
	}
}

// securityHubWire returns the body the Security Hub exporter sends for f:
// the ASFF as it goes over the wire.
func securityHubWire(t *testing.T, f *vigilv1.Finding) json.RawMessage {
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
		io.WriteString(w, `{"FailedCount":0,"SuccessCount":1,"FailedFindings":[]}`)
	}))
	defer srv.Close()
	sh, err := NewSecurityHub(SecurityHubConfig{AccountID: "111122223333", Region: "us-east-1", Endpoint: srv.URL}, testAWSConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Export(context.Background(), []*vigilv1.Finding{f}); err != nil {
		t.Fatal(err)
	}
	return body
}
