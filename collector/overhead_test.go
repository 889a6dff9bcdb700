package collector

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/internal/testutil"
)

// The end-to-end overhead benchmarks run a workload without and then with
// `sensor --stdout > /dev/null` capturing everything, in one run, and report
// the slowdown and the records the sensor lost:
//
//	go test -run '^$' -bench Overhead -benchtime 1x ./collector/
//
// Each workload is timed three times per side and the fastest run counts,
// which filters out noise from the rest of the machine.

const overheadRounds = 3

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
	timeIt := func() time.Duration {
		best := time.Duration(1<<63 - 1)
		for range overheadRounds {
			start := time.Now()
			if err := workload(); err != nil {
				b.Fatal(err)
			}
			best = min(best, time.Since(start))
		}
		return best
	}
	for b.Loop() {
		base := timeIt()
		s := startSensor(b, bin)
		with := timeIt()
		lost, events := s.stop(b)
		ratio := float64(with) / float64(base)
		b.ReportMetric(ratio, "slowdown-x")
		b.ReportMetric(float64(lost), "lost-records")
		b.ReportMetric(float64(base.Milliseconds()), "baseline-ms")
		b.ReportMetric(float64(with.Milliseconds()), "with-sensor-ms")
		fmt.Printf("%s: baseline %v, with sensor %v, slowdown %.2fx, events %d, lost records %d\n",
			name, base.Round(time.Millisecond), with.Round(time.Millisecond), ratio, events, lost)
	}
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
	cmd := exec.Command(bin, "--stdout")
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
				return s
			}
		case <-timeout:
			cmd.Process.Kill()
			b.Fatal("sensor not ready within 60s")
		}
	}
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
