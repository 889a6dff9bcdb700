package findings

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilsec/vigil/detect"
	"github.com/vigilsec/vigil/internal/testutil"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.StopPostgres()
	os.Exit(code)
}

// clock is a settable time source for stores under test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// eachStore runs one test body against SQLite and against a real
// PostgreSQL; url names a fresh, empty database.
func eachStore(t *testing.T, body func(t *testing.T, url string)) {
	t.Run("sqlite", func(t *testing.T) {
		body(t, "sqlite://"+filepath.Join(t.TempDir(), "vigil.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		body(t, testutil.Postgres(t))
	})
}

func openTestStore(t testing.TB, url string, clk *clock) Store {
	t.Helper()
	cfg := StoreConfig{URL: url}
	if clk != nil {
		cfg.Now = clk.Now
	}
	s, err := OpenConfig(context.Background(), cfg, nil, nil)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// applier applies alerts in batches with increasing sequence numbers.
type applier struct {
	t      testing.TB
	s      Store
	sensor string
	seq    uint64
}

func (a *applier) apply(alerts ...*detect.Alert) {
	a.t.Helper()
	a.seq++
	dup, err := a.s.ApplyBatch(context.Background(), BatchKey{SensorID: a.sensor, BootID: "boot-1", Sequence: a.seq}, len(alerts), alerts)
	if err != nil {
		a.t.Fatalf("apply batch %d: %v", a.seq, err)
	}
	if dup {
		a.t.Fatalf("batch %d reported duplicate", a.seq)
	}
}

func listAll(t testing.TB, s Store, q Query) []*vigilv1.Finding {
	t.Helper()
	var out []*vigilv1.Finding
	for page := 0; ; page++ {
		fs, next, err := s.ListFindings(context.Background(), q)
		if err != nil {
			t.Fatalf("list page %d: %v", page, err)
		}
		out = append(out, fs...)
		if next == "" {
			return out
		}
		q.NextToken = next
		if page > 10000 {
			t.Fatal("pagination does not end")
		}
	}
}

func ids(fs []*vigilv1.Finding) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Id
	}
	return out
}

func TestStoreAggregatesRepeats(t *testing.T) {
	eachStore(t, func(t *testing.T, url string) {
		clk := &clock{t: baseTime}
		s := openTestStore(t, url, clk)
		a := &applier{t: t, s: s, sensor: "sensor-a"}
		// Two repeats in one batch, then thirteen more one per batch: 15.
		a.apply(alertAt(ruleReverseShell, inContainer, baseTime, "/tmp/b4sh"), alertAt(ruleReverseShell, inContainer, baseTime.Add(time.Second), "/tmp/b4sh"))
		for i := 2; i < 15; i++ {
			clk.Set(baseTime.Add(time.Duration(i) * time.Minute))
			a.apply(alertAt(ruleReverseShell, inContainer, baseTime.Add(time.Duration(i)*time.Minute), "/tmp/b4sh"))
		}
		// A different executable is another finding.
		a.apply(alertAt(ruleReverseShell, inContainer, baseTime, "/bin/bash"))
		all := listAll(t, s, Query{Filter: &vigilv1.FindingFilter{Type: "Execution:*"}})
		if len(all) != 2 {
			t.Fatalf("got %d findings, want 2 (one aggregated, one other executable)", len(all))
		}
		f, err := s.GetFinding(context.Background(), all[0].Id)
		if err != nil {
			t.Fatal(err)
		}
		if f.GetService().GetRuntimeDetails().GetProcess().GetExecutablePath() != "/tmp/b4sh" {
			f, _ = s.GetFinding(context.Background(), all[1].Id)
		}
		tests := []struct {
			name string
			got  any
			want any
		}{
			{"the count adds every repeat", f.GetService().GetCount(), uint32(15)},
			{"first seen is the first repeat", f.GetService().GetEventFirstSeen().AsTime(), baseTime},
			{"last seen is the latest repeat", f.GetService().GetEventLastSeen().AsTime(), baseTime.Add(14 * time.Minute)},
			{"the evidence is bounded", len(f.GetEvidence().GetEvents()), MaxEvidenceEvents},
			{"the evidence keeps the latest event", f.GetEvidence().GetEvents()[MaxEvidenceEvents-1].GetTime().AsTime(), baseTime.Add(14 * time.Minute)},
			{"updatedAt moves with the repeat", f.GetUpdatedAt().AsTime(), baseTime.Add(14 * time.Minute)},
			{"createdAt stays", f.GetCreatedAt().AsTime(), baseTime},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if tt.got != tt.want {
					t.Errorf("got %v, want %v", tt.got, tt.want)
				}
			})
		}
	})
}

