package collector

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/vigilsec/vigil/collector/proctable"
)

// Config is the capture configuration. The zero value of every field means
// its documented default, so an empty Config is a working one.
type Config struct {
	// RingBufferBytes is the size of the BPF ring buffer shared by all
	// probes: a power of two, at least one page (default 32 MiB). A larger
	// buffer rides out longer bursts before records are lost.
	RingBufferBytes int `yaml:"ring_buffer_bytes"`
	// WakeupBytes is how much must be pending in the ring buffer before a
	// probe wakes the reader (default 256 KiB); below it the reader finds
	// records on its PollInterval timer. Batching wakeups is what keeps the
	// capture cheap for the traced processes.
	WakeupBytes int `yaml:"wakeup_bytes"`
	// PollInterval is how often the reader drains the ring buffer without
	// a wakeup (default 100ms); it bounds the latency of a quiet system.
	// Each poll wakes the sensor: a shorter interval costs an idle host
	// more (at 10ms about twice the CPU of 100ms).
	PollInterval time.Duration `yaml:"poll_interval"`
	// ArgvBytes bounds the argument bytes copied at exec (default 4096,
	// at most 8191).
	ArgvBytes int `yaml:"argv_bytes"`
	// EnvBytes bounds the environment bytes copied at exec to find
	// LD_PRELOAD and LD_LIBRARY_PATH (default 4096, at most 8191). When the
	// environment is longer and neither variable is in the copied part,
	// /proc/PID/environ is read instead.
	EnvBytes int `yaml:"env_bytes"`
	// DNSPayloadBytes bounds the DNS payload copied per query or answer
	// (default 512, at most 8191).
	DNSPayloadBytes int `yaml:"dns_payload_bytes"`
	// EnabledEvents are the event kinds to capture, by the oneof field
	// names of vigil.v1.Event ("exec", "open", "connect", "dns_query", ...).
	// Empty means all. The tracepoints of a disabled kind are not attached.
	// exec, fork and exit probes always run, since they keep the process
	// table; their events are only emitted when enabled.
	EnabledEvents []string `yaml:"enabled_events"`
	// IgnoredBinaries are executable paths whose processes' events are
	// dropped in the kernel (matched by device and inode at exec).
	IgnoredBinaries []string `yaml:"ignored_binaries"`
	// IgnoredCgroups are cgroup paths (as in /proc/PID/cgroup) whose events
	// are dropped in the kernel.
	IgnoredCgroups []string `yaml:"ignored_cgroups"`
	// RateLimitPerSecond is the per-process token bucket refill rate in
	// events per second; 0 (the default) disables rate limiting. Exit
	// events are never rate limited.
	RateLimitPerSecond uint32 `yaml:"rate_limit_per_second"`
	// RateLimitBurst is the bucket size (default 4 × RateLimitPerSecond).
	RateLimitBurst uint32 `yaml:"rate_limit_burst"`
	// BTFPath is a BTF file for kernels without /sys/kernel/btf/vmlinux.
	BTFPath string `yaml:"btf_path" flag:"btf"`
	// ProbeObject picks the build of the probes: "direct" reads kernel
	// structs with plain loads through BTF-typed pointers (Linux 6.2 and
	// later, with kernel BTF; the cheapest for traced processes),
	// "compat" reads them through bpf_probe_read_kernel (any kernel with
	// ring buffers, and --btf), and "auto" (the default) loads direct and
	// falls back to compat, logging why.
	ProbeObject string `yaml:"probe_object"`
	// IncludeSelf keeps the sensor's own events; by default they are
	// dropped in the kernel so the sensor cannot feed on itself.
	IncludeSelf bool `yaml:"include_self"`
	// TracefsPath and BPFFSPath are where tracefs and bpffs are mounted
	// when missing (defaults /sys/kernel/tracing and /sys/fs/bpf).
	TracefsPath string `yaml:"tracefs_path"`
	BPFFSPath   string `yaml:"bpffs_path"`
	// ProcRoot is where the host's procfs is mounted (default /proc).
	ProcRoot string `yaml:"proc_root"`
	// CgroupRoot is where the cgroup file system is mounted (default
	// /sys/fs/cgroup); used to turn cgroup paths into ids and back.
	CgroupRoot string `yaml:"cgroup_root"`
	// HashAtExecMaxBytes is the largest executable hashed while its exec
	// event is decoded (default 32 MiB), so the exec event itself carries
	// the SHA-256 even when the process exits at once; digests are cached by
	// the inode facts the exec record carries (device, inode, size, mtime,
	// ctime), so a binary run again costs no system call. Larger executables are hashed
	// in the background and the digest reaches later events. -1 turns
	// hashing at exec off.
	HashAtExecMaxBytes int64 `yaml:"hash_at_exec_max_bytes"`
	// RawSyscallsFallback captures init_module and finit_module through the
	// generic raw_syscalls tracepoints on kernels that lack their own
	// tracepoints (kernels built without module support). Off by default:
	// raw_syscalls programs run on every syscall of every process (about an
	// eighth more overhead on a file-open storm), and on such a kernel a
	// module load cannot succeed, only be attempted.
	RawSyscallsFallback bool `yaml:"raw_syscalls_fallback"`
	// Process configures the process table.
	Process proctable.Config `yaml:"process"`
}

