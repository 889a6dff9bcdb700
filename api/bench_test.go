package api_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/api"
	"github.com/vigilsec/vigil/detect"
	"github.com/vigilsec/vigil/findings"
)

const benchFindings = 100_000

// BenchmarkListFindingsAPI100k measures GET /api/v1/findings end to end
// (HTTP, token check, store query, protobuf JSON encoding of a page of 50
// findings with their evidence) against 100k findings in SQLite, and
// reports the 99th percentile latency. The store alone is measured by
// findings.BenchmarkListFindingsFiltered100k.
func BenchmarkListFindingsAPI100k(b *testing.B) {
	log := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	store, err := findings.Open(context.Background(), "sqlite://"+filepath.Join(b.TempDir(), "vigil.db"), log, reg)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	base := time.Now().Add(-benchFindings * time.Second)
	const batch = 1000
	for i := 0; i < benchFindings; i += batch {
		alerts := make([]*detect.Alert, 0, batch)
		for j := i; j < i+batch; j++ {
			s := spec{
				typ: []string{"Execution:Runtime/ReverseShell", "Execution:Runtime/SuspiciousTool", "PrivilegeEscalation:Runtime/DockerSocketAccessed",
					"Impact:Runtime/CryptoMinerExecuted", "Persistence:Runtime/SensitiveFileModified"}[j%5],
				rule:     fmt.Sprintf("rule-%d", j%5),
				severity: []float64{8, 5, 7.5, 8.5, 4}[j%5],
				host:     fmt.Sprintf("host-%d", j%200),
				inst:     fmt.Sprintf("i-%017x", j%200),
				exePath:  fmt.Sprintf("/opt/bin/tool-%d", j),
			}
			switch j % 3 {
			case 0:
				s.container, s.image, s.ns, s.pod = fmt.Sprintf("%064x", j%5000), fmt.Sprintf("registry.example/team%d/app:%d", j%20, j%7), fmt.Sprintf("ns-%d", j%50), fmt.Sprintf("pod-%d", j%3000)
			case 1:
				s.container, s.image = fmt.Sprintf("%064x", j%5000), fmt.Sprintf("registry.example/team%d/app:%d", j%20, j%7)
				s.cluster, s.taskArn = fmt.Sprintf("cluster-%d", j%10), fmt.Sprintf("arn:aws:ecs:us-east-1:111122223333:task/cluster-%d/%032x", j%10, j%2000)
			}
			alerts = append(alerts, alertOf(s, base.Add(time.Duration(j)*time.Second)))
		}
		if _, err := store.ApplyBatch(context.Background(), findings.BatchKey{SensorID: "bench", BootID: "b", Sequence: uint64(i/batch + 1)}, batch, alerts); err != nil {
			b.Fatal(err)
		}
	}
	srv, err := api.NewServer(api.Config{APITokens: []string{apiToken}}, api.Deps{Findings: store, Suppressions: store, Sensors: store}, log, reg)
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()

	queries := []string{
		"",
		"type=" + url.QueryEscape("Execution:*") + "&severityMin=7",
		"hostname=host-17&archived=false",
		"namespace=ns-3&pod=pod-153",
		"cluster=cluster-4&sortBy=severity",
		"image=" + url.QueryEscape("registry.example/team5/*") + "&severityMin=7",
		"updatedAfter=" + url.QueryEscape(time.Now().Add(-time.Hour).Format(time.RFC3339)),
		"instanceId=" + fmt.Sprintf("i-%017x", 42) + "&sortBy=severity&order=asc",
		"severityMax=5&limit=100",
	}
	get := func(q string) {
		req, _ := http.NewRequest(http.MethodGet, hs.URL+"/api/v1/findings?"+q, nil)
		req.Header.Set("Authorization", "Bearer "+apiToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n < 100 {
			b.Fatalf("GET %s: %d, %d bytes", q, resp.StatusCode, n)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var lat []time.Duration
	perQuery := make(map[string][]time.Duration)
	start := time.Now()
	for b.Loop() {
		q := queries[rng.IntN(len(queries))]
		t := time.Now()
		get(q)
		lat = append(lat, time.Since(t))
		perQuery[q] = append(perQuery[q], time.Since(t))
	}
	if testing.Verbose() {
		// Which filters are slow, for whoever tunes the store's indexes.
		for q, l := range perQuery {
			sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
			b.Logf("%-90s p50 %v p99 %v", q, l[len(l)/2], l[len(l)*99/100])
		}
	}
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "requests/s")
}
