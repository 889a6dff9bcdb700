package detect

import (
	"fmt"
	"net/netip"
	"path"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/net/publicsuffix"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// FieldInfo documents one field rules can use. Fields() is the one table the
// field documentation (`backend rules fields`, docs/rules.md) is generated
// from.
type FieldInfo struct {
	// Name is the field as written in conditions ("proc.aname").
	Name string
	// Type is the value type: string, int64, bool, ipaddr, ipnet, flags.
	Type string
	// Arg says what goes in brackets: "" (none), "index" (a number, optional
	// when ArgOptional), or "key" (a name).
	Arg string
	// ArgOptional is true when the field may be used with or without [arg].
	ArgOptional bool
	// Description says what the field means on Vigil's events.
	Description string
}

type fieldType int

const (
	ftString fieldType = iota
	ftInt
	ftBool
	ftIP
	ftNet
	ftFlags
)

func (t fieldType) String() string {
	return [...]string{"string", "int64", "bool", "ipaddr", "ipnet", "flags"}[t]
}

// fieldImpl is a compiled field: accessors that read one value from the
// evaluation context without reflection. str is always set; num for ftInt
// and ftBool; ip for ftIP and ftNet; multi for fields with several values
// (any value matching makes the check true).
type fieldImpl struct {
	name  string
	typ   fieldType
	str   func(c *evalCtx) (string, bool)
	num   func(c *evalCtx) (int64, bool)
	ip    func(c *evalCtx) (netip.Addr, bool)
	multi func(c *evalCtx) []string
	// needs lists extra event kinds (oneof names) a rule using the field
	// depends on, for the collection policy.
	needs []string
	// unsupported marks a placeholder for a field Vigil does not know.
	unsupported bool
}

type argKind int

const (
	argNone argKind = iota
	argIndex
	argIndexOptional
	argKey
	argKeyOptional
)

type fieldDef struct {
	name  string
	typ   fieldType
	arg   argKind
	desc  string
	build func(arg string, hasArg bool) (fieldImpl, error)
}

// Fields lists every field rules can use, sorted by name.
func Fields() []FieldInfo {
	defs := fieldDefs()
	out := make([]FieldInfo, 0, len(defs))
	for _, d := range defs {
		fi := FieldInfo{Name: d.name, Type: d.typ.String(), Description: d.desc}
		switch d.arg {
		case argIndex:
			fi.Arg = "index"
		case argIndexOptional:
			fi.Arg, fi.ArgOptional = "index", true
		case argKey:
			fi.Arg = "key"
		case argKeyOptional:
			fi.Arg, fi.ArgOptional = "key", true
		}
		out = append(out, fi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// fieldTable indexes the definitions by name; built once per RuleSet load
// (not a package global, so nothing is shared mutable state).
func fieldTable() map[string]*fieldDef {
	defs := fieldDefs()
	m := make(map[string]*fieldDef, len(defs))
	for i := range defs {
		m[defs[i].name] = &defs[i]
	}
	return m
}

// lookupField compiles a field reference, or says why it cannot.
func lookupField(table map[string]*fieldDef, f fieldRef) (fieldImpl, error) {
	name := f.name
	arg, hasArg := f.arg, f.hasArg
	d, ok := table[name]
	if !ok && strings.HasPrefix(name, "evt.arg.") {
		// evt.arg.NAME is written as a dotted name; fold it into the
		// argument so one definition serves every argument name.
		d, ok = table["evt.arg"]
		arg, hasArg = strings.TrimPrefix(name, "evt.arg."), true
	}
	if !ok && strings.HasPrefix(name, "evt.rawarg.") {
		d, ok = table["evt.rawarg"]
		arg, hasArg = strings.TrimPrefix(name, "evt.rawarg."), true
	}
	if !ok {
		return fieldImpl{}, &unsupportedField{name: f.name}
	}
	switch d.arg {
	case argNone:
		if hasArg {
			return fieldImpl{}, fmt.Errorf("field %s takes no argument", name)
		}
	case argIndex, argKey:
		if !hasArg {
			return fieldImpl{}, fmt.Errorf("field %s needs an argument", name)
		}
	}
	if d.arg == argIndex || (d.arg == argIndexOptional && hasArg) {
		if _, err := strconv.Atoi(arg); err != nil {
			return fieldImpl{}, fmt.Errorf("field %s needs a numeric index, not %q", name, arg)
		}
	}
	impl, err := d.build(arg, hasArg)
	if err != nil {
		return fieldImpl{}, err
	}
	impl.name = f.String()
	if impl.typ == ftString {
		// Builders only set typ when it differs from the definition's
		// (evt.arg.flags is a flags field).
		impl.typ = d.typ
	}
	if impl.str == nil {
		impl.str = strFromOthers(impl)
	}
	return impl, nil
}

// unsupportedField marks a field Vigil does not know: the rule is disabled
// and the field reported by name, the file still loads.
type unsupportedField struct{ name string }

func (u *unsupportedField) Error() string { return "unsupported field " + u.name }

func strFromOthers(impl fieldImpl) func(c *evalCtx) (string, bool) {
	switch {
	case impl.typ == ftBool && impl.num != nil:
		num := impl.num
		return func(c *evalCtx) (string, bool) {
			v, ok := num(c)
			if !ok {
				return "", false
			}
			if v != 0 {
				return "true", true
			}
			return "false", true
		}
	case impl.num != nil:
		num := impl.num
		return func(c *evalCtx) (string, bool) {
			v, ok := num(c)
			if !ok {
				return "", false
			}
			return strconv.FormatInt(v, 10), true
		}
	case impl.ip != nil:
		ip := impl.ip
		return func(c *evalCtx) (string, bool) {
			v, ok := ip(c)
			if !ok {
				return "", false
			}
			return v.String(), true
		}
	case impl.multi != nil:
		multi := impl.multi
		return func(c *evalCtx) (string, bool) {
			vs := multi(c)
			if len(vs) == 0 {
				return "", false
			}
			return strings.Join(vs, ","), true
		}
	}
	return func(*evalCtx) (string, bool) { return "", false }
}

// Helpers to declare fields tersely.

func sfield(fn func(c *evalCtx) (string, bool)) func(string, bool) (fieldImpl, error) {
	return func(string, bool) (fieldImpl, error) { return fieldImpl{str: fn}, nil }
}

func nfield(fn func(c *evalCtx) (int64, bool)) func(string, bool) (fieldImpl, error) {
	return func(string, bool) (fieldImpl, error) { return fieldImpl{num: fn}, nil }
}

func bfield(fn func(c *evalCtx) (bool, bool)) func(string, bool) (fieldImpl, error) {
	return func(string, bool) (fieldImpl, error) {
		return fieldImpl{num: func(c *evalCtx) (int64, bool) {
			v, ok := fn(c)
			if v {
				return 1, ok
			}
			return 0, ok
		}}, nil
	}
}

func ipfield(fn func(c *evalCtx) (netip.Addr, bool)) func(string, bool) (fieldImpl, error) {
	return func(string, bool) (fieldImpl, error) { return fieldImpl{ip: fn}, nil }
}

func nonEmpty(s string) (string, bool) { return s, s != "" }

func proc(c *evalCtx) *vigilv1.Process { return c.ev.GetProcess() }

// ancestor returns lineage entry n (1 = parent).
func ancestor(c *evalCtx, n int) *vigilv1.Ancestor {
	p := proc(c)
	if p == nil || n < 1 || n > len(p.Lineage) {
		return nil
	}
	return p.Lineage[n-1]
}

func procName(p *vigilv1.Process) string {
	if p == nil {
		return ""
	}
	if p.Comm != "" {
		return p.Comm
	}
	return path.Base(p.ExePath)
}

func ancestorName(a *vigilv1.Ancestor) string {
	if a == nil {
		return ""
	}
	if a.Comm != "" {
		return a.Comm
	}
	if a.ExePath != "" {
		return path.Base(a.ExePath)
	}
	return ""
}

func argsTail(args []string) []string {
	if len(args) > 1 {
		return args[1:]
	}
	return nil
}

func tsNanos(t interface {
	GetSeconds() int64
	GetNanos() int32
}) int64 {
	return t.GetSeconds()*1e9 + int64(t.GetNanos())
}

func (c *evalCtx) evTime() int64 {
	if t := c.ev.GetTime(); t != nil {
		return tsNanos(t)
	}
	return 0
}

// sock describes the socket an event is about, with Falco's client/server
// roles.
type sock struct {
	local, remote *vigilv1.SocketAddress
	proto         string
	fd            int32
	hasFD         bool
	serverLocal   bool // accept/bind/listen: we are the server
	connected     bool
	nameChanged   bool
}

func sockOf(ev *vigilv1.Event) (sock, bool) {
	switch k := ev.Kind.(type) {
	case *vigilv1.Event_Connect:
		c := k.Connect
		return sock{local: c.Local, remote: c.Remote, proto: c.Protocol, fd: c.Fd, hasFD: true, connected: ev.Result >= 0}, true
	case *vigilv1.Event_Accept:
		a := k.Accept
		return sock{local: a.Local, remote: a.Remote, proto: a.Protocol, fd: a.NewFd, hasFD: true, serverLocal: true, connected: true}, true
	case *vigilv1.Event_Bind:
		b := k.Bind
		return sock{local: b.Local, proto: b.Protocol, fd: b.Fd, hasFD: true, serverLocal: true}, true
	case *vigilv1.Event_Listen:
		l := k.Listen
		return sock{local: l.Local, proto: l.Protocol, fd: l.Fd, hasFD: true, serverLocal: true}, true
	case *vigilv1.Event_DnsQuery:
		q := k.DnsQuery
		sc := q.Syscall
		if sc == "" {
			sc = ev.Syscall
		}
		unconnected := sc == "sendto" || sc == "sendmsg" || sc == "sendmmsg"
		proto := q.Protocol
		if proto == "" {
			proto = "udp"
		}
		return sock{remote: q.Server, proto: proto, connected: !unconnected, nameChanged: unconnected}, true
	case *vigilv1.Event_DnsAnswer:
		return sock{remote: k.DnsAnswer.Server, proto: "udp"}, true
	case *vigilv1.Event_Dup:
		d := k.Dup
		if d.OldFdKind != "socket" {
			return sock{}, false
		}
		return sock{remote: d.Remote, fd: d.OldFd, hasFD: true, connected: d.Remote != nil, proto: "tcp"}, true
	}
	return sock{}, false
}

func (s sock) server() *vigilv1.SocketAddress {
	if s.serverLocal {
		return s.local
	}
	return s.remote
}

func (s sock) client() *vigilv1.SocketAddress {
	if s.serverLocal {
		return s.remote
	}
	return s.local
}

func (s sock) family() string {
	for _, a := range []*vigilv1.SocketAddress{s.remote, s.local} {
		if a != nil && a.Family != "" {
			return a.Family
		}
	}
	return ""
}

func addrIP(a *vigilv1.SocketAddress) (netip.Addr, bool) {
	if a == nil || a.Ip == "" {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(a.Ip)
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

func addrPort(a *vigilv1.SocketAddress) (int64, bool) {
	if a == nil || (a.Ip == "" && a.Port == 0) || a.Family == "unix" {
		return 0, false
	}
	return int64(a.Port), true
}

func sockIP(pick func(sock) *vigilv1.SocketAddress) func(c *evalCtx) (netip.Addr, bool) {
	return func(c *evalCtx) (netip.Addr, bool) {
		s, ok := sockOf(c.ev)
		if !ok {
			return netip.Addr{}, false
		}
		return addrIP(pick(s))
	}
}

func sockPort(pick func(sock) *vigilv1.SocketAddress) func(c *evalCtx) (int64, bool) {
	return func(c *evalCtx) (int64, bool) {
		s, ok := sockOf(c.ev)
		if !ok {
			return 0, false
		}
		return addrPort(pick(s))
	}
}

func pickServer(s sock) *vigilv1.SocketAddress { return s.server() }
func pickClient(s sock) *vigilv1.SocketAddress { return s.client() }
func pickLocal(s sock) *vigilv1.SocketAddress  { return s.local }
func pickRemote(s sock) *vigilv1.SocketAddress { return s.remote }

// bothIPs serves fd.ip / fd.net: either end of the connection.
func bothIPs(c *evalCtx) []string {
	s, ok := sockOf(c.ev)
	if !ok {
		return nil
	}
	out := c.scratch[:0]
	for _, a := range []*vigilv1.SocketAddress{s.client(), s.server()} {
		if a != nil && a.Ip != "" {
			out = append(out, a.Ip)
		}
	}
	c.scratch = out
	return out
}

func bothPorts(c *evalCtx) []string {
	s, ok := sockOf(c.ev)
	if !ok {
		return nil
	}
	out := c.scratch[:0]
	for _, a := range []*vigilv1.SocketAddress{s.client(), s.server()} {
		if p, ok := addrPort(a); ok {
			out = append(out, strconv.FormatInt(p, 10))
		}
	}
	c.scratch = out
	return out
}

// ipName serves fd.sip.name and fd.rip.name from the engine's table of DNS
// answers.
func ipName(pick func(sock) *vigilv1.SocketAddress) func(string, bool) (fieldImpl, error) {
	ipOf := sockIP(pick)
	return func(string, bool) (fieldImpl, error) {
		return fieldImpl{needs: []string{"dns_answer"}, str: func(c *evalCtx) (string, bool) {
			ip, ok := ipOf(c)
			if !ok || c.names == nil {
				return "", false
			}
			return c.names.nameOf(c.ev, ip)
		}}, nil
	}
}

// filePath is the path an event is about, for fd.name on file events.
func filePath(ev *vigilv1.Event) (string, bool) {
	switch k := ev.Kind.(type) {
	case *vigilv1.Event_Open:
		return nonEmpty(k.Open.Path)
	case *vigilv1.Event_Unlink:
		return nonEmpty(k.Unlink.Path)
	case *vigilv1.Event_Rename:
		return nonEmpty(k.Rename.NewPath)
	case *vigilv1.Event_Chmod:
		return nonEmpty(k.Chmod.Path)
	case *vigilv1.Event_Chown:
		return nonEmpty(k.Chown.Path)
	case *vigilv1.Event_Link:
		return nonEmpty(k.Link.LinkPath)
	case *vigilv1.Event_Truncate:
		return nonEmpty(k.Truncate.Path)
	case *vigilv1.Event_ModuleLoad:
		return nonEmpty(k.ModuleLoad.Path)
	case *vigilv1.Event_MemfdCreate:
		return "memfd:" + k.MemfdCreate.Name, true
	}
	return "", false
}

func fdName(c *evalCtx) (string, bool) {
	if c.fdNameDone {
		return c.fdName, c.fdNameOK
	}
	c.fdNameDone = true
	if p, ok := filePath(c.ev); ok {
		c.fdName, c.fdNameOK = p, true
		return p, true
	}
	s, ok := sockOf(c.ev)
	if !ok {
		return "", false
	}
	if s.family() == "unix" {
		for _, a := range []*vigilv1.SocketAddress{s.remote, s.local} {
			if a != nil && a.Path != "" {
				c.fdName, c.fdNameOK = a.Path, true
				return a.Path, true
			}
		}
		return "", false
	}
	cl, sv := s.client(), s.server()
	endpoint := func(a *vigilv1.SocketAddress) string {
		if a == nil || a.Ip == "" {
			return ""
		}
		return a.Ip + ":" + strconv.FormatUint(uint64(a.Port), 10)
	}
	switch {
	case cl != nil && sv != nil && cl.Ip != "" && sv.Ip != "":
		c.fdName = endpoint(cl) + "->" + endpoint(sv)
	case sv != nil && sv.Ip != "":
		c.fdName = endpoint(sv)
	case cl != nil && cl.Ip != "":
		c.fdName = endpoint(cl)
	default:
		return "", false
	}
	c.fdNameOK = true
	return c.fdName, true
}

func fdTypeChar(c *evalCtx) (string, bool) {
	t, ok := fdType(c)
	if !ok {
		return "", false
	}
	switch t {
	case "file":
		return "f", true
	case "ipv4":
		return "4", true
	case "ipv6":
		return "6", true
	case "unix":
		return "u", true
	case "memfd":
		return "m", true
	}
	return "o", true
}

func fdType(c *evalCtx) (string, bool) {
	switch c.ev.Kind.(type) {
	case *vigilv1.Event_Open, *vigilv1.Event_Truncate, *vigilv1.Event_Chmod, *vigilv1.Event_Chown:
		return "file", true
	case *vigilv1.Event_MemfdCreate:
		return "memfd", true
	}
	if d := c.ev.GetDup(); d != nil && d.OldFdKind != "socket" {
		switch d.OldFdKind {
		case "file":
			return "file", true
		case "pipe":
			return "pipe", true
		case "":
			return "", false
		}
		return d.OldFdKind, true
	}
	s, ok := sockOf(c.ev)
	if !ok {
		return "", false
	}
	switch s.family() {
	case "inet":
		return "ipv4", true
	case "inet6":
		return "ipv6", true
	case "unix":
		return "unix", true
	}
	return "", false
}

func fdNum(c *evalCtx) (int64, bool) {
	if o := c.ev.GetOpen(); o != nil {
		if c.ev.Result < 0 {
			return -1, true
		}
		return int64(o.Fd), true
	}
	s, ok := sockOf(c.ev)
	if !ok || !s.hasFD {
		return 0, false
	}
	return int64(s.fd), true
}

// cmdline is Falco's proc.cmdline: the process name, then its arguments.
func cmdline(name string, args []string) string {
	n := len(name)
	for _, a := range args {
		n += 1 + len(a)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(name)
	for _, a := range args {
		b.WriteByte(' ')
		b.WriteString(a)
	}
	return b.String()
}

func procCmdline(c *evalCtx) (string, bool) {
	p := proc(c)
	if p == nil {
		return "", false
	}
	if !c.cmdlineDone {
		c.cmdlineDone = true
		c.cmdline = cmdline(procName(p), argsTail(p.Args))
	}
	return c.cmdline, true
}

func procArgs(c *evalCtx) (string, bool) {
	p := proc(c)
	if p == nil {
		return "", false
	}
	if !c.argsDone {
		c.argsDone = true
		c.args = strings.Join(argsTail(p.Args), " ")
	}
	return c.args, true
}

func parentCmdline(c *evalCtx) (string, bool) {
	a := ancestor(c, 1)
	if a == nil {
		return "", false
	}
	if !c.pcmdlineDone {
		c.pcmdlineDone = true
		c.pcmdline = cmdline(ancestorName(a), argsTail(a.Args))
	}
	return c.pcmdline, true
}

func indexArg(arg string, hasArg bool, def int) int {
	if !hasArg {
		return def
	}
	n, _ := strconv.Atoi(arg)
	return n
}

// ancestorField serves proc.aname[N] (N=0 is the process itself) and, without
// an index, every ancestor (Falco matches any of them).
func ancestorField(get func(a *vigilv1.Ancestor) string, self func(p *vigilv1.Process) string) func(string, bool) (fieldImpl, error) {
	return func(arg string, hasArg bool) (fieldImpl, error) {
		if !hasArg {
			return fieldImpl{multi: func(c *evalCtx) []string {
				p := proc(c)
				if p == nil {
					return nil
				}
				out := c.scratch[:0]
				for _, a := range p.Lineage {
					if v := get(a); v != "" {
						out = append(out, v)
					}
				}
				c.scratch = out
				return out
			}}, nil
		}
		n := indexArg(arg, true, 1)
		if n == 0 {
			return fieldImpl{str: func(c *evalCtx) (string, bool) { return nonEmpty(self(proc(c))) }}, nil
		}
		return fieldImpl{str: func(c *evalCtx) (string, bool) {
			a := ancestor(c, n)
			if a == nil {
				return "", false
			}
			return nonEmpty(get(a))
		}}, nil
	}
}

func ancestorPid(arg string, hasArg bool) (fieldImpl, error) {
	n := indexArg(arg, hasArg, 1)
	if !hasArg {
		return fieldImpl{multi: func(c *evalCtx) []string {
			p := proc(c)
			if p == nil {
				return nil
			}
			out := c.scratch[:0]
			for _, a := range p.Lineage {
				out = append(out, strconv.FormatUint(uint64(a.Pid), 10))
			}
			c.scratch = out
			return out
		}}, nil
	}
	return fieldImpl{num: func(c *evalCtx) (int64, bool) {
		if n == 0 {
			p := proc(c)
			if p == nil {
				return 0, false
			}
			return int64(p.Pid), true
		}
		a := ancestor(c, n)
		if a == nil {
			return 0, false
		}
		return int64(a.Pid), true
	}}, nil
}

func imageRepoTag(image string) (repo, tag, digest string) {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image, digest = image[:i], image[i+1:]
	}
	slash := strings.LastIndexByte(image, '/')
	if i := strings.LastIndexByte(image, ':'); i > slash {
		return image[:i], image[i+1:], digest
	}
	return image, "", digest
}

func containerOf(c *evalCtx) *vigilv1.Container { return c.ev.GetContainer() }

func hostOf(c *evalCtx) *vigilv1.Host { return c.ev.GetHost() }

func stdioType(i int) func(c *evalCtx) (string, bool) {
	return func(c *evalCtx) (string, bool) {
		x := c.ev.GetExec()
		if x == nil || i >= len(x.Stdio) || x.Stdio[i] == "" {
			return "", false
		}
		if x.Stdio[i] != "socket" {
			return x.Stdio[i], true
		}
		remote := ""
		if i < len(x.StdioRemote) {
			remote = x.StdioRemote[i]
		}
		if remote == "" {
			return "socket", true
		}
		if remote[0] == '/' || remote[0] == '@' {
			return "unix", true
		}
		if ap, err := netip.ParseAddrPort(remote); err == nil {
			if ap.Addr().Unmap().Is4() {
				return "ipv4", true
			}
			return "ipv6", true
		}
		return "socket", true
	}
}

func stdioName(i int) func(c *evalCtx) (string, bool) {
	return func(c *evalCtx) (string, bool) {
		x := c.ev.GetExec()
		if x == nil || i >= len(x.StdioRemote) {
			return "", false
		}
		return nonEmpty(x.StdioRemote[i])
	}
}

func procEnvField(arg string, hasArg bool) (fieldImpl, error) {
	if !hasArg {
		return fieldImpl{str: func(c *evalCtx) (string, bool) {
			x := c.ev.GetExec()
			if x == nil {
				return "", false
			}
			var parts []string
			if x.LdPreload != "" {
				parts = append(parts, "LD_PRELOAD="+x.LdPreload)
			}
			if x.LdLibraryPath != "" {
				parts = append(parts, "LD_LIBRARY_PATH="+x.LdLibraryPath)
			}
			return strings.Join(parts, " "), true
		}}, nil
	}
	var get func(x *vigilv1.Exec) string
	switch arg {
	case "LD_PRELOAD":
		get = (*vigilv1.Exec).GetLdPreload
	case "LD_LIBRARY_PATH":
		get = (*vigilv1.Exec).GetLdLibraryPath
	default:
		return fieldImpl{}, &unsupportedField{name: "proc.env[" + arg + "]"}
	}
	return fieldImpl{str: func(c *evalCtx) (string, bool) {
		x := c.ev.GetExec()
		if x == nil {
			return "", false
		}
		return nonEmpty(get(x))
	}}, nil
}

// sessionLeaderName finds the session leader in the lineage.
func sessionLeaderName(c *evalCtx) (string, bool) {
	p := proc(c)
	if p == nil || p.Sid == 0 {
		return "", false
	}
	if p.Sid == p.Pid {
		return nonEmpty(procName(p))
	}
	for _, a := range p.Lineage {
		if a.Pid == p.Sid {
			return nonEmpty(ancestorName(a))
		}
	}
	return "", false
}

// evtType is evt.type: the syscall, or the canonical syscall of the kind when
// a sensor left Syscall empty.
func evtType(ev *vigilv1.Event) string {
	if ev.Syscall != "" {
		return ev.Syscall
	}
	switch ev.Kind.(type) {
	case *vigilv1.Event_Exec:
		return "execve"
	case *vigilv1.Event_Fork:
		return "clone"
	case *vigilv1.Event_Exit:
		return "procexit"
	case *vigilv1.Event_Open:
		return "openat"
	case *vigilv1.Event_Connect:
		return "connect"
	case *vigilv1.Event_Accept:
		return "accept"
	case *vigilv1.Event_Bind:
		return "bind"
	case *vigilv1.Event_Listen:
		return "listen"
	case *vigilv1.Event_DnsQuery:
		return "sendto"
	case *vigilv1.Event_DnsAnswer:
		return "recvfrom"
	case *vigilv1.Event_Socket:
		return "socket"
	case *vigilv1.Event_Dup:
		return "dup2"
	case *vigilv1.Event_Ptrace:
		return "ptrace"
	case *vigilv1.Event_MemfdCreate:
		return "memfd_create"
	case *vigilv1.Event_Unlink:
		return "unlinkat"
	case *vigilv1.Event_Rename:
		return "renameat2"
	case *vigilv1.Event_Chmod:
		return "fchmodat"
	case *vigilv1.Event_Chown:
		return "fchownat"
	case *vigilv1.Event_Link:
		if ev.GetLink().Symbolic {
			return "symlinkat"
		}
		return "linkat"
	case *vigilv1.Event_Truncate:
		return "truncate"
	case *vigilv1.Event_Mount:
		return "mount"
	case *vigilv1.Event_Bpf:
		return "bpf"
	case *vigilv1.Event_Userfaultfd:
		return "userfaultfd"
	case *vigilv1.Event_ProcessVmWrite:
		return "process_vm_writev"
	case *vigilv1.Event_IoUringSetup:
		return "io_uring_setup"
	case *vigilv1.Event_Mprotect:
		return "mprotect"
	case *vigilv1.Event_ModuleLoad:
		return nonEmptyOr(ev.GetModuleLoad().Syscall, "init_module")
	case *vigilv1.Event_Namespace:
		return nonEmptyOr(ev.GetNamespace().Syscall, "unshare")
	case *vigilv1.Event_SetId:
		return nonEmptyOr(ev.GetSetId().Syscall, "setuid")
	case *vigilv1.Event_Capset:
		return "capset"
	}
	return ""
}

func nonEmptyOr(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

const loginUIDUnset = 4294967295

func fieldDefs() []fieldDef {
	return []fieldDef{
		// evt.*
		{"evt.type", ftString, argNone, "System call of the event, as Falco names it (execve, openat, connect, ...).",
			sfield(func(c *evalCtx) (string, bool) { return c.evtType, c.evtType != "" })},
		{"evt.dir", ftString, argNone, "Always \"<\": Vigil emits events at system-call exit.",
			sfield(func(*evalCtx) (string, bool) { return "<", true })},
		{"evt.num", ftInt, argNone, "Sequence number the engine gives each event it processes (never 0).",
			nfield(func(c *evalCtx) (int64, bool) { return int64(c.num), true })},
		{"evt.time", ftString, argNone, "Event time, RFC 3339 with nanoseconds.",
			sfield(func(c *evalCtx) (string, bool) {
				t := c.ev.GetTime()
				if t == nil {
					return "", false
				}
				return t.AsTime().UTC().Format("2006-01-02T15:04:05.000000000Z"), true
			})},
		{"evt.rawtime", ftInt, argNone, "Event time in nanoseconds since the epoch.",
			nfield(func(c *evalCtx) (int64, bool) { t := c.evTime(); return t, t != 0 })},
		{"evt.res", ftString, argNone, "Result as text: SUCCESS, or the errno name (ENOENT, EACCES, ...).",
			sfield(func(c *evalCtx) (string, bool) {
				if c.ev.Result >= 0 {
					return "SUCCESS", true
				}
				if c.ev.Errno != "" {
					return c.ev.Errno, true
				}
				return "E" + strconv.FormatInt(-c.ev.Result, 10), true
			})},
		{"evt.rawres", ftInt, argNone, "Result as a number (negative errno on failure; the new fd for dup).",
			nfield(func(c *evalCtx) (int64, bool) { return c.ev.Result, true })},
		{"evt.is_io_uring", ftBool, argNone, "True when the operation was submitted through an io_uring instead of made as a system call " +
			"(opens and connects; evt.type names the system call it stands for).",
			bfield(func(c *evalCtx) (bool, bool) { return c.ev.IoUring, true })},
		{"evt.failed", ftBool, argNone, "True when the system call failed.",
			bfield(func(c *evalCtx) (bool, bool) { return c.ev.Result < 0, true })},
		{"evt.is_open_read", ftBool, argNone, "For open events: opened for reading (O_RDONLY or O_RDWR).",
			bfield(func(c *evalCtx) (bool, bool) {
				o := c.ev.GetOpen()
				if o == nil {
					return false, false
				}
				acc := o.Flags & 3
				return acc == 0 || acc == 2, true
			})},
		{"evt.is_open_write", ftBool, argNone, "For open events: opened for writing (O_WRONLY or O_RDWR).",
			bfield(func(c *evalCtx) (bool, bool) {
				o := c.ev.GetOpen()
				if o == nil {
					return false, false
				}
				acc := o.Flags & 3
				return acc == 1 || acc == 2, true
			})},
		{"evt.is_open_exec", ftBool, argNone, "For open events: the file was created with an execute bit in its mode.",
			bfield(func(c *evalCtx) (bool, bool) {
				o := c.ev.GetOpen()
				if o == nil {
					return false, false
				}
				return o.Flags&0o100 != 0 && o.Mode&0o111 != 0, true
			})},
		{"evt.arg", ftString, argKey, "An argument of the event by name, rendered as text: evt.arg.flags (O_*, EXE_* or MFD_* names), " +
			"evt.arg.mode, evt.arg.name, evt.arg.path, evt.arg.filename, evt.arg.fd, evt.arg.newfd, evt.arg.oldfd, evt.arg.target, " +
			"evt.arg.linkpath, evt.arg.oldpath, evt.arg.newpath, evt.arg.request, evt.arg.pid, evt.arg.addr, evt.arg.domain, " +
			"evt.arg.type, evt.arg.proto, evt.arg.uid, evt.arg.gid, evt.arg.source, evt.arg.dir, evt.arg.fstype, evt.arg.cmd, " +
			"evt.arg.tuple, evt.arg.res, evt.arg.cap_effective, evt.arg.length, evt.arg.entries. Also written evt.arg[name].",
			func(arg string, _ bool) (fieldImpl, error) { return eventArgField(arg, false) }},
		{"evt.rawarg", ftString, argKey, "An argument of the event by name as a raw number where it is one (flags, mode, request, ...).",
			func(arg string, _ bool) (fieldImpl, error) { return eventArgField(arg, true) }},
		{"evt.args", ftString, argNone, "All arguments of the event as name=value pairs.",
			sfield(func(c *evalCtx) (string, bool) { return renderArgs(c) })},
		{"evt.hostname", ftString, argNone, "Host name of the machine the event happened on.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(hostOf(c).GetHostname()) })},

		// proc.*
		{"proc.name", ftString, argNone, "Process name (the kernel's comm, at most 15 characters, as Falco).",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(procName(proc(c))) })},
		{"proc.exe", ftString, argNone, "argv[0] of the process (as the caller wrote it).",
			sfield(func(c *evalCtx) (string, bool) {
				p := proc(c)
				if p == nil || len(p.Args) == 0 {
					return "", false
				}
				return p.Args[0], true
			})},
		{"proc.exepath", ftString, argNone, "Absolute path of the executable (kernel-resolved).",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(proc(c).GetExePath()) })},
		{"proc.args", ftString, argNone, "Arguments after argv[0], joined with spaces.",
			sfield(procArgs)},
		{"proc.argv", ftString, argIndex, "Command-line argument N; proc.argv[0] is argv[0] as the program was started, proc.argv[1] the first argument.",
			func(arg string, _ bool) (fieldImpl, error) {
				n, err := strconv.Atoi(arg)
				if err != nil || n < 0 {
					return fieldImpl{}, fmt.Errorf("proc.argv[%s]: the index must be a number from 0", arg)
				}
				return fieldImpl{str: func(c *evalCtx) (string, bool) {
					args := proc(c).GetArgs()
					if n >= len(args) {
						return "", false
					}
					return args[n], true
				}}, nil
			}},
		{"proc.argc", ftInt, argNone, "Number of command-line arguments, argv[0] included (0 for a program started with an empty list; kernels since 5.18 start it with one empty argument instead).",
			nfield(func(c *evalCtx) (int64, bool) { p := proc(c); return int64(len(p.GetArgs())), p != nil })},
		{"proc.cmdline", ftString, argNone, "proc.name followed by the arguments.",
			sfield(procCmdline)},
		{"proc.pid", ftInt, argNone, "Host process id.",
			nfield(func(c *evalCtx) (int64, bool) { p := proc(c); return int64(p.GetPid()), p != nil })},
		{"proc.vpid", ftInt, argNone, "Process id inside its pid namespace.",
			nfield(func(c *evalCtx) (int64, bool) { p := proc(c); return int64(p.GetNsPid()), p != nil })},
		{"proc.ppid", ftInt, argNone, "Parent's host process id.",
			nfield(func(c *evalCtx) (int64, bool) { p := proc(c); return int64(p.GetPpid()), p != nil })},
		{"proc.pname", ftString, argNone, "Parent process name.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(ancestorName(ancestor(c, 1))) })},
		{"proc.pexe", ftString, argNone, "argv[0] of the parent.",
			sfield(func(c *evalCtx) (string, bool) {
				a := ancestor(c, 1)
				if a == nil || len(a.Args) == 0 {
					return "", false
				}
				return a.Args[0], true
			})},
		{"proc.pexepath", ftString, argNone, "Executable path of the parent.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(ancestor(c, 1).GetExePath()) })},
		{"proc.pcmdline", ftString, argNone, "Command line of the parent.",
			sfield(parentCmdline)},
		{"proc.aname", ftString, argIndexOptional, "Name of ancestor N (0 = the process, 1 = parent, ...); without [N], matches any ancestor.",
			ancestorField(ancestorName, procName)},
		{"proc.aexepath", ftString, argIndexOptional, "Executable path of ancestor N; without [N], any ancestor.",
			ancestorField(func(a *vigilv1.Ancestor) string { return a.GetExePath() }, func(p *vigilv1.Process) string { return p.GetExePath() })},
		{"proc.aexe", ftString, argIndexOptional, "argv[0] of ancestor N; without [N], any ancestor.",
			ancestorField(func(a *vigilv1.Ancestor) string {
				if len(a.GetArgs()) == 0 {
					return ""
				}
				return a.Args[0]
			}, func(p *vigilv1.Process) string {
				if len(p.GetArgs()) == 0 {
					return ""
				}
				return p.Args[0]
			})},
		{"proc.apid", ftInt, argIndexOptional, "Host pid of ancestor N; without [N], any ancestor.",
			ancestorPid},
		{"proc.cwd", ftString, argNone, "Working directory of the process.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(proc(c).GetCwd()) })},
		{"proc.tty", ftInt, argNone, "Controlling terminal device number; 0 when none.",
			nfield(func(c *evalCtx) (int64, bool) { p := proc(c); return int64(p.GetTty()), p != nil })},
		{"proc.sid", ftInt, argNone, "Session id (host pid of the session leader).",
			nfield(func(c *evalCtx) (int64, bool) { p := proc(c); return int64(p.GetSid()), p != nil })},
		{"proc.sname", ftString, argNone, "Name of the session leader, when it is in the lineage.",
			sfield(sessionLeaderName)},
		{"proc.duration", ftInt, argNone, "Nanoseconds since the process started, at the event.",
			nfield(func(c *evalCtx) (int64, bool) {
				st := proc(c).GetStartTime()
				if st == nil {
					return 0, false
				}
				return c.evTime() - tsNanos(st), true
			})},
		{"proc.is_exe_upper_layer", ftBool, argNone, "The executable lives in the container's writable overlay layer (written after start).",
			bfield(func(c *evalCtx) (bool, bool) { p := proc(c); return p.GetExeUpperLayer(), p != nil })},
		{"proc.is_exe_outside_root", ftBool, argNone, "The executable was not reachable from the process's root at exec time (a detached mount, a memfd, or outside its chroot or container root).",
			bfield(func(c *evalCtx) (bool, bool) { p := proc(c); return p.GetExeOutsideRoot(), p != nil })},
		{"proc.is_compat32", ftBool, argNone, "The executable is a 32-bit ELF: on a 64-bit kernel its system calls bypass the per-syscall tracepoints, so only its execs, forks and exit are seen.",
			bfield(func(c *evalCtx) (bool, bool) { p := proc(c); return p.GetCompat32(), p != nil })},
		{"proc.is_exe_from_memfd", ftBool, argNone, "The executable is a memfd (fileless execution).",
			bfield(func(c *evalCtx) (bool, bool) {
				p := proc(c)
				if p == nil {
					return false, false
				}
				return p.ExeFileless && strings.Contains(p.ExePath, "memfd:"), true
			})},
		{"proc.is_exe_fileless", ftBool, argNone, "The executable was a memfd or a deleted file at exec time.",
			bfield(func(c *evalCtx) (bool, bool) { p := proc(c); return p.GetExeFileless(), p != nil })},
		{"proc.exe_ino", ftInt, argNone, "Inode number of the executable.",
			nfield(func(c *evalCtx) (int64, bool) { p := proc(c); return int64(p.GetExeInode()), p.GetExeInode() != 0 })},
		{"proc.exe_ino.ctime", ftInt, argNone, "Status-change time of the executable's inode, ns since the epoch.",
			nfield(func(c *evalCtx) (int64, bool) { t := proc(c).GetExeCtime(); return tsNanos(t), t != nil })},
		{"proc.exe_ino.mtime", ftInt, argNone, "Modification time of the executable's inode, ns since the epoch.",
			nfield(func(c *evalCtx) (int64, bool) { t := proc(c).GetExeMtime(); return tsNanos(t), t != nil })},
		{"proc.exe_ino.ctime_duration_proc_start", ftInt, argNone, "Nanoseconds between the executable's ctime and the process start.",
			nfield(func(c *evalCtx) (int64, bool) {
				p := proc(c)
				if p.GetExeCtime() == nil || p.GetStartTime() == nil {
					return 0, false
				}
				return tsNanos(p.StartTime) - tsNanos(p.ExeCtime), true
			})},
		{"proc.uuid", ftString, argNone, "Vigil's stable process id (exec_id): never reused, unlike pids.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(proc(c).GetExecId()) })},
		{"proc.puuid", ftString, argNone, "exec_id of the parent process.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(proc(c).GetParentExecId()) })},
		{"proc.sha256", ftString, argNone, "SHA-256 of the executable, hex (when the sensor computed it).",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(proc(c).GetExeSha256()) })},
		{"proc.stdin.type", ftString, argNone, "On exec events: what fd 0 is (ipv4, ipv6, unix, socket, pipe, tty, file, none).",
			sfield(stdioType(0))},
		{"proc.stdout.type", ftString, argNone, "On exec events: what fd 1 is.", sfield(stdioType(1))},
		{"proc.stderr.type", ftString, argNone, "On exec events: what fd 2 is.", sfield(stdioType(2))},
		{"proc.stdin.name", ftString, argNone, "On exec events: the remote address (ip:port) of fd 0 when it is a connected socket.",
			sfield(stdioName(0))},
		{"proc.stdout.name", ftString, argNone, "On exec events: the remote address of fd 1 when it is a connected socket.", sfield(stdioName(1))},
		{"proc.stderr.name", ftString, argNone, "On exec events: the remote address of fd 2 when it is a connected socket.", sfield(stdioName(2))},
		{"proc.env", ftString, argKeyOptional, "On exec events: an environment variable the sensor keeps (LD_PRELOAD, LD_LIBRARY_PATH); " +
			"present when set and not empty. Without [NAME], all kept variables as NAME=value pairs.",
			procEnvField},
		{"thread.cap_effective", ftString, argNone, "Effective capabilities of the process as CAP_* names separated by spaces.",
			sfield(func(c *evalCtx) (string, bool) {
				p := proc(c)
				if p == nil {
					return "", false
				}
				return capNames(p.CapEffective), true
			})},
		{"thread.tid", ftInt, argNone, "Thread id that made the system call.",
			nfield(func(c *evalCtx) (int64, bool) { return int64(c.ev.Tid), c.ev.Tid != 0 })},

		// user.* group.*
		{"user.uid", ftInt, argNone, "Real user id.",
			nfield(func(c *evalCtx) (int64, bool) { p := proc(c); return int64(p.GetUid()), p != nil })},
		{"user.euid", ftInt, argNone, "Effective user id.",
			nfield(func(c *evalCtx) (int64, bool) { p := proc(c); return int64(p.GetEuid()), p != nil })},
		{"user.name", ftString, argNone, "User name of the uid.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(proc(c).GetUserName()) })},
		{"user.loginuid", ftInt, argNone, "Audit login uid; -1 when unset.",
			nfield(func(c *evalCtx) (int64, bool) {
				p := proc(c)
				if p == nil {
					return 0, false
				}
				if p.Loginuid == loginUIDUnset {
					return -1, true
				}
				return int64(p.Loginuid), true
			})},
		{"user.loginname", ftString, argNone, "User name of the login uid (known when it equals the uid).",
			sfield(func(c *evalCtx) (string, bool) {
				p := proc(c)
				if p == nil || p.Loginuid != p.Uid {
					return "", false
				}
				return nonEmpty(p.UserName)
			})},
		{"group.gid", ftInt, argNone, "Real group id.",
			nfield(func(c *evalCtx) (int64, bool) { p := proc(c); return int64(p.GetGid()), p != nil })},
		{"group.name", ftString, argNone, "Group name of the gid.",
			sfield(func(c *evalCtx) (string, bool) {
				p := proc(c)
				if p == nil {
					return "", false
				}
				if p.GroupName == "" && p.Gid == 0 {
					return "root", true
				}
				return nonEmpty(p.GroupName)
			})},

		// fd.*
		{"fd.name", ftString, argNone, "File path (open, unlink, chmod, ...), connection tuple cip:cport->sip:sport, or unix socket path.",
			sfield(fdName)},
		{"fd.nameraw", ftString, argNone, "The path as the process passed it, before resolution (falls back to fd.name).",
			sfield(func(c *evalCtx) (string, bool) {
				if o := c.ev.GetOpen(); o != nil && o.RequestedPath != "" {
					return o.RequestedPath, true
				}
				return fdName(c)
			})},
		{"fd.procpid", ftInt, argNone, "PID in a /proc/PID/... path: the process a /proc file describes, numbered as in the pid namespace of the /proc it was opened through.",
			nfield(func(c *evalCtx) (int64, bool) {
				p, ok := filePath(c.ev)
				if !ok {
					return 0, false
				}
				return procPathPid(p)
			})},
		{"fd.directory", ftString, argNone, "Directory of fd.name for files.",
			sfield(func(c *evalCtx) (string, bool) {
				p, ok := filePath(c.ev)
				if !ok || !strings.HasPrefix(p, "/") {
					return "", false
				}
				return path.Dir(p), true
			})},
		{"fd.filename", ftString, argNone, "File name of fd.name for files.",
			sfield(func(c *evalCtx) (string, bool) {
				p, ok := filePath(c.ev)
				if !ok {
					return "", false
				}
				return path.Base(p), true
			})},
		{"fd.num", ftInt, argNone, "File descriptor number; -1 when the open failed.",
			nfield(fdNum)},
		{"fd.type", ftString, argNone, "Kind of fd: file, ipv4, ipv6, unix, memfd, pipe.",
			sfield(fdType)},
		{"fd.typechar", ftString, argNone, "Kind of fd as one character: f file, 4 ipv4, 6 ipv6, u unix, m memfd, o other.",
			sfield(fdTypeChar)},
		{"fd.sockfamily", ftString, argNone, "Socket family: ip or unix.",
			sfield(func(c *evalCtx) (string, bool) {
				s, ok := sockOf(c.ev)
				if !ok {
					return "", false
				}
				switch s.family() {
				case "inet", "inet6":
					return "ip", true
				case "unix":
					return "unix", true
				}
				return "", false
			})},
		{"fd.l4proto", ftString, argNone, "Transport protocol: tcp, udp, raw, ...",
			sfield(func(c *evalCtx) (string, bool) {
				s, ok := sockOf(c.ev)
				if !ok || s.family() == "unix" {
					return "", false
				}
				return nonEmpty(s.proto)
			})},
		{"fd.connected", ftBool, argNone, "The socket is connected (connect succeeded, accepted, or a connected send).",
			bfield(func(c *evalCtx) (bool, bool) { s, ok := sockOf(c.ev); return s.connected, ok })},
		{"fd.name_changed", ftBool, argNone, "The destination was given with this send (unconnected UDP sendto/sendmsg).",
			bfield(func(c *evalCtx) (bool, bool) { s, ok := sockOf(c.ev); return s.nameChanged, ok })},
		{"fd.sip", ftIP, argNone, "Server IP (the remote end for connect, the local end for accept/bind/listen).", ipfield(sockIP(pickServer))},
		{"fd.cip", ftIP, argNone, "Client IP.", ipfield(sockIP(pickClient))},
		{"fd.lip", ftIP, argNone, "Local IP.", ipfield(sockIP(pickLocal))},
		{"fd.rip", ftIP, argNone, "Remote IP.", ipfield(sockIP(pickRemote))},
		{"fd.sport", ftInt, argNone, "Server port.", nfield(sockPort(pickServer))},
		{"fd.dip", ftIP, argNone, "Destination IP: the end the connection was made to (same as fd.sip).", ipfield(sockIP(pickServer))},
		{"fd.dport", ftInt, argNone, "Destination port (same as fd.sport).", nfield(sockPort(pickServer))},
		{"fd.cport", ftInt, argNone, "Client port.", nfield(sockPort(pickClient))},
		{"fd.lport", ftInt, argNone, "Local port.", nfield(sockPort(pickLocal))},
		{"fd.rport", ftInt, argNone, "Remote port.", nfield(sockPort(pickRemote))},
		{"fd.ip", ftIP, argNone, "Either IP of the connection (matches when the client or server IP matches).",
			func(string, bool) (fieldImpl, error) { return fieldImpl{multi: bothIPs}, nil }},
		{"fd.port", ftInt, argNone, "Either port of the connection.",
			func(string, bool) (fieldImpl, error) { return fieldImpl{multi: bothPorts}, nil }},
		{"fd.net", ftNet, argNone, "Either IP of the connection, compared against a CIDR (fd.net = \"10.0.0.0/8\").",
			func(string, bool) (fieldImpl, error) { return fieldImpl{multi: bothIPs}, nil }},
		{"fd.snet", ftNet, argNone, "Server IP compared against CIDRs.", ipfield(sockIP(pickServer))},
		{"fd.cnet", ftNet, argNone, "Client IP compared against CIDRs.", ipfield(sockIP(pickClient))},
		{"fd.lnet", ftNet, argNone, "Local IP compared against CIDRs.", ipfield(sockIP(pickLocal))},
		{"fd.rnet", ftNet, argNone, "Remote IP compared against CIDRs.", ipfield(sockIP(pickRemote))},
		{"fd.sip.name", ftString, argNone, "DNS name the server IP was resolved from, learned from DNS answers the engine saw on the same host.",
			ipName(pickServer)},
		{"fd.rip.name", ftString, argNone, "DNS name the remote IP was resolved from.", ipName(pickRemote)},
		{"fd.cip.name", ftString, argNone, "DNS name the client IP was resolved from.", ipName(pickClient)},
		{"fd.lip.name", ftString, argNone, "DNS name the local IP was resolved from.", ipName(pickLocal)},

		// file.*
		{"file.created_by", ftString, argNone, "Executable path of the process that created the file this event is about " +
			"(for exec events: the executable), when the engine saw the creation on the same host or container.",
			func(string, bool) (fieldImpl, error) {
				return fieldImpl{needs: []string{"open", "rename"}, str: func(c *evalCtx) (string, bool) {
					if c.names == nil {
						return "", false
					}
					return c.names.creatorOf(c.ev)
				}}, nil
			}},

		// container.*
		{"container.id", ftString, argNone, "Container id, 12 characters; \"host\" for host processes.",
			sfield(func(c *evalCtx) (string, bool) {
				ct := containerOf(c)
				if ct == nil || ct.Id == "" {
					return "host", true
				}
				if len(ct.Id) > 12 {
					return ct.Id[:12], true
				}
				return ct.Id, true
			})},
		{"container.full_id", ftString, argNone, "Full container id; \"host\" for host processes.",
			sfield(func(c *evalCtx) (string, bool) {
				ct := containerOf(c)
				if ct == nil || ct.Id == "" {
					return "host", true
				}
				return ct.Id, true
			})},
		{"container.name", ftString, argNone, "Container name.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(containerOf(c).GetName()) })},
		{"container.image", ftString, argNone, "Image reference (repository:tag).",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(containerOf(c).GetImage()) })},
		{"container.image.repository", ftString, argNone, "Image repository (the reference without tag or digest).",
			sfield(func(c *evalCtx) (string, bool) {
				r, _, _ := imageRepoTag(containerOf(c).GetImage())
				return nonEmpty(r)
			})},
		{"container.image.tag", ftString, argNone, "Image tag.",
			sfield(func(c *evalCtx) (string, bool) {
				_, t, _ := imageRepoTag(containerOf(c).GetImage())
				return nonEmpty(t)
			})},
		{"container.image.digest", ftString, argNone, "Image digest.",
			sfield(func(c *evalCtx) (string, bool) {
				ct := containerOf(c)
				if d := ct.GetImageDigest(); d != "" {
					return d, true
				}
				_, _, d := imageRepoTag(ct.GetImage())
				return nonEmpty(d)
			})},
		{"container.privileged", ftBool, argNone, "The container runs privileged.",
			bfield(func(c *evalCtx) (bool, bool) { ct := containerOf(c); return ct.GetPrivileged(), ct != nil })},
		{"container.start_ts", ftInt, argNone, "Container start time, ns since the epoch.",
			nfield(func(c *evalCtx) (int64, bool) { t := containerOf(c).GetStartedAt(); return tsNanos(t), t != nil })},
		{"container.info", ftString, argNone, "Container summary for outputs (Falco's %container.info): id, name and image; \"host\" outside containers.",
			sfield(func(c *evalCtx) (string, bool) {
				ct := containerOf(c)
				if ct == nil || ct.Id == "" {
					return "host", true
				}
				id := ct.Id
				if len(id) > 12 {
					id = id[:12]
				}
				return "container_id=" + id + " container_name=" + ct.Name + " container_image=" + ct.Image, true
			})},
		{"container.runtime", ftString, argNone, "Container runtime (containerd, docker, cri-o).",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(containerOf(c).GetRuntime()) })},
		{"container.label", ftString, argKey, "A container label by key.",
			func(arg string, _ bool) (fieldImpl, error) {
				return fieldImpl{str: func(c *evalCtx) (string, bool) {
					v, ok := containerOf(c).GetLabels()[arg]
					return v, ok
				}}, nil
			}},

		// k8s.*
		{"k8s.pod.name", ftString, argNone, "Kubernetes pod name.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(c.ev.GetKubernetes().GetPodName()) })},
		{"k8s.ns.name", ftString, argNone, "Kubernetes namespace.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(c.ev.GetKubernetes().GetNamespace()) })},
		{"k8s.pod.uid", ftString, argNone, "Kubernetes pod uid.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(c.ev.GetKubernetes().GetPodUid()) })},
		{"k8s.container.name", ftString, argNone, "Container name in the pod spec.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(c.ev.GetKubernetes().GetContainerName()) })},
		{"k8s.sa.name", ftString, argNone, "Service account of the pod.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(c.ev.GetKubernetes().GetServiceAccount()) })},
		{"k8s.pod.label", ftString, argKey, "A pod label by key.",
			func(arg string, _ bool) (fieldImpl, error) {
				return fieldImpl{str: func(c *evalCtx) (string, bool) {
					v, ok := c.ev.GetKubernetes().GetPodLabels()[arg]
					return v, ok
				}}, nil
			}},

		// ecs.* host.*
		{"ecs.cluster", ftString, argNone, "ECS cluster.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(c.ev.GetEcs().GetCluster()) })},
		{"ecs.task.arn", ftString, argNone, "ECS task ARN.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(c.ev.GetEcs().GetTaskArn()) })},
		{"ecs.task.family", ftString, argNone, "ECS task definition family.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(c.ev.GetEcs().GetTaskFamily()) })},
		{"ecs.task.revision", ftString, argNone, "ECS task definition revision.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(c.ev.GetEcs().GetTaskRevision()) })},
		{"ecs.container.name", ftString, argNone, "Container name in the ECS task definition.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(c.ev.GetEcs().GetContainerName()) })},
		{"ecs.launch_type", ftString, argNone, "ECS launch type: EC2 or FARGATE.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(c.ev.GetEcs().GetLaunchType()) })},
		{"host.hostname", ftString, argNone, "Host name.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(hostOf(c).GetHostname()) })},
		{"host.instance_id", ftString, argNone, "EC2 instance id.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(hostOf(c).GetInstanceId()) })},
		{"host.region", ftString, argNone, "AWS region.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(hostOf(c).GetRegion()) })},
		{"host.account_id", ftString, argNone, "AWS account id.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(hostOf(c).GetAccountId()) })},
		{"host.kernel", ftString, argNone, "Kernel release.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(hostOf(c).GetKernel()) })},
		{"sensor.id", ftString, argNone, "Id of the sensor that captured the event.",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(c.ev.SensorId) })},

		// dns.*
		{"dns.qname", ftString, argNone, "Question name of a DNS query or answer, without the trailing dot.",
			func(string, bool) (fieldImpl, error) {
				return fieldImpl{needs: []string{"dns_query"}, str: questionName}, nil
			}},
		{"dns.domain", ftString, argNone, "Registrable domain of the question name: one label under its public suffix (a.b.example.co.uk gives example.co.uk).",
			func(string, bool) (fieldImpl, error) {
				return fieldImpl{needs: []string{"dns_query"}, str: func(c *evalCtx) (string, bool) {
					d, _ := splitQuestion(c)
					return nonEmpty(d)
				}}, nil
			}},
		{"dns.label.longest", ftString, argNone, "Longest label of the question name left of dns.domain (empty when the name is the domain itself): where tunnels and exfiltration put encoded data.",
			func(string, bool) (fieldImpl, error) {
				return fieldImpl{needs: []string{"dns_query"}, str: func(c *evalCtx) (string, bool) {
					_, l := splitQuestion(c)
					return l, true
				}}, nil
			}},
		{"dns.qtype", ftString, argNone, "Question type of a DNS query or answer (A, AAAA, TXT, ...).",
			sfield(func(c *evalCtx) (string, bool) {
				if q := c.ev.GetDnsQuery(); q != nil {
					return nonEmpty(q.Type)
				}
				return nonEmpty(c.ev.GetDnsAnswer().GetType())
			})},
		{"dns.rcode", ftString, argNone, "Response code of a DNS answer (NOERROR, NXDOMAIN, ...).",
			sfield(func(c *evalCtx) (string, bool) { return nonEmpty(c.ev.GetDnsAnswer().GetRcode()) })},
		{"dns.addresses", ftString, argNone, "Addresses in a DNS answer; matches when any of them matches.",
			func(string, bool) (fieldImpl, error) {
				return fieldImpl{multi: func(c *evalCtx) []string { return c.ev.GetDnsAnswer().GetAddresses() }}, nil
			}},
	}
}

// splitQuestion splits the event's DNS question name into its registrable
// domain (by the public suffix list) and the longest label left of it.
func splitQuestion(c *evalCtx) (domain, longest string) {
	if !c.dnsSplitDone {
		c.dnsDomain, c.dnsLongest = splitName(c)
		c.dnsSplitDone = true
	}
	return c.dnsDomain, c.dnsLongest
}

func splitName(c *evalCtx) (domain, longest string) {
	name, ok := questionName(c)
	if !ok {
		return "", ""
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	domain, err := publicsuffix.EffectiveTLDPlusOne(name)
	if err != nil {
		// The name is a public suffix itself (or malformed): it is its own
		// domain.
		return name, ""
	}
	for rest := strings.TrimSuffix(strings.TrimSuffix(name, domain), "."); rest != ""; {
		var label string
		label, rest, _ = strings.Cut(rest, ".")
		if len(label) > len(longest) {
			longest = label
		}
	}
	return domain, longest
}

func questionName(c *evalCtx) (string, bool) {
	if q := c.ev.GetDnsQuery(); q != nil {
		return nonEmpty(q.Name)
	}
	return nonEmpty(c.ev.GetDnsAnswer().GetName())
}

// procPathPid reads the PID of a /proc/PID/... path.
func procPathPid(p string) (int64, bool) {
	rest, ok := strings.CutPrefix(p, "/proc/")
	if !ok {
		return 0, false
	}
	n, _, _ := strings.Cut(rest, "/")
	pid, err := strconv.ParseInt(n, 10, 64)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

// FieldsMarkdown renders the field table as a Markdown table, the form
// docs/rules.md embeds.
func FieldsMarkdown() string {
	var b strings.Builder
	b.WriteString("| field | type | meaning |\n| --- | --- | --- |\n")
	for _, f := range Fields() {
		name := f.Name
		switch {
		case f.Arg == "index" && f.ArgOptional:
			name += "[N]` or `" + f.Name
		case f.Arg == "index":
			name += "[N]"
		case f.Arg == "key" && f.ArgOptional:
			name += "[KEY]` or `" + f.Name
		case f.Arg == "key":
			name += "[KEY]"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", name, f.Type, strings.ReplaceAll(f.Description, "|", `\|`))
	}
	return b.String()
}
