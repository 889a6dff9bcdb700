package findings

import (
	"strings"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// Match reports whether a finding matches a filter: every set field must
// match. Stores use it for suppressions; SQL queries implement the same
// semantics with indexed columns (the store tests check they agree).
func Match(flt *vigilv1.FindingFilter, f *vigilv1.Finding) bool {
	if flt == nil {
		return true
	}
	c := columnsOf(f)
	if flt.Type != "" && !matchPattern(flt.Type, c.typ) {
		return false
	}
	if flt.SeverityMin > 0 && c.severity < flt.SeverityMin {
		return false
	}
	if flt.SeverityMax > 0 && c.severity > flt.SeverityMax {
		return false
	}
	if t := flt.UpdatedAfter; t != nil && c.updatedAt < t.AsTime().UnixNano() {
		return false
	}
	if t := flt.UpdatedBefore; t != nil && c.updatedAt > t.AsTime().UnixNano() {
		return false
	}
	switch flt.Archived {
	case "true":
		if !c.archived {
			return false
		}
	case "false":
		if c.archived {
			return false
		}
	}
	if flt.Cluster != "" {
		// Cluster names hold no colon; ARNs start with "arn:".
		if strings.HasPrefix(flt.Cluster, "arn:") {
			if flt.Cluster != c.clusterArn {
				return false
			}
		} else if flt.Cluster != c.cluster {
			return false
		}
	}
	for _, p := range []struct{ want, have string }{
		{flt.TaskArn, c.taskArn},
		{flt.Namespace, c.namespace},
		{flt.Pod, c.pod},
		{flt.Image, c.image},
		{flt.ContainerId, c.containerID},
		{flt.InstanceId, c.instanceID},
		{flt.Hostname, c.hostname},
		{flt.Rule, c.rule},
	} {
		if p.want != "" && !matchPattern(p.want, p.have) {
			return false
		}
	}
	return true
}

// matchPattern is an exact match, or a prefix match when the pattern ends
// with "*".
func matchPattern(pattern, s string) bool {
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(s, p)
	}
	return pattern == s
}

// columns are the indexed values of a finding, as stored.
type columns struct {
	typ, rule                                 string
	severity                                  float64
	createdAt, updatedAt, firstSeen, lastSeen int64
	archived                                  bool
	cluster, clusterArn, taskArn              string
	namespace, pod, image, containerID        string
	instanceID, hostname, sequenceID, tactics string
}

func columnsOf(f *vigilv1.Finding) columns {
	r := f.GetResource()
	c := columns{
		typ:        f.GetType(),
		rule:       f.GetEvidence().GetRule(),
		severity:   f.GetSeverity(),
		createdAt:  f.GetCreatedAt().AsTime().UnixNano(),
		updatedAt:  f.GetUpdatedAt().AsTime().UnixNano(),
		firstSeen:  f.GetService().GetEventFirstSeen().AsTime().UnixNano(),
		lastSeen:   f.GetService().GetEventLastSeen().AsTime().UnixNano(),
		archived:   f.GetService().GetArchived(),
		cluster:    r.GetEcsClusterDetails().GetName(),
		clusterArn: r.GetEcsClusterDetails().GetArn(),
		taskArn:    r.GetEcsClusterDetails().GetTaskDetails().GetArn(),
		namespace:  r.GetKubernetesDetails().GetKubernetesWorkloadDetails().GetNamespace(),
		pod:        r.GetKubernetesDetails().GetKubernetesWorkloadDetails().GetName(),
		image:      r.GetContainerDetails().GetImage(),
		hostname:   r.GetHostname(),
		instanceID: r.GetInstanceDetails().GetInstanceId(),
		sequenceID: f.GetAttackSequenceId(),
	}
	c.containerID = r.GetContainerDetails().GetId()
	c.tactics = strings.Join(tacticsOf(f), ",")
	return c
}

// tacticsOf returns a finding's MITRE ATT&CK tactics: the rule's, or the
// tactic its type's threat purpose stands for when the rule named none.
func tacticsOf(f *vigilv1.Finding) []string {
	if len(f.GetMitreTactics()) > 0 {
		return f.GetMitreTactics()
	}
	purpose, _, _ := strings.Cut(f.GetType(), ":")
	if t, ok := purposeTactics[purpose]; ok {
		return []string{t}
	}
	return nil
}

// purposeTactics maps GuardDuty threat purposes to ATT&CK tactic ids.
var purposeTactics = map[string]string{
	"Execution":           "TA0002",
	"Persistence":         "TA0003",
	"PrivilegeEscalation": "TA0004",
	"DefenseEvasion":      "TA0005",
	"CredentialAccess":    "TA0006",
	"Discovery":           "TA0007",
	"LateralMovement":     "TA0008",
	"Collection":          "TA0009",
	"Exfiltration":        "TA0010",
	"Backdoor":            "TA0011", // command and control
	"Impact":              "TA0040",
	"CryptoCurrency":      "TA0040",
	"Trojan":              "TA0011",
	"UnauthorizedAccess":  "TA0001",
}
