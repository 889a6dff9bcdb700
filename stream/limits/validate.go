// Package limits checks what a sensor sends against the backend's limits
// (sizes, counts, ids, timestamps, references) and turns a checked batch
// into the form later stages read. It depends on nothing but the event
// model, so its fuzz target runs fast.
package limits

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// Limits bound what a sensor may send. A batch over any of them is refused
// with codes.InvalidArgument naming the field and the limit.
type Limits struct {
	// MaxMessageBytes is the largest message gRPC accepts (after
	// decompression); larger ones fail with codes.ResourceExhausted before
	// they are decoded. Default 16 MiB.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// MaxBatchEvents is the most events one batch may carry. Default 10000.
	MaxBatchEvents int `yaml:"max_batch_events"`
	// MaxStringBytes bounds any one string: a path, an argument, a label.
	// Default 4096 (PATH_MAX).
	MaxStringBytes int `yaml:"max_string_bytes"`
	// MaxIDBytes bounds identifiers: sensor id, boot id, exec ids,
	// container id. Default 256.
	MaxIDBytes int `yaml:"max_id_bytes"`
	// MaxListItems bounds any repeated field or map: args, lineage, labels,
	// addresses. Default 1024.
	MaxListItems int `yaml:"max_list_items"`
}

// DefaultLimits returns the default Limits.
func DefaultLimits() Limits {
	return Limits{
		MaxMessageBytes: 16 << 20,
		MaxBatchEvents:  10000,
		MaxStringBytes:  4096,
		MaxIDBytes:      256,
		MaxListItems:    1024,
	}
}

// WithDefaults fills zero limits from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	if l.MaxMessageBytes == 0 {
		l.MaxMessageBytes = d.MaxMessageBytes
	}
	if l.MaxBatchEvents == 0 {
		l.MaxBatchEvents = d.MaxBatchEvents
	}
	if l.MaxStringBytes == 0 {
		l.MaxStringBytes = d.MaxStringBytes
	}
	if l.MaxIDBytes == 0 {
		l.MaxIDBytes = d.MaxIDBytes
	}
	if l.MaxListItems == 0 {
		l.MaxListItems = d.MaxListItems
	}
	return l
}

// Validate rejects negative limits.
func (l Limits) Validate() error {
	if l.MaxMessageBytes < 0 || l.MaxBatchEvents < 0 || l.MaxStringBytes < 0 || l.MaxIDBytes < 0 || l.MaxListItems < 0 {
		return errors.New("must not be negative")
	}
	return nil
}

// ValidationError says which field of a message broke which rule.
type ValidationError struct {
	// Field is the path of the field, as in "events[3].process.args[2]".
	Field string
	// Reason says what is wrong, with the limit when there is one.
	Reason string
}

// Error reads "field: reason".
func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

// validator walks one message; path building is deferred until an error so
// the common, valid, case allocates nothing.
type validator struct {
	l Limits
	b *vigilv1.Batch // for checking references; nil outside a batch
}

func invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ValidateHello checks the message that opens a stream.
func ValidateHello(h *vigilv1.Hello, l Limits) error {
	l = l.WithDefaults()
	if h == nil {
		return invalid("hello", "required as the first message")
	}
	if err := CheckID(h.GetSensorId(), l.MaxIDBytes); err != nil {
		return invalid("hello.sensor_id", "%v", err)
	}
	if err := CheckID(h.GetBootId(), l.MaxIDBytes); err != nil {
		return invalid("hello.boot_id", "%v", err)
	}
	v := validator{l: l}
	if h.Host != nil {
		if err := v.message("hello.host", h.Host.ProtoReflect()); err != nil {
			return err
		}
	}
	if err := v.str("hello.version", h.Version, l.MaxIDBytes); err != nil {
		return err
	}
	return nil
}

// ValidateHealth checks a sensor health report.
func ValidateHealth(h *vigilv1.SensorHealth, l Limits) error {
	l = l.WithDefaults()
	v := validator{l: l}
	// Return a nil error, not a nil *ValidationError in an error.
	if err := v.message("health", h.ProtoReflect()); err != nil {
		return err
	}
	return nil
}