const corpusStep = 2 * time.Hour

// filterCorpus stores a varied set of findings and returns them.
func filterCorpus(t *testing.T, s Store, clk *clock) []*vigilv1.Finding {
	t.Helper()
	a := &applier{t: t, s: s, sensor: "sensor-a"}
	rules := []*detect.RuleInfo{ruleReverseShell, ruleDockerSocket, ruleMount, ruleDiscovery}
	places := []placement{onHost, inContainer, inECS, inPod}
	n := 0
	for i, r := range rules {
		for j, p := range places {
			for k := 0; k < 2; k++ {
				n++
				// Two hours apart, so that no attack sequence forms.
				at := baseTime.Add(time.Duration(n) * corpusStep)
				clk.Set(at)
				al := alertAt(r, p, at, fmt.Sprintf("/bin/tool%d", k))
				ev := al.Events[0]
				if ev.Container != nil && (i+j)%2 == 1 {
					ev.Container = testContainer(fmt.Sprintf("%064x", i*10+j))
					ev.Container.Image = "docker.io/library/nginx:1.27"
				}
				if k == 1 {
					h := proto.Clone(testHost).(*vigilv1.Host)
					h.Hostname, h.InstanceId = "ip-10-0-2-2", "i-0fff"
					ev.Host = h
				}
				if ev.Ecs != nil && j%2 == 0 && k == 1 {
					ev.Ecs.Cluster = "arn:aws:ecs:us-east-1:111122223333:cluster/staging"
					ev.Ecs.TaskArn = "arn:aws:ecs:us-east-1:111122223333:task/staging/0000"
				}
				a.apply(al)
			}
		}
	}
	all := listAll(t, s, Query{Limit: MaxLimit})
	if len(all) != n {
		t.Fatalf("corpus has %d findings, want %d", len(all), n)
	}
	// Archive a few so the archived filter has both sides.
	for _, f := range all[:5] {
		if err := s.SetArchived(context.Background(), f.Id, true); err != nil {
			t.Fatal(err)
		}
	}
	return listAll(t, s, Query{Limit: MaxLimit})
}

