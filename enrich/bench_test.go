package enrich

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// BenchmarkEnrichHit measures Enrich on a cache hit, the cost every event
// pays: the budget is 200 ns/event. The cache holds 1000
// containers so the map lookups are not served from a one-entry cache.
func BenchmarkEnrichHit(b *testing.B) {
	cases := []struct {
		name string
		ev   func(i int) *vigilv1.Event
	}{
		{
			name: "by cgroup path",
			ev: func(i int) *vigilv1.Event {
				return &vigilv1.Event{CgroupPath: fmt.Sprintf("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice/cri-containerd-%064x.scope", i)}
			},
		},
		{
			name: "by cgroup id",
			ev:   func(i int) *vigilv1.Event { return &vigilv1.Event{CgroupId: uint64(1000 + i)} },
		},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			cfg := testConfig()
			e, err := New(cfg, nil, prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			const n = 1000
			events := make([]*vigilv1.Event, n)
			for i := range events {
				events[i] = bc.ev(i)
			}
			// Fill the cache with complete metadata, as after lookups.
			for i, ev := range events {
				e.Enrich(ev)
				var s *slot
				if ev.CgroupPath != "" {
					s = e.cache.byPath[ev.CgroupPath]
				} else {
					st := &containerState{}
					s = &slot{kind: slotContainer, state: st}
					e.cache.byID[ev.CgroupId] = s
				}
				s.state.meta.Store(&meta{
					container:  &vigilv1.Container{Id: fmt.Sprintf("%064x", i), Name: "app", Image: "nginx:1.27"},
					kubernetes: &vigilv1.Kubernetes{PodName: "web-0", Namespace: "shop"},
					refreshAt:  1<<63 - 1,
				})
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				// Events of its own per goroutine: Enrich writes to them.
				local := make([]vigilv1.Event, n)
				for i := range local {
					local[i].CgroupPath, local[i].CgroupId = events[i].CgroupPath, events[i].CgroupId
				}
				i := 0
				for pb.Next() {
					ev := &local[i%n]
					ev.Container = nil
					e.Enrich(ev)
					if ev.Container == nil {
						b.Error("cache hit left the event without a container")
						return
					}
					i++
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
		})
	}
}
