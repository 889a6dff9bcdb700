package findings

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilsec/vigil/detect"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// SchemaVersion is the finding format version, as GuardDuty's.
const SchemaVersion = "2.0"

// MaxEvidenceEvents bounds the events kept in a finding's evidence; a
// repeated finding keeps the latest. Every repeat decodes and encodes them,
// so the bound is what aggregation costs.
const MaxEvidenceEvents = 5

// maxCommandLine bounds command lines copied into findings: they are
// attacker-controlled and may be huge.
const maxCommandLine = 4096

// Resource types, as GuardDuty names them.
const (
	ResourceInstance   = "Instance"
	ResourceECSCluster = "ECSCluster"
	ResourceEKSCluster = "EKSCluster"
	ResourceContainer  = "Container"
)

// SeverityLabel returns GuardDuty's label for a severity: Low 1-3.9,
// Medium 4-6.9, High 7-8.9, Critical 9-10.
func SeverityLabel(sev float64) string {
	switch {
	case sev >= 9:
		return "Critical"
	case sev >= 7:
		return "High"
	case sev >= 4:
		return "Medium"
	default:
		return "Low"
	}
}

// SeverityOf returns the rule's severity, or one derived from its Falco
// priority when the rule has none. Critical (9+) is kept for attack
// sequences, as GuardDuty does, so no single rule priority maps there.
func SeverityOf(r *detect.RuleInfo) float64 {
	if r == nil {
		return 5
	}
	if r.Severity > 0 {
		return min(max(r.Severity, 1), 10)
	}
	switch strings.ToUpper(r.Priority) {
	case "EMERGENCY", "ALERT", "CRITICAL":
		return 8
	case "ERROR":
		return 7
	case "WARNING":
		return 5
	case "NOTICE":
		return 3
	case "INFORMATIONAL", "INFO":
		return 2
	case "DEBUG":
		return 1
	}
	return 5
}

// Candidate is a finding built from one alert, before aggregation: the
// finding and the keys the store aggregates and correlates on.
type Candidate struct {
	// Finding is the new finding (count 1, fresh id).
	Finding *vigilv1.Finding
	// Fingerprint identifies "the same finding": type, rule, resource and
	// the distinguishing fields. Repeats with the same fingerprint update
	// one stored finding.
	Fingerprint string
	// ResourceKey names the workload for attack-sequence correlation: the
	// ECS task, the Kubernetes pod, the container, or the host.
	ResourceKey string
}

// Build turns an alert into a candidate finding stamped with now. The acting
// event is the alert's last evidence event.
func Build(a *detect.Alert, now time.Time) (*Candidate, error) {
	if a == nil || a.Rule == nil {
		return nil, fmt.Errorf("alert without rule")
	}
	events := make([]*vigilv1.Event, 0, len(a.Events))
	for _, e := range a.Events {
		if e != nil {
			events = append(events, e)
		}
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("alert %q without events", a.Rule.Name)
	}
	ev := events[len(events)-1]
	typ := a.Rule.FindingType
	if typ == "" {
		typ = "Vigil:Runtime/" + sanitizeTypeName(a.Rule.Name)
	}
	sev := SeverityOf(a.Rule)
	at := a.Time
	if at.IsZero() && ev.GetTime() != nil {
		at = ev.GetTime().AsTime()
	}
	if at.IsZero() {
		at = now
	}
	res, resKey, fpRes := buildResource(ev)
	f := &vigilv1.Finding{
		Id:            NewID(),
		Type:          typ,
		Severity:      sev,
		SeverityLabel: SeverityLabel(sev),
		CreatedAt:     timestamppb.New(now),
		UpdatedAt:     timestamppb.New(now),
		SchemaVersion: SchemaVersion,
		AccountId:     ev.GetHost().GetAccountId(),
		Region:        ev.GetHost().GetRegion(),
		Resource:      res,
		Service: &vigilv1.Service{
			ServiceName:    "vigil",
			FeatureName:    "RuntimeMonitoring",
			Count:          1,
			EventFirstSeen: timestamppb.New(at),
			EventLastSeen:  timestamppb.New(at),
			RuntimeDetails: &vigilv1.RuntimeDetails{
				Process: processDetails(ev.GetProcess()),
				Context: &vigilv1.RuntimeContext{},
			},
		},
		Evidence: &vigilv1.Evidence{
			Rule:     validUTF8(a.Rule.Name),
			Output:   validUTF8(a.Output),
			RuleKind: a.Rule.Kind,
			Events:   evidenceEvents(events),
			Fields:   map[string]string{},
		},
		MitreTactics:    append([]string(nil), a.Rule.MitreTactics...),
		MitreTechniques: append([]string(nil), a.Rule.MitreTechniques...),
	}
	if f.AccountId != "" {
		f.Partition = "aws"
	}
	if f.Evidence.RuleKind == "" {
		f.Evidence.RuleKind = "falco"
	}
	ctx := f.Service.RuntimeDetails.Context
	for i, e := range events {
		deriveContext(ctx, typ, e, i < len(events)-1, ev)
	}
	applyAlertContext(f, a.Context)
	for k, v := range a.Captures {
		f.Evidence.Fields[validUTF8(k)] = validUTF8(v)
	}
	f.Title, f.Description = describe(f, a)

	// A rule's group_by values, when it has them, stand for the executable:
	// every command of one reverse shell session is one finding.
	who := ev.GetProcess().GetExePath()
	if a.GroupKey != "" {
		who = "group\x00" + a.GroupKey
	}
	fp := fingerprint(typ, a.Rule.Name, fpRes, who, a.Context)
	return &Candidate{Finding: f, Fingerprint: fp, ResourceKey: resKey}, nil
}

