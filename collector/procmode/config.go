package procmode

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/vigilsec/vigil/collector/proctable"
)

// Config configures the procfs capture mode. The zero value of every field
// means its documented default, so an empty Config traces every process in
// the sensor's pid namespace.
type Config struct {
	// RootPid limits tracing to this process and its descendants; 0 (the
	// default, right for a Fargate sidecar with pidMode "task") traces every
	// process in the pid namespace except the sensor and its own children.
	RootPid uint32 `yaml:"root_pid"`
	// ScanInterval is how often /proc is listed for processes that are not
	// traced yet: started from outside the traced tree (ECS Exec, a
	// container that started after the sensor) or refused earlier (default
	// 250ms; one read of /proc/PID/stat per process). What such a process
	// does before the scan finds it is missed.
	ScanInterval time.Duration `yaml:"scan_interval"`
	// NetInterval is how often the sockets of traced processes are compared
	// with /proc/net to report connect, accept, listen and bind (default
	// 1s; negative disables). A connection opened and closed between two
	// polls is missed unless its process exits while holding it.
	NetInterval time.Duration `yaml:"net_interval"`
	// FileInterval is how often the open files of traced processes are
	// listed to report opens (default 0: off, since it costs one readlink
	// and one fdinfo read per open descriptor per process per poll; 2s to
	// 5s is a reasonable setting). Files opened and closed between polls
	// are missed unless their process exits while holding them.
	FileInterval time.Duration `yaml:"file_interval"`
	// QueueSize bounds the events waiting for the consumer (default 8192).
	// The tracer never waits for a slow consumer, since its tracees stay
	// stopped while it waits: a full queue drops the event, counted in
	// Health's lost_records.
	QueueSize int `yaml:"queue_size"`
	// ArgvBytes bounds the argument bytes read from /proc/PID/cmdline
	// (default 4096), like the eBPF collector's argv bound.
	ArgvBytes int `yaml:"argv_bytes"`
	// EnabledEvents are the event kinds to emit, by the oneof field names of
	// vigil.v1.Event; empty means every kind this mode can produce. Kinds
	// this mode cannot produce are reported in Health, not refused.
	EnabledEvents []string `yaml:"enabled_events"`
	// IgnoredBinaries are executable paths whose processes' events are
	// dropped (the process is still traced, to follow its children).
	IgnoredBinaries []string `yaml:"ignored_binaries"`
	// IgnoredCgroups are cgroup paths (as in /proc/PID/cgroup) whose
	// processes' events are dropped.
	IgnoredCgroups []string `yaml:"ignored_cgroups"`
	// RateLimitPerSecond is the per-process token bucket refill rate in
	// events per second; 0 (the default) disables it. Exit events are
	// never rate limited.
	RateLimitPerSecond uint32 `yaml:"rate_limit_per_second"`
	// RateLimitBurst is the bucket size (default 4 × RateLimitPerSecond).
	RateLimitBurst uint32 `yaml:"rate_limit_burst"`
	// ProcRoot is where procfs is mounted (default /proc).
	ProcRoot string `yaml:"proc_root"`
	// CgroupRoot is where the cgroup file system is mounted (default
	// /sys/fs/cgroup), to turn cgroup paths into ids.
	CgroupRoot string `yaml:"cgroup_root"`
	// Process configures the process table.
	Process proctable.Config `yaml:"process"`
}

// kindSources maps each event kind this mode produces (by the oneof field
// name of vigil.v1.Event) to the source that produces it, as Health names
// it in loaded_probes. It is read-only.
var kindSources = map[string]string{
	"exec":    "ptrace-exec",
	"fork":    "ptrace-exec",
	"exit":    "ptrace-exec",
	"connect": "procfs-net",
	"accept":  "procfs-net",
	"listen":  "procfs-net",
	"bind":    "procfs-net",
	"open":    "procfs-fd",
	// A new io_uring descriptor is its setup.
	"io_uring_setup": "procfs-fd",
}

// Kinds returns the event kinds this mode can produce.
func Kinds() []string {
	out := make([]string, 0, len(kindSources))
	for k := range kindSources {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (c *Config) setDefaults() {
	if c.ScanInterval == 0 {
		c.ScanInterval = 250 * time.Millisecond
	}
	if c.NetInterval == 0 {
		c.NetInterval = time.Second
	}
	if c.QueueSize == 0 {
		c.QueueSize = 8192
	}
	if c.ArgvBytes == 0 {
		c.ArgvBytes = 4096
	}
	if c.RateLimitBurst == 0 {
		c.RateLimitBurst = 4 * c.RateLimitPerSecond
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

// Validate reports every invalid setting, naming its key. Event kinds are
// checked against allKinds, the kinds of vigil.v1.Event, so a policy written
// for the eBPF collector is accepted here too.
func (c Config) Validate() error {
	var errs []error
	if c.ScanInterval < 0 {
		errs = append(errs, errors.New("scan_interval: must not be negative"))
	}
	if c.FileInterval < 0 {
		errs = append(errs, errors.New("file_interval: must not be negative (0 turns it off)"))
	}
	if c.QueueSize < 0 {
		errs = append(errs, fmt.Errorf("queue_size: %d is negative", c.QueueSize))
	}
	if c.ArgvBytes < 0 {
		errs = append(errs, fmt.Errorf("argv_bytes: %d is negative", c.ArgvBytes))
	}
	for _, k := range c.EnabledEvents {
		if !slices.Contains(allKinds, k) {
			errs = append(errs, fmt.Errorf("enabled_events: unknown event kind %q", k))
		}
	}
	if c.RateLimitBurst != 0 && c.RateLimitPerSecond == 0 {
		errs = append(errs, errors.New("rate_limit_burst: set without rate_limit_per_second"))
	}
	if err := c.Process.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("process: %w", err))
	}
	return errors.Join(errs...)
}

// allKinds are the event kinds of vigil.v1.Event, taken from the generated
// descriptor so that a new kind is known here without an edit.
var allKinds = eventKinds()
