package findings

import (
	"testing"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// FuzzBuildContext feeds rule context values (attacker-influenced: they are
// rendered from event fields) into Build, which must never panic and must
// produce a finding that encodes.
func FuzzBuildContext(f *testing.F) {
	f.Add("socketPath", "/run/docker.sock")
	f.Add("flags", "MS_BIND,,MS_REC")
	f.Add("ianaProtocolNumber", "not a number")
	f.Add("targetProcess", "1234")
	f.Add("threatListName", "")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, key, value string) {
		a := alertAt(ruleReverseShell, inPod, baseTime, "/tmp/b4sh")
		a.Context = map[string]string{key: value, "threatListName": "list", "threatNames": value}
		c, err := Build(a, baseTime)
		if err != nil {
			t.Fatal(err)
		}
		head, events, err := encodeFinding(c.Finding)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeFinding(head, events); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzAppendEvents checks that a damaged events blob is an error, never a
// panic, and that a valid one keeps at most the bound.
func FuzzAppendEvents(f *testing.F) {
	ev := execEvent(onHost, baseTime, "/bin/sh", "sh")
	good, _ := appendEvents(nil, []*vigilv1.Event{ev, ev}, MaxEvidenceEvents)
	f.Add(good)
	f.Add([]byte{0x22, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, blob []byte) {
		out, err := appendEvents(blob, []*vigilv1.Event{ev}, 3)
		if err != nil {
			return
		}
		f, err := decodeFinding(nil, out)
		if err != nil {
			return // framing was valid, an event inside was not
		}
		if n := len(f.GetEvidence().GetEvents()); n > 3 {
			t.Errorf("kept %d events, bound 3", n)
		}
	})
}