func TestStoreFilters(t *testing.T) {
	eachStore(t, func(t *testing.T, url string) {
		clk := &clock{t: baseTime}
		s := openTestStore(t, url, clk)
		all := filterCorpus(t, s, clk)
		tests := []struct {
			name   string
			filter *vigilv1.FindingFilter
			want   int // findings expected, -1 to check only against Match
		}{
			{"an exact type selects that type", &vigilv1.FindingFilter{Type: "Execution:Runtime/ReverseShell"}, 8},
			{"a type prefix ending in * selects the family", &vigilv1.FindingFilter{Type: "PrivilegeEscalation:*"}, 16},
			{"a severity range selects within it", &vigilv1.FindingFilter{SeverityMin: 4, SeverityMax: 6.9}, 16},
			{"a minimum severity alone selects above it", &vigilv1.FindingFilter{SeverityMin: 7}, 8},
			{"updatedAfter selects recent findings", &vigilv1.FindingFilter{UpdatedAfter: timestamppb.New(baseTime.Add(20 * corpusStep))}, 13},
			{"updatedBefore selects older findings", &vigilv1.FindingFilter{UpdatedBefore: timestamppb.New(baseTime.Add(10 * corpusStep))}, 10},
			{"archived true selects archived findings", &vigilv1.FindingFilter{Archived: "true"}, 5},
			{"archived false selects active findings", &vigilv1.FindingFilter{Archived: "false"}, 27},
			{"a cluster name selects its ECS findings", &vigilv1.FindingFilter{Cluster: "prod"}, 4},
			{"a cluster ARN selects its ECS findings", &vigilv1.FindingFilter{Cluster: "arn:aws:ecs:us-east-1:111122223333:cluster/staging"}, 4},
			{"a task ARN selects the task", &vigilv1.FindingFilter{TaskArn: "arn:aws:ecs:us-east-1:111122223333:task/staging/0000"}, 4},
			{"a namespace selects its pods", &vigilv1.FindingFilter{Namespace: "shop"}, 8},
			{"a pod name selects the pod", &vigilv1.FindingFilter{Pod: "web-7d9f"}, 8},
			{"an image selects its containers", &vigilv1.FindingFilter{Image: "docker.io/library/nginx:1.27"}, -1},
			{"an image prefix selects a registry", &vigilv1.FindingFilter{Image: "111122223333.dkr.ecr.*"}, -1},
			{"a container id selects one container", &vigilv1.FindingFilter{ContainerId: "c0ffee0123456789c0ffee0123456789c0ffee0123456789c0ffee0123456789"}, -1},
			{"a container id prefix selects by short id", &vigilv1.FindingFilter{ContainerId: "c0ffee012345*"}, -1},
			{"an instance id selects its host", &vigilv1.FindingFilter{InstanceId: "i-0fff"}, 16},
			{"a hostname selects its host", &vigilv1.FindingFilter{Hostname: "ip-10-0-1-17"}, 16},
			{"a rule name selects its findings", &vigilv1.FindingFilter{Rule: "Docker socket accessed"}, 8},
			{"several fields must all match", &vigilv1.FindingFilter{Type: "Execution:*", Hostname: "ip-10-0-2-2", Archived: "false"}, -1},
			{"a filter matching nothing selects nothing", &vigilv1.FindingFilter{Pod: "no-such-pod"}, 0},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var want []string
				for _, f := range all {
					if Match(tt.filter, f) {
						want = append(want, f.Id)
					}
				}
				got := ids(listAll(t, s, Query{Filter: tt.filter, Limit: 7}))
				sort.Strings(want)
				sort.Strings(got)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("store returned %d findings, Match selects %d", len(got), len(want))
				}
				if tt.want >= 0 && len(got) != tt.want {
					t.Errorf("got %d findings, want %d", len(got), tt.want)
				}
				if tt.want < 0 && len(got) == 0 {
					t.Errorf("filter selects nothing; the case tests nothing")
				}
			})
		}
	})
}

func TestStorePagination(t *testing.T) {
	eachStore(t, func(t *testing.T, url string) {
		clk := &clock{t: baseTime}
		s := openTestStore(t, url, clk)
		all := filterCorpus(t, s, clk)
		less := map[string]func(a, b *vigilv1.Finding) bool{
			SortLastSeen: func(a, b *vigilv1.Finding) bool {
				la, lb := a.Service.EventLastSeen.AsTime(), b.Service.EventLastSeen.AsTime()
				if !la.Equal(lb) {
					return la.Before(lb)
				}
				return a.Id < b.Id
			},
			SortSeverity: func(a, b *vigilv1.Finding) bool {
				if a.Severity != b.Severity {
					return a.Severity < b.Severity
				}
				la, lb := a.Service.EventLastSeen.AsTime(), b.Service.EventLastSeen.AsTime()
				if !la.Equal(lb) {
					return la.Before(lb)
				}
				return a.Id < b.Id
			},
		}
		tests := []struct {
			name string
			sort string
			asc  bool
		}{
			{"pages by last seen, newest first, cover every finding once", SortLastSeen, false},
			{"pages by last seen, oldest first, cover every finding once", SortLastSeen, true},
			{"pages by severity, highest first, cover every finding once", SortSeverity, false},
			{"pages by severity, lowest first, cover every finding once", SortSeverity, true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				want := append([]*vigilv1.Finding(nil), all...)
				sort.Slice(want, func(i, j int) bool {
					if tt.asc {
						return less[tt.sort](want[i], want[j])
					}
					return less[tt.sort](want[j], want[i])
				})
				pages := 0
				q := Query{SortBy: tt.sort, Ascending: tt.asc, Limit: 5}
				var got []*vigilv1.Finding
				for {
					fs, next, err := s.ListFindings(context.Background(), q)
					if err != nil {
						t.Fatal(err)
					}
					if len(fs) > 5 {
						t.Fatalf("page of %d, limit 5", len(fs))
					}
					pages++
					got = append(got, fs...)
					if next == "" {
						break
					}
					q.NextToken = next
				}
				if fmt.Sprint(ids(got)) != fmt.Sprint(ids(want)) {
					t.Errorf("pages give\n%v\nwant\n%v", ids(got), ids(want))
				}
				if pages != (len(all)+4)/5 {
					t.Errorf("%d pages for %d findings of 5", pages, len(all))
				}
			})
		}
		_, next, err := s.ListFindings(context.Background(), Query{Limit: 3})
		if err != nil || next == "" {
			t.Fatalf("first page: next %q, err %v", next, err)
		}
		bad := []struct {
			name string
			q    Query
		}{
			{"a token from another sort order is rejected", Query{SortBy: SortSeverity, NextToken: next}},
			{"a malformed token is rejected", Query{NextToken: "not a token"}},
			{"a limit above 1000 is rejected", Query{Limit: 1001}},
			{"an unknown sort key is rejected", Query{SortBy: "name"}},
			{"an unknown archived value is rejected", Query{Filter: &vigilv1.FindingFilter{Archived: "maybe"}}},
		}
		for _, tt := range bad {
			t.Run(tt.name, func(t *testing.T) {
				if _, _, err := s.ListFindings(context.Background(), tt.q); !errors.Is(err, ErrInvalidQuery) {
					t.Errorf("err = %v, want ErrInvalidQuery", err)
				}
			})
		}
	})
}