// ValidateBatch checks a batch against l: ids, sequence, event count, and
// every string, list and timestamp of every event. It returns a
// *ValidationError for the first problem found.
func ValidateBatch(b *vigilv1.Batch, l Limits) error {
	l = l.WithDefaults()
	if b == nil {
		return invalid("batch", "required")
	}
	if err := CheckID(b.SensorId, l.MaxIDBytes); err != nil {
		return invalid("batch.sensor_id", "%v", err)
	}
	if err := CheckID(b.BootId, l.MaxIDBytes); err != nil {
		return invalid("batch.boot_id", "%v", err)
	}
	if b.Sequence == 0 {
		return invalid("batch.sequence", "must be at least 1")
	}
	if n := len(b.Events); n > l.MaxBatchEvents {
		return invalid("batch.events", "%d events exceeds limit %d (max_batch_events)", n, l.MaxBatchEvents)
	}
	if b.SentAt != nil {
		if err := checkTime(b.SentAt); err != nil {
			return invalid("batch.sent_at", "%v", err)
		}
	}
	v := validator{l: l, b: b}
	if err := v.shared(b); err != nil {
		return err
	}
	for i, e := range b.Events {
		if err := v.event(e); err != nil {
			err.Field = "batch.events[" + strconv.Itoa(i) + "]." + err.Field
			return err
		}
	}
	return nil
}

// event checks one event. The hot fields (process, lineage, container and
// the common kinds) are checked by hand because this runs for every event
// the backend receives; rarer kinds go through the reflective walk, which
// also covers fields added to the proto later.
func (v *validator) event(e *vigilv1.Event) *ValidationError {
	if e == nil {
		return invalid("", "null event")
	}
	if e.Time == nil {
		return invalid("time", "required")
	}
	if err := checkTime(e.Time); err != nil {
		return invalid("time", "%v", err)
	}
	if e.Kind == nil {
		return invalid("kind", "unset or unknown to this backend (one of exec, open, connect, ...)")
	}
	if err := v.ref("process", e.Process != nil, e.ProcessRef, len(v.b.GetProcesses()), true); err != nil {
		return err
	}
	if err := v.ref("container", e.Container != nil, e.ContainerRef, len(v.b.GetContainers()), false); err != nil {
		return err
	}
	if err := v.ref("kubernetes", e.Kubernetes != nil, e.KubernetesRef, len(v.b.GetPods()), false); err != nil {
		return err
	}
	if err := v.ref("ecs", e.Ecs != nil, e.EcsRef, len(v.b.GetEcsTasks()), false); err != nil {
		return err
	}
	if e.Process != nil {
		if err := v.process(e.Process); err != nil {
			err.Field = "process." + err.Field
			return err
		}
	}
	if err := v.str("cgroup_path", e.CgroupPath, v.l.MaxStringBytes); err != nil {
		return err
	}
	if err := v.str("errno", e.Errno, 32); err != nil {
		return err
	}
	if err := v.str("syscall", e.Syscall, 64); err != nil {
		return err
	}
	if err := v.str("sensor_id", e.SensorId, v.l.MaxIDBytes); err != nil {
		return err
	}
	if c := e.Container; c != nil {
		if err := v.container(c); err != nil {
			err.Field = "container." + err.Field
			return err
		}
	}
	if k := e.Kubernetes; k != nil {
		if err := v.message("kubernetes", k.ProtoReflect()); err != nil {
			return err
		}
	}
	if x := e.Ecs; x != nil {
		if err := v.message("ecs", x.ProtoReflect()); err != nil {
			return err
		}
	}
	if h := e.Host; h != nil {
		if err := v.message("host", h.ProtoReflect()); err != nil {
			return err
		}
	}
	switch k := e.Kind.(type) {
	case *vigilv1.Event_Exec:
		return v.exec(k.Exec)
	case *vigilv1.Event_Open:
		if k.Open == nil {
			return nil
		}
		if err := v.str("open.path", k.Open.Path, v.l.MaxStringBytes); err != nil {
			return err
		}
		return v.str("open.fstype", k.Open.Fstype, 64)
	case *vigilv1.Event_Connect:
		if k.Connect == nil {
			return nil
		}
		if err := v.addr("connect.remote", k.Connect.Remote); err != nil {
			return err
		}
		if err := v.addr("connect.local", k.Connect.Local); err != nil {
			return err
		}
		return v.str("connect.protocol", k.Connect.Protocol, 32)
	case *vigilv1.Event_Fork:
		if k.Fork == nil {
			return nil
		}
		return v.str("fork.child_exec_id", k.Fork.ChildExecId, v.l.MaxIDBytes)
	case *vigilv1.Event_Exit:
		return nil
	}
	// Every other kind: walk the oneof's message.
	fd := e.ProtoReflect().WhichOneof(e.ProtoReflect().Descriptor().Oneofs().ByName("kind"))
	if fd == nil {
		return invalid("kind", "unset or unknown to this backend")
	}
	return v.message(string(fd.Name()), e.ProtoReflect().Get(fd).Message())
}

