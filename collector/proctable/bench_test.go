package proctable

import (
	"testing"
)

// benchTable holds a realistic population: a chain of shells under init with
// 1,000 children, so lineages are full and maps are not trivially small.
func benchTable(b *testing.B) *Table {
	b.Helper()
	tb := syntheticTable(b, Config{})
	tb.OnExec(ExecInfo{Pid: 1, StartTime: TickNanos, ExePath: "/sbin/init", Args: []string{"/sbin/init"}})
	for pid := uint32(2); pid < 12; pid++ {
		tb.OnFork(pid-1, pid, uint64(pid)*TickNanos)
		tb.OnExec(ExecInfo{Pid: pid, Ppid: pid - 1, StartTime: uint64(pid) * TickNanos,
			ExePath: "/bin/bash", Args: []string{"bash", "-c", "run"}, MntNs: 1})
	}
	for pid := uint32(100); pid < 1100; pid++ {
		tb.OnFork(11, pid, uint64(pid)*TickNanos)
	}
	return tb
}

func BenchmarkLookupHit(b *testing.B) {
	tb := benchTable(b)
	b.ReportAllocs()
	pid := uint32(100)
	for b.Loop() {
		if tb.Lookup(pid) == nil {
			b.Fatal("miss")
		}
		pid++
		if pid == 1100 {
			pid = 100
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}

func BenchmarkLookupHitParallel(b *testing.B) {
	tb := benchTable(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		pid := uint32(100)
		for pb.Next() {
			if tb.Lookup(pid) == nil {
				b.Error("miss")
				return
			}
			pid++
			if pid == 1100 {
				pid = 100
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}

// BenchmarkOnExec is the exec of a forked child: the common case, where the
// entry exists and exec publishes its new image.
func BenchmarkOnExec(b *testing.B) {
	tb := benchTable(b)
	args := []string{"/usr/bin/curl", "-s", "http://example.com"}
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		pid := uint32(100 + i%1000)
		tb.OnExec(ExecInfo{Pid: pid, Ppid: 11, StartTime: uint64(pid) * TickNanos,
			ExePath: "/usr/bin/curl", Args: args, Uid: 1000, MntNs: 1, ExeInode: 42})
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "execs/s")
}

// BenchmarkForkExecExit is a whole short-lived process: fork, exec, exit,
// with the exited entries expiring as they would.
func BenchmarkForkExecExit(b *testing.B) {
	tb := benchTable(b)
	args := []string{"/bin/true"}
	b.ReportAllocs()
	start := uint64(10_000) * TickNanos
	pid := uint32(2000)
	for b.Loop() {
		start += TickNanos
		pid++
		if pid == 30000 {
			pid = 2000
		}
		tb.OnFork(11, pid, start)
		tb.OnExec(ExecInfo{Pid: pid, Ppid: 11, StartTime: start, ExePath: "/bin/true", Args: args, MntNs: 1})
		tb.OnExit(pid)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "processes/s")
}
