package findings

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// Attack sequences.
//
// When findings of at least StoreConfig.MinSequenceTactics (default 2)
// different MITRE ATT&CK tactics occur on one workload (the ECS task, the
// Kubernetes pod, else the container, else the host) within
// StoreConfig.CorrelationWindow (default one hour) of the newest one, the
// store raises one Critical finding that links them: its
// evidence.relatedFindingIds lists the members, and each member's
// attackSequenceId names it. Later members join the same sequence finding,
// which counts its members. Archived (suppressed) findings do not count.
//
// The types follow GuardDuty's Extended Threat Detection names where one
// exists: AttackSequence:ECS/CompromisedCluster for ECS tasks and
// AttackSequence:EKS/CompromisedCluster for Kubernetes pods; GuardDuty has
// none for plain containers and hosts, where Vigil uses
// AttackSequence:Runtime/CompromisedWorkload.
const (
	AttackSequenceECS      = "AttackSequence:ECS/CompromisedCluster"
	AttackSequenceEKS      = "AttackSequence:EKS/CompromisedCluster"
	AttackSequenceWorkload = "AttackSequence:Runtime/CompromisedWorkload"
)

// AttackSequenceRule is the evidence rule name of attack-sequence findings.
const AttackSequenceRule = "Vigil attack sequence"

// maxSequenceMembers bounds the findings one correlation reads.
const maxSequenceMembers = 200

// correlate raises or updates the attack sequence of one workload after its
// findings changed; lastSeen is the newest changed finding's last event.
func (s *sqlStore) correlate(ctx context.Context, tx *sql.Tx, resKey string, lastSeen int64, sups []*vigilv1.Suppression, now time.Time) ([]*vigilv1.Finding, error) {
	from := lastSeen - s.cfg.CorrelationWindow.Nanoseconds()
	rows, err := tx.QueryContext(ctx, s.q(`SELECT d.data FROM findings f JOIN finding_data d ON d.id = f.id
		WHERE f.resource_key = ? AND f.last_seen >= ? AND f.archived = 0 AND substr(f.type, 1, `+fmt.Sprint(len(AttackSequencePrefix))+`) <> ?
		ORDER BY f.id LIMIT `+fmt.Sprint(maxSequenceMembers)+s.d.forUpdate), resKey, from, AttackSequencePrefix)
	if err != nil {
		return nil, fmt.Errorf("correlate: %w", err)
	}
	var members []*vigilv1.Finding
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			rows.Close()
			return nil, fmt.Errorf("correlate: scan: %w", err)
		}
		f := &vigilv1.Finding{}
		if err := proto.Unmarshal(data, f); err != nil {
			rows.Close()
			return nil, fmt.Errorf("correlate: decode: %w", err)
		}
		members = append(members, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("correlate: %w", err)
	}
	tactics := map[string]bool{}
	for _, m := range members {
		for _, t := range tacticsOf(m) {
			tactics[t] = true
		}
	}
	if len(tactics) < s.cfg.MinSequenceTactics {
		return nil, nil
	}
	sort.Slice(members, func(i, j int) bool {
		a, b := members[i].GetService().GetEventLastSeen().AsTime(), members[j].GetService().GetEventLastSeen().AsTime()
		if !a.Equal(b) {
			return a.Before(b)
		}
		return members[i].Id < members[j].Id
	})

	var seq *vigilv1.Finding
	for i := len(members) - 1; i >= 0 && seq == nil; i-- {
		id := members[i].GetAttackSequenceId()
		if id == "" {
			continue
		}
		var data []byte
		err := tx.QueryRowContext(ctx, s.q(`SELECT d.data FROM findings f JOIN finding_data d ON d.id = f.id WHERE f.id = ?`+s.d.forUpdate), id).Scan(&data)
		if errors.Is(err, sql.ErrNoRows) {
			continue // purged; start a new one
		}
		if err != nil {
			return nil, fmt.Errorf("correlate: read sequence: %w", err)
		}
		seq = &vigilv1.Finding{}
		if err := proto.Unmarshal(data, seq); err != nil {
			return nil, fmt.Errorf("correlate: decode sequence: %w", err)
		}
	}
	isNew := seq == nil
	if isNew {
		seq = &vigilv1.Finding{Id: NewID(), CreatedAt: timestamppb.New(now), SchemaVersion: SchemaVersion}
	}
	fillSequence(seq, members, s.cfg, now)
	var changed []*vigilv1.Finding
	if isNew {
		for _, sup := range sups {
			if Match(sup.GetFilter(), seq) {
				seq.Service.Archived = true
				break
			}
		}
		if _, err := s.insertFinding(ctx, tx, "attack-sequence:"+seq.Id, resKey, seq); err != nil {
			return nil, err
		}
	} else if err := s.updateFinding(ctx, tx, seq); err != nil {
		return nil, fmt.Errorf("correlate: %w", err)
	}
	s.m.sequences.Inc()
	changed = append(changed, seq)
	for _, m := range members {
		if m.AttackSequenceId == seq.Id {
			continue
		}
		m.AttackSequenceId = seq.Id
		if err := s.updateFinding(ctx, tx, m); err != nil {
			return nil, fmt.Errorf("correlate: link member: %w", err)
		}
		changed = append(changed, m)
	}
	return changed, nil
}

