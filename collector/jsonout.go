package collector

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// WriteJSON writes each event from in to w as one line of the protobuf JSON
// mapping, until in is closed or ctx is done. Output is buffered and flushed
// at least every flushEvery.
func WriteJSON(ctx context.Context, w io.Writer, in <-chan *vigilv1.Event, flushEvery time.Duration) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	defer bw.Flush()
	var enc JSONEncoder
	var buf []byte
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	write := func(ev *vigilv1.Event) error {
		buf = append(enc.AppendEvent(buf[:0], ev), '\n')
		if _, err := bw.Write(buf); err != nil {
			return fmt.Errorf("write event: %w", err)
		}
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := bw.Flush(); err != nil {
				return fmt.Errorf("flush events: %w", err)
			}
		case ev, ok := <-in:
			if !ok {
				return nil
			}
			if err := write(ev); err != nil {
				return err
			}
			// Drain the burst the reader is delivering, then pause briefly
			// before blocking again: a receiver parked on an empty channel
			// costs the sender a goroutine wakeup per event, which under a
			// flood costs more than the encoding.
		drain:
			for {
				select {
				case ev, ok := <-in:
					if !ok {
						return nil
					}
					if err := write(ev); err != nil {
						return err
					}
				default:
					break drain
				}
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// JSONEncoder writes events in the protobuf JSON mapping (lowerCamel field
// names, 64-bit integers as strings, RFC 3339 timestamps, unset fields
// left out), as protojson does, several times faster: `sensor --stdout`
// must keep up with the probes. It caches the JSON of each Process message:
// the process table publishes immutable, shared Process messages, and their
// lineage is most of an event, so a burst of events from one process
// encodes it once. Invalid UTF-8 in strings (paths are bytes) becomes
// U+FFFD instead of an error. Not safe for concurrent use.
type JSONEncoder struct {
	cache   map[any][]byte
	scratch []byte
	// lineages caches lineage arrays by backing array: siblings share
	// their lineage slice (the process table builds it once per parent),
	// so an exec storm writes each lineage once. A key keeps its array
	// alive, so an address is never reused while it is cached.
	lineages map[lineageKey][]byte
	lscratch []byte
}

type lineageKey struct {
	first **vigilv1.Ancestor
	n     int
}

// AppendEvent appends ev's JSON to buf. The envelope, the process and the
// open, exec, fork, exit and dup bodies (the bulk of a busy host's events,
// and all of a shell's) are written field by field; other bodies go
// through protobuf reflection.
func (e *JSONEncoder) AppendEvent(buf []byte, ev *vigilv1.Event) []byte {
	buf = append(buf, '{')
	n := len(buf)
	sep := func() {
		if len(buf) > n {
			buf = append(buf, ',')
		}
	}
	if ev.Time != nil {
		buf = append(buf, `"time":`...)
		buf = appendTimestamp(buf, ev.Time.Seconds, ev.Time.Nanos)
	}
	if ev.Process != nil {
		sep()
		buf = append(buf, `"process":`...)
		buf = append(buf, e.process(ev.Process)...)
	}
	if ev.Tid != 0 {
		sep()
		buf = append(buf, `"tid":`...)
		buf = strconv.AppendUint(buf, uint64(ev.Tid), 10)
	}
	if ev.CgroupId != 0 {
		sep()
		buf = append(buf, `"cgroupId":"`...)
		buf = strconv.AppendUint(buf, ev.CgroupId, 10)
		buf = append(buf, '"')
	}
	if ev.CgroupPath != "" {
		sep()
		buf = append(buf, `"cgroupPath":`...)
		buf = appendJSONString(buf, ev.CgroupPath)
	}
	if ev.Result != 0 {
		sep()
		buf = append(buf, `"result":"`...)
		buf = strconv.AppendInt(buf, ev.Result, 10)
		buf = append(buf, '"')
	}
	if ev.Errno != "" {
		sep()
		buf = append(buf, `"errno":`...)
		buf = appendJSONString(buf, ev.Errno)
	}
	if ev.Container != nil {
		sep()
		buf = append(buf, `"container":`...)
		buf = append(buf, e.shared(ev.Container, ev.Container.ProtoReflect)...)
	}
	if ev.Kubernetes != nil {
		sep()
		buf = append(buf, `"kubernetes":`...)
		buf = append(buf, e.shared(ev.Kubernetes, ev.Kubernetes.ProtoReflect)...)
	}
	if ev.Ecs != nil {
		sep()
		buf = append(buf, `"ecs":`...)
		buf = append(buf, e.shared(ev.Ecs, ev.Ecs.ProtoReflect)...)
	}
	if ev.Host != nil {
		sep()
		buf = append(buf, `"host":`...)
		buf = append(buf, e.shared(ev.Host, ev.Host.ProtoReflect)...)
	}
	if ev.SensorId != "" {
		sep()
		buf = append(buf, `"sensorId":`...)
		buf = appendJSONString(buf, ev.SensorId)
	}
	if ev.Syscall != "" {
		sep()
		buf = append(buf, `"syscall":`...)
		buf = appendJSONString(buf, ev.Syscall)
	}
	if ev.IoUring {
		sep()
		buf = append(buf, `"ioUring":true`...)
	}
	switch k := ev.Kind.(type) {
	case nil:
	case *vigilv1.Event_Open:
		sep()
		buf = append(buf, `"open":`...)
		buf = appendFileOpen(buf, k.Open)
	case *vigilv1.Event_Exec:
		sep()
		buf = append(buf, `"exec":`...)
		buf = appendExec(buf, k.Exec)
	case *vigilv1.Event_Fork:
		sep()
		buf = append(buf, `"fork":`...)
		buf = appendFork(buf, k.Fork)
	case *vigilv1.Event_Exit:
		sep()
		buf = append(buf, `"exit":`...)
		buf = appendExit(buf, k.Exit)
	case *vigilv1.Event_Dup:
		sep()
		buf = append(buf, `"dup":`...)
		buf = appendDup(buf, k.Dup)
	default:
		// The one populated member of the oneof.
		m := ev.ProtoReflect()
		if fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("kind")); fd != nil {
			sep()
			buf = appendJSONString(buf, fd.JSONName())
			buf = append(buf, ':')
			buf = appendMessage(buf, m.Get(fd).Message())
		}
	}
	return append(buf, '}')
}

func appendFileOpen(buf []byte, o *vigilv1.FileOpen) []byte {
	buf = append(buf, '{')
	n := len(buf)
	sep := func() {
		if len(buf) > n {
			buf = append(buf, ',')
		}
	}
	if o.Path != "" {
		buf = append(buf, `"path":`...)
		buf = appendJSONString(buf, o.Path)
	}
	if o.Flags != 0 {
		sep()
		buf = append(buf, `"flags":`...)
		buf = strconv.AppendUint(buf, uint64(o.Flags), 10)
	}
	if o.Mode != 0 {
		sep()
		buf = append(buf, `"mode":`...)
		buf = strconv.AppendUint(buf, uint64(o.Mode), 10)
	}
	if o.Fd != 0 {
		sep()
		buf = append(buf, `"fd":`...)
		buf = strconv.AppendInt(buf, int64(o.Fd), 10)
	}
	if o.Inode != 0 {
		sep()
		buf = append(buf, `"inode":"`...)
		buf = strconv.AppendUint(buf, o.Inode, 10)
		buf = append(buf, '"')
	}
	if o.Dev != 0 {
		sep()
		buf = append(buf, `"dev":"`...)
		buf = strconv.AppendUint(buf, o.Dev, 10)
		buf = append(buf, '"')
	}
	if o.Fstype != "" {
		sep()
		buf = append(buf, `"fstype":`...)
		buf = appendJSONString(buf, o.Fstype)
	}
	if o.Created {
		sep()
		buf = append(buf, `"created":true`...)
	}
	if o.RequestedPath != "" {
		sep()
		buf = append(buf, `"requestedPath":`...)
		buf = appendJSONString(buf, o.RequestedPath)
	}
	return append(buf, '}')
}

// appendTimestamp writes RFC 3339 in UTC with 0, 3, 6 or 9 fractional
// digits, as protojson does, digit by digit (time.AppendFormat parses its
// layout on every call).
func appendTimestamp(buf []byte, sec int64, nsec int32) []byte {
	t := time.Unix(sec, int64(nsec)).UTC()
	y, mo, d := t.Date()
	if y < 1 || y > 9999 {
		buf = append(buf, '"')
		buf = t.AppendFormat(buf, time.RFC3339Nano)
		return append(buf, '"')
	}
	h, mi, s := t.Clock()
	buf = append(buf, '"')
	buf = appendDigits(buf, y, 4)
	buf = append(buf, '-')
	buf = appendDigits(buf, int(mo), 2)
	buf = append(buf, '-')
	buf = appendDigits(buf, d, 2)
	buf = append(buf, 'T')
	buf = appendDigits(buf, h, 2)
	buf = append(buf, ':')
	buf = appendDigits(buf, mi, 2)
	buf = append(buf, ':')
	buf = appendDigits(buf, s, 2)
	if ns := t.Nanosecond(); ns != 0 {
		buf = append(buf, '.')
		switch {
		case ns%1e6 == 0:
			buf = appendDigits(buf, ns/1e6, 3)
		case ns%1e3 == 0:
			buf = appendDigits(buf, ns/1e3, 6)
		default:
			buf = appendDigits(buf, ns, 9)
		}
	}
	return append(buf, 'Z', '"')
}

// appendDigits writes v (non-negative) zero-padded to width digits.
func appendDigits(buf []byte, v, width int) []byte {
	var d [9]byte
	for i := width - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(buf, d[:width]...)
}

// process returns the JSON of a shared Process message, encoding it once.
func (e *JSONEncoder) process(p *vigilv1.Process) []byte {
	if b, ok := e.cache[p]; ok {
		return b
	}
	// Encoded in scratch space, kept at its exact size: one allocation.
	e.scratch = e.appendProcess(e.scratch[:0], p)
	b := bytes.Clone(e.scratch)
	e.put(p, b)
	return b
}

func (e *JSONEncoder) put(key any, b []byte) {
	if e.cache == nil || len(e.cache) >= 4096 {
		e.cache = make(map[any][]byte, 4096)
	}
	e.cache[key] = b
}

// shared returns the JSON of a message that events share by pointer
// (process, container, pod, task), encoding it once.
func (e *JSONEncoder) shared(key any, m func() protoreflect.Message) []byte {
	if b, ok := e.cache[key]; ok {
		return b
	}
	b := appendMessage(nil, m())
	e.put(key, b)
	return b
}

func appendMessage(buf []byte, m protoreflect.Message) []byte {
	if m.Descriptor().FullName() == "google.protobuf.Timestamp" {
		f := m.Descriptor().Fields()
		return appendTimestamp(buf, m.Get(f.ByNumber(1)).Int(), int32(m.Get(f.ByNumber(2)).Int()))
	}
	buf = append(buf, '{')
	first := true
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = appendJSONString(buf, fd.JSONName())
		buf = append(buf, ':')
		buf = appendField(buf, fd, v)
		return true
	})
	return append(buf, '}')
}