func TestStoreArchive(t *testing.T) {
	eachStore(t, func(t *testing.T, url string) {
		s := openTestStore(t, url, &clock{t: baseTime})
		a := &applier{t: t, s: s, sensor: "sensor-a"}
		a.apply(alertAt(ruleReverseShell, inContainer, baseTime, "/tmp/b4sh"))
		id := listAll(t, s, Query{})[0].Id
		ctx := context.Background()
		archived := func() bool {
			f, err := s.GetFinding(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return f.GetService().GetArchived()
		}
		if err := s.SetArchived(ctx, id, true); err != nil {
			t.Fatal(err)
		}
		if !archived() {
			t.Error("archive did not archive")
		}
		a.apply(alertAt(ruleReverseShell, inContainer, baseTime.Add(time.Minute), "/tmp/b4sh"))
		if !archived() {
			t.Error("a repeat unarchived the finding")
		}
		if n := len(listAll(t, s, Query{Filter: &vigilv1.FindingFilter{Archived: "true"}})); n != 1 {
			t.Errorf("archived filter finds %d, want 1", n)
		}
		if err := s.SetArchived(ctx, id, false); err != nil {
			t.Fatal(err)
		}
		if archived() {
			t.Error("unarchive did not unarchive")
		}
		if err := s.SetArchived(ctx, "ffffffffffffffffffffffffffffffff", true); !errors.Is(err, ErrNotFound) {
			t.Errorf("archive of unknown id: %v, want ErrNotFound", err)
		}
		if _, err := s.GetFinding(ctx, "ffffffffffffffffffffffffffffffff"); !errors.Is(err, ErrNotFound) {
			t.Errorf("get of unknown id: %v, want ErrNotFound", err)
		}
	})
}

func TestStoreSuppression(t *testing.T) {
	eachStore(t, func(t *testing.T, url string) {
		ctx := context.Background()
		clk := &clock{t: baseTime}
		s := openTestStore(t, url, clk)
		a := &applier{t: t, s: s, sensor: "sensor-a"}
		// A finding that exists before the suppression stays active.
		a.apply(alertAt(ruleDiscovery, inContainer, baseTime, "/usr/bin/id"))
		sup, err := s.CreateSuppression(ctx, &vigilv1.Suppression{Name: "discovery in web", Filter: &vigilv1.FindingFilter{Type: "Discovery:*", ContainerId: "c0ffee*"}})
		if err != nil {
			t.Fatal(err)
		}
		if sup.Id == "" || sup.CreatedAt == nil {
			t.Fatalf("suppression not stamped: %v", sup)
		}
		a.apply(alertAt(ruleDiscovery, inContainer, baseTime.Add(time.Minute), "/usr/bin/whoami"), alertAt(ruleDiscovery, onHost, baseTime, "/usr/bin/whoami"),
			alertAt(ruleReverseShell, inContainer, baseTime, "/tmp/b4sh"))
		state := func(exe string, w string) *vigilv1.Finding {
			for _, f := range listAll(t, s, Query{}) {
				if f.GetService().GetRuntimeDetails().GetProcess().GetExecutablePath() == exe && f.GetResource().GetResourceType() == w {
					return f
				}
			}
			t.Fatalf("no finding for %s on %s", exe, w)
			return nil
		}
		tests := []struct {
			name     string
			f        *vigilv1.Finding
			archived bool
		}{
			{"a new matching finding is archived", state("/usr/bin/whoami", ResourceContainer), true},
			{"a finding from before the suppression stays active", state("/usr/bin/id", ResourceContainer), false},
			{"a finding on another resource stays active", state("/usr/bin/whoami", ResourceInstance), false},
			{"a finding of another type stays active", state("/tmp/b4sh", ResourceContainer), false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got := tt.f.GetService().GetArchived(); got != tt.archived {
					t.Errorf("archived = %v, want %v", got, tt.archived)
				}
			})
		}
		list, err := s.ListSuppressions(ctx)
		if err != nil || len(list) != 1 || list[0].Name != "discovery in web" {
			t.Fatalf("list suppressions = %v, %v", list, err)
		}
		if err := s.DeleteSuppression(ctx, sup.Id); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteSuppression(ctx, sup.Id); !errors.Is(err, ErrNotFound) {
			t.Errorf("second delete: %v, want ErrNotFound", err)
		}
		a.apply(alertAt(ruleDiscovery, inContainer, baseTime, "/usr/bin/uname"))
		if state("/usr/bin/uname", ResourceContainer).GetService().GetArchived() {
			t.Error("a deleted suppression still archives")
		}
		if _, err := s.CreateSuppression(ctx, &vigilv1.Suppression{Name: "everything"}); !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("suppression without a filter: %v, want ErrInvalidQuery", err)
		}
	})
}

