package findings

import (
	"fmt"
	"path"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigilsec/vigil/detect"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// baseTime is the fixed clock of the tests.
var baseTime = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

var testHost = &vigilv1.Host{
	Hostname: "ip-10-0-1-17", Kernel: "6.1.0", BootId: "boot-1", Os: "debian", Arch: "amd64",
	InstanceId: "i-0abc1234def567890", InstanceType: "m7g.large", AmiId: "ami-0123456789abcdef0",
	Region: "us-east-1", AccountId: "111122223333", AvailabilityZone: "us-east-1a",
}

// testProcess is a shell started by python, started by the app.
func testProcess(exe string, args ...string) *vigilv1.Process {
	return &vigilv1.Process{
		ExecId: "exec-" + exe, ParentExecId: "exec-python", Pid: 4242, Ppid: 4200, NsPid: 27,
		Comm: path.Base(exe), ExePath: exe, Args: args, Cwd: "/tmp", Uid: 0, Euid: 0,
		StartTime: timestamppb.New(baseTime.Add(-time.Minute)), ExeSha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		UserName: "root",
		Lineage: []*vigilv1.Ancestor{
			{ExecId: "exec-python", ParentExecId: "exec-app", Pid: 4200, NsPid: 20, Comm: "python3", ExePath: "/usr/bin/python3", Uid: 0, Euid: 0, StartTime: timestamppb.New(baseTime.Add(-time.Hour))},
			{ExecId: "exec-app", ParentExecId: "exec-init", Pid: 4100, NsPid: 1, Comm: "app", ExePath: "/usr/local/bin/app", Uid: 0, Euid: 0, StartTime: timestamppb.New(baseTime.Add(-2 * time.Hour))},
		},
	}
}

func testContainer(id string) *vigilv1.Container {
	return &vigilv1.Container{Id: id, Name: "web", Image: "111122223333.dkr.ecr.us-east-1.amazonaws.com/app:1.4.2", Runtime: "containerd", Namespace: "default"}
}

// placement selects the resource of a test event.
type placement int

const (
	onHost placement = iota
	inContainer
	inECS
	inPod
)

func testEvent(w placement, t time.Time, p *vigilv1.Process) *vigilv1.Event {
	ev := &vigilv1.Event{Time: timestamppb.New(t), Process: p, Host: testHost, SensorId: "sensor-a", Syscall: "execve"}
	if w != onHost {
		ev.Container = testContainer("c0ffee0123456789c0ffee0123456789c0ffee0123456789c0ffee0123456789")
	}
	switch w {
	case inECS:
		ev.Ecs = &vigilv1.Ecs{Cluster: "prod", TaskArn: "arn:aws:ecs:us-east-1:111122223333:task/prod/e40860c2b55a4200b03c3197f6c59714",
			TaskFamily: "app", TaskRevision: "3", ContainerName: "web", LaunchType: "EC2"}
	case inPod:
		ev.Kubernetes = &vigilv1.Kubernetes{PodName: "web-7d9f", Namespace: "shop", PodUid: "0d5c2a3e-1111-2222-3333-444455556666", ContainerName: "web"}
	}
	return ev
}

func execEvent(w placement, t time.Time, exe string, args ...string) *vigilv1.Event {
	ev := testEvent(w, t, testProcess(exe, args...))
	ev.Kind = &vigilv1.Event_Exec{Exec: &vigilv1.Exec{Filename: exe, Stdio: []string{"socket", "socket", "socket"}}}
	return ev
}

// rule returns rule metadata of one catalogue type.
func rule(name, typ string, sev float64, tactics ...string) *detect.RuleInfo {
	return &detect.RuleInfo{Name: name, Kind: "falco", Description: "Detects " + name, Priority: "WARNING",
		FindingType: typ, Severity: sev, MitreTactics: tactics, MitreTechniques: []string{"T1059.004"}, File: "builtin:test.yaml"}
}

var (
	ruleReverseShell = rule("Reverse shell", "Execution:Runtime/ReverseShell", 8, "TA0002")
	ruleDockerSocket = rule("Docker socket accessed", "PrivilegeEscalation:Runtime/DockerSocketAccessed", 5, "TA0004")
	ruleMount        = rule("Container mounts host directory", "PrivilegeEscalation:Runtime/ContainerMountsHostDirectory", 5, "TA0004")
	ruleDiscovery    = rule("Discovery command", "Discovery:Runtime/SuspiciousCommand", 2, "TA0007")
	ruleMiner        = rule("Crypto miner executed", "Impact:Runtime/CryptoMinerExecuted", 8, "TA0040")
	// One rule mapped to two tactics, as the catalogue's Docker socket rule is.
	ruleTwoTactics = rule("Container runtime socket accessed", "PrivilegeEscalation:Runtime/DockerSocketAccessed", 5, "TA0004", "TA0002")
)

// alertAt builds an alert of rule r from one exec of exe at t on w.
func alertAt(r *detect.RuleInfo, w placement, t time.Time, exe string) *detect.Alert {
	ev := execEvent(w, t, exe, exe, "-i")
	return &detect.Alert{Rule: r, Time: t, Output: fmt.Sprintf("%s by %s", r.Name, exe), Events: []*vigilv1.Event{ev}}
}
