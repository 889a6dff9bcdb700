package findings

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// A stored finding is two blobs: the finding without its evidence events,
// and the events encoded as an Evidence message holding only its events
// field. A repeat appends its events to the second blob and drops the
// oldest by walking the field framing, without decoding any event: the
// events are most of a finding's bytes, and a busy backend aggregates
// thousands of repeats a second.

// evidenceEventsField is Evidence.events' field number.
const evidenceEventsField = 4

// encodeFinding returns a finding's two stored blobs.
func encodeFinding(f *vigilv1.Finding) (head, events []byte, err error) {
	var evs []*vigilv1.Event
	if f.Evidence != nil {
		evs = f.Evidence.Events
		f.Evidence.Events = nil
		defer func() { f.Evidence.Events = evs }()
	}
	if head, err = proto.Marshal(f); err != nil {
		return nil, nil, fmt.Errorf("encode finding: %w", err)
	}
	if events, err = appendEvents(nil, evs, MaxEvidenceEvents); err != nil {
		return nil, nil, err
	}
	return head, events, nil
}

// decodeFinding rebuilds a finding from its stored blobs; events may be nil
// to leave the evidence events out.
func decodeFinding(head, events []byte) (*vigilv1.Finding, error) {
	f := &vigilv1.Finding{}
	if err := proto.Unmarshal(head, f); err != nil {
		return nil, fmt.Errorf("decode finding: %w", err)
	}
	if len(events) == 0 {
		return f, nil
	}
	ev := &vigilv1.Evidence{}
	if err := proto.Unmarshal(events, ev); err != nil {
		return nil, fmt.Errorf("decode finding events: %w", err)
	}
	if f.Evidence == nil {
		f.Evidence = &vigilv1.Evidence{}
	}
	f.Evidence.Events = ev.Events
	return f, nil
}

// appendEvents appends encoded events to an events blob and keeps the last
// max of them.
func appendEvents(blob []byte, evs []*vigilv1.Event, maxEvents int) ([]byte, error) {
	out := append([]byte(nil), blob...)
	for _, ev := range evs {
		b, err := proto.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("encode event: %w", err)
		}
		out = protowire.AppendTag(out, evidenceEventsField, protowire.BytesType)
		out = protowire.AppendBytes(out, b)
	}
	// Find where each event starts; keep the last maxEvents.
	var starts []int
	for i := 0; i < len(out); {
		_, typ, n := protowire.ConsumeTag(out[i:])
		if n < 0 {
			return nil, fmt.Errorf("events blob: %w", protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(evidenceEventsField, typ, out[i+n:])
		if m < 0 {
			return nil, fmt.Errorf("events blob: %w", protowire.ParseError(m))
		}
		starts = append(starts, i)
		i += n + m
	}
	if len(starts) > maxEvents {
		out = out[starts[len(starts)-maxEvents]:]
	}
	return out, nil
}