// NewID returns a random finding id of 32 hex characters, as GuardDuty's.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// volatileContextKeys change on every repeat of the same behaviour (a
// different command line of the same tool, another target pid), so they
// must not split one finding into many.
var volatileContextKeys = map[string]bool{
	"commandLineExample": true,
	"modifiedAt":         true,
	"targetProcess":      true,
	"memoryRegions":      true,
}

func fingerprint(typ, rule, resource, exe string, context map[string]string) string {
	h := sha256.New()
	for _, s := range []string{typ, rule, resource, exe} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	keys := make([]string, 0, len(context))
	for k := range context {
		if !volatileContextKeys[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{'='})
		h.Write([]byte(context[k]))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

var typeNameRe = regexp.MustCompile(`[^A-Za-z0-9.]+`)

func sanitizeTypeName(s string) string {
	s = typeNameRe.ReplaceAllString(s, "")
	if s == "" {
		s = "Rule"
	}
	if len(s) > 30 {
		s = s[:30]
	}
	return s
}

// buildResource returns the finding's resource, the correlation key (task,
// pod, container or host) and the resource part of the fingerprint (the
// container when there is one, so two containers of one task stay apart).
func buildResource(ev *vigilv1.Event) (*vigilv1.Resource, string, string) {
	host := ev.GetHost()
	res := &vigilv1.Resource{
		Hostname: host.GetHostname(),
		SensorId: ev.GetSensorId(),
	}
	if host.GetInstanceId() != "" {
		res.InstanceDetails = &vigilv1.InstanceDetails{
			InstanceId:       host.GetInstanceId(),
			InstanceType:     host.GetInstanceType(),
			ImageId:          host.GetAmiId(),
			AvailabilityZone: host.GetAvailabilityZone(),
		}
	}
	hostKey := "host:" + firstNonEmpty(host.GetInstanceId(), ev.GetSensorId(), host.GetHostname())
	var cd *vigilv1.ContainerDetails
	if c := ev.GetContainer(); c.GetId() != "" {
		cd = &vigilv1.ContainerDetails{
			ContainerRuntime: c.GetRuntime(),
			Id:               c.GetId(),
			Name:             c.GetName(),
			Image:            c.GetImage(),
		}
		if c.GetPrivileged() {
			cd.SecurityContext = &vigilv1.SecurityContext{Privileged: true}
		}
		if n := ev.GetKubernetes().GetContainerName(); n != "" && cd.Name == "" {
			cd.Name = n
		}
		if n := ev.GetEcs().GetContainerName(); n != "" && cd.Name == "" {
			cd.Name = n
		}
	}
	res.ContainerDetails = cd
	fpRes := hostKey
	if cd != nil {
		fpRes = hostKey + "/container:" + cd.Id
	}
	switch {
	case ev.GetEcs().GetTaskArn() != "":
		e := ev.GetEcs()
		res.ResourceType = ResourceECSCluster
		clusterName, clusterArn := ecsCluster(e.GetCluster(), e.GetTaskArn())
		td := &vigilv1.EcsTaskDetails{
			Arn:        e.GetTaskArn(),
			Version:    e.GetTaskRevision(),
			LaunchType: e.GetLaunchType(),
			Family:     e.GetTaskFamily(),
		}
		if p := arnPrefix(e.GetTaskArn()); p != "" && e.GetTaskFamily() != "" {
			td.DefinitionArn = p + "task-definition/" + e.GetTaskFamily()
			if e.GetTaskRevision() != "" {
				td.DefinitionArn += ":" + e.GetTaskRevision()
			}
		}
		if cd != nil {
			td.Containers = []*vigilv1.ContainerDetails{proto.Clone(cd).(*vigilv1.ContainerDetails)}
		}
		res.EcsClusterDetails = &vigilv1.EcsClusterDetails{Name: clusterName, Arn: clusterArn, TaskDetails: td}
		return res, "task:" + e.GetTaskArn(), "task:" + e.GetTaskArn() + "/" + fpRes
	case ev.GetKubernetes().GetPodName() != "":
		k := ev.GetKubernetes()
		res.ResourceType = ResourceEKSCluster
		wd := &vigilv1.KubernetesWorkloadDetails{
			Name:      k.GetPodName(),
			Type:      "pods",
			Uid:       k.GetPodUid(),
			Namespace: k.GetNamespace(),
		}
		if cd != nil {
			wd.Containers = []*vigilv1.ContainerDetails{proto.Clone(cd).(*vigilv1.ContainerDetails)}
		}
		res.KubernetesDetails = &vigilv1.KubernetesDetails{KubernetesWorkloadDetails: wd}
		pod := "pod:" + k.GetNamespace() + "/" + firstNonEmpty(k.GetPodUid(), k.GetPodName())
		return res, pod, pod + "/" + fpRes
	case cd != nil:
		res.ResourceType = ResourceContainer
		return res, hostKey + "/container:" + cd.Id, fpRes
	default:
		res.ResourceType = ResourceInstance
		if res.InstanceDetails == nil {
			res.InstanceDetails = &vigilv1.InstanceDetails{}
		}
		return res, hostKey, fpRes
	}
}

// ecsCluster returns the cluster's short name and ARN. On EC2 the cluster is
// a short name, on Fargate a full ARN; the task ARN supplies what is missing.
func ecsCluster(cluster, taskArn string) (string, string) {
	if strings.HasPrefix(cluster, "arn:") {
		name := cluster
		if i := strings.LastIndex(cluster, "/"); i >= 0 {
			name = cluster[i+1:]
		}
		return name, cluster
	}
	if cluster == "" {
		// New-style task ARNs carry the cluster: task/<cluster>/<id>.
		parts := strings.Split(taskArn, "/")
		if len(parts) == 3 {
			cluster = parts[1]
		}
	}
	if p := arnPrefix(taskArn); p != "" && cluster != "" {
		return cluster, p + "cluster/" + cluster
	}
	return cluster, ""
}

// arnPrefix returns "arn:aws:ecs:region:account:" of an ECS ARN.
func arnPrefix(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 || parts[0] != "arn" {
		return ""
	}
	return strings.Join(parts[:5], ":") + ":"
}

func processDetails(p *vigilv1.Process) *vigilv1.ProcessDetails {
	if p == nil {
		return nil
	}
	name := p.GetComm()
	if name == "" && p.GetExePath() != "" {
		name = path.Base(p.GetExePath())
	}
	d := &vigilv1.ProcessDetails{
		Name:             name,
		ExecutablePath:   p.GetExePath(),
		ExecutableSha256: p.GetExeSha256(),
		NamespacePid:     p.GetNsPid(),
		Pwd:              p.GetCwd(),
		Pid:              p.GetPid(),
		StartTime:        p.GetStartTime(),
		Uuid:             p.GetExecId(),
		ParentUuid:       p.GetParentExecId(),
		User:             p.GetUserName(),
		UserId:           p.GetUid(),
		Euid:             p.GetEuid(),
		CommandLine:      commandLine(p.GetArgs()),
	}
	for _, a := range p.GetLineage() {
		n := a.GetComm()
		if n == "" && a.GetExePath() != "" {
			n = path.Base(a.GetExePath())
		}
		d.Lineage = append(d.Lineage, &vigilv1.LineageObject{
			StartTime:      a.GetStartTime(),
			NamespacePid:   a.GetNsPid(),
			UserId:         a.GetUid(),
			Name:           n,
			Pid:            a.GetPid(),
			Uuid:           a.GetExecId(),
			ExecutablePath: a.GetExePath(),
			Euid:           a.GetEuid(),
			ParentUuid:     a.GetParentExecId(),
		})
	}
	return d
}

func commandLine(args []string) string {
	s := strings.Join(args, " ")
	if len(s) > maxCommandLine {
		s = s[:maxCommandLine]
	}
	return validUTF8(s)
}

// validUTF8 replaces invalid UTF-8 (a rune cut by a length bound, raw bytes
// rendered into a rule's output), which protobuf refuses to encode: one bad
// string must not make a sensor's batch fail forever.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func lastEvents(evs []*vigilv1.Event, n int) []*vigilv1.Event {
	if len(evs) > n {
		evs = evs[len(evs)-n:]
	}
	return append([]*vigilv1.Event(nil), evs...)
}

// evidenceEvents copies the latest events for a finding's evidence without
// their host: the resource holds it once, and every stored byte is decoded
// and encoded again on each repeat.
func evidenceEvents(evs []*vigilv1.Event) []*vigilv1.Event {
	evs = lastEvents(evs, MaxEvidenceEvents)
	for i, ev := range evs {
		if ev.GetHost() != nil {
			c := proto.Clone(ev).(*vigilv1.Event)
			c.Host = nil
			evs[i] = c
		}
	}
	return evs
}

var procPidFileRe = regexp.MustCompile(`^/proc/([0-9]+)/(mem|exe)$`)

var shellHistoryNames = map[string]bool{
	".bash_history": true, ".zsh_history": true, ".sh_history": true,
	".ash_history": true, ".history": true, "fish_history": true,
}

const (
	oWronly = 0x1
	oRdwr   = 0x2
	oCreat  = 0x40
	oTrunc  = 0x200
)

// deriveContext fills the runtime context fields that the event's kind
// implies. earlier is true for evidence events before the acting one: a file
// change earlier in a sequence names the modifying process.
func deriveContext(ctx *vigilv1.RuntimeContext, typ string, e *vigilv1.Event, earlier bool, acting *vigilv1.Event) {
	fileChange := func(p, op string) {
		if earlier && e.GetProcess().GetExecId() != acting.GetProcess().GetExecId() {
			ctx.ModifyingProcess = processDetails(e.GetProcess())
			ctx.ModifiedAt = e.GetTime()
		} else if earlier {
			ctx.ModifiedAt = e.GetTime()
		}
		ctx.FilePath = p
		ctx.FileOperation = op
		if shellHistoryNames[path.Base(p)] {
			ctx.ShellHistoryFilePath = p
		}
	}
	switch k := e.GetKind().(type) {
	case *vigilv1.Event_Exec:
		if !earlier {
			ctx.CommandLineExample = commandLine(e.GetProcess().GetArgs())
		}
		if v := k.Exec.GetLdPreload(); v != "" {
			ctx.LdPreloadValue = v
		}
		if strings.Contains(typ, "MaliciousFileExecuted") {
			ctx.ThreatFilePath = e.GetProcess().GetExePath()
		}
		if strings.Contains(typ, "NewBinaryExecuted") && ctx.FilePath == "" {
			ctx.FilePath = e.GetProcess().GetExePath()
		}
	case *vigilv1.Event_Mount:
		ctx.MountSource = k.Mount.GetSource()
		ctx.MountTarget = k.Mount.GetTarget()
		ctx.FileSystemType = k.Mount.GetFstype()
		ctx.Flags = mountFlagNames(k.Mount.GetFlags())
	case *vigilv1.Event_Ptrace:
		if k.Ptrace.GetTargetPid() != 0 {
			ctx.TargetProcess = &vigilv1.ProcessDetails{Pid: k.Ptrace.GetTargetPid()}
		}
		ctx.Flags = appendUnique(ctx.Flags, k.Ptrace.GetRequestName())
	case *vigilv1.Event_ProcessVmWrite:
		ctx.TargetProcess = &vigilv1.ProcessDetails{Pid: k.ProcessVmWrite.GetTargetPid()}
	case *vigilv1.Event_ModuleLoad:
		ctx.ModuleFilePath = k.ModuleLoad.GetPath()
		if p := k.ModuleLoad.GetPath(); p != "" {
			ctx.ModuleName = strings.TrimSuffix(strings.TrimSuffix(path.Base(p), ".xz"), ".ko")
		}
	case *vigilv1.Event_Open:
		p := k.Open.GetPath()
		write := k.Open.GetFlags()&(oWronly|oRdwr|oCreat|oTrunc) != 0
		op := "open"
		if write {
			op = "open-for-write"
		}
		if earlier && write {
			fileChange(p, op)
		} else {
			ctx.FilePath = p
			ctx.FileOperation = op
			if write && shellHistoryNames[path.Base(p)] {
				ctx.ShellHistoryFilePath = p
			}
		}
		if path.Base(p) == "release_agent" {
			ctx.ReleaseAgentPath = p
		}
		if m := procPidFileRe.FindStringSubmatch(p); m != nil {
			if pid, err := strconv.ParseUint(m[1], 10, 32); err == nil {
				switch m[2] {
				case "mem":
					ctx.TargetProcess = &vigilv1.ProcessDetails{Pid: uint32(pid)}
				case "exe":
					if write {
						ctx.RuncBinaryPath = p
					}
				}
			}
		} else if write && path.Base(p) == "runc" {
			ctx.RuncBinaryPath = p
		}
		if strings.Contains(typ, "NewLibraryLoaded") && !earlier {
			ctx.LibraryPath = p
		}
	case *vigilv1.Event_Unlink:
		fileChange(k.Unlink.GetPath(), "unlink")
	case *vigilv1.Event_Rename:
		fileChange(k.Rename.GetNewPath(), "rename")
		ctx.RelatedFilePaths = appendUnique(ctx.RelatedFilePaths, k.Rename.GetOldPath())
	case *vigilv1.Event_Chmod:
		fileChange(k.Chmod.GetPath(), "chmod")
	case *vigilv1.Event_Chown:
		fileChange(k.Chown.GetPath(), "chown")
	case *vigilv1.Event_Link:
		op := "link"
		if k.Link.GetSymbolic() {
			op = "symlink"
		}
		fileChange(k.Link.GetLinkPath(), op)
		ctx.RelatedFilePaths = appendUnique(ctx.RelatedFilePaths, k.Link.GetTarget())
	case *vigilv1.Event_Truncate:
		fileChange(k.Truncate.GetPath(), "truncate")
	case *vigilv1.Event_Connect:
		setSocket(ctx, k.Connect.GetRemote(), k.Connect.GetProtocol())
	case *vigilv1.Event_Accept:
		setSocket(ctx, k.Accept.GetRemote(), k.Accept.GetProtocol())
	case *vigilv1.Event_Dup:
		if r := k.Dup.GetRemote(); r != nil {
			setSocket(ctx, r, "")
		}
	case *vigilv1.Event_DnsQuery:
		ctx.Domain = k.DnsQuery.GetName()
	case *vigilv1.Event_DnsAnswer:
		ctx.Domain = k.DnsAnswer.GetName()
		if a := k.DnsAnswer.GetAddresses(); len(a) > 0 {
			ctx.RemoteIp = a[0]
		}
	case *vigilv1.Event_Socket:
		ctx.AddressFamily = k.Socket.GetFamilyName()
		ctx.IanaProtocolNumber = uint32(max(k.Socket.GetProtocol(), 0))
	}
	if len(ctx.RelatedFilePaths) > 25 {
		ctx.RelatedFilePaths = ctx.RelatedFilePaths[len(ctx.RelatedFilePaths)-25:]
	}
}

func setSocket(ctx *vigilv1.RuntimeContext, a *vigilv1.SocketAddress, protocol string) {
	switch a.GetFamily() {
	case "unix":
		ctx.SocketPath = a.GetPath()
		ctx.AddressFamily = "AF_UNIX"
	case "inet":
		ctx.AddressFamily = "AF_INET"
	case "inet6":
		ctx.AddressFamily = "AF_INET6"
	}
	if a.GetIp() != "" {
		ctx.RemoteIp = a.GetIp()
		ctx.RemotePort = a.GetPort()
	}
	switch protocol {
	case "tcp":
		ctx.IanaProtocolNumber = 6
	case "udp":
		ctx.IanaProtocolNumber = 17
	}
}

func appendUnique(list []string, s string) []string {
	if s == "" {
		return list
	}
	for _, v := range list {
		if v == s {
			return list
		}
	}
	return append(list, s)
}

var mountFlags = []struct {
	bit  uint64
	name string
}{
	{0x1, "MS_RDONLY"}, {0x2, "MS_NOSUID"}, {0x4, "MS_NODEV"}, {0x8, "MS_NOEXEC"},
	{0x20, "MS_REMOUNT"}, {0x1000, "MS_BIND"}, {0x2000, "MS_MOVE"}, {0x4000, "MS_REC"},
	{0x40000, "MS_PRIVATE"}, {0x80000, "MS_SLAVE"}, {0x100000, "MS_SHARED"},
}

func mountFlagNames(flags uint64) []string {
	var out []string
	for _, f := range mountFlags {
		if flags&f.bit != 0 {
			out = append(out, f.name)
		}
	}
	return out
}

// applyAlertContext copies the rule's context values into the finding: keys
// that name a RuntimeContext field (by JSON name) set it, threatListName and
// threatNames fill the threat intelligence details, the rest become evidence
// fields.
func applyAlertContext(f *vigilv1.Finding, values map[string]string) {
	ctx := f.Service.RuntimeDetails.Context
	m := ctx.ProtoReflect()
	fields := m.Descriptor().Fields()
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		k, v := validUTF8(key), validUTF8(values[key])
		if k == "threatListName" || k == "threatNames" {
			continue
		}
		fd := fields.ByJSONName(k)
		if fd == nil {
			f.Evidence.Fields[k] = v
			continue
		}
		switch {
		case fd.IsList() && fd.Kind() == protoreflect.StringKind:
			l := m.Mutable(fd).List()
			l.Truncate(0)
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					l.Append(protoreflect.ValueOfString(s))
				}
			}
		case fd.Kind() == protoreflect.StringKind:
			m.Set(fd, protoreflect.ValueOfString(v))
		case fd.Kind() == protoreflect.Uint32Kind:
			if n, err := strconv.ParseUint(v, 10, 32); err == nil {
				m.Set(fd, protoreflect.ValueOfUint32(uint32(n)))
			} else {
				f.Evidence.Fields[k] = v
			}
		default:
			// Message fields (targetProcess, modifyingProcess) come from
			// events, not from strings.
			f.Evidence.Fields[k] = v
		}
	}
	if list := validUTF8(values["threatListName"]); list != "" {
		td := &vigilv1.ThreatIntelligenceDetail{ThreatListName: list}
		for _, n := range strings.Split(validUTF8(values["threatNames"]), ",") {
			if n = strings.TrimSpace(n); n != "" {
				td.ThreatNames = append(td.ThreatNames, n)
			}
		}
		if len(td.ThreatNames) == 0 {
			td.ThreatNames = appendUnique(nil, firstNonEmpty(ctx.Domain, ctx.RemoteIp))
		}
		f.Service.ThreatIntelligenceDetails = []*vigilv1.ThreatIntelligenceDetail{td}
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
