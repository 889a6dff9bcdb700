package main

import (
	"errors"
	"fmt"

	"github.com/vigilsec/vigil/collector"
	"github.com/vigilsec/vigil/collector/procmode"
	"github.com/vigilsec/vigil/enrich"
	"github.com/vigilsec/vigil/internal/logging"
	"github.com/vigilsec/vigil/stream"
)

// Config is the sensor's configuration: YAML file (--config), then VIGIL_*
// variables, then flags. docs/config-sensor.md is generated from it.
type Config struct {
	// Stream is the connection to the backend: address, TLS, spool and
	// batching.
	Stream stream.ClientConfig `yaml:",inline"`
	// Token is the sensor token the backend expects. Read it from the
	// environment or the file, never from the command line.
	Token string `yaml:"token" flag:"-" env:"VIGIL_SENSOR_TOKEN"`
	// Stdout prints one JSON event per line instead of sending to a backend
	// (the protobuf JSON mapping of vigil.v1.Event).
	Stdout bool `yaml:"stdout" flag:"stdout"`
	// MetricsListen is the address of /metrics and /healthz; empty turns
	// them off.
	MetricsListen string `yaml:"metrics_listen" flag:"metrics-listen"`
	// Mode is how the sensor captures: ebpf (the default), or procfs, the
	// lower-fidelity mode for AWS Fargate where eBPF is not allowed (ptrace
	// and /proc polling; see docs/fargate.md for what it cannot see).
	Mode string `yaml:"mode" flag:"mode"`
	// Collector configures the eBPF capture.
	Collector collector.Config `yaml:"collector"`
	// Procfs configures the procfs capture mode.
	Procfs procmode.Config `yaml:"procfs"`
	// Enrich configures the container, Kubernetes, ECS and EC2 context.
	Enrich enrich.Config `yaml:"enrich"`
	// MaxProcs is how many cores the sensor's Go code may run on at once
	// (GOMAXPROCS). In ebpf mode the default is one core per 16 the sensor
	// may use, at least one: one core decodes and forwards about a million
	// events a second, more than most hosts make, and a sensor with a single
	// core wakes no second thread to hand work to, so it takes less from the
	// cores the traced workload runs on. Raise it on a host whose sustained
	// event rate that cannot carry (the sensor at 100% of its cores while
	// vigil_collector_lost_records_total rises). In procfs mode, and when
	// the GOMAXPROCS environment variable is set, the default is Go's own
	// (the CPUs the sensor may use).
	MaxProcs int `yaml:"max_procs" flag:"max-procs"`
	// CPUProfile, when set, writes a Go CPU profile of the sensor to this
	// file until it stops (for diagnosing the sensor's own cost).
	CPUProfile string `yaml:"cpu_profile" flag:"cpu-profile"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level" flag:"log-level"`
	// LogFormat is text or json.
	LogFormat string `yaml:"log_format" flag:"log-format"`
}

func defaultConfig() Config {
	sc := stream.DefaultClientConfig()
	// A spool on disk keeps batches (and the sequence) across restarts.
	sc.SpoolDir = "/var/lib/vigil/spool"
	return Config{
		Stream:        sc,
		MetricsListen: ":9090",
		Mode:          "ebpf",
		Enrich:        enrich.DefaultConfig(),
		LogLevel:      "info",
		LogFormat:     "text",
	}
}

// Validate says which key is wrong and why.
func (c *Config) Validate() error {
	var errs []error
	if !c.Stdout {
		if c.Stream.Backend == "" {
			errs = append(errs, errors.New("backend: required (or run with --stdout)"))
		}
		if c.Token == "" {
			errs = append(errs, errors.New("token: required (set VIGIL_SENSOR_TOKEN)"))
		}
	}
	if c.Mode != "ebpf" && c.Mode != "procfs" {
		errs = append(errs, fmt.Errorf("mode: %q is not ebpf or procfs", c.Mode))
	}
	if c.MaxProcs < 0 {
		errs = append(errs, fmt.Errorf("max_procs: %d is negative", c.MaxProcs))
	}
	if _, err := logging.New(c.LogLevel, c.LogFormat); err != nil {
		errs = append(errs, err)
	}
	if err := c.Enrich.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("enrich: %w", err))
	}
	return errors.Join(errs...)
}

// maxProcs is the GOMAXPROCS the sensor should run with, or 0 to leave the
// runtime's choice. cpus is what the runtime would use (the CPUs the sensor
// may run on, within its cgroup's CPU limit).
func (c *Config) maxProcs(env func(string) string, cpus int) int {
	switch {
	case c.MaxProcs > 0:
		return c.MaxProcs
	case c.Mode == "ebpf" && env("GOMAXPROCS") == "":
		return max(1, (cpus+15)/16)
	}
	return 0
}
