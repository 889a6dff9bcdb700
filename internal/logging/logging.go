// Package logging builds the binaries' structured logger from the level and
// format keys of their configuration.
package logging

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// New returns a logger writing to stderr at level (debug, info, warn, error)
// in format (text or json).
func New(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("log_level: %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("log_format: %q is not text or json", format)
}
