package collector

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/vigilsec/vigil/collector/probes"
)

// The builds of the probes (Config.ProbeObject). Both come from the same
// sources in bpf/; see the top of bpf/common.h.
const (
	ProbeObjectAuto   = "auto"
	ProbeObjectDirect = "direct"
	ProbeObjectCompat = "compat"
)

// noSubsys is VIGIL_NO_SUBSYS: cgroup ids from the unified hierarchy.
const noSubsys = 0xffffffff

// loadProbes loads the probe build cfg asks for into the kernel and returns
// the collection and the build's name. With "auto" it tries the direct build
// and falls back to compat when the kernel refuses it (no kernel BTF, no
// bpf_rdonly_cast before 6.2, a verifier that cannot follow it), logging the
// reason. A --btf file means the kernel has no BTF of its own, so auto goes
// straight to compat.
func loadProbes(cfg Config, v1 v1Controller, log *slog.Logger) (*ebpf.Collection, string, error) {
	object := cfg.ProbeObject
	if object == ProbeObjectAuto && cfg.BTFPath != "" {
		object = ProbeObjectCompat
	}
	var opts ebpf.CollectionOptions
	if cfg.BTFPath != "" {
		kt, err := btf.LoadSpec(cfg.BTFPath)
		if err != nil {
			return nil, "", fmt.Errorf("load btf %s: %w", cfg.BTFPath, err)
		}
		opts.Programs.KernelTypes = kt
	}
	if object != ProbeObjectCompat {
		coll, err := loadObject(probes.LoadVigil, cfg, v1, opts)
		if err == nil || object == ProbeObjectDirect {
			return coll, ProbeObjectDirect, err
		}
		log.Warn("direct probes refused by this kernel; loading the compat build (each kernel read is a helper call, so capture costs traced processes more)", "reason", err)
	}
	coll, err := loadObject(probes.LoadVigilCompat, cfg, v1, opts)
	return coll, ProbeObjectCompat, err
}

// loadObject reads one build's spec, prepares it and loads it.
func loadObject(load func() (*ebpf.CollectionSpec, error), cfg Config, v1 v1Controller, opts ebpf.CollectionOptions) (*ebpf.Collection, error) {
	spec, err := prepareSpec(load, cfg, v1)
	if err != nil {
		return nil, err
	}
	return loadSpec(spec, opts)
}

// prepareSpec reads one build's spec, sizes the ring buffer and sets the
// load-time constants.
func prepareSpec(load func() (*ebpf.CollectionSpec, error), cfg Config, v1 v1Controller) (*ebpf.CollectionSpec, error) {
	spec, err := load()
	if err != nil {
		return nil, fmt.Errorf("read probe objects: %w", err)
	}
	spec.Maps["events"].MaxEntries = uint32(cfg.RingBufferBytes)
	// A tracing program whose tracepoint is missing, or passes other
	// arguments, would fail the whole load: leave it out (attachURing
	// reports why).
	for _, p := range uringProbes {
		if uringTracepointShape(p.tracepoint) != nil {
			delete(spec.Programs, p.prog)
		}
	}
	subsys := uint32(noSubsys)
	if v1.ok {
		subsys = v1.index
	}
	if err := setConstant(spec, "cgroup_v1_subsys", subsys); err != nil {
		return nil, err
	}
	// The direct build reads syscall arguments from struct pt_regs, whose
	// layout is the architecture's.
	if _, ok := spec.Variables["target_arm64"]; ok {
		if err := setConstant(spec, "target_arm64", uint32(boolInt(runtime.GOARCH == "arm64"))); err != nil {
			return nil, err
		}
	}
	return spec, nil
}

// loadSpec loads a prepared spec into the kernel.
func loadSpec(spec *ebpf.CollectionSpec, opts ebpf.CollectionOptions) (*ebpf.Collection, error) {
	coll, err := ebpf.NewCollectionWithOptions(spec, opts)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load probes: %w (verifier log tail: %s)", err, lastLines(ve.Log, 5))
		}
		return nil, fmt.Errorf("load probes: %w", err)
	}
	return coll, nil
}

func setConstant(spec *ebpf.CollectionSpec, name string, value uint32) error {
	v, ok := spec.Variables[name]
	if !ok {
		return fmt.Errorf("probe object lacks the constant %s", name)
	}
	if err := v.Set(value); err != nil {
		return fmt.Errorf("set %s: %w", name, err)
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
