package detect

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentProcessAndReload runs several sensors' streams through one
// engine while the rule set is swapped (run with -race).
func TestConcurrentProcessAndReload(t *testing.T) {
	rs, ok := loadBenchSource(t, "testdata/builtin")
	if !ok {
		t.Fatal("test rules do not load")
	}
	seq, _ := loadYAML(t, dropExecRule)
	e := NewEngine(EngineConfig{}, nil, nil)
	e.SetRules(rs)
	events := eventMix(2000)
	var alerts atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < len(events); i++ {
				e.Process(events[(i+w*500)%len(events)], func(*Alert) { alerts.Add(1) })
			}
		}(w)
	}
	for i := 0; i < 20; i++ {
		if i%2 == 0 {
			e.SetRules(seq)
		} else {
			e.SetRules(rs)
		}
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	// The stream contains a container contacting the Kubernetes API.
	e.SetRules(rs)
	if n := len(fired(e, events...)); n == 0 {
		t.Fatal("no alert after the reloads")
	}
}