// ref checks that a context field is given inline or by a reference into
// the batch, not both, and that the reference is in range.
func (v *validator) ref(field string, inline bool, ref uint32, n int, required bool) *ValidationError {
	switch {
	case inline && ref != 0:
		return invalid(field+"_ref", "set together with %s", field)
	case int64(ref) > int64(n):
		return invalid(field+"_ref", "%d is past the batch's %d shared entries", ref, n)
	case required && !inline && ref == 0:
		return invalid(field, "required (inline or %s_ref)", field)
	}
	return nil
}

// shared checks the batch's shared context once; events refer to it.
func (v *validator) shared(b *vigilv1.Batch) *ValidationError {
	max := v.l.MaxBatchEvents
	for _, l := range [...]struct {
		name string
		n    int
	}{{"processes", len(b.Processes)}, {"containers", len(b.Containers)}, {"pods", len(b.Pods)}, {"ecs_tasks", len(b.EcsTasks)}} {
		if l.n > max {
			return invalid("batch."+l.name, "%d entries exceeds limit %d (max_batch_events)", l.n, max)
		}
	}
	at := func(list string, i int, err *ValidationError) *ValidationError {
		err.Field = prefix("batch."+list+"["+strconv.Itoa(i)+"]", err.Field)
		return err
	}
	for i, p := range b.Processes {
		if p == nil {
			return at("processes", i, invalid("", "null"))
		}
		if err := v.process(p); err != nil {
			return at("processes", i, err)
		}
	}
	for i, c := range b.Containers {
		if c == nil {
			return at("containers", i, invalid("", "null"))
		}
		if err := v.container(c); err != nil {
			return at("containers", i, err)
		}
	}
	for i, k := range b.Pods {
		if err := v.walk(k.ProtoReflect()); err != nil {
			return at("pods", i, err)
		}
	}
	for i, x := range b.EcsTasks {
		if err := v.walk(x.ProtoReflect()); err != nil {
			return at("ecs_tasks", i, err)
		}
	}
	return nil
}

func (v *validator) process(p *vigilv1.Process) *ValidationError {
	max := v.l.MaxStringBytes
	if err := v.str("exec_id", p.ExecId, v.l.MaxIDBytes); err != nil {
		return err
	}
	if err := v.str("parent_exec_id", p.ParentExecId, v.l.MaxIDBytes); err != nil {
		return err
	}
	if err := v.str("comm", p.Comm, 64); err != nil {
		return err
	}
	if err := v.str("exe_path", p.ExePath, max); err != nil {
		return err
	}
	if err := v.strs("args", p.Args, max); err != nil {
		return err
	}
	if err := v.str("cwd", p.Cwd, max); err != nil {
		return err
	}
	if p.StartTime != nil {
		if err := checkTime(p.StartTime); err != nil {
			return invalid("start_time", "%v", err)
		}
	}
	if err := v.str("exe_sha256", p.ExeSha256, 64); err != nil {
		return err
	}
	if err := v.str("user_name", p.UserName, 256); err != nil {
		return err
	}
	if n := len(p.Lineage); n > v.l.MaxListItems {
		return invalid("lineage", "%d ancestors exceeds limit %d (max_list_items)", n, v.l.MaxListItems)
	}
	for i, a := range p.Lineage {
		if err := v.ancestor(a); err != nil {
			err.Field = "lineage[" + strconv.Itoa(i) + "]." + err.Field
			return err
		}
	}
	return nil
}

