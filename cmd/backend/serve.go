package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/vigilsec/vigil/api"
	"github.com/vigilsec/vigil/detect"
	"github.com/vigilsec/vigil/findings"
	"github.com/vigilsec/vigil/findings/export"
	"github.com/vigilsec/vigil/internal/logging"
	"github.com/vigilsec/vigil/internal/version"
	"github.com/vigilsec/vigil/rules"
	"github.com/vigilsec/vigil/stream"
)

// backend is the assembled server: every stage wired, nothing listening yet.
type backend struct {
	store      findings.Store
	exporter   *export.Dispatcher
	watcher    *detect.Watcher
	grpc       *grpc.Server
	grpcHealth *health.Server
	http       *http.Server
}

// assemble builds the backend's stages from cfg, registering their metrics
// on reg; gather is what /metrics serves.
func assemble(ctx context.Context, cfg Config, log *slog.Logger, reg prometheus.Registerer, gather prometheus.Gatherer) (*backend, error) {
	store, err := findings.OpenConfig(ctx, findings.StoreConfig{
		URL: cfg.Store, HealthWindow: cfg.HealthWindow, CorrelationWindow: cfg.CorrelationWindow,
	}, log, reg)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	b := &backend{store: store}
	engine := detect.NewEngine(cfg.Engine, log, reg)
	policies := stream.NewPolicyBroadcaster(nil)
	b.watcher = detect.NewWatcher(detect.WatcherConfig{Builtin: rules.FS, Dir: cfg.RulesDir}, func(rs *detect.RuleSet) {
		engine.SetRules(rs)
		policies.Set(rs.Policy())
	}, log, reg)
	for _, e := range b.watcher.Errors() {
		log.Warn("rules", "problem", e.Error(), "warning", e.Warning)
	}

	b.exporter, err = export.NewFromSettings(ctx, cfg.Export, log, reg)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("exporters: %w", err)
	}
	var publisher findings.Publisher
	if b.exporter != nil {
		publisher = b.exporter
	}
	pipeline := findings.NewPipeline(store, engine, publisher, log, reg)
	streamCfg := cfg.Stream
	streamCfg.Tokens = stream.Tokens{Sensor: cfg.SensorToken, API: cfg.APIToken}
	sensors, err := stream.NewServer(streamCfg, pipeline, pipeline, policies, log, reg)
	if err != nil {
		store.Close()
		return nil, err
	}
	b.grpc, b.grpcHealth, err = stream.NewGRPCServer(streamCfg)
	if err != nil {
		store.Close()
		return nil, err
	}
	sensors.Register(b.grpc)

	apiHandler, err := api.NewServer(api.Config{
		APITokens: []string{cfg.APIToken}, SensorTokens: []string{cfg.SensorToken},
	}, api.Deps{Findings: store, Suppressions: store, Sensors: store, Rules: b.watcher, Gatherer: gather}, log, reg)
	if err != nil {
		store.Close()
		return nil, err
	}
	b.http = &http.Server{
		Handler:           apiHandler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	return b, nil
}

// serve assembles the backend and runs it until ctx ends.
func serve(ctx context.Context, cfg Config) error {
	log, err := logging.New(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	log.Info("starting backend", "version", version.Version, "grpc", cfg.GRPCListen, "http", cfg.HTTPListen)
	b, err := assemble(ctx, cfg, log, reg, reg)
	if err != nil {
		return err
	}
	defer b.store.Close()
	store, watcher, grpcServer, grpcHealth, httpServer := b.store, b.watcher, b.grpc, b.grpcHealth, b.http

	grpcLn, err := net.Listen("tcp", cfg.GRPCListen)
	if err != nil {
		return fmt.Errorf("listen for sensors: %w", err)
	}
	httpLn, err := net.Listen("tcp", cfg.HTTPListen)
	if err != nil {
		grpcLn.Close()
		return fmt.Errorf("listen for the API: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	go func() { errc <- grpcServer.Serve(grpcLn) }()
	go func() {
		if err := httpServer.Serve(httpLn); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}()
	go func() { errc <- watcher.Run(ctx) }()
	go findings.RunRetention(ctx, store, cfg.Retention, time.Hour, time.Now, log)
	if b.exporter != nil {
		go b.exporter.Run(ctx)
	}
	grpcHealth.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	log.Info("backend ready", "rules", len(watcher.RuleSet().Rules()), "rules_dir", cfg.RulesDir)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	log.Info("stopping backend")
	grpcHealth.Shutdown()
	cancel()
	shutdownCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	_ = httpServer.Shutdown(shutdownCtx)
	stopped := make(chan struct{})
	go func() { grpcServer.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-shutdownCtx.Done():
		grpcServer.Stop()
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	return nil
}
