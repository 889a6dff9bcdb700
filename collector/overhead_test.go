package collector

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/testutil"
	"github.com/vigilsec/vigil/internal/testutil/uring"
)

// The end-to-end overhead benchmarks run a workload without and then with
// `sensor --stdout > /dev/null` capturing everything, in one run, and report
// the slowdown and the records the sensor lost:
//
//	go test -run '^$' -bench Overhead -benchtime 1x ./collector/
//
// The rounds alternate (without, with a freshly started sensor, without,
// ...), so drift in the machine's speed hits both sides alike; the fastest
// run of each side counts, which filters out noise from the rest of the
// machine, and the median of the rounds' own ratios is printed beside it.
// Each sensor is measured once it has settled (see settle): the figures are
// the cost of a running sensor, not of its start.

// overheadRounds is nine: on a small VM one round's ratio varies by a few
// percent either way, and with five the exec storm's figure moved by more
// than the effect it measures from one run to the next.
const overheadRounds = 9

func BenchmarkOverheadOpenStorm(b *testing.B) {
	path := filepath.Join(b.TempDir(), "target")
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		b.Fatal(err)
	}
	benchOverhead(b, "open storm (200k open/close)", func() error {
		for range 200_000 {
			fd, err := unix.Open(path, unix.O_RDONLY, 0)
			if err != nil {
				return err
			}
			unix.Close(fd)
		}
		return nil
	})
}

// BenchmarkOverheadURingOpenStorm is the open storm with each open
// submitted through an io_uring instead of made as a system call: the
// submission probe keeps its name and the completion probe reports it.
func BenchmarkOverheadURingOpenStorm(b *testing.B) {
	path := filepath.Join(b.TempDir(), "target")
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		b.Fatal(err)
	}
	ring, err := uring.New()
	if err != nil {
		b.Skipf("no io_uring here: %v", err)
	}
	defer ring.Close()
	benchOverhead(b, "io_uring open storm (200k open through a ring, close)", func() error {
		for range 200_000 {
			fd, err := ring.Openat(path, unix.O_RDONLY, 0)
			if err != nil {
				return err
			}
			unix.Close(fd)
		}
		return nil
	})
}

func BenchmarkOverheadExecStorm(b *testing.B) {
	benchOverhead(b, "exec storm (2,000 fork+exec of /bin/true)", func() error {
		for range 2_000 {
			if err := exec.Command("/bin/true").Run(); err != nil {
				return err
			}
		}
		return nil
	})
}

func benchOverhead(b *testing.B, name string, workload func() error) {
	testutil.RequirePrivileged(b)
	bin := buildSensor(b)
	// once runs the workload and returns its wall time and the CPU time
	// the workload (this process and its children) used: BPF programs run
	// in the traced process, so their cost shows there even when other
	// work on the machine makes wall time noisy.
	once := func() (wall, cpu time.Duration) {
		c0 := workloadCPU()
		start := time.Now()
		if err := workload(); err != nil {
			b.Fatal(err)
		}
		return time.Since(start), workloadCPU() - c0
	}
	for b.Loop() {
		others := attachedSensors()
		inf := time.Duration(1<<63 - 1)
		base, baseCPU, with, withCPU := inf, inf, inf, inf
		var sensorCPU time.Duration
		var lost, events uint64
		var ratios []float64
		for range overheadRounds {
			bw, bc := once()
			s := startSensor(b, bin)
			s0 := s.cpu()
			ww, wc := once()
			sensorCPU += s.cpu() - s0
			others = max(others, attachedSensors()-1)
			l, e := s.stop(b)
			lost, events = lost+l, events+e
			base, baseCPU = min(base, bw), min(baseCPU, bc)
			with, withCPU = min(with, ww), min(withCPU, wc)
			ratios = append(ratios, float64(ww)/float64(bw))
		}
		slices.Sort(ratios)
		median := ratios[len(ratios)/2]
		ratio := float64(with) / float64(base)
		cpuRatio := float64(withCPU) / float64(baseCPU)
		b.ReportMetric(ratio, "slowdown-x")
		b.ReportMetric(cpuRatio, "cpu-slowdown-x")
		b.ReportMetric(float64(lost), "lost-records")
		b.ReportMetric(float64(base.Milliseconds()), "baseline-ms")
		b.ReportMetric(float64(with.Milliseconds()), "with-sensor-ms")
		b.ReportMetric(float64(sensorCPU.Milliseconds()), "sensor-cpu-ms")
		if others > 0 {
			// Their probes run in the workload too: the figures are high.
			b.ReportMetric(float64(others), "other-sensors")
			fmt.Printf("warning: %d other Vigil sensor(s) had probes attached during the run; the figures include their cost\n", others)
		}
		b.ReportMetric(median, "median-round-x")
		fmt.Printf("%s: baseline %v, with sensor %v, slowdown %.2fx (median of %d alternating rounds %.2fx; workload CPU %v -> %v, %.2fx); sensor CPU %v for %d events; lost records %d\n",
			name, base.Round(time.Millisecond), with.Round(time.Millisecond), ratio, len(ratios), median,
			baseCPU.Round(time.Millisecond), withCPU.Round(time.Millisecond), cpuRatio,
			sensorCPU.Round(time.Millisecond), events, lost)
	}
}

