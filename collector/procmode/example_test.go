package procmode_test

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/collector/procmode"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// A Fargate sidecar (sensor --mode=procfs) builds the collector instead of
// the eBPF one and runs it the same way: events on a channel, health and
// policy through the same two methods.
func ExampleNew() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	c, err := procmode.New(procmode.Config{FileInterval: 3 * time.Second}, log, prometheus.NewRegistry())
	if err != nil {
		log.Error("procfs capture", "error", err)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	events := make(chan *vigilv1.Event, 1024)
	go func() {
		for ev := range events {
			_ = ev // enrich and stream
		}
	}()
	if err := c.Run(ctx, events); err != nil {
		log.Error("procfs capture stopped", "error", err)
	}
	var h vigilv1.SensorHealth
	c.Health(&h) // h.Mode == "procfs"; h.SkippedProbes names what eBPF would add
}
