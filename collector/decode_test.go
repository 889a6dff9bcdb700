package collector

import (
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/vigilsec/vigil/collector/probes"
	"github.com/vigilsec/vigil/collector/proctable"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

var update = flag.Bool("update", false, "rewrite the golden decoded events in testdata/records")

// testBoot is a fixed boot time so decoded timestamps are reproducible.
var testBoot = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func samples(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("testdata/records/*.bin")
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples in testdata/records: %v", err)
	}
	out := make(map[string][]byte, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".bin")] = b
	}
	return out
}

// TestDecodeCapturedSamples decodes records captured from the real probes
// (see testdata/records/README.md) and compares them with the golden
// events next to them; -update rewrites the golden files.
func TestDecodeCapturedSamples(t *testing.T) {
	d := Decoder{BootTime: testBoot}
	for name, raw := range samples(t) {
		t.Run(strings.ReplaceAll(name, "-", " "), func(t *testing.T) {
			var r Record
			if err := d.Decode(raw, &r); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			golden := filepath.Join("testdata", "records", name+".json")
			if *update {
				b, err := protojson.MarshalOptions{Multiline: true}.Marshal(r.Event)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			b, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden (run with -update): %v", err)
			}
			want := &vigilv1.Event{}
			if err := protojson.Unmarshal(b, want); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(r.Event, want) {
				t.Errorf("decoded event differs from %s:\n got %v\nwant %v", golden, r.Event, want)
			}
		})
	}
}

// TestDecodeRejectsCorruptRecords checks that damaged records are reported
// as errors, never decoded into something wrong and never a panic.
func TestDecodeRejectsCorruptRecords(t *testing.T) {
	all := samples(t)
	exec := all["an-exec-shows-full-argv-and-the-right-parent"]
	rename := all["a-rename-shows-both-paths"]
	hdrSize := int(unsafe.Sizeof(probes.VigilRecHdr{}))
	with := func(b []byte, f func(h *probes.VigilRecHdr)) []byte {
		c := append([]byte(nil), b...)
		f(view[probes.VigilRecHdr](c))
		return c
	}
	cases := []struct {
		name string
		raw  []byte
		want error
	}{
		{"an empty record is too short", nil, ErrShortRecord},
		{"a record cut inside its header is too short", exec[:hdrSize-1], ErrShortRecord},
		{"an exec cut inside its fixed body is too short", exec[:hdrSize+8], ErrShortRecord},
		{"an exec cut inside its strings is too short", exec[:len(exec)-10], ErrShortRecord},
		{"an exec whose size field lies about a cut does not match its type", with(exec[:len(exec)-10], func(h *probes.VigilRecHdr) { h.Size -= 10 }), ErrBadLayout},
		{"a string longer than the record does not match its type", with(rename, func(h *probes.VigilRecHdr) { h.StrLen[0] = 60000 }), ErrBadLayout},
		{"a wrong fixed-part size does not match its type", with(rename, func(h *probes.VigilRecHdr) { h.Fixed += 8 }), ErrBadLayout},
		{"more strings than the header holds do not match its type", with(rename, func(h *probes.VigilRecHdr) { h.Nstr = 7 }), ErrBadLayout},
		{"an unknown record type is unknown", with(rename, func(h *probes.VigilRecHdr) { h.Type = 99 }), ErrUnknownRecord},
		{"an unknown syscall in a generic record does not match its type", with(rename, func(h *probes.VigilRecHdr) { h.Sys = 999 }), ErrBadLayout},
	}
	d := Decoder{BootTime: testBoot}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r Record
			err := d.Decode(tc.raw, &r)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode error = %v, want %v", err, tc.want)
			}
			if r.Event != nil {
				t.Errorf("a rejected record produced an event: %v", r.Event)
			}
		})
	}
}

// FuzzDecode feeds the decoder arbitrary bytes, seeded with the captured
// samples: it must never panic.
//
//	go test -fuzz=FuzzDecode -fuzztime=60s ./collector/
func FuzzDecode(f *testing.F) {
	for _, raw := range samples(f) {
		f.Add(raw)
	}
	d := Decoder{BootTime: testBoot}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		if err := d.Decode(b, &r); err == nil && r.Event == nil {
			t.Fatal("Decode succeeded without an event")
		}
	})
}

