package findings

import (
	"context"
	"log/slog"
	"time"
)

// RunRetention purges findings not updated for maxAge, once at start and
// then every interval, until ctx ends. A failed purge is logged and tried
// again at the next interval. maxAge <= 0 keeps everything.
func RunRetention(ctx context.Context, s Store, maxAge, interval time.Duration, now func() time.Time, log *slog.Logger) {
	if maxAge <= 0 {
		return
	}
	if interval <= 0 {
		interval = time.Hour
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "findings")
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.Purge(ctx, now().Add(-maxAge))
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("retention purge failed", "err", err)
		case n > 0:
			log.Info("retention purged findings", "findings", n, "max_age", maxAge)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
