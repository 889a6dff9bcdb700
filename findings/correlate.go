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
// When two or more findings of at least StoreConfig.MinSequenceTactics
// (default 2) different MITRE ATT&CK tactics occur on one workload (the ECS task, the
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

// sequenceMember is what correlation reads of a finding before it knows
// whether a sequence forms: no decoding of finding bodies.
type sequenceMember struct {
	id, tactics, sequenceID string
	lastSeen                int64
}

// correlate raises or updates the attack sequence of one workload after its
// findings changed; lastSeen is the newest changed finding's last event.
//
// pre, when not nil, holds every touched workload's candidates, read at once
// by sequenceCandidates.
func (s *sqlStore) correlate(ctx context.Context, tx *sql.Tx, resKey string, lastSeen int64, pre map[string][]sequenceMember, sups []*vigilv1.Suppression, now time.Time) ([]*vigilv1.Finding, error) {
	from := lastSeen - s.cfg.CorrelationWindow.Nanoseconds()
	var cands []sequenceMember
	if pre != nil {
		for _, m := range pre[resKey] {
			if m.lastSeen >= from && len(cands) < maxSequenceMembers {
				cands = append(cands, m)
			}
		}
	} else {
		st, err := s.stmt(ctx, `SELECT f.resource_key, f.id, f.tactics, f.sequence_id, f.last_seen FROM findings f
		WHERE f.resource_key = ? AND f.last_seen >= ? AND f.archived = 0 AND f.severity >= ? AND substr(f.type, 1, `+fmt.Sprint(len(AttackSequencePrefix))+`) <> ?
		ORDER BY f.id LIMIT `+fmt.Sprint(maxSequenceMembers)+s.d.forUpdate)
		if err != nil {
			return nil, fmt.Errorf("correlate: %w", err)
		}
		rows, err := tx.StmtContext(ctx, st).QueryContext(ctx, resKey, from, s.cfg.MinSequenceSeverity, AttackSequencePrefix)
		if err != nil {
			return nil, fmt.Errorf("correlate: %w", err)
		}
		byKey, err := scanMembers(rows)
		if err != nil {
			return nil, err
		}
		cands = byKey[resKey]
	}
	var err error
	tactics := map[string]bool{}
	var newest sequenceMember
	for _, m := range cands {
		for _, t := range strings.Split(m.tactics, ",") {
			if t != "" {
				tactics[t] = true
			}
		}
		if m.lastSeen > newest.lastSeen || (m.lastSeen == newest.lastSeen && m.id > newest.id) {
			newest = m
		}
	}
	// A sequence links findings: one finding, even one mapped to several
	// tactics (a Docker socket access is privilege escalation and
	// execution), is not a sequence.
	if len(tactics) < s.cfg.MinSequenceTactics || len(cands) < 2 {
		return nil, nil
	}

	// The sequence to extend is the one of the latest linked member.
	var linkedNewest sequenceMember
	for _, m := range cands {
		if m.sequenceID != "" && (m.lastSeen > linkedNewest.lastSeen || (m.lastSeen == linkedNewest.lastSeen && m.id > linkedNewest.id)) {
			linkedNewest = m
		}
	}
	var seq *vigilv1.Finding
	if id := linkedNewest.sequenceID; id != "" {
		linked := true
		for _, m := range cands {
			linked = linked && m.sequenceID == id
		}
		if linked {
			// No new member: at most the sequence's last seen moves. This
			// is the hot path of repeated findings, so look before decoding.
			var seqLast int64
			row, err := s.queryRow(ctx, tx, `SELECT last_seen FROM findings WHERE id = ?`, id)
			if err == nil {
				err = row.Scan(&seqLast)
			}
			if err == nil && newest.lastSeen <= seqLast {
				return nil, nil
			}
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("correlate: read sequence: %w", err)
			}
		}
		seq, err = s.lockedFinding(ctx, tx, id)
		if err != nil {
			return nil, err
		}
	}
	if seq != nil {
		linked := true
		for _, m := range cands {
			linked = linked && m.sequenceID == seq.Id
		}
		if linked {
			if newest.lastSeen > seq.GetService().GetEventLastSeen().AsTime().UnixNano() {
				seq.Service.EventLastSeen = timestamppb.New(time.Unix(0, newest.lastSeen))
				seq.UpdatedAt = timestamppb.New(now)
				if err := s.updateFinding(ctx, tx, seq); err != nil {
					return nil, fmt.Errorf("correlate: %w", err)
				}
				s.m.sequences.Inc()
				return []*vigilv1.Finding{seq}, nil
			}
			return nil, nil
		}
	}

	members := make([]*vigilv1.Finding, 0, len(cands))
	for _, m := range cands {
		f, err := s.lockedFinding(ctx, tx, m.id)
		if err != nil {
			return nil, err
		}
		if f != nil {
			members = append(members, f)
		}
	}
	sort.Slice(members, func(i, j int) bool {
		a, b := members[i].GetService().GetEventLastSeen().AsTime(), members[j].GetService().GetEventLastSeen().AsTime()
		if !a.Equal(b) {
			return a.Before(b)
		}
		return members[i].Id < members[j].Id
	})
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

