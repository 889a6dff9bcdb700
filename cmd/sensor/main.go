// Command sensor captures process, file and network activity with eBPF, adds
// container, Kubernetes, ECS and EC2 context, and streams it to a Vigil
// backend. With --stdout it runs without a backend and prints one JSON event
// per line.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "sensor:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	cfg := defaultConfig()
	if _, err := config.Load(&cfg, "sensor", args, usage); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log, err := logging.New(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	if n := cfg.maxProcs(os.Getenv, runtime.GOMAXPROCS(0)); n > 0 {
		runtime.GOMAXPROCS(n)
	}
	if os.Getenv("GOGC") == "" {
		// Events are short-lived garbage and the live heap is small: collect
		// less often, so a flood costs the host less CPU.
		debug.SetGCPercent(400)
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return fmt.Errorf("cpu_profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu_profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	return runSensor(ctx, cfg, log)
}

func usage(fs *flag.FlagSet) {
	fmt.Fprint(fs.Output(), `Usage: sensor --backend HOST:PORT [--ca FILE | --insecure] [flags]
       sensor --stdout [flags]

The sensor token comes from VIGIL_SENSOR_TOKEN. Every flag can also be set in
the --config file or as a VIGIL_* variable (docs/configuration.md).

Flags:
`)
	fs.PrintDefaults()
}
