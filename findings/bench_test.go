package findings

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilsec/vigil/detect"
	"github.com/vigilsec/vigil/internal/testutil"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// benchAlert returns alert i of a varied population: types, resources,
// hosts, images and executables spread so that filters select a slice.
func benchAlert(i int, at time.Time) *detect.Alert {
	rules := []*detect.RuleInfo{ruleReverseShell, ruleDockerSocket, ruleMount, ruleDiscovery,
		rule("Crypto miner", "Impact:Runtime/CryptoMinerExecuted", 8, "TA0040"),
		rule("Sensitive file", "Persistence:Runtime/SensitiveFileModified", 5, "TA0003")}
	r := rules[i%len(rules)]
	al := alertAt(r, placement(i%4), at, fmt.Sprintf("/opt/bin/tool-%d", i))
	ev := al.Events[0]
	if ev.Container != nil {
		ev.Container = testContainer(fmt.Sprintf("%064x", i%5000))
		ev.Container.Image = fmt.Sprintf("registry.example/team%d/app:%d", i%20, i%7)
	}
	if ev.Kubernetes != nil {
		ev.Kubernetes.Namespace = fmt.Sprintf("ns-%d", i%50)
		ev.Kubernetes.PodName = fmt.Sprintf("pod-%d", i%3000)
	}
	if ev.Ecs != nil {
		ev.Ecs.Cluster = fmt.Sprintf("cluster-%d", i%10)
		ev.Ecs.TaskArn = fmt.Sprintf("arn:aws:ecs:us-east-1:111122223333:task/cluster-%d/%032x", i%10, i%2000)
	}
	ev.Host = &vigilv1.Host{Hostname: fmt.Sprintf("host-%d", i%200), InstanceId: fmt.Sprintf("i-%017x", i%200), Region: "us-east-1", AccountId: "111122223333"}
	return al
}

var seeded struct {
	once sync.Once
	path string
	err  error
}

const benchFindings = 100_000

// seededSQLite returns a SQLite database file holding 100k findings, built
// once per test binary.
func seededSQLite(b *testing.B) string {
	seeded.once.Do(func() {
		dir, err := os.MkdirTemp("", "vigil-bench-")
		if err != nil {
			seeded.err = err
			return
		}
		seeded.path = filepath.Join(dir, "vigil.db")
		clk := &clock{t: baseTime}
		s, err := OpenConfig(context.Background(), StoreConfig{URL: "sqlite://" + seeded.path, Now: clk.Now, MinSequenceTactics: 100}, nil, nil)
		if err != nil {
			seeded.err = err
			return
		}
		defer s.Close()
		const batch = 1000
		for i := 0; i < benchFindings; i += batch {
			alerts := make([]*detect.Alert, 0, batch)
			for j := i; j < i+batch; j++ {
				alerts = append(alerts, benchAlert(j, baseTime.Add(time.Duration(j)*time.Second)))
			}
			clk.Set(baseTime.Add(time.Duration(i) * time.Second))
			if _, err := s.ApplyBatch(context.Background(), BatchKey{"seed", "boot", uint64(i/batch + 1)}, batch, alerts); err != nil {
				seeded.err = err
				return
			}
		}
	})
	if seeded.err != nil {
		b.Fatalf("seed: %v", seeded.err)
	}
	b.Cleanup(func() {})
	return seeded.path
}