func TestStoreRetention(t *testing.T) {
	eachStore(t, func(t *testing.T, url string) {
		ctx := context.Background()
		clk := &clock{t: baseTime}
		s := openTestStore(t, url, clk)
		a := &applier{t: t, s: s, sensor: "sensor-a"}
		a.apply(alertAt(ruleReverseShell, inContainer, baseTime, "/tmp/old1"), alertAt(ruleReverseShell, inContainer, baseTime, "/tmp/old2"))
		clk.Set(baseTime.Add(48 * time.Hour))
		a.apply(alertAt(ruleReverseShell, inContainer, baseTime.Add(48*time.Hour), "/tmp/new"))
		n, err := s.Purge(ctx, baseTime.Add(24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Errorf("purged %d, want 2", n)
		}
		left := listAll(t, s, Query{})
		if len(left) != 1 || left[0].GetService().GetRuntimeDetails().GetProcess().GetExecutablePath() != "/tmp/new" {
			t.Errorf("left after purge: %v", ids(left))
		}
		st, err := s.BatchStats(ctx, "sensor-a", "boot-1")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(st.Sequences) != "[2]" {
			t.Errorf("batch records after purge: %v, want [2]", st.Sequences)
		}
	})
}

func TestStoreDeduplicatesBatches(t *testing.T) {
	eachStore(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openTestStore(t, url, &clock{t: baseTime})
		alerts := []*detect.Alert{alertAt(ruleReverseShell, inContainer, baseTime, "/tmp/b4sh")}
		steps := []struct {
			name    string
			key     BatchKey
			events  int
			wantDup bool
		}{
			{"the first batch is accepted", BatchKey{"sensor-a", "boot-1", 1}, 100, false},
			{"a replay of it is a duplicate", BatchKey{"sensor-a", "boot-1", 1}, 100, true},
			{"the next sequence is accepted", BatchKey{"sensor-a", "boot-1", 2}, 50, false},
			{"the same sequence after a reboot is accepted", BatchKey{"sensor-a", "boot-2", 1}, 7, false},
			{"the same sequence from another sensor is accepted", BatchKey{"sensor-b", "boot-1", 1}, 3, false},
			{"a second replay is still a duplicate", BatchKey{"sensor-a", "boot-1", 2}, 50, true},
		}
		for _, st := range steps {
			t.Run(st.name, func(t *testing.T) {
				had, err := s.HasBatch(ctx, st.key)
				if err != nil {
					t.Fatal(err)
				}
				dup, err := s.ApplyBatch(ctx, st.key, st.events, alerts)
				if err != nil {
					t.Fatal(err)
				}
				if dup != st.wantDup || had != st.wantDup {
					t.Errorf("duplicate = %v, HasBatch before = %v, want %v", dup, had, st.wantDup)
				}
			})
		}
		f := listAll(t, s, Query{Filter: &vigilv1.FindingFilter{Hostname: testHost.Hostname}})
		if len(f) != 1 || f[0].GetService().GetCount() != 4 {
			t.Errorf("finding count after replays: %d findings, want one counted 4 times", len(f))
		}
		st, err := s.BatchStats(ctx, "sensor-a", "boot-1")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(st.Sequences) != "[1 2]" || st.Events != 150 {
			t.Errorf("stats = %+v, want sequences [1 2] and 150 events", st)
		}
		sensors, err := s.ListSensors(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(sensors) != 2 || sensors[0].BatchesTotal != 3 || sensors[0].EventsTotal != 157 {
			t.Errorf("sensor counters = %v, want sensor-a with 3 batches and 157 events", sensors)
		}
	})
}

func TestStoreConcurrentAggregation(t *testing.T) {
	eachStore(t, func(t *testing.T, url string) {
		// Two store instances on one database, as two backend replicas.
		stores := []Store{openTestStore(t, url, nil), openTestStore(t, url, nil)}
		const perWorker = 40
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				s := stores[w%2]
				for i := 1; i <= perWorker; i++ {
					al := alertAt(ruleReverseShell, inContainer, baseTime.Add(time.Duration(i)*time.Second), "/tmp/b4sh")
					key := BatchKey{SensorID: fmt.Sprintf("sensor-%d", w), BootID: "boot-1", Sequence: uint64(i)}
					if _, err := s.ApplyBatch(context.Background(), key, 1, []*detect.Alert{al}); err != nil {
						errs <- fmt.Errorf("worker %d batch %d: %w", w, i, err)
						return
					}
					// Every worker also replays its previous batch, racing
					// the other replica's replays.
					if dup, err := s.ApplyBatch(context.Background(), key, 1, []*detect.Alert{al}); err != nil || !dup {
						errs <- fmt.Errorf("worker %d replay %d: dup %v err %v", w, i, dup, err)
						return
					}
				}
			}(w)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		fs := listAll(t, stores[1], Query{})
		if len(fs) != 1 {
			t.Fatalf("got %d findings, want exactly one", len(fs))
		}
		if got := fs[0].GetService().GetCount(); got != 4*perWorker {
			t.Errorf("count = %d, want %d", got, 4*perWorker)
		}
	})
}

