package detect

import (
	"time"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// RuleInfo is what a rule says about the findings it raises. It is shared by
// every alert of the rule and must not be modified.
type RuleInfo struct {
	// Name is the rule's name, unique in the active rule set.
	Name string
	// Kind is "falco" for single-event rules, "sequence" or "threshold".
	Kind string
	// Description is the rule's desc.
	Description string
	// Priority is the Falco priority (EMERGENCY ... DEBUG).
	Priority string
	// FindingType is the GuardDuty-style finding type, for example
	// "Execution:Runtime/ReverseShell".
	FindingType string
	// Severity is 1.0-10.0; rules without one map their priority to it.
	Severity float64
	// MitreTactics and MitreTechniques are ATT&CK ids (TA0002, T1059.004).
	MitreTactics    []string
	MitreTechniques []string
	// Tags are the rule's tags.
	Tags []string
	// File is the rule file the rule came from ("builtin:..." for embedded
	// rules), and Line the line of its definition there.
	File string
	Line int
	// Enabled is false for rules switched off in the rule files or disabled
	// because they use fields Vigil does not support.
	Enabled bool
	// Condition is the rule's full condition text (for sequences, the
	// steps' conditions), exceptions included.
	Condition string
	// Unsupported lists the fields that disabled the rule, if any.
	Unsupported []string
}

// Alert is one match of a rule: what the findings stage turns into a finding.
type Alert struct {
	// Rule is the rule that matched.
	Rule *RuleInfo
	// Time is the time of the last evidence event.
	Time time.Time
	// Output is the rule's output with its %fields rendered.
	Output string
	// Events are the evidence, oldest first: the matching event for
	// single-event rules, one per step for sequences, the latest events for
	// thresholds (bounded).
	Events []*vigilv1.Event
	// Context holds finding-context values the rule declared, keyed by the
	// RuntimeContext JSON name (socketPath, releaseAgentPath, toolName, ...),
	// plus values the engine derives (threatListName for list matches).
	Context map[string]string
	// Captures holds the values sequence steps captured, by capture name
	// (threshold alerts: "by" and "count").
	Captures map[string]string
	// GroupKey, for rules with finding.group_by, holds the values of those
	// fields: matches with the same key on one workload are one finding,
	// whatever executable each came from (every command of one reverse
	// shell session). Empty otherwise.
	GroupKey string
	// OutputFields are the fields the output names, by field name
	// ("proc.aname[2]"), with typed values (string, int64 or bool) and nil
	// for missing ones: Falco's JSON output_fields.
	OutputFields map[string]any
}