// fillSequence (re)writes an attack-sequence finding from its members, which
// are sorted oldest first. Members of an earlier run of the sequence that
// fell out of the window stay linked.
func fillSequence(seq *vigilv1.Finding, members []*vigilv1.Finding, cfg StoreConfig, now time.Time) {
	newest := members[len(members)-1]
	var res *vigilv1.Resource
	if newest.Resource != nil {
		res = proto.Clone(newest.Resource).(*vigilv1.Resource)
	}
	typ := AttackSequenceWorkload
	switch res.GetResourceType() {
	case ResourceECSCluster:
		typ = AttackSequenceECS
	case ResourceEKSCluster:
		typ = AttackSequenceEKS
	}
	related := map[string]bool{}
	var ids []string
	for _, id := range seq.GetEvidence().GetRelatedFindingIds() {
		if !related[id] {
			related[id] = true
			ids = append(ids, id)
		}
	}
	tactics, techniques, types := map[string]bool{}, map[string]bool{}, map[string]bool{}
	var evs []*vigilv1.Event
	first, last := members[0].GetService().GetEventFirstSeen(), newest.GetService().GetEventLastSeen()
	for _, m := range members {
		if !related[m.Id] {
			related[m.Id] = true
			ids = append(ids, m.Id)
		}
		for _, t := range tacticsOf(m) {
			tactics[t] = true
		}
		for _, t := range m.GetMitreTechniques() {
			techniques[t] = true
		}
		types[m.Type] = true
		if ev := m.GetEvidence().GetEvents(); len(ev) > 0 {
			evs = append(evs, ev[len(ev)-1])
		}
		if fs := m.GetService().GetEventFirstSeen(); fs != nil && (first == nil || fs.AsTime().Before(first.AsTime())) {
			first = fs
		}
	}
	if old := seq.GetService().GetEventFirstSeen(); old != nil && (first == nil || old.AsTime().Before(first.AsTime())) {
		first = old
	}
	tacticList, techniqueList, typeList := sortedKeys(tactics), sortedKeys(techniques), sortedKeys(types)
	sev := min(9+0.25*float64(len(tacticList)-cfg.MinSequenceTactics), 10)

	seq.Type = typ
	seq.Severity = sev
	seq.SeverityLabel = SeverityLabel(sev)
	seq.UpdatedAt = timestamppb.New(now)
	seq.AccountId, seq.Region, seq.Partition = newest.AccountId, newest.Region, newest.Partition
	seq.Resource = res
	seq.Title = fmt.Sprintf("Attack sequence of %d findings across %d tactics %s.", len(ids), len(tacticList), where(res))
	seq.Description = fmt.Sprintf("Findings of %d MITRE ATT&CK tactics (%s) occurred on the same workload within %s, which suggests it is compromised: %s.",
		len(tacticList), strings.Join(tacticList, ", "), cfg.CorrelationWindow, strings.Join(typeList, ", "))
	archived := seq.GetService().GetArchived()
	seq.Service = &vigilv1.Service{
		ServiceName:    "vigil",
		FeatureName:    "RuntimeMonitoring",
		Archived:       archived,
		Count:          uint32(len(ids)),
		EventFirstSeen: first,
		EventLastSeen:  last,
		RuntimeDetails: newest.GetService().GetRuntimeDetails(),
	}
	seq.Evidence = &vigilv1.Evidence{
		Rule:              AttackSequenceRule,
		RuleKind:          "correlation",
		Output:            fmt.Sprintf("%d findings, tactics %s", len(ids), strings.Join(tacticList, ",")),
		Events:            lastEvents(evs, MaxEvidenceEvents),
		RelatedFindingIds: ids,
		Fields: map[string]string{
			"tactics":      strings.Join(tacticList, ","),
			"findingTypes": strings.Join(typeList, ","),
		},
	}
	seq.MitreTactics = tacticList
	seq.MitreTechniques = techniqueList
	seq.AttackSequenceId = ""
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
