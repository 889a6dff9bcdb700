package containerd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vigilsec/vigil/internal/testutil"
)

func TestPrivileged(t *testing.T) {
	all := []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	denyAll := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	spec := func(caps []string, devs []specs.LinuxDeviceCgroup) *specs.Spec {
		return &specs.Spec{
			Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Effective: caps}},
			Linux:   &specs.Linux{Resources: &specs.LinuxResources{Devices: devs}},
		}
	}
	tests := []struct {
		name string
		spec *specs.Spec
		want bool
	}{
		{name: "CAP_SYS_ADMIN with every device allowed is privileged", spec: spec([]string{"CAP_CHOWN", "CAP_SYS_ADMIN"}, all), want: true},
		{name: "CAP_SYS_ADMIN with devices denied is not privileged", spec: spec([]string{"CAP_SYS_ADMIN"}, denyAll), want: false},
		{name: "every device allowed without CAP_SYS_ADMIN is not privileged", spec: spec([]string{"CAP_CHOWN"}, all), want: false},
		{name: "a later deny-all rule overrides an earlier allow-all", spec: spec([]string{"CAP_SYS_ADMIN"}, append(all, denyAll...)), want: false},
		{name: "a spec without a process is not privileged", spec: &specs.Spec{}, want: false},
		{name: "a nil spec is not privileged", spec: nil, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Privileged(tt.spec); got != tt.want {
				t.Fatalf("Privileged = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDialMissingSocket(t *testing.T) {
	_, err := Dial(context.Background(), filepath.Join(t.TempDir(), "none.sock"), time.Second)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Dial on a missing socket = %v, want os.ErrNotExist", err)
	}
}

func TestLookupRealContainerd(t *testing.T) {
	socket, _ := testutil.StartContainerd(t)
	plain := testutil.RunContainer(t, testutil.ContainerOptions{
		Socket: socket, Labels: map[string]string{"app": "vigil-test"},
	})
	priv := testutil.RunContainer(t, testutil.ContainerOptions{
		Socket: socket, Namespace: "moby", Privileged: true,
	})
	ctx := context.Background()
	c, err := Dial(ctx, socket, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	tests := []struct {
		name           string
		hint, id       string
		wantNS, wantIm string
		wantPriv       bool
		wantLabel      string
	}{
		{name: "a container is found in the namespace the hint names", hint: "default", id: plain.ID, wantNS: "default", wantIm: plain.Rootfs, wantLabel: "vigil-test"},
		{name: "a container is found without a hint by searching every namespace", id: plain.ID, wantNS: "default", wantIm: plain.Rootfs, wantLabel: "vigil-test"},
		{name: "a wrong hint still finds the container in another namespace", hint: "default", id: priv.ID, wantNS: "moby", wantIm: priv.Rootfs, wantPriv: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := c.Lookup(ctx, tt.hint, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if info.ID != tt.id || info.Name != tt.id || info.Namespace != tt.wantNS || info.Rootfs != tt.wantIm || info.Image != "" ||
				info.Privileged != tt.wantPriv || info.Labels["app"] != tt.wantLabel || info.RuntimeHandler == "" || info.CreatedAt.IsZero() {
				t.Fatalf("Lookup = %+v", info)
			}
		})
	}
	t.Run("an unknown id is reported as not found", func(t *testing.T) {
		if _, err := c.Lookup(ctx, "", "no-such-container"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Lookup = %v, want ErrNotFound", err)
		}
	})
}
