package procmode

import (
	"strconv"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/testutil"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// stormExecs is the size of the exec storm: the same 2,000 fork+exec of
// /bin/true the eBPF collector's overhead figure uses, run in stormRounds
// alternating untraced and traced rounds so that load from elsewhere on the
// machine falls on both sides alike.
const (
	stormExecs  = 2000
	stormRounds = 4
)

// BenchmarkExecStorm measures what being traced costs a fork+exec heavy
// workload: a shell runs /bin/true stormExecs times, once untraced and once
// under the collector (default intervals), and the benchmark prints the
// slowdown ratio, both rates and the events lost.
//
//	go test -run '^$' -bench ExecStorm -benchtime 3x ./collector/procmode/
func BenchmarkExecStorm(b *testing.B) {
	testutil.RequirePrivileged(b)
	script := `i=0; while [ $i -lt ` + strconv.Itoa(stormExecs/stormRounds) + ` ]; do /bin/true; i=$((i+1)); done`
	var plain, underTrace time.Duration
	var lost, execs uint64
	for range b.N {
		for range stormRounds {
			plain += runStorm(b, script, nil)
			var h vigilv1.SensorHealth
			var seen int
			underTrace += runStorm(b, script, func(tr *traced) {
				tr.c.Health(&h)
				for _, ev := range tr.sink.all() {
					if x := ev.GetExec(); x != nil && ev.Process.ExePath != "" && len(ev.Process.Args) == 1 && ev.Process.Args[0] == "/bin/true" {
						seen++
					}
				}
			})
			lost += h.LostRecords
			execs += uint64(seen)
		}
	}
	n := float64(b.N * stormExecs)
	b.ReportMetric(underTrace.Seconds()/plain.Seconds(), "slowdown")
	b.ReportMetric(n/plain.Seconds(), "untraced-execs/s")
	b.ReportMetric(n/underTrace.Seconds(), "traced-execs/s")
	b.ReportMetric(float64(lost), "lost-events")
	b.ReportMetric(float64(execs)/n, "execs-reported/run")
}

// runStorm runs script once, traced when after is not nil (after then
// inspects the collector before it stops), and returns the time from
// release to the script's end.
func runStorm(b *testing.B, script string, after func(*traced)) time.Duration {
	b.Helper()
	w := startWorkload(b, script)
	var tr *traced
	if after != nil {
		tr = traceWorkload(b, w, Config{})
	}
	b.StartTimer()
	start := time.Now()
	w.release(b)
	w.wait(b, 5*time.Minute)
	d := time.Since(start)
	b.StopTimer()
	if tr != nil {
		tr.sink.waitFor(b, "exit of the workload", 10*time.Second, isExitOf(w.pid))
		after(tr)
		tr.stop(b)
	}
	return d
}
