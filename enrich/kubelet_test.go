package enrich

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/vigilsec/vigil/enrich/cgroup"
)

func TestKubelet(t *testing.T) {
	const podSD = "0a1b2c3d_4e5f_6789_abcd_ef0123456789"
	criOPath := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + podSD + ".slice/crio-" + agentDockerID + ".scope"
	tests := []struct {
		name      string
		status    int
		wantState string
	}{
		{name: "a CRI-O container gets its pod, labels, service account, container name and image from the kubelet", status: http.StatusOK, wantState: StateOK},
		{name: "a kubelet refusing the token is reported failing and events keep the pod uid from the path", status: http.StatusUnauthorized, wantState: StateFailing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pods := fixture(t, "kubelet_pods.json")
			var sawToken atomic.Bool
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/pods" {
					http.NotFound(w, r)
					return
				}
				sawToken.Store(r.Header.Get("Authorization") == "Bearer sa-token")
				if tt.status != http.StatusOK {
					http.Error(w, "Unauthorized", tt.status)
					return
				}
				_, _ = w.Write(pods)
			}))
			defer srv.Close()
			token := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(token, []byte("sa-token\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := testConfig()
			cfg.Kubelet.Enabled = true
			cfg.Kubelet.URL = srv.URL
			cfg.Kubelet.TokenFile = token
			e, _ := startEnricher(t, cfg)
			if st := sourceStatus(e, SourceKubelet); st.State != tt.wantState {
				t.Fatalf("kubelet source = %v, want %s", st, tt.wantState)
			}
			if !sawToken.Load() {
				t.Fatal("the kubelet did not receive the service account token")
			}
			if tt.status != http.StatusOK {
				ev := newEvent(criOPath)
				e.Enrich(ev)
				if ev.Kubernetes.GetPodUid() != "0a1b2c3d-4e5f-6789-abcd-ef0123456789" || ev.Container.GetId() != agentDockerID {
					t.Fatalf("event = %v %v", ev.Container, ev.Kubernetes)
				}
				return
			}
			ev := waitComplete(t, e, criOPath)
			k := ev.Kubernetes
			if k.PodName != "web-0" || k.Namespace != "shop" || k.ServiceAccount != "web" || k.ContainerName != "nginx" || k.PodLabels["app"] != "web" {
				t.Fatalf("Kubernetes = %v", k)
			}
			c := ev.Container
			if c.Name != "nginx" || c.Image != "docker.io/library/nginx:1.27" || c.Runtime != cgroup.RuntimeCRIO ||
				c.ImageDigest != "docker.io/library/nginx@sha256:bc5eac5eafc581aeda3008b4b1f07ebba230de2f27d47767129a6a905c84f470" {
				t.Fatalf("Container = %v", c)
			}
		})
	}
}
