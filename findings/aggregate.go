package findings

import (
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// mergeInto aggregates a repeat (next) into an existing finding: the count
// adds up, first and last seen widen, and the latest process, context and
// evidence (bounded) replace older ones. The id, creation time, archive
// state and attack sequence stay. It reports whether next was the latest
// and so replaced the details (its evidence events were appended).
func mergeInto(existing, next *vigilv1.Finding, now time.Time) bool {
	if existing.Service == nil {
		existing.Service = &vigilv1.Service{}
	}
	es, ns := existing.Service, next.GetService()
	es.Count += max(ns.GetCount(), 1)
	first, last := ns.GetEventFirstSeen(), ns.GetEventLastSeen()
	if first != nil && (es.EventFirstSeen == nil || first.AsTime().Before(es.EventFirstSeen.AsTime())) {
		es.EventFirstSeen = first
	}
	newer := last != nil && (es.EventLastSeen == nil || !last.AsTime().Before(es.EventLastSeen.AsTime()))
	if newer {
		es.EventLastSeen = last
	}
	existing.UpdatedAt = timestamppb.New(now)
	if next.Severity > existing.Severity {
		existing.Severity = next.Severity
		existing.SeverityLabel = SeverityLabel(next.Severity)
	}
	if !newer {
		// An older repeat (a late batch) still counts, but does not replace
		// the latest details.
		return false
	}
	existing.Title = next.Title
	existing.Description = next.Description
	if ns.GetRuntimeDetails() != nil {
		es.RuntimeDetails = ns.RuntimeDetails
	}
	if ns.GetThreatIntelligenceDetails() != nil {
		es.ThreatIntelligenceDetails = ns.ThreatIntelligenceDetails
	}
	if next.Resource != nil {
		existing.Resource = next.Resource
	}
	existing.MitreTactics = next.MitreTactics
	existing.MitreTechniques = next.MitreTechniques
	if ne := next.GetEvidence(); ne != nil {
		if existing.Evidence == nil {
			existing.Evidence = &vigilv1.Evidence{}
		}
		ee := existing.Evidence
		ee.Rule, ee.Output, ee.RuleKind = ne.Rule, ne.Output, ne.RuleKind
		ee.Fields = ne.Fields
		ee.Events = lastEvents(append(ee.Events, ne.Events...), MaxEvidenceEvents)
		if len(ne.RelatedFindingIds) > 0 {
			ee.RelatedFindingIds = ne.RelatedFindingIds
		}
	}
	return true
}

// AttackSequencePrefix starts the type of every attack-sequence finding.
const AttackSequencePrefix = "AttackSequence:"

func isAttackSequence(typ string) bool { return strings.HasPrefix(typ, AttackSequencePrefix) }