func appendField(buf []byte, fd protoreflect.FieldDescriptor, v protoreflect.Value) []byte {
	switch {
	case fd.IsList():
		l := v.List()
		buf = append(buf, '[')
		for i := 0; i < l.Len(); i++ {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendValue(buf, fd, l.Get(i))
		}
		return append(buf, ']')
	case fd.IsMap():
		buf = append(buf, '{')
		first := true
		v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			if !first {
				buf = append(buf, ',')
			}
			first = false
			buf = appendJSONString(buf, k.String())
			buf = append(buf, ':')
			buf = appendValue(buf, fd.MapValue(), mv)
			return true
		})
		return append(buf, '}')
	}
	return appendValue(buf, fd, v)
}

func appendValue(buf []byte, fd protoreflect.FieldDescriptor, v protoreflect.Value) []byte {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return strconv.AppendBool(buf, v.Bool())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return strconv.AppendInt(buf, v.Int(), 10)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return strconv.AppendUint(buf, v.Uint(), 10)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		buf = append(buf, '"')
		buf = strconv.AppendInt(buf, v.Int(), 10)
		return append(buf, '"')
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		buf = append(buf, '"')
		buf = strconv.AppendUint(buf, v.Uint(), 10)
		return append(buf, '"')
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return strconv.AppendFloat(buf, v.Float(), 'g', -1, 64)
	case protoreflect.StringKind:
		return appendJSONString(buf, v.String())
	case protoreflect.BytesKind:
		buf = append(buf, '"')
		buf = base64.StdEncoding.AppendEncode(buf, v.Bytes())
		return append(buf, '"')
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return appendJSONString(buf, string(ev.Name()))
		}
		return strconv.AppendInt(buf, int64(v.Enum()), 10)
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return appendMessage(buf, v.Message())
	}
	return append(buf, "null"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\t':
				buf = append(buf, '\\', 't')
			case '\r':
				buf = append(buf, '\\', 'r')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// The writers below are the protobuf JSON mapping of the messages on every
// process event, without reflection; TestJSONWritersCoverEveryField fails
// when the proto gains a field they do not write. Fields go in field-number
// order and are left out at their zero value, as protojson does.

// key appends a field's separator (when the object at start already has a
// member) and its quoted name with the colon.
func key(buf []byte, start int, name string) []byte {
	if len(buf) > start {
		buf = append(buf, ',')
	}
	return append(buf, name...)
}

func strField(buf []byte, start int, name, v string) []byte {
	if v == "" {
		return buf
	}
	return appendJSONString(key(buf, start, name), v)
}

func u32Field(buf []byte, start int, name string, v uint32) []byte {
	if v == 0 {
		return buf
	}
	return strconv.AppendUint(key(buf, start, name), uint64(v), 10)
}

func i32Field(buf []byte, start int, name string, v int32) []byte {
	if v == 0 {
		return buf
	}
	return strconv.AppendInt(key(buf, start, name), int64(v), 10)
}

// u64Field writes a 64-bit integer as a string, as the mapping wants.
func u64Field(buf []byte, start int, name string, v uint64) []byte {
	if v == 0 {
		return buf
	}
	buf = append(key(buf, start, name), '"')
	buf = strconv.AppendUint(buf, v, 10)
	return append(buf, '"')
}

func boolField(buf []byte, start int, name string, v bool) []byte {
	if !v {
		return buf
	}
	return append(key(buf, start, name), "true"...)
}

func tsField(buf []byte, start int, name string, ts *timestamppb.Timestamp) []byte {
	if ts == nil {
		return buf
	}
	return appendTimestamp(key(buf, start, name), ts.Seconds, ts.Nanos)
}

func strsField(buf []byte, start int, name string, v []string) []byte {
	if len(v) == 0 {
		return buf
	}
	buf = append(key(buf, start, name), '[')
	for i, s := range v {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendJSONString(buf, s)
	}
	return append(buf, ']')
}

func (e *JSONEncoder) appendProcess(buf []byte, p *vigilv1.Process) []byte {
	if p == nil {
		return append(buf, "{}"...)
	}
	buf = append(buf, '{')
	s := len(buf)
	buf = strField(buf, s, `"execId":`, p.ExecId)
	buf = strField(buf, s, `"parentExecId":`, p.ParentExecId)
	buf = u32Field(buf, s, `"pid":`, p.Pid)
	buf = u32Field(buf, s, `"ppid":`, p.Ppid)
	buf = u32Field(buf, s, `"nsPid":`, p.NsPid)
	buf = strField(buf, s, `"comm":`, p.Comm)
	buf = strField(buf, s, `"exePath":`, p.ExePath)
	buf = strsField(buf, s, `"args":`, p.Args)
	buf = boolField(buf, s, `"argsTruncated":`, p.ArgsTruncated)
	buf = strField(buf, s, `"cwd":`, p.Cwd)
	buf = u32Field(buf, s, `"uid":`, p.Uid)
	buf = u32Field(buf, s, `"gid":`, p.Gid)
	buf = u32Field(buf, s, `"euid":`, p.Euid)
	buf = u32Field(buf, s, `"egid":`, p.Egid)
	buf = u32Field(buf, s, `"loginuid":`, p.Loginuid)
	buf = u32Field(buf, s, `"sid":`, p.Sid)
	buf = u32Field(buf, s, `"tty":`, p.Tty)
	buf = tsField(buf, s, `"startTime":`, p.StartTime)
	buf = strField(buf, s, `"exeSha256":`, p.ExeSha256)
	buf = u64Field(buf, s, `"exeInode":`, p.ExeInode)
	buf = u64Field(buf, s, `"exeDev":`, p.ExeDev)
	buf = boolField(buf, s, `"exeUpperLayer":`, p.ExeUpperLayer)
	buf = boolField(buf, s, `"exeFileless":`, p.ExeFileless)
	buf = boolField(buf, s, `"exeOutsideRoot":`, p.ExeOutsideRoot)
	buf = boolField(buf, s, `"compat32":`, p.Compat32)
	buf = strField(buf, s, `"userName":`, p.UserName)
	if len(p.Lineage) > 0 {
		buf = append(key(buf, s, `"lineage":`), e.lineage(p.Lineage)...)
	}
	buf = u64Field(buf, s, `"capEffective":`, p.CapEffective)
	buf = strField(buf, s, `"groupName":`, p.GroupName)
	buf = tsField(buf, s, `"exeCtime":`, p.ExeCtime)
	buf = tsField(buf, s, `"exeMtime":`, p.ExeMtime)
	return append(buf, '}')
}

// lineage returns the JSON array of l, from the cache when l's backing
// array was written before.
func (e *JSONEncoder) lineage(l []*vigilv1.Ancestor) []byte {
	k := lineageKey{first: &l[0], n: len(l)}
	if b, ok := e.lineages[k]; ok {
		return b
	}
	buf := append(e.lscratch[:0], '[')
	for i, a := range l {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendAncestor(buf, a)
	}
	buf = append(buf, ']')
	e.lscratch = buf
	b := bytes.Clone(buf)
	if e.lineages == nil || len(e.lineages) >= 4096 {
		e.lineages = make(map[lineageKey][]byte, 256)
	}
	e.lineages[k] = b
	return b
}

func appendAncestor(buf []byte, a *vigilv1.Ancestor) []byte {
	if a == nil {
		// protojson writes an unset list element as an empty message.
		return append(buf, "{}"...)
	}
	buf = append(buf, '{')
	s := len(buf)
	buf = strField(buf, s, `"execId":`, a.ExecId)
	buf = strField(buf, s, `"parentExecId":`, a.ParentExecId)
	buf = u32Field(buf, s, `"pid":`, a.Pid)
	buf = u32Field(buf, s, `"nsPid":`, a.NsPid)
	buf = strField(buf, s, `"comm":`, a.Comm)
	buf = strField(buf, s, `"exePath":`, a.ExePath)
	buf = strsField(buf, s, `"args":`, a.Args)
	buf = u32Field(buf, s, `"uid":`, a.Uid)
	buf = u32Field(buf, s, `"euid":`, a.Euid)
	buf = tsField(buf, s, `"startTime":`, a.StartTime)
	return append(buf, '}')
}

func appendExec(buf []byte, x *vigilv1.Exec) []byte {
	if x == nil {
		return append(buf, "{}"...)
	}
	buf = append(buf, '{')
	s := len(buf)
	buf = strField(buf, s, `"filename":`, x.Filename)
	buf = u32Field(buf, s, `"flags":`, x.Flags)
	buf = i32Field(buf, s, `"dirfd":`, x.Dirfd)
	buf = boolField(buf, s, `"execveat":`, x.Execveat)
	buf = strField(buf, s, `"ldPreload":`, x.LdPreload)
	buf = strField(buf, s, `"ldLibraryPath":`, x.LdLibraryPath)
	buf = strsField(buf, s, `"stdio":`, x.Stdio)
	buf = strsField(buf, s, `"stdioRemote":`, x.StdioRemote)
	return append(buf, '}')
}

func appendFork(buf []byte, f *vigilv1.Fork) []byte {
	if f == nil {
		return append(buf, "{}"...)
	}
	buf = append(buf, '{')
	s := len(buf)
	buf = u32Field(buf, s, `"childPid":`, f.ChildPid)
	buf = strField(buf, s, `"childExecId":`, f.ChildExecId)
	return append(buf, '}')
}

func appendExit(buf []byte, x *vigilv1.Exit) []byte {
	if x == nil {
		return append(buf, "{}"...)
	}
	buf = append(buf, '{')
	s := len(buf)
	buf = i32Field(buf, s, `"code":`, x.Code)
	buf = i32Field(buf, s, `"signal":`, x.Signal)
	return append(buf, '}')
}

func appendDup(buf []byte, d *vigilv1.Dup) []byte {
	if d == nil {
		return append(buf, "{}"...)
	}
	buf = append(buf, '{')
	s := len(buf)
	buf = i32Field(buf, s, `"oldFd":`, d.OldFd)
	buf = i32Field(buf, s, `"newFd":`, d.NewFd)
	buf = strField(buf, s, `"oldFdKind":`, d.OldFdKind)
	if d.Remote != nil {
		buf = appendSocketAddress(key(buf, s, `"remote":`), d.Remote)
	}
	return append(buf, '}')
}

func appendSocketAddress(buf []byte, a *vigilv1.SocketAddress) []byte {
	buf = append(buf, '{')
	s := len(buf)
	buf = strField(buf, s, `"family":`, a.Family)
	buf = strField(buf, s, `"ip":`, a.Ip)
	buf = u32Field(buf, s, `"port":`, a.Port)
	buf = strField(buf, s, `"path":`, a.Path)
	return append(buf, '}')
}
