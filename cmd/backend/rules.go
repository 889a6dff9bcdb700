package main

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/vigilsec/vigil/detect"
	"github.com/vigilsec/vigil/rules"
)

var errUsage = errors.New("usage")

// rulesCommand runs `backend rules check DIR` and `backend rules fields`.
func rulesCommand(w io.Writer, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: backend rules check DIR | backend rules fields", errUsage)
	}
	switch args[0] {
	case "check":
		if len(args) != 2 {
			return fmt.Errorf("%w: backend rules check DIR", errUsage)
		}
		errs := detect.CheckDir(rules.FS, args[1])
		for _, e := range errs {
			kind := "error"
			if e.Warning {
				kind = "warning"
			}
			fmt.Fprintf(w, "%s: %s\n", kind, e.Error())
		}
		if detect.HasErrors(errs) {
			return fmt.Errorf("%s: rules rejected", args[1])
		}
		fmt.Fprintf(w, "%s: ok\n", args[1])
		return nil
	case "fields":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FIELD\tTYPE\tMEANING")
		for _, f := range detect.Fields() {
			name := f.Name
			switch {
			case f.Arg != "" && f.ArgOptional:
				name += "[" + f.Arg + "]?"
			case f.Arg != "":
				name += "[" + f.Arg + "]"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", name, f.Type, f.Description)
		}
		return tw.Flush()
	}
	return fmt.Errorf("%w: unknown rules command %q", errUsage, args[0])
}
