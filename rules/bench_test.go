package rules_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vigilsec/vigil/detect"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// workloadMix builds n events in the proportions a busy container host
// shows (web servers, a database client, cron shells, a build): mostly file
// opens, then connects and accepts, execs with their forks and exits, DNS,
// and a little file churn. Processes come from a pool, half in containers,
// and time moves forward a few microseconds per event.
func workloadMix(n int) []*vigilv1.Event {
	type actor struct {
		p   *vigilv1.Process
		ctr bool
	}
	var pool []actor
	names := []struct{ comm, exe string }{
		{"nginx", "/usr/sbin/nginx"}, {"node", "/usr/local/bin/node"}, {"java", "/usr/bin/java"}, {"python3", "/usr/bin/python3"},
		{"bash", "/usr/bin/bash"}, {"sh", "/bin/dash"}, {"postgres", "/usr/lib/postgresql/15/bin/postgres"}, {"go", "/usr/local/go/bin/go"},
		{"git", "/usr/bin/git"}, {"cron", "/usr/sbin/cron"},
	}
	for i := 0; i < 64; i++ {
		nm := names[i%len(names)]
		pool = append(pool, actor{proc(nm.comm, nm.exe, nm.comm, fmt.Sprintf("arg%d", i)), i%2 == 0})
	}
	files := []string{"/etc/ld.so.cache", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/etc/hosts", "/etc/resolv.conf",
		"/var/www/html/index.html", "/app/node_modules/express/index.js", "/etc/passwd", "/proc/self/status",
		"/usr/share/zoneinfo/UTC", "/srv/data/base/16384/2619", "/tmp/go-build123/b001/_pkg_.a", "/home/ci/repo/.git/HEAD"}
	out := make([]*vigilv1.Event, 0, n)
	for i := 0; i < n; i++ {
		a := pool[(i*7)%len(pool)]
		var opts []opt
		if a.ctr {
			opts = append(opts, inCtr)
		}
		opts = append(opts, after(time.Duration(i)*5*time.Microsecond))
		var e *vigilv1.Event
		switch r := i % 100; {
		case r < 40:
			e = readEv(a.p, files[i%len(files)], opts...)
		case r < 48:
			e = openEv(a.p, "openat", "/var/log/app/access.log", oWRONLY|oAPPEND|oCREAT, opts...)
		case r < 51:
			e = writeEv(a.p, fmt.Sprintf("/tmp/go-build123/b%03d/out.o", i%500), opts...)
		case r < 56:
			// Shells come from shells, cron, build tools and scripts; a
			// web or database server starting one is no everyday work.
			sp := a.p
			for k := 1; slices.Contains([]string{"nginx", "postgres", "java", "node"}, sp.Comm); k++ {
				sp = pool[(i*7+k)%len(pool)].p
			}
			c := childOf(proc("sh", "/bin/dash", "sh", "-c", "date +%s >> /tmp/tick"), sp)
			e = execEv(c, opts...)
		case r < 58:
			e = execEv(childOf(proc("ls", "/usr/bin/ls", "ls", "-la"), a.p), opts...)
		case r < 63:
			e = ev(a.p, "clone", 0, opts)
			e.Kind = &vigilv1.Event_Fork{Fork: &vigilv1.Fork{ChildPid: uint32(50000 + i)}}
		case r < 68:
			e = exitEv(a.p, opts...)
		case r < 78:
			res := opt(func(*vigilv1.Event) {})
			if i%3 == 0 {
				res = failed("EINPROGRESS", 115)
			}
			e = connectEv(a.p, fmt.Sprintf("10.0.%d.%d", i%4, i%250), uint32(5432+i%3), append(opts, res)...)
		case r < 86:
			e = acceptEv(a.p, 8080, fmt.Sprintf("10.1.%d.%d", i%8, i%200), opts...)
		case r < 91:
			e = dnsQueryEv(a.p, fmt.Sprintf("api%d.internal.example.com", i%40), opts...)
		case r < 94:
			e = dnsAnswerEv(a.p, fmt.Sprintf("api%d.internal.example.com", i%40), []string{fmt.Sprintf("10.0.5.%d", i%40)}, opts...)
		case r < 96:
			e = unlinkEv(a.p, fmt.Sprintf("/tmp/go-build123/b%03d/out.o", i%500), opts...)
		case r < 98:
			e = renameEv(a.p, "renameat", "/var/lib/app/state.tmp", "/var/lib/app/state", opts...)
		default:
			e = dupEv(a.p, "dup2", 4, 1, "pipe", "", 0, opts...)
		}
		out = append(out, e)
	}
	return out
}

// BenchmarkCatalogue runs the full built-in catalogue (plus the test config
// map's threat lists) over a realistic event mix on one goroutine: the
// figure is events per second per core and allocations per event.
func BenchmarkCatalogue(b *testing.B) {
	rs := loadCatalogue(b, configMap)
	e := detect.NewEngine(detect.EngineConfig{}, nil, nil)
	e.SetRules(rs)
	events := workloadMix(20000)
	alerts := 0
	emit := func(*detect.Alert) { alerts++ }
	// Warm the engine's tables so the loop measures the steady state.
	for _, ev := range events {
		e.Process(ev, emit)
	}
	alerts = 0
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		e.Process(events[i%len(events)], emit)
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(alerts)/float64(b.N), "alerts/event")
}

// BenchmarkCatalogueParallel is the same mix from every core at once, for
// the engine's total rate under concurrent streams.
func BenchmarkCatalogueParallel(b *testing.B) {
	rs := loadCatalogue(b, configMap)
	e := detect.NewEngine(detect.EngineConfig{}, nil, nil)
	e.SetRules(rs)
	events := workloadMix(20000)
	for _, ev := range events {
		e.Process(ev, func(*detect.Alert) {})
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			e.Process(events[i%len(events)], func(*detect.Alert) {})
			i++
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// TestWorkloadMixIsQuiet checks the benchmark's everyday mix raises nothing
// of Medium severity or above: the catalogue's false-positive budget on
// ordinary work is zero.
func TestWorkloadMixIsQuiet(t *testing.T) {
	rs := loadCatalogue(t, configMap)
	for _, a := range run(rs, workloadMix(5000)) {
		if a.Rule.Severity >= 5 {
			t.Errorf("%s (%s) on everyday work: %s", a.Rule.Name, a.Rule.FindingType, a.Output)
		}
	}
}