func TestStoreAttackSequence(t *testing.T) {
	eachStore(t, func(t *testing.T, url string) {
		ctx := context.Background()
		clk := &clock{t: baseTime}
		s := openTestStore(t, url, clk)
		a := &applier{t: t, s: s, sensor: "sensor-a"}
		sequences := func() []*vigilv1.Finding {
			return listAll(t, s, Query{Filter: &vigilv1.FindingFilter{Type: AttackSequencePrefix + "*"}})
		}
		// One finding is no sequence, even one of two tactics.
		a.apply(alertAt(ruleTwoTactics, inContainer, baseTime, "/tmp/docker"))
		if n := len(sequences()); n != 0 {
			t.Fatalf("%d sequences after one finding of two tactics", n)
		}
		// One tactic alone is no sequence.
		a.apply(alertAt(ruleReverseShell, inECS, baseTime, "/tmp/b4sh"))
		if n := len(sequences()); n != 0 {
			t.Fatalf("%d sequences after one tactic", n)
		}
		// A second tactic on another workload is none either.
		a.apply(alertAt(ruleDockerSocket, inPod, baseTime.Add(time.Minute), "/usr/bin/nc"))
		if n := len(sequences()); n != 0 {
			t.Fatalf("%d sequences across workloads", n)
		}
		// A second tactic on the same task, 10 minutes later, is.
		a.apply(alertAt(ruleDockerSocket, inECS, baseTime.Add(10*time.Minute), "/usr/bin/nc"))
		seqs := sequences()
		if len(seqs) != 1 {
			t.Fatalf("%d sequences, want 1", len(seqs))
		}
		seq := seqs[0]
		members := listAll(t, s, Query{Filter: &vigilv1.FindingFilter{TaskArn: "arn:aws:ecs:us-east-1:111122223333:task/prod/e40860c2b55a4200b03c3197f6c59714", Type: "*"}})
		var memberIDs []string
		for _, m := range members {
			if m.Type == seq.Type {
				continue
			}
			memberIDs = append(memberIDs, m.Id)
			if m.AttackSequenceId != seq.Id {
				t.Errorf("member %s has attackSequenceId %q, want %q", m.Type, m.AttackSequenceId, seq.Id)
			}
		}
		sort.Strings(memberIDs)
		related := append([]string(nil), seq.GetEvidence().GetRelatedFindingIds()...)
		sort.Strings(related)
		checks := []struct {
			name string
			got  any
			want any
		}{
			{"the type is GuardDuty's ECS sequence", seq.Type, AttackSequenceECS},
			{"the severity is Critical", seq.SeverityLabel, "Critical"},
			{"it links both members", fmt.Sprint(related), fmt.Sprint(memberIDs)},
			{"it names both tactics", fmt.Sprint(seq.MitreTactics), "[TA0002 TA0004]"},
			{"it counts its members", seq.GetService().GetCount(), uint32(2)},
		}
		for _, c := range checks {
			t.Run(c.name, func(t *testing.T) {
				if c.got != c.want {
					t.Errorf("got %v, want %v", c.got, c.want)
				}
			})
		}
		// A Low finding of a third tactic does not join: low-severity
		// signals alone do not escalate.
		a.apply(alertAt(ruleDiscovery, inECS, baseTime.Add(15*time.Minute), "/usr/bin/id"))
		seqs = sequences()
		if len(seqs) != 1 || seqs[0].Id != seq.Id || seqs[0].GetService().GetCount() != 2 {
			t.Fatalf("after a Low finding: %d sequences, want the same one still counting 2", len(seqs))
		}
		// A third tactic of Medium or more joins the same sequence.
		a.apply(alertAt(ruleMiner, inECS, baseTime.Add(20*time.Minute), "/tmp/xmrig"))
		seqs = sequences()
		if len(seqs) != 1 || seqs[0].Id != seq.Id || seqs[0].GetService().GetCount() != 3 {
			t.Fatalf("after a third tactic: %d sequences, want the same one counting 3", len(seqs))
		}
		// Two tactics on a host two hours apart are no sequence.
		a.apply(alertAt(ruleReverseShell, onHost, baseTime, "/tmp/x"))
		a.apply(alertAt(ruleMount, onHost, baseTime.Add(2*time.Hour), "/usr/bin/mount"))
		if n := len(sequences()); n != 1 {
			t.Errorf("%d sequences after findings two hours apart, want still 1", n)
		}
		got, err := s.GetFinding(ctx, seq.Id)
		if err != nil || got.Type != AttackSequenceECS {
			t.Errorf("get sequence: type %q, err %v", got.GetType(), err)
		}
	})
}

