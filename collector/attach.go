package collector

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/collector/probes"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// probeGroup is the set of syscall tracepoints behind one event kind. Each
// syscall X has the program exit_X attached to syscalls/sys_exit_X and, in
// the compat build, enter_X attached to syscalls/sys_enter_X.
type probeGroup struct {
	kind     string
	syscalls []string
}

// probeGroups lists every event kind and the syscalls it needs (read-only).
// exec, fork and exit are produced by the core probes, attached always.
var probeGroups = []probeGroup{
	{"exec", nil},
	{"fork", nil},
	{"exit", nil},
	{"set_id", []string{"setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid"}},
	{"capset", []string{"capset"}},
	{"ptrace", []string{"ptrace"}},
	{"memfd_create", []string{"memfd_create"}},
	{"module_load", []string{"init_module", "finit_module"}},
	{"mount", []string{"mount"}},
	{"namespace", []string{"unshare", "setns"}},
	{"bpf", []string{"bpf"}},
	{"userfaultfd", []string{"userfaultfd"}},
	{"process_vm_write", []string{"process_vm_writev"}},
	{"io_uring_setup", []string{"io_uring_setup"}},
	{"mprotect", []string{"mprotect"}},
	{"open", []string{"open", "openat", "openat2", "creat"}},
	{"unlink", []string{"unlink", "unlinkat", "rmdir"}},
	{"rename", []string{"rename", "renameat", "renameat2"}},
	{"chmod", []string{"chmod", "fchmod", "fchmodat"}},
	{"chown", []string{"chown", "lchown", "fchown", "fchownat"}},
	{"link", []string{"link", "linkat", "symlink", "symlinkat"}},
	{"truncate", []string{"truncate", "ftruncate"}},
	{"connect", []string{"connect"}},
	{"accept", []string{"accept", "accept4"}},
	{"bind", []string{"bind"}},
	{"listen", []string{"listen"}},
	{"socket", []string{"socket"}},
	{"dup", []string{"dup", "dup2", "dup3"}},
	{"dns_query", []string{"sendto", "sendmsg", "sendmmsg", "write", "writev"}},
	{"dns_answer", []string{"recvfrom", "recvmsg", "read"}},
}

// attachment is what one attached probe holds.
type attachment struct {
	name  string
	links []link.Link
	// release, when set, gives back a share of a probe other attachments
	// use too (the raw_syscalls fallback).
	release func()
}

func (a *attachment) close() {
	for _, l := range a.links {
		l.Close()
	}
	a.links = nil
	if a.release != nil {
		a.release()
		a.release = nil
	}
}

// errMissingTracepoint reads "does not exist on this kernel" in messages.
var errMissingTracepoint = errors.New("does not exist on this kernel")

// rawSyscalls are the syscalls the raw_syscalls fallback can stand in for,
// with their numbers on this architecture and their enum rec_sys value.
var rawSyscalls = map[string]struct{ nr, sys uint32 }{
	"init_module":  {unix.SYS_INIT_MODULE, uint32(probes.VigilRecSysVIGIL_SYS_INIT_MODULE)},
	"finit_module": {unix.SYS_FINIT_MODULE, uint32(probes.VigilRecSysVIGIL_SYS_FINIT_MODULE)},
}

// rawFallback captures syscalls whose own tracepoints the kernel lacks
// through raw_syscalls/sys_enter and sys_exit. Those run for every syscall,
// so they are attached only while at least one fallback is in use, and the
// raw_fallback map filters by syscall number in the kernel.
type rawFallback struct {
	progs map[string]*ebpf.Program
	table *ebpf.Map

	mu    sync.Mutex
	users int
	links []link.Link
}

