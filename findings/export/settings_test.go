package export

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

func TestNewFromSettings(t *testing.T) {
	t.Run("no destination means no dispatcher", func(t *testing.T) {
		d, err := NewFromSettings(context.Background(), Settings{}, nil, nil)
		if err != nil || d != nil {
			t.Errorf("got %v, %v; want nil, nil", d, err)
		}
	})
	t.Run("every configured exporter receives published findings", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
		t.Setenv("AWS_REGION", "us-east-1")
		t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
		t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
		var mu sync.Mutex
		hits := map[string]string{}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			mu.Lock()
			switch {
			case r.URL.Path == "/hook":
				hits["webhook"] = r.Header.Get("Authorization")
			case r.URL.Path == "/findings/import":
				hits["securityhub"] = "ok"
				io.WriteString(w, `{"FailedCount":0,"SuccessCount":1,"FailedFindings":[]}`)
			case r.Header.Get("X-Amz-Target") == "AWSEvents.PutEvents":
				hits["eventbridge"] = "ok"
				io.WriteString(w, `{"FailedEntryCount":0,"Entries":[{"EventId":"1"}]}`)
			}
			mu.Unlock()
		}))
		defer srv.Close()
		d, err := NewFromSettings(context.Background(), Settings{
			Webhook:     WebhookSettings{URL: srv.URL + "/hook", Authorization: "Bearer s3cret"},
			SecurityHub: SecurityHubSettings{AccountID: "111122223333", Endpoint: srv.URL},
			EventBridge: EventBridgeSettings{Bus: "default", Endpoint: srv.URL},
		}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go d.Run(ctx)
		d.Publish([]*vigilv1.Finding{testFinding("f1")})
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			n := len(hits)
			auth := hits["webhook"]
			mu.Unlock()
			if n == 3 {
				if auth != "Bearer s3cret" {
					t.Errorf("webhook Authorization = %q", auth)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("exporters reached: %v", hits)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}
