package findings

import (
	"fmt"
	"strings"

	"github.com/vigilsec/vigil/detect"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// typeTitles says in a few words what each runtime finding family means; the
// title adds where it happened. Keyed by the type without its threat purpose
// ("Runtime/ReverseShell"), so the Persistence/PrivilegeEscalation/...
// variants of one family share a phrase.
var typeTitles = map[string]string{
	"Runtime/ReverseShell":                        "Reverse shell created",
	"Runtime/NewBinaryExecuted":                   "Newly created or modified binary executed",
	"Runtime/NewLibraryLoaded":                    "Newly created or modified library loaded",
	"Runtime/SuspiciousShellCreated":              "Suspicious shell created",
	"Runtime/DatabaseSpawnedShell":                "Database server started a shell",
	"Runtime/SuspiciousTool":                      "Suspicious tool executed",
	"Runtime/SuspiciousCommand":                   "Suspicious command executed",
	"Runtime/MaliciousFileExecuted":               "Known malicious file executed",
	"Runtime/MaliciousFileExecuted.Custom":        "File on your own threat list executed",
	"Runtime/CryptoMinerExecuted":                 "Cryptocurrency miner executed",
	"Runtime/DataDestruction":                     "Data destruction command run",
	"Runtime/KernelThreadMasquerading":            "Program disguised as a kernel thread",
	"Runtime/FilelessExecution":                   "Fileless execution",
	"Runtime/SelfDeletingExecutable":              "Program deleted its own executable",
	"Runtime/EmptyArgumentExec":                   "Program started with no arguments (argv-confusion exploit)",
	"Runtime/ProcessEnvironmentRead":              "Another process's environment read",
	"Runtime/ProcessMemoryRead":                   "Another process's memory read",
	"Runtime/ClusterCredentialsRead":              "Kubernetes cluster credentials read",
	"Runtime/KernelMemoryAccessed":                "Kernel or physical memory opened",
	"Runtime/ContainerCredentialsFetched":         "Container credentials fetched by a command-line tool",
	"Runtime/CompatModeExecution":                 "32-bit program executed, its system calls untraced",
	"Runtime/IoUringUsage":                        "io_uring set up, its I/O bypassing system calls",
	"Runtime/ProcessInjection.Proc":               "Process injection through /proc/<pid>/mem",
	"Runtime/ProcessInjection.Ptrace":             "Process injection through ptrace",
	"Runtime/ProcessInjection.VirtualMemoryWrite": "Process injection through process_vm_writev",
	"Runtime/PtraceAntiDebugging":                 "Anti-debugging with PTRACE_TRACEME",
	"Runtime/KernelModuleLoaded":                  "Kernel module loaded",
	"Runtime/CGroupsReleaseAgentModified":         "Container escape via cgroups release_agent",
	"Runtime/ContainerMountsHostDirectory":        "Container mounted a host directory",
	"Runtime/ContainerNamespaceEntered":           "Namespace entered from a container",
	"Runtime/UserNamespaceCreated":                "User namespace created in a container",
	"Runtime/DockerSocketAccessed":                "Container runtime socket accessed",
	"Runtime/RuncContainerEscape":                 "runc container escape attempt",
	"Runtime/UserfaultfdUsage":                    "userfaultfd used",
	"Runtime/ElevationToRoot":                     "Process elevated to root",
	"Runtime/SensitiveFileModified":               "Sensitive file modified",
	"Runtime/SystemBinaryModified":                "System program or library replaced",
	"Runtime/SensitiveFileRead":                   "Sensitive file read",
	"Runtime/MemoryMarkedExecutable":              "Memory made writable and executable",
	"Runtime/PortScan":                            "Port scan",
	"Runtime/RawSocketCreated":                    "Raw packet socket opened",
	"Runtime/ContainerEscapeKernelHook":           "Kernel hook for host execution written from a container",
	"Runtime/BpfProgramLoadedInContainer":         "BPF program loaded in a container",
	"Runtime/MetadataDNSRebind":                   "DNS rebinding to the instance metadata service",
	"Runtime/DNSDataExfiltration":                 "Data sent out through DNS queries",
	"Runtime/C&CActivity.B!DNS":                   "Command and control domain queried",
	"Runtime/C&CActivity.B":                       "Command and control server contacted",
	"Runtime/BitcoinTool.B!DNS":                   "Cryptocurrency domain queried",
	"Runtime/BitcoinTool.B":                       "Cryptocurrency server contacted",
	"Runtime/BlackholeTraffic":                    "Black-hole IP contacted",
	"Runtime/BlackholeTraffic!DNS":                "Domain redirected to a black hole queried",
	"Runtime/DGADomainRequest.C!DNS":              "Algorithmically generated domain queried",
	"Runtime/DriveBySourceTraffic!DNS":            "Drive-by download domain queried",
	"Runtime/DropPoint":                           "Data drop point contacted",
	"Runtime/DropPoint!DNS":                       "Data drop point domain queried",
	"Runtime/PhishingDomainRequest!DNS":           "Phishing domain queried",
	"Runtime/TorClient":                           "Tor network contacted",
	"Runtime/TorRelay":                            "Tor relay run",
	"Runtime/AbusedDomainRequest.Reputation":      "Low-reputation abused domain queried",
	"Runtime/BitcoinDomainRequest.Reputation":     "Low-reputation cryptocurrency domain queried",
	"Runtime/MaliciousDomainRequest.Reputation":   "Low-reputation malicious domain queried",
	"Runtime/SuspiciousDomainRequest.Reputation":  "Low-reputation suspicious domain queried",
}

// describe returns the finding's title and description. Both embed
// attacker-controlled strings (process names, paths); readers must render
// them as text.
func describe(f *vigilv1.Finding, a *detect.Alert) (string, string) {
	what := ""
	if i := strings.Index(f.Type, ":"); i >= 0 {
		what = typeTitles[f.Type[i+1:]]
	}
	if what == "" {
		what = firstNonEmpty(validUTF8(a.Rule.Name), f.Type)
	}
	proc := f.GetService().GetRuntimeDetails().GetProcess()
	by := ""
	if proc.GetName() != "" {
		by = fmt.Sprintf(" by process %s", proc.GetName())
	}
	title := what + by + " " + where(f.GetResource()) + "."
	desc := strings.TrimSpace(validUTF8(a.Rule.Description))
	if desc != "" && !strings.HasSuffix(desc, ".") {
		desc += "."
	}
	if a.Output != "" {
		if desc != "" {
			desc += " "
		}
		desc += validUTF8(a.Output)
	}
	if desc == "" {
		desc = title
	}
	return title, desc
}

// where names the resource for people: the container and its task or pod,
// or the host.
func where(r *vigilv1.Resource) string {
	c := r.GetContainerDetails()
	cname := firstNonEmpty(c.GetName(), shortID(c.GetId()))
	switch r.GetResourceType() {
	case ResourceECSCluster:
		td := r.GetEcsClusterDetails().GetTaskDetails()
		task := td.GetArn()
		if i := strings.LastIndex(task, "/"); i >= 0 {
			task = task[i+1:]
		}
		s := fmt.Sprintf("in ECS task %s", task)
		if n := r.GetEcsClusterDetails().GetName(); n != "" {
			s += " of cluster " + n
		}
		if cname != "" {
			s = fmt.Sprintf("in container %s ", cname) + s
		}
		return s
	case ResourceEKSCluster:
		w := r.GetKubernetesDetails().GetKubernetesWorkloadDetails()
		s := fmt.Sprintf("in pod %s/%s", w.GetNamespace(), w.GetName())
		if cname != "" {
			s = fmt.Sprintf("in container %s ", cname) + s
		}
		return s
	case ResourceContainer:
		s := fmt.Sprintf("in container %s", cname)
		if r.GetHostname() != "" {
			s += " on host " + r.GetHostname()
		}
		return s
	}
	return "on host " + firstNonEmpty(r.GetHostname(), r.GetInstanceDetails().GetInstanceId(), r.GetSensorId(), "(unknown)")
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
