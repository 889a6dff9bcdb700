// Command sensor captures process, file and network activity with eBPF.
// With --stdout it runs without a backend and prints one JSON event per line.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/collector"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

func main() {
	var cfg collector.Config
	stdout := flag.Bool("stdout", false, "print events as JSON lines on stdout (no backend)")
	flag.StringVar(&cfg.BTFPath, "btf", "", "BTF file for kernels without /sys/kernel/btf/vmlinux")
	flag.IntVar(&cfg.RingBufferBytes, "ring-buffer-bytes", 0, "ring buffer size, a power of two (default 32 MiB)")
	flag.IntVar(&cfg.ArgvBytes, "argv-bytes", 0, "argument bytes captured per exec (default 4096)")
	rate := flag.Uint("rate-limit", 0, "per-process events per second, in the kernel (0: unlimited)")
	flag.Parse()
	cfg.RateLimitPerSecond = uint32(*rate)
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if os.Getenv("GOGC") == "" {
		// Events are short-lived garbage and the live heap is small: collect
		// less often, so a flood costs the host less CPU.
		debug.SetGCPercent(400)
	}
	if err := run(cfg, *stdout, log); err != nil {
		log.Error("sensor stopped", "error", err)
		os.Exit(1)
	}
}

func run(cfg collector.Config, stdout bool, log *slog.Logger) error {
	if !stdout {
		return fmt.Errorf("no backend configured yet: run with --stdout")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := collector.New(cfg, log, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	events := make(chan *vigilv1.Event, 4096)
	done := make(chan error, 1)
	go func() { done <- collector.WriteJSON(ctx, os.Stdout, events, 100*time.Millisecond) }()
	err = c.Run(ctx, events)
	close(events)
	werr := <-done
	var h vigilv1.SensorHealth
	c.Health(&h)
	log.Info("capture stopped", "events", h.EventsTotal, "lost_records", h.LostRecords,
		"rate_limited", h.RateLimited, "decode_errors", h.DecodeErrors, "probes", len(h.LoadedProbes), "skipped", len(h.SkippedProbes))
	if err != nil {
		return err
	}
	return werr
}