func (v *validator) ancestor(a *vigilv1.Ancestor) *ValidationError {
	if a == nil {
		return invalid("", "null ancestor")
	}
	if err := v.str("exec_id", a.ExecId, v.l.MaxIDBytes); err != nil {
		return err
	}
	if err := v.str("parent_exec_id", a.ParentExecId, v.l.MaxIDBytes); err != nil {
		return err
	}
	if err := v.str("comm", a.Comm, 64); err != nil {
		return err
	}
	if err := v.str("exe_path", a.ExePath, v.l.MaxStringBytes); err != nil {
		return err
	}
	if err := v.strs("args", a.Args, v.l.MaxStringBytes); err != nil {
		return err
	}
	if a.StartTime != nil {
		if err := checkTime(a.StartTime); err != nil {
			return invalid("start_time", "%v", err)
		}
	}
	return nil
}

func (v *validator) container(c *vigilv1.Container) *ValidationError {
	if err := v.str("id", c.Id, v.l.MaxIDBytes); err != nil {
		return err
	}
	for _, f := range [...]struct {
		name, val string
	}{{"name", c.Name}, {"image", c.Image}, {"image_digest", c.ImageDigest}, {"runtime", c.Runtime}, {"namespace", c.Namespace}} {
		if err := v.str(f.name, f.val, v.l.MaxStringBytes); err != nil {
			return err
		}
	}
	if n := len(c.Labels); n > v.l.MaxListItems {
		return invalid("labels", "%d labels exceeds limit %d (max_list_items)", n, v.l.MaxListItems)
	}
	for k, val := range c.Labels {
		if err := v.str("labels", k, v.l.MaxStringBytes); err != nil {
			return err
		}
		if err := v.str("labels["+k+"]", val, v.l.MaxStringBytes); err != nil {
			return err
		}
	}
	if c.StartedAt != nil {
		if err := checkTime(c.StartedAt); err != nil {
			return invalid("started_at", "%v", err)
		}
	}
	return nil
}

func (v *validator) exec(x *vigilv1.Exec) *ValidationError {
	if x == nil {
		return nil
	}
	max := v.l.MaxStringBytes
	if err := v.str("exec.filename", x.Filename, max); err != nil {
		return err
	}
	if err := v.str("exec.ld_preload", x.LdPreload, max); err != nil {
		return err
	}
	if err := v.str("exec.ld_library_path", x.LdLibraryPath, max); err != nil {
		return err
	}
	if err := v.strs("exec.stdio", x.Stdio, 64); err != nil {
		return err
	}
	return v.strs("exec.stdio_remote", x.StdioRemote, 256)
}

// socketFamilies are the values SocketAddress.family may take.
var socketFamilies = map[string]bool{"": true, "inet": true, "inet6": true, "unix": true}

func (v *validator) addr(field string, a *vigilv1.SocketAddress) *ValidationError {
	if a == nil {
		return nil
	}
	if !socketFamilies[a.Family] {
		return invalid(prefix(field, "family"), "%q is not one of inet, inet6, unix", Truncate(a.Family))
	}
	if err := v.str(prefix(field, "ip"), a.Ip, 64); err != nil {
		return err
	}
	if a.Port > 65535 {
		return invalid(prefix(field, "port"), "%d is not a port", a.Port)
	}
	return v.str(prefix(field, "path"), a.Path, v.l.MaxStringBytes)
}

func (v *validator) str(field, s string, max int) *ValidationError {
	if len(s) > max {
		return invalid(field, "%d bytes exceeds limit %d", len(s), max)
	}
	return nil
}

func (v *validator) strs(field string, ss []string, max int) *ValidationError {
	if len(ss) > v.l.MaxListItems {
		return invalid(field, "%d items exceeds limit %d (max_list_items)", len(ss), v.l.MaxListItems)
	}
	for i, s := range ss {
		if len(s) > max {
			return invalid(field+"["+strconv.Itoa(i)+"]", "%d bytes exceeds limit %d", len(s), max)
		}
	}
	return nil
}

// message walks any message reflectively: every string within
// MaxStringBytes, every list and map within MaxListItems, every timestamp
// valid, every socket address family known. Field paths are built only on
// error, so a valid message costs no allocation.
func (v *validator) message(field string, m protoreflect.Message) *ValidationError {
	if err := v.walk(m); err != nil {
		err.Field = prefix(field, err.Field)
		return err
	}
	return nil
}

func prefix(parent, child string) string {
	switch {
	case child == "":
		return parent
	case child[0] == '[':
		return parent + child
	default:
		return parent + "." + child
	}
}

