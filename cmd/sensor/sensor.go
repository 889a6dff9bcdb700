package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilsec/vigil/collector"
	"github.com/vigilsec/vigil/collector/procmode"
	"github.com/vigilsec/vigil/enrich"
	"github.com/vigilsec/vigil/internal/version"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
	"github.com/vigilsec/vigil/stream"
)

// capture is what the sensor reads events from: the eBPF collector (or,
// on Fargate, the procfs collector).
type capture interface {
	Run(ctx context.Context, out chan<- *vigilv1.Event) error
	Health(h *vigilv1.SensorHealth)
	ApplyPolicy(p *vigilv1.CollectionPolicy) error
}

// runSensor wires capture → enrichment → output (the backend stream or
// stdout) and runs until ctx ends.
func runSensor(ctx context.Context, cfg Config, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	log.Info("starting sensor", "version", version.Version, "backend", cfg.Stream.Backend, "stdout", cfg.Stdout, "max_procs", runtime.GOMAXPROCS(0))

	var src capture
	switch cfg.Mode {
	case "procfs":
		pc, err := procmode.New(cfg.Procfs, log, reg)
		if err != nil {
			return fmt.Errorf("capture (procfs mode): %w", err)
		}
		src = pc
	default:
		col, err := collector.New(cfg.Collector, log, reg)
		if err != nil {
			return fmt.Errorf("capture: %w", err)
		}
		src = col
	}

	enricher, err := enrich.New(cfg.Enrich, log, reg)
	if err != nil {
		return fmt.Errorf("enrichment: %w", err)
	}
	if err := enricher.Start(ctx); err != nil {
		return fmt.Errorf("enrichment: %w", err)
	}

	health := func() *vigilv1.SensorHealth {
		h := &vigilv1.SensorHealth{Version: version.Version, Time: timestamppb.Now()}
		src.Health(h)
		h.Enrichment = enricher.Status()
		h.Host = enricher.Host()
		h.Kernel = h.GetHost().GetKernel()
		return h
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.MetricsListen != "" {
		stopMetrics, err := serveMetrics(cfg.MetricsListen, reg, log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}

	raw := make(chan *vigilv1.Event, 8192)
	enriched := make(chan *vigilv1.Event, 8192)
	go func() {
		defer close(enriched)
		for ev := range raw {
			enricher.Enrich(ev)
			enriched <- ev
		}
	}()

	outDone := make(chan error, 1)
	if cfg.Stdout {
		go func() { outDone <- collector.WriteJSON(ctx, os.Stdout, enriched, 100*time.Millisecond) }()
	} else {
		sc := cfg.Stream
		sc.Token = cfg.Token
		sc.Version = version.Version
		sc.Host = enricher.Host()
		if sc.SensorID == "" {
			sc.SensorID = defaultSensorID(sc.Host)
		}
		sc.HealthFunc = health
		sc.OnPolicy = func(p *vigilv1.CollectionPolicy) {
			if err := src.ApplyPolicy(p); err != nil {
				log.Warn("collection policy not applied", "version", p.GetVersion(), "error", err)
				return
			}
			log.Info("collection policy applied", "version", p.GetVersion(), "events", len(p.GetEnabledEvents()))
		}
		client, err := stream.NewClient(sc, log, reg)
		if err != nil {
			return err
		}
		go func() { outDone <- client.Run(ctx, enriched) }()
	}

	runErr := src.Run(ctx, raw)
	close(raw)
	outErr := <-outDone
	h := health()
	log.Info("sensor stopped", "events", h.GetEventsTotal(), "lost_records", h.GetLostRecords(),
		"rate_limited", h.GetRateLimited(), "decode_errors", h.GetDecodeErrors())
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	return outErr
}

// defaultSensorID names a sensor after its EC2 instance when it has one,
// else its host name.
func defaultSensorID(h *vigilv1.Host) string {
	if id := h.GetInstanceId(); id != "" {
		return id
	}
	if n := h.GetHostname(); n != "" {
		return n
	}
	n, _ := os.Hostname()
	return n
}

// serveMetrics serves /metrics and /healthz; the returned func stops it.
func serveMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics server stopped", "error", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