// attachedSensors counts the Vigil probe sets attached on this machine (by
// their exit_openat program), so a run that overlapped another sensor says
// so.
func attachedSensors() int {
	n := 0
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return n
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		if info, err := p.Info(); err == nil && info.Name == "exit_openat" {
			n++
		}
		p.Close()
	}
}

// workloadCPU is the user and system time of this process and its waited-for
// children so far.
func workloadCPU() time.Duration {
	var self, kids unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &self)
	unix.Getrusage(unix.RUSAGE_CHILDREN, &kids)
	tv := func(t unix.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}

func buildSensor(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "sensor")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/vigilsec/vigil/cmd/sensor")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build sensor: %v\n%s", err, out)
	}
	return bin
}

type runningSensor struct {
	cmd   *exec.Cmd
	lines chan string
}

// startSensor runs `sensor --stdout > /dev/null` and waits until it
// captures (it logs once the process table is seeded, after attaching).
func startSensor(b *testing.B, bin string) *runningSensor {
	b.Helper()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { null.Close() })
	// No metrics listener: another sensor on this machine may hold its port.
	cmd := exec.Command(bin, "--stdout", "--metrics-listen=")
	cmd.Stdout = null
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	s := &runningSensor{cmd: cmd, lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				b.Fatal("sensor exited before it was ready")
			}
			if strings.Contains(l, "process table seeded") {
				s.settle(b)
				return s
			}
		case <-timeout:
			cmd.Process.Kill()
			b.Fatal("sensor not ready within 60s")
		}
	}
}

// settle waits until the sensor's one-time work is done. A sensor meets the
// processes already running when it starts and hashes each executable once,
// in the background for large ones: this test binary, tens of megabytes,
// costs it about 40ms of CPU on its first event from this process. A sensor
// that has been running for a while has done that long before the workload
// starts, so the benchmark lets it see this process and /bin/true once and
// then waits until it has been idle (at most one clock tick of CPU) for two
// 200ms windows in a row.
func (s *runningSensor) settle(b *testing.B) {
	b.Helper()
	if err := exec.Command("/bin/true").Run(); err != nil {
		b.Fatal(err)
	}
	quiet := 0
	for deadline := time.Now().Add(10 * time.Second); quiet < 2 && time.Now().Before(deadline); {
		c0 := s.cpu()
		time.Sleep(200 * time.Millisecond)
		if s.cpu()-c0 <= time.Second/100 {
			quiet++
		} else {
			quiet = 0
		}
	}
}

// cpu is the sensor's user and system time so far.
func (s *runningSensor) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100) // USER_HZ
}

var lostRE = regexp.MustCompile(`events=(\d+) lost_records=(\d+)`)

// stop interrupts the sensor and returns the lost records and events it
// reported on exit.
func (s *runningSensor) stop(b *testing.B) (lost, events uint64) {
	b.Helper()
	// Let the reader drain what the workload left in the ring buffer.
	time.Sleep(500 * time.Millisecond)
	s.cmd.Process.Signal(syscall.SIGINT)
	found := false
	for l := range s.lines {
		if m := lostRE.FindStringSubmatch(l); m != nil {
			events, _ = strconv.ParseUint(m[1], 10, 64)
			lost, _ = strconv.ParseUint(m[2], 10, 64)
			found = true
		}
	}
	if err := s.cmd.Wait(); err != nil {
		b.Errorf("sensor: %v", err)
	}
	if !found {
		b.Fatal("sensor did not report its lost records")
	}
	return lost, events
}