// attach starts capturing sc through raw_syscalls.
func (r *rawFallback) attach(sc string) (*attachment, error) {
	s, ok := rawSyscalls[sc]
	if r == nil || r.table == nil || !ok {
		return nil, fmt.Errorf("no raw_syscalls fallback for %s", sc)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.users == 0 {
		for _, dir := range []string{"enter", "exit"} {
			prog := r.progs["raw_"+dir]
			if prog == nil && dir == "enter" {
				continue // the direct build reads arguments at exit
			}
			if prog == nil {
				r.closeLinksLocked()
				return nil, fmt.Errorf("program raw_%s missing from the object", dir)
			}
			l, err := link.Tracepoint("raw_syscalls", "sys_"+dir, prog, nil)
			if err != nil {
				r.closeLinksLocked()
				return nil, fmt.Errorf("attach raw_syscalls/sys_%s: %w", dir, err)
			}
			r.links = append(r.links, l)
		}
	}
	if err := r.table.Put(s.nr, s.sys); err != nil {
		if r.users == 0 {
			r.closeLinksLocked()
		}
		return nil, fmt.Errorf("raw_syscalls fallback for %s: %w", sc, err)
	}
	r.users++
	return &attachment{name: sc + " (raw_syscalls)", release: func() { r.release(s.nr) }}, nil
}

func (r *rawFallback) release(nr uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_ = r.table.Put(nr, uint32(0))
	r.users--
	if r.users == 0 {
		r.closeLinksLocked()
	}
}

func (r *rawFallback) closeLinksLocked() {
	for _, l := range r.links {
		l.Close()
	}
	r.links = nil
}

// closeAll detaches probes concurrently: each detach waits for an RCU grace
// period in the kernel, so one after the other a hundred probes take
// seconds to stop.
func closeAll(as []*attachment) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, a := range as {
		wg.Go(func() {
			sem <- struct{}{}
			a.close()
			<-sem
		})
	}
	wg.Wait()
}

// attachCore attaches the process lifecycle probes every configuration
// needs. Unlike syscall probes, a failure here is fatal.
func attachCore(progs map[string]*ebpf.Program) ([]*attachment, error) {
	var out []*attachment
	fail := func(err error) ([]*attachment, error) {
		for _, a := range out {
			a.close()
		}
		return nil, err
	}
	for _, p := range []struct{ name, prog string }{
		{"sched_process_exec", "handle_exec"},
		{"sched_process_fork", "handle_fork"},
		{"sched_process_exit", "handle_exit"},
	} {
		prog := progs[p.prog]
		if prog == nil {
			return fail(fmt.Errorf("program %s missing from the object", p.prog))
		}
		l, err := link.AttachTracing(link.TracingOptions{Program: prog})
		if err != nil {
			return fail(fmt.Errorf("attach %s: %w", p.name, err))
		}
		out = append(out, &attachment{name: p.name, links: []link.Link{l}})
	}
	// The compat build keeps execveat's arguments from sys_enter (the direct
	// build reads them from the exec itself); without them execs are still
	// reported, so a missing tracepoint is not fatal.
	if progs["exit_execveat"] != nil {
		if a, err := attachSyscall(progs, "execveat"); err == nil {
			out = append(out, a)
		}
	}
	return out, nil
}

// attachURing attaches the io_uring probes, which report opens, connects,
// unlinks and renames submitted through an io_uring (they pass through no
// system call): uring_complete reads each at completion, uring_submit keeps
// the path names the kernel frees before then. Kernels before 6.0 give the
// tracepoints other arguments, and some build io_uring out: the probes are
// then skipped and reported.
func attachURing(progs map[string]*ebpf.Program) ([]*attachment, []*vigilv1.SkippedProbe) {
	var out []*attachment
	var skipped []*vigilv1.SkippedProbe
	for _, p := range uringProbes {
		prog := progs[p.prog]
		if prog == nil {
			// prepareSpec left it out; say why.
			reason := "program " + p.prog + " missing from the object"
			if err := uringTracepointShape(p.tracepoint); err != nil {
				reason = err.Error()
			}
			skipped = append(skipped, &vigilv1.SkippedProbe{Name: p.tracepoint, Reason: reason})
			continue
		}
		l, err := link.AttachTracing(link.TracingOptions{Program: prog})
		if err != nil {
			skipped = append(skipped, &vigilv1.SkippedProbe{Name: p.tracepoint, Reason: fmt.Sprintf("attach io_uring/%s: %v", p.tracepoint, err)})
			continue
		}
		out = append(out, &attachment{name: p.tracepoint, links: []link.Link{l}})
	}
	return out, skipped
}

