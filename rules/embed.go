// Package rules is Vigil's built-in detection catalogue: Falco-syntax rules,
// sequence and threshold rules, and threat-intel lists, each mapped to a
// GuardDuty runtime finding type and MITRE ATT&CK. The backend loads these
// first and then the config map directory, so any item here can be disabled,
// appended to or overridden by name.
package rules

import "embed"

// FS holds the catalogue's YAML files and the list files they name.
//
//go:embed *.yaml lists/*.txt
var FS embed.FS