func TestStoreSensorCoverage(t *testing.T) {
	eachStore(t, func(t *testing.T, url string) {
		ctx := context.Background()
		clk := &clock{t: baseTime}
		s := openTestStore(t, url, clk)
		hello := &vigilv1.Hello{SensorId: "sensor-a", BootId: "boot-1", Version: "0.1.0", Host: testHost}
		health := func(lost uint64) *vigilv1.SensorHealth {
			return &vigilv1.SensorHealth{SensorId: "sensor-a", Version: "0.1.0", Kernel: "6.1.0", LoadedProbes: []string{"exec", "open"},
				SkippedProbes: []*vigilv1.SkippedProbe{{Name: "bpf", Reason: "disabled"}}, EventsTotal: 1000, LostRecords: lost, Mode: "ebpf"}
		}
		get := func() *vigilv1.SensorStatus {
			st, err := s.GetSensor(ctx, "sensor-a")
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
		steps := []struct {
			name    string
			do      func() error
			healthy bool
		}{
			{"a sensor that said hello is healthy", func() error { return s.RecordHealth(ctx, hello, nil) }, true},
			{"a report without loss keeps it healthy", func() error { return s.RecordHealth(ctx, nil, health(0)) }, true},
			{"a report with new loss makes it unhealthy", func() error { return s.RecordHealth(ctx, nil, health(12)) }, false},
			{"the next report without more loss heals it", func() error { return s.RecordHealth(ctx, nil, health(12)) }, true},
			{"a hello that forgot accepted batches makes it unhealthy", func() error {
				if _, err := s.ApplyBatch(ctx, BatchKey{"sensor-a", "boot-1", 5}, 1, nil); err != nil {
					return err
				}
				return s.RecordHealth(ctx, &vigilv1.Hello{SensorId: "sensor-a", BootId: "boot-1", Version: "0.1.0", Host: testHost, LastAckedSequence: 0}, nil)
			}, false},
			{"a hello that remembers them heals it", func() error {
				return s.RecordHealth(ctx, &vigilv1.Hello{SensorId: "sensor-a", BootId: "boot-1", Version: "0.1.0", Host: testHost, LastAckedSequence: 5}, nil)
			}, true},
			{"silence beyond the health window makes it unhealthy", func() error { clk.Set(baseTime.Add(10 * time.Minute)); return nil }, false},
		}
		for _, st := range steps {
			t.Run(st.name, func(t *testing.T) {
				if err := st.do(); err != nil {
					t.Fatal(err)
				}
				got := get()
				if got.Healthy != st.healthy {
					t.Errorf("healthy = %v (problems %v), want %v", got.Healthy, got.Problems, st.healthy)
				}
				if got.Healthy == (len(got.Problems) > 0) {
					t.Errorf("healthy %v contradicts problems %v", got.Healthy, got.Problems)
				}
			})
		}
		st := get()
		if st.GetHost().GetHostname() != testHost.Hostname || st.Version != "0.1.0" || len(st.GetHealth().GetLoadedProbes()) != 2 {
			t.Errorf("coverage lost details: %v", st)
		}
		if _, err := s.GetSensor(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown sensor: %v, want ErrNotFound", err)
		}
	})
}

func TestOpenRejectsUnknownURLs(t *testing.T) {
	tests := []struct {
		name string
		url  string
	}{
		{"a mysql url is rejected", "mysql://localhost/vigil"},
		{"an empty url is rejected", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := Open(context.Background(), tt.url, nil, nil); err == nil {
				s.Close()
				t.Error("Open succeeded")
			}
		})
	}
}