// uringProbes are the io_uring tracepoints and the programs reading them.
var uringProbes = []struct{ tracepoint, prog string }{
	{"io_uring_complete", "uring_complete"},
	{"io_uring_submit_req", "uring_submit"},
}

// uringTracepointShape checks that an io_uring tracepoint passes what its
// probe reads: io_uring_complete (ctx, req, cqe) and io_uring_submit_req
// (req), as they have since Linux 6.0; before, they passed other values.
func uringTracepointShape(tracepoint string) error {
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		return fmt.Errorf("no kernel BTF to check the %s tracepoint against: %w", tracepoint, err)
	}
	var td *btf.Typedef
	if err := kernel.TypeByName("btf_trace_"+tracepoint, &td); err != nil {
		return fmt.Errorf("tracepoint io_uring/%s %w", tracepoint, errMissingTracepoint)
	}
	// The first parameter is the tracepoint's data pointer.
	want := map[string][]string{"io_uring_complete": {"", "io_ring_ctx", "", "io_uring_cqe"}, "io_uring_submit_req": {"", "io_kiocb"}}[tracepoint]
	ptr, ok := td.Type.(*btf.Pointer)
	if !ok {
		return fmt.Errorf("%s: unexpected BTF", tracepoint)
	}
	otherShape := fmt.Errorf("%s has another shape on this kernel (before Linux 6.0)", tracepoint)
	proto, ok := ptr.Target.(*btf.FuncProto)
	if !ok || len(proto.Params) != len(want) {
		return otherShape
	}
	for i, name := range want {
		if name == "" {
			continue
		}
		p, ok := btf.UnderlyingType(proto.Params[i].Type).(*btf.Pointer)
		if !ok {
			return otherShape
		}
		if s, ok := btf.UnderlyingType(p.Target).(*btf.Struct); !ok || s.Name != name {
			return otherShape
		}
	}
	return nil
}

// attachSyscall attaches exit_X and, when the object has one, enter_X (the
// direct build reads arguments at exit and has none); all or nothing.
func attachSyscall(progs map[string]*ebpf.Program, sc string) (*attachment, error) {
	a := &attachment{name: sc}
	for _, dir := range []string{"enter", "exit"} {
		prog := progs[dir+"_"+sc]
		if prog == nil && dir == "enter" {
			continue
		}
		if prog == nil {
			a.close()
			return nil, fmt.Errorf("program %s_%s missing from the object", dir, sc)
		}
		l, err := link.Tracepoint("syscalls", "sys_"+dir+"_"+sc, prog, nil)
		if err != nil {
			a.close()
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("tracepoint syscalls/sys_%s_%s %w", dir, sc, errMissingTracepoint)
			}
			return nil, fmt.Errorf("attach syscalls/sys_%s_%s: %w", dir, sc, err)
		}
		a.links = append(a.links, l)
	}
	return a, nil
}

// attachGroup attaches the probes of one event kind; a probe that fails is
// skipped and reported, the others stay. A syscall whose tracepoints this
// kernel lacks is captured through raw (when it may be) and named so.
func attachGroup(progs map[string]*ebpf.Program, raw *rawFallback, g probeGroup) ([]*attachment, []*vigilv1.SkippedProbe) {
	var ok []*attachment
	var skipped []*vigilv1.SkippedProbe
	for _, sc := range g.syscalls {
		a, err := attachSyscall(progs, sc)
		if errors.Is(err, errMissingTracepoint) {
			if fa, ferr := raw.attach(sc); ferr == nil {
				ok = append(ok, fa)
				continue
			}
		}
		if err != nil {
			skipped = append(skipped, &vigilv1.SkippedProbe{Name: sc, Reason: err.Error()})
			continue
		}
		ok = append(ok, a)
	}
	return ok, skipped
}