// walk returns errors with Field relative to m.
func (v *validator) walk(m protoreflect.Message) *ValidationError {
	switch x := m.Interface().(type) {
	case *timestamppb.Timestamp:
		if err := checkTime(x); err != nil {
			return invalid("", "%v", err)
		}
		return nil
	case *vigilv1.SocketAddress:
		return v.addr("", x)
	}
	var verr *ValidationError
	m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		name := string(fd.Name())
		switch {
		case fd.IsList():
			l := val.List()
			if l.Len() > v.l.MaxListItems {
				verr = invalid(name, "%d items exceeds limit %d (max_list_items)", l.Len(), v.l.MaxListItems)
				return false
			}
			for i := 0; i < l.Len(); i++ {
				if verr = v.value(fd, l.Get(i)); verr != nil {
					verr.Field = prefix(name+"["+strconv.Itoa(i)+"]", verr.Field)
					return false
				}
			}
		case fd.IsMap():
			mp := val.Map()
			if mp.Len() > v.l.MaxListItems {
				verr = invalid(name, "%d entries exceeds limit %d (max_list_items)", mp.Len(), v.l.MaxListItems)
				return false
			}
			mp.Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if verr = v.value(fd.MapKey(), k.Value()); verr != nil {
					verr.Field = name
					return false
				}
				if verr = v.value(fd.MapValue(), mv); verr != nil {
					verr.Field = prefix(name+"["+strconv.Quote(Truncate(k.String()))+"]", verr.Field)
					return false
				}
				return true
			})
		default:
			if verr = v.value(fd, val); verr != nil {
				verr.Field = prefix(name, verr.Field)
			}
		}
		return verr == nil
	})
	return verr
}

// value checks one value of field fd; errors have Field relative to it.
func (v *validator) value(fd protoreflect.FieldDescriptor, val protoreflect.Value) *ValidationError {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return v.str("", val.String(), v.l.MaxStringBytes)
	case protoreflect.BytesKind:
		if n := len(val.Bytes()); n > v.l.MaxStringBytes {
			return invalid("", "%d bytes exceeds limit %d", n, v.l.MaxStringBytes)
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return v.walk(val.Message())
	}
	return nil
}

// CheckID accepts a non-empty identifier of printable ASCII without spaces,
// so ids are safe in logs, file names and SQL keys.
func CheckID(s string, max int) error {
	if s == "" {
		return errors.New("required")
	}
	if len(s) > max {
		return fmt.Errorf("%d bytes exceeds limit %d", len(s), max)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("byte %d (0x%02x) is not printable ASCII", i, c)
		}
	}
	return nil
}

// checkTime accepts timestamps protobuf can represent (years 1 to 9999).
func checkTime(ts *timestamppb.Timestamp) error {
	if err := ts.CheckValid(); err != nil {
		return errors.New("not a valid timestamp")
	}
	return nil
}

// Truncate shortens attacker-chosen text before it goes into an error.
func Truncate(s string) string {
	if len(s) <= 64 {
		return s
	}
	s = s[:64]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "..."
}

// Resolve turns a batch from its wire form into the form every later stage
// reads: each event's process, container, pod and ECS task filled in from
// the batch's shared entries (by pointer, so they stay shared), the host
// from the stream's Hello, and the sensor id from the batch. Call it only
// on a batch ValidateBatch accepted: it relies on the references being in
// range.
func Resolve(b *vigilv1.Batch, host *vigilv1.Host) {
	for _, e := range b.Events {
		if e.ProcessRef != 0 {
			e.Process, e.ProcessRef = b.Processes[e.ProcessRef-1], 0
		}
		if e.ContainerRef != 0 {
			e.Container, e.ContainerRef = b.Containers[e.ContainerRef-1], 0
		}
		if e.KubernetesRef != 0 {
			e.Kubernetes, e.KubernetesRef = b.Pods[e.KubernetesRef-1], 0
		}
		if e.EcsRef != 0 {
			e.Ecs, e.EcsRef = b.EcsTasks[e.EcsRef-1], 0
		}
		e.SensorId = b.SensorId
		if e.Host == nil {
			e.Host = host
		}
	}
	b.Processes, b.Containers, b.Pods, b.EcsTasks = nil, nil, nil, nil
}
