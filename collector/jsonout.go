package collector

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"

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
	cache map[any][]byte
}

// AppendEvent appends ev's JSON to buf. The envelope and the file-open
// body (the bulk of a busy host's events) are written field by field; other
// bodies go through protobuf reflection.
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
		buf = append(buf, e.shared(ev.Process, ev.Process.ProtoReflect)...)
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
	switch k := ev.Kind.(type) {
	case nil:
	case *vigilv1.Event_Open:
		sep()
		buf = append(buf, `"open":`...)
		buf = appendFileOpen(buf, k.Open)
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

func appendTimestamp(buf []byte, sec int64, nsec int32) []byte {
	buf = append(buf, '"')
	buf = time.Unix(sec, int64(nsec)).UTC().AppendFormat(buf, time.RFC3339Nano)
	return append(buf, '"')
}

// shared returns the JSON of a message that events share by pointer
// (process, container, pod, task), encoding it once.
func (e *JSONEncoder) shared(key any, m func() protoreflect.Message) []byte {
	if b, ok := e.cache[key]; ok {
		return b
	}
	b := appendMessage(nil, m())
	if e.cache == nil || len(e.cache) >= 4096 {
		e.cache = make(map[any][]byte, 4096)
	}
	e.cache[key] = b
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
