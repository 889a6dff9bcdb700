// Package detect is Vigil's rule language and detection engine: it turns the
// event stream into alerts that the findings stage makes findings of.
//
// # Rule language
//
// Rules are written in Falco's syntax and upstream Falco rule files load
// unchanged: the items rule, macro, list, required_engine_version and
// required_plugin_versions; rule keys condition, output (%field, %field[N],
// %transformer(field); <NA> for missing values), desc, priority, tags,
// enabled, source, exceptions; append and override {append|replace} with
// Falco's semantics (condition appends are text concatenation); macros see
// only earlier macros; list names are expanded where a list is expected, with
// Falco's quoting of items. Operators: = != < <= > >= contains icontains
// bcontains startswith bstartswith endswith glob iglob regex in intersects
// pmatch exists, and/or/not; transformers tolower toupper len b64 basename on
// either side and val(field) on the right. A field Vigil does not support is
// reported by name at load time and disables the rule; the file still loads.
// Rules whose source is not syscall are skipped with a warning. Every rule
// that matches an event fires (Falco's rule_matching: all).
//
// Fields are Falco's names over Vigil's events (see Fields, which generates
// docs/rules.md), plus Vigil's own: ecs.*, host.*, dns.*, proc.uuid,
// proc.sha256, file.created_by, proc.stdin.type and friends.
//
// # Vigil extensions
//
// Finding metadata on any rule maps it to a GuardDuty runtime finding:
//
//	finding:
//	  type: Execution:Runtime/ReverseShell
//	  severity: 8
//	  tactics: [TA0002]
//	  techniques: [T1059.004]
//	  context: {socketPath: fd.name, toolName: "nmap"}
//
// Context values that name a field are rendered from the matching event,
// $name takes a sequence capture, anything else is literal text ('"x.y"'
// forces a literal that looks like a field). Without finding, the priority
// gives the severity (Emergency/Alert/Critical 9, Error 8, Warning 5, Notice
// 4, Informational 2, Debug 1), the type is Vigil:Runtime/<RuleNameInCamel>,
// and MITRE ids come from mitre_* and T#### tags.
//
// Sequence rules fire when ordered steps match within a window under one key
// (by: a field, or process, process_tree, container, host, user); a step can
// capture fields that later steps compare with $name. A match fires once,
// with every step's event as evidence; partial matches expire; per-key state
// is bounded and evictions are counted. Threshold rules fire when count
// matching events (or count distinct values of a field) arrive under one key
// within a window.
//
// Lists can be threat intelligence: kind: domains matches a DNS name and its
// subdomains, kind: ips accepts CIDRs; items can come from items_file (one
// per line, # comments) next to the rule file. A match through such a list
// puts threatListName and threatListItem (and domain or remoteIp) in the
// alert's context.
//
// A collection item sets the collection policy pushed to sensors; without
// enabled_events the policy is derived from the event types the enabled
// rules need.
//
// # Loading and running
//
// LoadRules reads the built-in rules, then a config map directory in file
// name order; Watcher reloads on change (the ..data symlink swap Kubernetes
// does included) and keeps the last good set when a file has errors. Engine
// evaluates a RuleSet, indexed by event type, and is safe for concurrent
// use; SetRules swaps sets atomically and keeps sequence and threshold state
// of rules whose logic did not change.
package detect
