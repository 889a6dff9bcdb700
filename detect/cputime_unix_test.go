//go:build unix

package detect

import "syscall"

// cpuTime is the CPU time this process has used, in seconds: on a shared
// machine it measures the engine's cost better than the wall clock.
func cpuTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
