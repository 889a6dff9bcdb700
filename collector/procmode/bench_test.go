package procmode

import (
	"strconv"
	"syscall"
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
// workload: a shell runs /bin/true stormExecs times, untraced and under the
// collector (default intervals). It prints the wall-clock slowdown, both
// rates, the events lost, and two figures that load elsewhere on the
// machine disturbs less than wall time: the workload's CPU time traced over
// untraced (the kernel's ptrace stops are charged to it) and the sensor's
// CPU time per exec.
//
//	go test -run '^$' -bench ExecStorm -benchtime 3x ./collector/procmode/
func BenchmarkExecStorm(b *testing.B) {
	testutil.RequirePrivileged(b)
	script := `i=0; while [ $i -lt ` + strconv.Itoa(stormExecs/stormRounds) + ` ]; do /bin/true; i=$((i+1)); done`
	var plain, underTrace stormCost
	var lost, execs uint64
	for range b.N {
		for range stormRounds {
			plain.add(runStorm(b, script, nil))
			var h vigilv1.SensorHealth
			var seen int
			underTrace.add(runStorm(b, script, func(tr *traced) {
				tr.c.Health(&h)
				for _, ev := range tr.sink.all() {
					if x := ev.GetExec(); x != nil && ev.Process.ExePath != "" && len(ev.Process.Args) == 1 && ev.Process.Args[0] == "/bin/true" {
						seen++
					}
				}
			}))
			lost += h.LostRecords
			execs += uint64(seen)
		}
	}
	n := float64(b.N * stormExecs)
	b.ReportMetric(underTrace.wall.Seconds()/plain.wall.Seconds(), "slowdown")
	b.ReportMetric(n/plain.wall.Seconds(), "untraced-execs/s")
	b.ReportMetric(n/underTrace.wall.Seconds(), "traced-execs/s")
	b.ReportMetric(underTrace.workload.Seconds()/plain.workload.Seconds(), "workload-cpu-ratio")
	b.ReportMetric(float64((underTrace.sensor-plain.sensor).Microseconds())/n, "sensor-cpu-µs/exec")
	b.ReportMetric(float64(lost), "lost-events")
	b.ReportMetric(float64(execs)/n, "execs-reported/run")
}

// stormCost is what one storm cost: wall time from release to the end, CPU
// time of the workload (its reaped processes) and of this process (the
// sensor, when tracing).
type stormCost struct {
	wall, workload, sensor time.Duration
}

func (s *stormCost) add(o stormCost) {
	s.wall += o.wall
	s.workload += o.workload
	s.sensor += o.sensor
}

func cpuTime(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runStorm runs script once, traced when after is not nil (after then
// inspects the collector before it stops).
func runStorm(b *testing.B, script string, after func(*traced)) stormCost {
	b.Helper()
	w := startWorkload(b, script)
	var tr *traced
	if after != nil {
		tr = traceWorkload(b, w, Config{})
		tr.hashesSettled(b)
	}
	b.StartTimer()
	self0, children0 := cpuTime(syscall.RUSAGE_SELF), cpuTime(syscall.RUSAGE_CHILDREN)
	start := time.Now()
	w.release(b)
	w.wait(b, 5*time.Minute)
	c := stormCost{
		wall:     time.Since(start),
		workload: cpuTime(syscall.RUSAGE_CHILDREN) - children0,
		sensor:   cpuTime(syscall.RUSAGE_SELF) - self0,
	}
	b.StopTimer()
	if tr != nil {
		tr.sink.waitFor(b, "exit of the workload", 10*time.Second, isExitOf(w.pid))
		after(tr)
		tr.stop(b)
	}
	return c
}