// Limits of the probes: a string copy is bounded by the scratch layout in
// bpf/common.h (STR_MASK).
const maxStringBytes = 8191

// EventKinds lists every event kind the collector can capture, by the oneof
// field name of vigil.v1.Event.
func EventKinds() []string {
	kinds := make([]string, 0, len(probeGroups))
	for _, g := range probeGroups {
		kinds = append(kinds, g.kind)
	}
	return kinds
}

func (c *Config) setDefaults() {
	if c.RingBufferBytes == 0 {
		c.RingBufferBytes = 32 << 20
	}
	if c.WakeupBytes == 0 {
		c.WakeupBytes = 256 << 10
	}
	if c.PollInterval == 0 {
		c.PollInterval = 100 * time.Millisecond
	}
	if c.ProbeObject == "" {
		c.ProbeObject = ProbeObjectAuto
	}
	if c.ArgvBytes == 0 {
		c.ArgvBytes = 4096
	}
	if c.EnvBytes == 0 {
		c.EnvBytes = 4096
	}
	if c.HashAtExecMaxBytes == 0 {
		c.HashAtExecMaxBytes = 32 << 20
	}
	if c.DNSPayloadBytes == 0 {
		c.DNSPayloadBytes = 512
	}
	if c.RateLimitBurst == 0 {
		c.RateLimitBurst = 4 * c.RateLimitPerSecond
	}
	if c.TracefsPath == "" {
		c.TracefsPath = "/sys/kernel/tracing"
	}
	if c.BPFFSPath == "" {
		c.BPFFSPath = "/sys/fs/bpf"
	}
	if c.ProcRoot == "" {
		c.ProcRoot = "/proc"
	}
	if c.CgroupRoot == "" {
		c.CgroupRoot = "/sys/fs/cgroup"
	}
	if c.Process.ProcRoot == "" {
		c.Process.ProcRoot = c.ProcRoot
	}
	if c.Process.MaxSeedArgBytes == 0 {
		c.Process.MaxSeedArgBytes = c.ArgvBytes
	}
}

// Validate reports the first invalid setting, naming its key.
func (c Config) Validate() error {
	var errs []error
	if n := c.RingBufferBytes; n != 0 && (n < 4096 || n&(n-1) != 0) {
		errs = append(errs, fmt.Errorf("ring_buffer_bytes: %d is not a power of two of at least 4096", n))
	}
	if c.WakeupBytes < 0 || (c.RingBufferBytes != 0 && c.WakeupBytes >= c.RingBufferBytes) {
		errs = append(errs, fmt.Errorf("wakeup_bytes: %d must be below ring_buffer_bytes", c.WakeupBytes))
	}
	if c.PollInterval < 0 {
		errs = append(errs, errors.New("poll_interval: must not be negative"))
	}
	for key, v := range map[string]int{"argv_bytes": c.ArgvBytes, "env_bytes": c.EnvBytes, "dns_payload_bytes": c.DNSPayloadBytes} {
		if v < 0 || v > maxStringBytes {
			errs = append(errs, fmt.Errorf("%s: %d is outside 0..%d", key, v, maxStringBytes))
		}
	}
	for _, k := range c.EnabledEvents {
		if !slices.Contains(EventKinds(), k) {
			errs = append(errs, fmt.Errorf("enabled_events: unknown event kind %q (known: %v)", k, EventKinds()))
		}
	}
	if !slices.Contains([]string{"", ProbeObjectAuto, ProbeObjectDirect, ProbeObjectCompat}, c.ProbeObject) {
		errs = append(errs, fmt.Errorf("probe_object: %q is not auto, direct or compat", c.ProbeObject))
	}
	if c.ProbeObject == ProbeObjectDirect && c.BTFPath != "" {
		errs = append(errs, errors.New("probe_object: direct needs the kernel's own BTF; btf_path works with compat or auto"))
	}
	if c.RateLimitBurst != 0 && c.RateLimitPerSecond == 0 {
		errs = append(errs, errors.New("rate_limit_burst: set without rate_limit_per_second"))
	}
	if err := c.Process.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("process: %w", err))
	}
	return errors.Join(errs...)
}
