package collector

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/vigilsec/vigil/collector/probes"
	"github.com/vigilsec/vigil/internal/testutil"
)

// TestProbeObjectsLoad loads each build of the probes the way the sensor
// does, including the direct build's arm64 register layout (verified here
// on amd64: the verifier walks the arm64 branch when target_arm64 is set),
// and checks which programs each build has.
func TestProbeObjectsLoad(t *testing.T) {
	testutil.RequirePrivileged(t)
	v1 := cgroupV1Controller("/proc", "/sys/fs/cgroup")
	cfg := Config{}
	cfg.setDefaults()
	cases := []struct {
		name  string
		load  func() (*ebpf.CollectionSpec, error)
		arm64 bool
		// enter says whether the build pairs sys_enter programs with exits.
		enter bool
	}{
		{"the direct build loads and reads arguments at sys_exit", probes.LoadVigil, false, false},
		{"the direct build's arm64 register layout passes the verifier", probes.LoadVigil, true, false},
		{"the compat build loads with its sys_enter programs", probes.LoadVigilCompat, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := prepareSpec(tc.load, cfg, v1)
			if err != nil {
				t.Fatal(err)
			}
			if tc.arm64 {
				if err := setConstant(spec, "target_arm64", 1); err != nil {
					t.Fatal(err)
				}
			}
			coll, err := loadSpec(spec, ebpf.CollectionOptions{})
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			defer coll.Close()
			if coll.Programs["exit_openat"] == nil || coll.Programs["handle_exec"] == nil {
				t.Fatal("exit_openat or handle_exec missing")
			}
			enters := 0
			for name := range coll.Programs {
				if strings.HasPrefix(name, "enter_") {
					enters++
				}
			}
			if tc.enter != (enters > 0) {
				t.Errorf("%d sys_enter programs, want them: %v", enters, tc.enter)
			}
		})
	}
}

// TestAutoFallsBackToCompatWithBTFFile checks that a --btf file (a kernel
// without BTF of its own) makes auto load the compat build.
func TestAutoFallsBackToCompatWithBTFFile(t *testing.T) {
	testutil.RequirePrivileged(t)
	cfg := Config{BTFPath: "/sys/kernel/btf/vmlinux"}
	cfg.setDefaults()
	coll, object, err := loadProbes(cfg, v1Controller{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	coll.Close()
	if object != ProbeObjectCompat {
		t.Errorf("loaded %s with a BTF file, want compat", object)
	}
}

func TestURingTracepointShape(t *testing.T) {
	testutil.RequirePrivileged(t)
	for _, p := range uringProbes {
		if err := uringTracepointShape(p.tracepoint); err != nil {
			t.Errorf("%s on this kernel (6.0 or newer): %v", p.tracepoint, err)
		}
	}
	if err := uringTracepointShape("io_uring_no_such_tracepoint"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("a missing tracepoint: %v", err)
	}
	// A tracepoint of another shape is refused, not misread.
	if err := uringTracepointShape("io_uring_create"); err == nil {
		t.Error("io_uring_create accepted as io_uring_complete's shape")
	}
}
