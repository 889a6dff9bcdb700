package detect

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"testing"
	"testing/fstest"
	"time"

	"google.golang.org/protobuf/proto"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// loadBenchSource loads the rule files under src (read as files, so detect
// does not import the catalogue package) plus the upstream Falco file.
func loadBenchSource(tb testing.TB, src string) (*RuleSet, bool) {
	tb.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(os.DirFS(src), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(os.DirFS(src), p)
		m[p] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		tb.Logf("%s: %v", src, err)
		return nil, false
	}
	falco, err := os.ReadFile("testdata/falco/falco_rules.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	// The upstream file loads first, so the set's same-named macros and
	// lists win, as a user's file would.
	m["0-upstream/falco_rules.yaml"] = &fstest.MapFile{Data: falco}
	rs, errs := LoadRules(m, "")
	if HasErrors(errs) {
		tb.Logf("%s does not load: %v", src, errs[0])
		return nil, false
	}
	return rs, true
}

// eventMix builds a realistic stream: mostly opens, then execs, connects,
// forks and exits, DNS, a few rarer kinds, from host and container
// processes with realistic lineages.
func eventMix(n int) []*vigilv1.Event {
	rng := rand.New(rand.NewPCG(1, 2))
	procs := []*vigilv1.Process{
		withParents(mkProc("nginx", "/usr/sbin/nginx", "nginx", "-g", "daemon off;"), "containerd-shim", "systemd"),
		withParents(mkProc("java", "/usr/lib/jvm/bin/java", "java", "-Xmx2g", "-jar", "/app/service.jar", "--spring.profiles.active=prod"), "containerd-shim", "systemd"),
		withParents(mkProc("python3", "/usr/bin/python3", "python3", "/app/worker.py", "--queue", "jobs"), "sh", "containerd-shim", "systemd"),
		withParents(mkProc("bash", "/usr/bin/bash", "bash", "-c", "ls -la /var/lib/app && cat /etc/hostname"), "sshd", "sshd", "systemd"),
		withParents(mkProc("postgres", "/usr/lib/postgresql/16/bin/postgres", "postgres", "-D", "/var/lib/postgresql/data"), "systemd"),
		withParents(mkProc("node", "/usr/local/bin/node", "node", "/srv/app/index.js"), "npm", "sh", "containerd-shim", "systemd"),
		withParents(mkProc("kubelet", "/usr/bin/kubelet", "kubelet", "--config=/var/lib/kubelet/config.yaml"), "systemd"),
		withParents(mkProc("curl", "/usr/bin/curl", "curl", "-s", "https://api.example.com/v1/health"), "bash", "sshd", "systemd"),
	}
	for i, p := range procs {
		p.ExecId = fmt.Sprintf("boot-%d", i)
		p.Uid, p.Euid = uint32(i*100), uint32(i*100)
	}
	paths := []string{"/etc/hosts", "/etc/resolv.conf", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/var/log/nginx/access.log",
		"/app/config.yaml", "/tmp/cache-1234", "/proc/self/status", "/etc/passwd", "/var/lib/postgresql/data/base/16384/2619",
		"/sys/fs/cgroup/memory.max", "/home/app/.cache/pip/http/abc", "/etc/ssl/certs/ca-certificates.crt"}
	domains := []string{"api.example.com", "s3.us-east-1.amazonaws.com", "kubernetes.default.svc.cluster.local",
		"registry-1.docker.io", "ocsp.digicert.com", "db.internal.example"}
	out := make([]*vigilv1.Event, 0, n)
	for i := 0; i < n; i++ {
		p := procs[rng.IntN(len(procs))]
		var opts []evOpt
		if rng.IntN(3) > 0 {
			opts = append(opts, inContainer("docker.io/library/app:1.2.3"))
		}
		opts = append(opts, at(time.Duration(i)*time.Millisecond))
		var ev *vigilv1.Event
		switch r := rng.IntN(100); {
		case r < 35:
			flags := uint32(0)
			if rng.IntN(4) == 0 {
				flags = oWronly | 0o100
			}
			ev = openEv(p, paths[rng.IntN(len(paths))], flags, opts...)
			if rng.IntN(20) == 0 {
				ev.Result, ev.Errno = -2, "ENOENT"
			}
		case r < 50:
			ev = execEv(proto.Clone(p).(*vigilv1.Process), opts...)
		case r < 62:
			ev = connectEv(p, fmt.Sprintf("10.0.%d.%d", rng.IntN(4), rng.IntN(250)), []uint32{443, 5432, 80, 6379}[rng.IntN(4)], opts...)
		case r < 70:
			ev = dnsEv(p, domains[rng.IntN(len(domains))], opts...)
		case r < 75:
			ev = dnsAnswerEv(p, domains[rng.IntN(len(domains))], fmt.Sprintf("10.0.1.%d", rng.IntN(250)))
		case r < 80:
			ev = acceptEv(p, fmt.Sprintf("10.1.0.%d", rng.IntN(250)), time.Duration(i)*time.Millisecond)
		case r < 88:
			ev = mk(p, "clone", opts...)
			ev.Kind = &vigilv1.Event_Fork{Fork: &vigilv1.Fork{ChildPid: uint32(1000 + i)}}
		case r < 96:
			ev = mk(p, "procexit", opts...)
			ev.Kind = &vigilv1.Event_Exit{Exit: &vigilv1.Exit{}}
		case r < 98:
			ev = mk(p, "dup2", opts...)
			ev.Kind = &vigilv1.Event_Dup{Dup: &vigilv1.Dup{OldFd: 5, NewFd: 7, OldFdKind: "pipe"}}
		default:
			ev = mk(p, "unlinkat", opts...)
			ev.Kind = &vigilv1.Event_Unlink{Unlink: &vigilv1.FileUnlink{Path: "/tmp/cache-1234"}}
		}
		out = append(out, ev)
	}
	return out
}

// BenchmarkEngine reports events per second through the engine on one core
// (run with -cpu 1) and, with -benchmem, allocations per event, for the
// built-in catalogue (when it loads) and the built-in-like test set, each
// with the upstream Falco file.
func BenchmarkEngine(b *testing.B) {
	events := eventMix(4096)
	for _, src := range []string{"../rules", "testdata/builtin"} {
		rs, ok := loadBenchSource(b, src)
		if !ok {
			continue
		}
		rules, _, _ := rs.Counts()
		name := map[string]string{"../rules": "catalogue", "testdata/builtin": "testdata"}[src]
		b.Run(name+"/serial", func(b *testing.B) {
			e := NewEngine(EngineConfig{}, nil, nil)
			e.SetRules(rs)
			alerts := 0
			emit := func(*Alert) { alerts++ }
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu := time.Now(), cpuTime()
			for i := 0; i < b.N; i++ {
				e.Process(events[i%len(events)], emit)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
			// Events per second of CPU time: the per-core figure, steady
			// even when other work shares the machine.
			if used := cpuTime() - cpu; used > 0 {
				b.ReportMetric(float64(b.N)/used, "events/cpu-s")
			}
			b.ReportMetric(float64(rules), "rules")
		})
		b.Run(name+"/parallel", func(b *testing.B) {
			e := NewEngine(EngineConfig{}, nil, nil)
			e.SetRules(rs)
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu := time.Now(), cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				i := rand.IntN(len(events))
				for pb.Next() {
					e.Process(events[i%len(events)], func(*Alert) {})
					i++
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
			if used := cpuTime() - cpu; used > 0 {
				b.ReportMetric(float64(b.N)/used, "events/cpu-s")
			}
		})
	}
}

// TestBenchRulesFire keeps the benchmark honest: the test set loads without
// a warning, and its rules do run on the mix (a container contacts the
// Kubernetes API, which the upstream rule reports).
func TestBenchRulesFire(t *testing.T) {
	rs, ok := loadBenchSource(t, "testdata/builtin")
	if !ok {
		t.Fatal("the built-in-like test set does not load")
	}
	if _, errs := LoadRules(os.DirFS("testdata/builtin"), ""); len(errs) != 0 {
		t.Fatalf("the built-in-like test set has problems: %v", errs)
	}
	e := NewEngine(EngineConfig{}, nil, nil)
	e.SetRules(rs)
	as := fired(e, eventMix(4096)...)
	if len(as) == 0 {
		t.Fatal("no rule fired on the benchmark mix")
	}
	counts := map[string]int{}
	for _, a := range as {
		counts[a.Rule.Name]++
	}
	t.Logf("alerts on the mix: %v", counts)
}