func TestRedactURLHidesPasswords(t *testing.T) {
	if got := redactURL("postgres://vigil:s3cret@db:5432/vigil"); got != "postgres://vigil:xxxxx@db:5432/vigil" {
		t.Errorf("redactURL = %q", got)
	}
}

func TestRunRetentionPurgesOnSchedule(t *testing.T) {
	clk := &clock{t: baseTime}
	s := openTestStore(t, "sqlite://"+filepath.Join(t.TempDir(), "vigil.db"), clk)
	a := &applier{t: t, s: s, sensor: "sensor-a"}
	a.apply(alertAt(ruleReverseShell, inContainer, baseTime, "/tmp/old"))
	clk.Set(baseTime.Add(10 * 24 * time.Hour))
	a.apply(alertAt(ruleReverseShell, inContainer, baseTime.Add(10*24*time.Hour), "/tmp/new"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		RunRetention(ctx, s, 7*24*time.Hour, 10*time.Millisecond, clk.Now, nil)
		close(done)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(listAll(t, s, Query{})) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the old finding was not purged")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if left := listAll(t, s, Query{}); left[0].GetService().GetRuntimeDetails().GetProcess().GetExecutablePath() != "/tmp/new" {
		t.Errorf("retention purged the wrong finding")
	}
}

func TestOpenSQLite(t *testing.T) {
	t.Run("sqlite:// opens vigil-data/vigil.db in the working directory", func(t *testing.T) {
		t.Chdir(t.TempDir())
		s, err := Open(context.Background(), "sqlite://", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if _, err := os.Stat(DefaultSQLitePath); err != nil {
			t.Errorf("default database file: %v", err)
		}
	})
	t.Run("reopening keeps the findings and migrates nothing twice", func(t *testing.T) {
		url := "sqlite://" + filepath.Join(t.TempDir(), "vigil.db")
		s := openTestStore(t, url, &clock{t: baseTime})
		(&applier{t: t, s: s, sensor: "sensor-a"}).apply(alertAt(ruleReverseShell, inContainer, baseTime, "/tmp/b4sh"))
		s.Close()
		s2 := openTestStore(t, url, nil)
		if n := len(listAll(t, s2, Query{})); n != 1 {
			t.Errorf("%d findings after reopening, want 1", n)
		}
	})
	t.Run("a database from a newer version is refused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "vigil.db")
		s := openTestStore(t, "sqlite://"+path, nil)
		if _, err := s.(*sqlStore).db.Exec(`UPDATE schema_version SET version = 99`); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if s2, err := Open(context.Background(), "sqlite://"+path, nil, nil); err == nil {
			s2.Close()
			t.Error("opened a database with schema version 99")
		}
	})
}