// scanMembers reads correlation candidates by workload, and closes rows.
func scanMembers(rows *sql.Rows) (map[string][]sequenceMember, error) {
	defer rows.Close()
	out := map[string][]sequenceMember{}
	for rows.Next() {
		var key string
		var m sequenceMember
		if err := rows.Scan(&key, &m.id, &m.tactics, &m.sequenceID, &m.lastSeen); err != nil {
			return nil, fmt.Errorf("correlate: scan: %w", err)
		}
		out[key] = append(out[key], m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("correlate: %w", err)
	}
	return out, nil
}

// sequenceCandidates reads the correlation candidates of every touched
// workload in a few statements; correlate narrows them to each workload's
// window. (Only SQLite reads this way, so no lock order matters.)
func (s *sqlStore) sequenceCandidates(ctx context.Context, tx *sql.Tx, touched map[string]int64) (map[string][]sequenceMember, error) {
	keys := make([]string, 0, len(touched))
	from := int64(1<<63 - 1)
	for k, ls := range touched {
		keys = append(keys, k)
		from = min(from, ls-s.cfg.CorrelationWindow.Nanoseconds())
	}
	sort.Strings(keys)
	out := map[string][]sequenceMember{}
	for start := 0; start < len(keys); start += prefetchChunk {
		chunk := keys[start:min(start+prefetchChunk, len(keys))]
		args := make([]any, 0, len(chunk)+2)
		for _, k := range chunk {
			args = append(args, k)
		}
		args = append(args, from, s.cfg.MinSequenceSeverity, AttackSequencePrefix)
		rows, err := tx.QueryContext(ctx, s.q(`SELECT f.resource_key, f.id, f.tactics, f.sequence_id, f.last_seen FROM findings f
			WHERE f.resource_key IN (`+placeholders(len(chunk))+`) AND f.last_seen >= ? AND f.archived = 0 AND f.severity >= ? AND substr(f.type, 1, `+fmt.Sprint(len(AttackSequencePrefix))+`) <> ?`), args...)
		if err != nil {
			return nil, fmt.Errorf("correlate: %w", err)
		}
		part, err := scanMembers(rows)
		if err != nil {
			return nil, err
		}
		for k, v := range part {
			out[k] = v
		}
	}
	return out, nil
}

// lockedFinding reads one finding inside tx, locking it on PostgreSQL; nil
// when it is gone (purged).
func (s *sqlStore) lockedFinding(ctx context.Context, tx *sql.Tx, id string) (*vigilv1.Finding, error) {
	var head, events []byte
	row, err := s.queryRow(ctx, tx, `SELECT d.data, d.events FROM findings f JOIN finding_data d ON d.id = f.id WHERE f.id = ?`+s.d.forUpdate, id)
	if err == nil {
		err = row.Scan(&head, &events)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("correlate: read finding: %w", err)
	}
	f, err := decodeFinding(head, events)
	if err != nil {
		return nil, fmt.Errorf("correlate: %w", err)
	}
	return f, nil
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
