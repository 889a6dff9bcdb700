package detect

import (
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// t0 is the time synthetic events start at.
var t0 = time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)

// mkProc builds a process: comm, exe path, argv.
func mkProc(comm, exe string, args ...string) *vigilv1.Process {
	if len(args) == 0 {
		args = []string{exe}
	}
	return &vigilv1.Process{
		ExecId: "boot-" + comm + "-1", Pid: 100, Ppid: 1, Comm: comm, ExePath: exe, Args: args,
		Cwd: "/", Uid: 0, UserName: "root", Loginuid: loginUIDUnset,
		StartTime: timestamppb.New(t0.Add(-time.Hour)),
	}
}

// withParents adds ancestors, nearest first, named by comm.
func withParents(p *vigilv1.Process, comms ...string) *vigilv1.Process {
	for i, c := range comms {
		p.Lineage = append(p.Lineage, &vigilv1.Ancestor{
			ExecId: "boot-" + c + "-anc", Pid: uint32(90 - i), Comm: c, ExePath: "/usr/bin/" + c, Args: []string{c},
		})
	}
	if len(p.Lineage) > 0 {
		p.ParentExecId = p.Lineage[0].ExecId
		p.Ppid = p.Lineage[0].Pid
	}
	return p
}

type evOpt func(*vigilv1.Event)

func at(d time.Duration) evOpt {
	return func(e *vigilv1.Event) { e.Time = timestamppb.New(t0.Add(d)) }
}

func inContainer(image string) evOpt {
	return func(e *vigilv1.Event) {
		e.Container = &vigilv1.Container{Id: "0123456789abcdef0123", Name: "app", Image: image}
	}
}

func privileged() evOpt {
	return func(e *vigilv1.Event) { e.Container.Privileged = true }
}

func result(r int64, errno string) evOpt {
	return func(e *vigilv1.Event) { e.Result, e.Errno = r, errno }
}

func mk(p *vigilv1.Process, syscall string, opts ...evOpt) *vigilv1.Event {
	e := &vigilv1.Event{Time: timestamppb.New(t0), Process: p, Syscall: syscall}
	for _, o := range opts {
		o(e)
	}
	return e
}

func execEv(p *vigilv1.Process, opts ...evOpt) *vigilv1.Event {
	e := mk(p, "execve", opts...)
	e.Kind = &vigilv1.Event_Exec{Exec: &vigilv1.Exec{Filename: p.ExePath}}
	return e
}

func openEv(p *vigilv1.Process, path string, flags uint32, opts ...evOpt) *vigilv1.Event {
	e := mk(p, "openat", append([]evOpt{result(3, "")}, opts...)...)
	fd := int32(e.Result)
	if e.Result < 0 {
		fd = -1
	}
	e.Kind = &vigilv1.Event_Open{Open: &vigilv1.FileOpen{Path: path, Flags: flags, Fd: fd}}
	return e
}

func connectEv(p *vigilv1.Process, ip string, port uint32, opts ...evOpt) *vigilv1.Event {
	e := mk(p, "connect", opts...)
	fam := "inet"
	if len(ip) > 0 && (ip[0] == ':' || containsColon(ip)) {
		fam = "inet6"
	}
	e.Kind = &vigilv1.Event_Connect{Connect: &vigilv1.Connect{
		Fd:       4,
		Remote:   &vigilv1.SocketAddress{Family: fam, Ip: ip, Port: port},
		Local:    &vigilv1.SocketAddress{Family: fam, Ip: "172.17.0.2", Port: 40000},
		Protocol: "tcp",
	}}
	return e
}

func containsColon(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return true
		}
	}
	return false
}

func dnsEv(p *vigilv1.Process, name string, opts ...evOpt) *vigilv1.Event {
	e := mk(p, "sendto", opts...)
	e.Kind = &vigilv1.Event_DnsQuery{DnsQuery: &vigilv1.DnsQuery{Name: name, Type: "A", Syscall: "sendto",
		Server: &vigilv1.SocketAddress{Family: "inet", Ip: "10.0.0.2", Port: 53}}}
	return e
}

func dnsAnswerEv(p *vigilv1.Process, name string, addrs ...string) *vigilv1.Event {
	e := mk(p, "recvfrom")
	e.Kind = &vigilv1.Event_DnsAnswer{DnsAnswer: &vigilv1.DnsAnswer{Name: name, Type: "A", Addresses: addrs, Rcode: "NOERROR"}}
	return e
}

// loadYAML loads rules from YAML text as the only built-in file and fails
// the test on errors (warnings are returned).
func loadYAML(t testing.TB, text string) (*RuleSet, []LoadError) {
	t.Helper()
	rs, errs := LoadRules(fstest.MapFS{"rules.yaml": {Data: []byte(text)}}, "")
	if HasErrors(errs) {
		t.Fatalf("load: %v", errs)
	}
	return rs, errs
}

// engineFor returns an engine running the rules in text.
func engineFor(t testing.TB, text string) *Engine {
	t.Helper()
	rs, _ := loadYAML(t, text)
	e := NewEngine(EngineConfig{}, nil, nil)
	e.SetRules(rs)
	return e
}

// fired runs events through e and returns the alerts.
func fired(e *Engine, evs ...*vigilv1.Event) []*Alert {
	var out []*Alert
	for _, ev := range evs {
		e.Process(ev, func(a *Alert) { out = append(out, a) })
	}
	return out
}

func ruleNames(as []*Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Rule.Name)
	}
	return out
}

func writeFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mapFS(name, text string) fstest.MapFS {
	return fstest.MapFS{name: {Data: []byte(text)}}
}