// BenchmarkListFindingsFiltered100k measures one page of a filtered list
// query against 100k stored findings in SQLite and reports the 99th
// percentile latency (target: under 50 ms).
func BenchmarkListFindingsFiltered100k(b *testing.B) {
	path := seededSQLite(b)
	s, err := Open(context.Background(), "sqlite://"+path, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	queries := benchQueries()
	// Some second pages, as a reader paging through results.
	for _, q := range queries[:4] {
		_, next, err := s.ListFindings(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		if next != "" {
			q2 := q
			q2.NextToken = next
			queries = append(queries, q2)
		}
	}
	n := max(b.N, 2000)
	lat := make([]time.Duration, 0, n)
	rng := rand.New(rand.NewPCG(1, 2))
	returned := 0
	b.ResetTimer()
	for i := 0; i < n; i++ {
		q := queries[rng.IntN(len(queries))]
		t0 := time.Now()
		fs, _, err := s.ListFindings(ctx, q)
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		returned += len(fs)
	}
	b.StopTimer()
	if returned == 0 {
		b.Fatal("queries returned nothing")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(len(lat)), "queries")
}

// BenchmarkApplyBatchAggregation measures ingest with aggregation and
// reports findings/s (target for SQLite: at least 10k) and findings per CPU
// second of the Go process (PostgreSQL's own CPU is not in it). Alerts repeat
// findings of a pool; "distinct" batches hold no repeat within themselves,
// so every alert costs a read and a write of its stored finding (the worst
// case); "bursty" batches hold 20 repeats of each finding they touch, as a
// noisy workload sends, which the batch merges before the database.
func BenchmarkApplyBatchAggregation(b *testing.B) {
	for _, bc := range []struct {
		name        string
		batch       int
		perFinding  int
		poolFinding int
		postgres    bool
	}{
		{"distinct", 200, 1, 2000, false},
		{"bursty", 1000, 20, 2000, false},
		// The same worst case on the real PostgreSQL, for comparison
		// (reads and locks row by row).
		{"postgres-distinct", 200, 1, 2000, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			clk := &clock{t: baseTime}
			url := "sqlite://" + filepath.Join(b.TempDir(), "vigil.db")
			if bc.postgres {
				url = testutil.Postgres(b)
			}
			s, err := OpenConfig(context.Background(), StoreConfig{URL: url, Now: clk.Now}, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			pool := make([]*detect.Alert, bc.poolFinding)
			for i := range pool {
				pool[i] = benchAlert(i, baseTime)
			}
			ctx := context.Background()
			seq := uint64(0)
			total := 0
			b.ResetTimer()
			start, cpuStart := time.Now(), cpuTime()
			for done := 0; done < b.N; done += bc.batch {
				alerts := make([]*detect.Alert, bc.batch)
				for j := range alerts {
					alerts[j] = pool[((done+j)/bc.perFinding)%bc.poolFinding]
				}
				seq++
				if _, err := s.ApplyBatch(ctx, BatchKey{"bench", "boot", seq}, bc.batch, alerts); err != nil {
					b.Fatal(err)
				}
				total += bc.batch
			}
			el, cpu := time.Since(start), cpuTime()-cpuStart
			b.StopTimer()
			b.ReportMetric(float64(total)/el.Seconds(), "findings/s")
			// Per CPU second of the whole process (GC included): the rate
			// one free core sustains, whatever else loads the machine.
			b.ReportMetric(float64(total)/cpu.Seconds(), "findings/cpu-s")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchQueries is the list benchmark's mix: filters people combine in the
// UI and CLI, selective and broad.
func benchQueries() []Query {
	return []Query{
		{Filter: &vigilv1.FindingFilter{Type: "Execution:*", SeverityMin: 7}},
		{Filter: &vigilv1.FindingFilter{Hostname: "host-17", Archived: "false"}},
		{Filter: &vigilv1.FindingFilter{Namespace: "ns-3", Pod: "pod-153"}},
		{Filter: &vigilv1.FindingFilter{Cluster: "cluster-4", Type: "PrivilegeEscalation:*"}, SortBy: SortSeverity},
		{Filter: &vigilv1.FindingFilter{Image: "registry.example/team5/*", SeverityMin: 4, SeverityMax: 6.9}},
		{Filter: &vigilv1.FindingFilter{UpdatedAfter: timestamppb.New(baseTime.Add(50_000 * time.Second)), Rule: "Crypto miner"}},
		{Filter: &vigilv1.FindingFilter{ContainerId: fmt.Sprintf("%064x", 1234)}},
		{Filter: &vigilv1.FindingFilter{InstanceId: fmt.Sprintf("i-%017x", 42), Type: "Discovery:Runtime/SuspiciousCommand"}, SortBy: SortSeverity, Ascending: true},
		{Filter: &vigilv1.FindingFilter{TaskArn: fmt.Sprintf("arn:aws:ecs:us-east-1:111122223333:task/cluster-2/%032x", 1002)}},
		{Filter: &vigilv1.FindingFilter{SeverityMax: 3}, Limit: 100},
		{Filter: &vigilv1.FindingFilter{Type: "Backdoor:*"}},                                            // matches nothing: a full walk
		{Filter: &vigilv1.FindingFilter{Type: "Impact:Runtime/CryptoMinerExecuted", Archived: "false"}}, // exact type
	}
}