// BenchmarkDecode measures the user-space path of one record on captured
// samples: decode, process-table attribution and cgroup path, in events per
// second on one core.
func BenchmarkDecode(b *testing.B) {
	all := samples(b)
	// The mix of a busy host: mostly opens, some execs and network.
	var mix [][]byte
	for name, raw := range all {
		n := 1
		if strings.Contains(name, "open") {
			n = 20
		}
		for range n {
			mix = append(mix, alignedCopy(raw))
		}
	}
	procs, err := proctable.New(proctable.Config{DisableHashing: true, SweepInterval: -1}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg, newKernelCounters(nil), func() float64 { return 0 })
	if err != nil {
		b.Fatal(err)
	}
	c := &Collector{procs: procs, m: m, dec: Decoder{BootTime: testBoot}}
	c.cgroups = newCgroupPaths("/proc", "/sys/fs/cgroup", v1Controller{}, func() {})
	// The samples' processes are long gone: make them known to the table, as
	// the live processes of a busy host are.
	var r Record
	for _, raw := range mix {
		if err := c.dec.Decode(raw, &r); err != nil {
			b.Fatal(err)
		}
		p := r.Event.Process
		procs.OnExec(proctable.ExecInfo{Pid: p.Pid, Ppid: 1, StartTime: 1e9, Comm: p.Comm, ExePath: "/usr/bin/" + p.Comm})
	}
	c.dec.Processes = procs
	i := 0
	for b.Loop() {
		if err := c.dec.Decode(mix[i%len(mix)], &r); err != nil {
			b.Fatal(err)
		}
		c.attribute(&r)
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// alignedCopy copies a record into 8-byte aligned memory, as the ring
// buffer delivers it.
func alignedCopy(b []byte) []byte {
	words := make([]uint64, (len(b)+7)/8)
	out := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)[:len(b)]
	copy(out, b)
	return out
}

// BenchmarkExecStormUserSpace is the sensor's user-space work for one exec
// of an exec storm (fork, exec and exit records of a new process running a
// file hashed before): decode, process table, cgroup path and the --stdout
// JSON, in microseconds of one core per exec. The exec record is the
// captured sample, its inode facts refreshed from the file on this machine;
// the fork record is built from the generated struct.
func BenchmarkExecStormUserSpace(b *testing.B) {
	execRaw := alignedCopy(samples(b)["an-exec-shows-full-argv-and-the-right-parent"])
	exitRaw := alignedCopy(samples(b)["a-fork-names-the-child-and-an-exit-carries-the-status"])
	x := view[probes.VigilRecExec](execRaw)
	var st unix.Stat_t
	if err := unix.Stat("/usr/bin/echo", &st); err != nil {
		b.Skipf("the sample's executable: %v", err)
	}
	x.ExeIno, x.ExeDev = st.Ino, unix.Major(st.Dev)<<20|unix.Minor(st.Dev)
	x.ExeSize, x.ExeMtime, x.ExeCtime = uint64(st.Size), uint64(st.Mtim.Nano()), uint64(st.Ctim.Nano())
	forkRaw := alignedCopy(make([]byte, unsafe.Sizeof(probes.VigilRecFork{})))
	f := view[probes.VigilRecFork](forkRaw)
	f.H = x.H
	f.H.Type, f.H.Sys = uint16(probes.VigilRecTypeVIGIL_REC_FORK), uint16(probes.VigilRecSysVIGIL_SYS_CLONE)
	f.H.Size, f.H.Fixed, f.H.Nstr, f.H.StrLen = uint32(len(forkRaw)), uint16(len(forkRaw)), 0, [6]uint16{}
	exit := view[probes.VigilRecExit](exitRaw)

	procs, err := proctable.New(proctable.Config{SweepInterval: -1}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	m, err := newMetrics(prometheus.NewRegistry(), newKernelCounters(nil), func() float64 { return 0 })
	if err != nil {
		b.Fatal(err)
	}
	c := &Collector{procs: procs, m: m, dec: Decoder{BootTime: testBoot, Processes: procs}, procRoot: "/proc", hashAtExecMax: 64 << 20}
	c.cgroups = newCgroupPaths("/proc", "/sys/fs/cgroup", v1Controller{}, func() {})
	c.cgroups.byID[x.H.CgroupId] = "/bench"
	self := uint32(os.Getpid())
	// The storm's parent is a process the table read from /proc (its user
	// name resolved), as a sensor that started before it has it.
	if procs.Lookup(self) == nil {
		b.Fatal("this process is not in /proc")
	}
	f.H.Pid, f.H.Tid, f.StartTime = self, self, 1e9
	x.Ppid = self

	var enc JSONEncoder
	var out []byte
	var r Record
	one := func(raw []byte) {
		if err := c.dec.Decode(raw, &r); err != nil {
			b.Fatal(err)
		}
		c.attribute(&r)
		out = append(enc.AppendEvent(out[:0], r.Event), '\n')
	}
	start := uint64(2e9)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		pid := 100_000 + uint32(i%30_000)
		start += 1e6
		f.ChildPid, f.ChildTid, f.NsPid = pid, pid, pid
		x.H.Pid, x.H.Tid, x.NsPid, x.StartTime = pid, pid, pid, start
		exit.H.Pid, exit.H.Tid, exit.StartTime = pid, pid, start
		one(forkRaw)
		one(execRaw)
		if r.Event.Process.ExeSha256 == "" {
			b.Fatal("the exec has no digest")
		}
		one(exitRaw)
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "us/exec")
}

func TestFdPathArgs(t *testing.T) {
	for _, c := range []struct {
		name  string
		dirfd int32
		flags uint32
	}{
		{"/dev/fd/3", 3, unix.AT_EMPTY_PATH},
		{"/dev/fd/17/bin/true", 17, 0},
		{"/dev/fd/x", -1, 0},
		{"/usr/bin/true", -1, 0},
	} {
		dirfd, flags := fdPathArgs(c.name)
		if dirfd != c.dirfd || flags != c.flags {
			t.Errorf("fdPathArgs(%q) = %d, %#x, want %d, %#x", c.name, dirfd, flags, c.dirfd, c.flags)
		}
	}
}
