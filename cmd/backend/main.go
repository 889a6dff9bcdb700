// Command backend receives events from Vigil sensors, turns them into
// findings, stores them and serves the REST API, the CLI's requests and the
// web page.
//
//	backend [flags]                    serve (the default)
//	backend rules check DIR            validate a rules directory offline
//	backend rules fields               list every field rules can use
//	backend findings list|get|archive|unarchive [--server URL] [-o json]
//	backend sensors [--server URL]     coverage of every sensor
//	backend version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigilsec/vigil/api/cli"
	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "backend:", err)
		}
		os.Exit(exitCode(err))
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "rules":
			return rulesCommand(os.Stdout, args[1:])
		case "findings", "sensors":
			return cli.Run(ctx, args, os.Stdout, os.Stderr)
		case "version":
			fmt.Println(version.Version)
			return nil
		case "serve":
			args = args[1:]
		}
	}
	cfg := defaultConfig()
	if _, err := config.Load(&cfg, "backend", args, usage); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	return serve(ctx, cfg)
}

func usage(fs *flag.FlagSet) {
	fmt.Fprint(fs.Output(), `Usage: backend [flags]              serve sensors, the API and the web page
       backend rules check DIR      validate a rules directory
       backend rules fields         list the fields rules can use
       backend findings list|get|archive|unarchive
       backend sensors
       backend version

Tokens come from VIGIL_SENSOR_TOKEN and VIGIL_API_TOKEN. Every flag can also
be set in the --config file or as a VIGIL_* variable (docs/configuration.md).

Flags:
`)
	fs.PrintDefaults()
}

// exitCode is 2 for usage errors, 1 otherwise.
func exitCode(err error) int {
	if errors.Is(err, flag.ErrHelp) || errors.Is(err, cli.ErrUsage) || errors.Is(err, errUsage) {
		return 2
	}
	return 1
}
