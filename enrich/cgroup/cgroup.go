// Package cgroup turns cgroup paths into container references: which
// container (and which pod or ECS task) a process's cgroup says it belongs
// to. It knows the path formats of Docker, containerd (plain and CRI),
// CRI-O, podman, Kubernetes with the systemd and cgroupfs drivers, ECS on
// EC2 (cgroup v1 and v2) and Fargate, and it maps cgroup ids back to paths
// for collectors that only have the id.
//
// Parsing looks at the last components of the path only, so it works the
// same for full paths and for paths seen from inside a cgroup namespace.
package cgroup

import (
	"bufio"
	"bytes"
	"strings"
)

// Runtime names reported for a container, as in vigil.v1.Container.runtime.
const (
	RuntimeDocker     = "docker"
	RuntimeContainerd = "containerd"
	RuntimeCRIO       = "cri-o"
	RuntimePodman     = "podman"
	// RuntimeCRI is a Kubernetes container under the cgroupfs driver, whose
	// path does not say which CRI runtime runs it.
	RuntimeCRI = "cri"
)

// Format names the path layout a reference was parsed from.
type Format string

// Path layouts ParsePath recognises.
const (
	FormatDocker            Format = "docker"             // /docker/<id>, docker-<id>.scope
	FormatContainerd        Format = "containerd"         // /<namespace>/<id>
	FormatKubernetesSystemd Format = "kubernetes-systemd" // kubepods-...-pod<uid>.slice/<runtime>-<id>.scope
	FormatKubernetesCgroupf Format = "kubernetes-cgroupfs"
	FormatCRIO              Format = "cri-o"   // crio-<id>.scope outside kubepods
	FormatPodman            Format = "podman"  // libpod-<id>.scope
	FormatECS               Format = "ecs"     // /ecs/<task>/<id>, ecstasks-<task>.slice/docker-<id>.scope
	FormatFargate           Format = "fargate" // /ecs/<task>/<task>-<n>
)

// Ref is what a cgroup path says about the container a process runs in.
type Ref struct {
	// ID is the container id as its runtime knows it.
	ID string
	// Runtime is one of the Runtime* names.
	Runtime string
	// Format is the path layout the reference came from.
	Format Format
	// Namespace is the containerd namespace, for plain containerd paths.
	Namespace string
	// PodUID is the Kubernetes pod uid (with dashes), for kubepods paths.
	PodUID string
	// TaskID is the ECS task id (32 hex digits, or a UUID for old
	// tasks), for ECS and Fargate paths.
	TaskID string
	// Weak is set when the format alone cannot prove the path is a
	// container (plain containerd /<namespace>/<id>): the caller should
	// treat the process as a host process if the runtime does not know the
	// id.
	Weak bool
}

// ContainerIDFromCgroupPath returns the container id and runtime named by a
// cgroup path (as in /proc/PID/cgroup), or ok=false for host processes.
func ContainerIDFromCgroupPath(path string) (id, runtime string, ok bool) {
	r, ok := ParsePath(path)
	return r.ID, r.Runtime, ok
}

// ParsePath parses a cgroup path into a container reference; ok is false
// when the path belongs to no container (host services, sessions, the
// root, pod-level slices, conmon monitors).
func ParsePath(path string) (Ref, bool) {
	path = strings.TrimRight(path, "/")
	if path == "" {
		return Ref{}, false
	}
	last, parent, grand, depth := lastComponents(path)

	// systemd scopes: <prefix>-<id>.scope.
	if scope, isScope := strings.CutSuffix(last, ".scope"); isScope {
		return parseScope(scope, parent)
	}

	// /ecs/<task>/<id> (ECS on EC2, cgroup v1) and /ecs/<task>/<task>-<n>
	// (Fargate).
	if grand == "ecs" && isTaskID(parent) {
		if isHex(last, 64) {
			return Ref{ID: last, Runtime: RuntimeDocker, Format: FormatECS, TaskID: parent}, true
		}
		if task, n, found := strings.Cut(last, "-"); found && task == parent && isDigits(n) {
			// Fargate runs tasks on containerd; the id is TMDE's DockerId.
			return Ref{ID: last, Runtime: RuntimeContainerd, Format: FormatFargate, TaskID: parent}, true
		}
		return Ref{}, false
	}

	if isHex(last, 64) {
		switch {
		case parent == "docker":
			return Ref{ID: last, Runtime: RuntimeDocker, Format: FormatDocker}, true
		case strings.HasPrefix(parent, "pod") && isPodUID(parent[3:]) && isKubepodsCgroupfs(path):
			return Ref{ID: last, Runtime: RuntimeCRI, Format: FormatKubernetesCgroupf, PodUID: parent[3:]}, true
		}
	}

	// Plain containerd: /<namespace>/<id>, exactly two components below
	// the (possibly namespaced) root.
	if depth == 2 && isContainerdNamespace(parent) && isIdentifier(last) && !reservedTopLevel(parent) {
		return Ref{ID: last, Runtime: RuntimeContainerd, Format: FormatContainerd, Namespace: parent, Weak: true}, true
	}
	return Ref{}, false
}

// parseScope handles systemd scope units: docker-<id>.scope,
// cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope, optionally
// below a kubepods pod slice or an ecstasks task slice.
func parseScope(scope, parent string) (Ref, bool) {
	var r Ref
	switch {
	case strings.HasPrefix(scope, "crio-conmon-"), strings.HasPrefix(scope, "libpod-conmon-"):
		// The monitor process of a container, not the container.
		return Ref{}, false
	case strings.HasPrefix(scope, "cri-containerd-"):
		r = Ref{ID: scope[len("cri-containerd-"):], Runtime: RuntimeContainerd}
	case strings.HasPrefix(scope, "docker-"):
		r = Ref{ID: scope[len("docker-"):], Runtime: RuntimeDocker, Format: FormatDocker}
	case strings.HasPrefix(scope, "crio-"):
		r = Ref{ID: scope[len("crio-"):], Runtime: RuntimeCRIO, Format: FormatCRIO}
	case strings.HasPrefix(scope, "libpod-"):
		r = Ref{ID: scope[len("libpod-"):], Runtime: RuntimePodman, Format: FormatPodman}
	default:
		return Ref{}, false
	}
	if !isHex(r.ID, 64) {
		return Ref{}, false
	}
	if slice, ok := strings.CutSuffix(parent, ".slice"); ok {
		if i := strings.LastIndex(slice, "-pod"); i >= 0 && strings.HasPrefix(slice, "kubepods") {
			uid := strings.ReplaceAll(slice[i+len("-pod"):], "_", "-")
			if isPodUID(uid) {
				r.PodUID = uid
				r.Format = FormatKubernetesSystemd
				return r, true
			}
		}
		if task, ok := strings.CutPrefix(slice, "ecstasks-"); ok && isHex(task, 32) {
			r.TaskID = task
			r.Format = FormatECS
			return r, true
		}
	}
	if r.Format == "" {
		// cri-containerd scope outside a pod slice: still containerd's CRI.
		r.Format = FormatKubernetesSystemd
	}
	return r, true
}

// lastComponents returns the last three components of a slash path,
// nearest first (missing ones are ""), and how many components it has.
func lastComponents(path string) (last, parent, grand string, depth int) {
	var parts []string
	for _, p := range strings.Split(path, "/") {
		if p != "" {
			parts = append(parts, p)
		}
	}
	depth = len(parts)
	at := func(i int) string {
		if i < 0 {
			return ""
		}
		return parts[i]
	}
	return at(depth - 1), at(depth - 2), at(depth - 3), depth
}

// isKubepodsCgroupfs reports whether a path has a "kubepods" component,
// which the cgroupfs driver puts at the top of every pod's cgroup.
func isKubepodsCgroupfs(path string) bool {
	return strings.Contains(path, "/kubepods/") || strings.HasPrefix(path, "kubepods/")
}

// reservedTopLevel names top-level cgroups that are never a containerd
// namespace, so /system.slice/foo is not read as a container.
func reservedTopLevel(name string) bool {
	switch name {
	case "docker", "ecs", "kubepods", "kubepods.slice", "system.slice", "user.slice",
		"machine.slice", "init.scope", "ecstasks.slice", "lxc", "lxc.payload", "podruntime", "runtime":
		return true
	}
	return strings.HasSuffix(name, ".slice") || strings.HasSuffix(name, ".scope") || strings.HasSuffix(name, ".service")
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// isTaskID accepts an ECS task id: 32 hex digits, or the UUID form of
// tasks launched before ECS moved to the new ARN format.
func isTaskID(s string) bool { return isHex(s, 32) || isPodUID(s) }

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isPodUID accepts a Kubernetes pod uid: 8-4-4-4-12 lowercase hex.
func isPodUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// isContainerdNamespace follows containerd's namespace rule: labels of
// [A-Za-z0-9] with inner '-' and '_', joined by dots.
func isContainerdNamespace(s string) bool {
	if s == "" || len(s) > 76 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			alnum := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
			if !alnum && !((c == '-' || c == '_') && i > 0 && i < len(label)-1) {
				return false
			}
		}
	}
	return true
}

// isIdentifier follows containerd's identifier rule for container ids:
// [A-Za-z0-9]+ separated by single '.', '_' or '-'.
func isIdentifier(s string) bool {
	if s == "" || len(s) > 76 {
		return false
	}
	prevSep := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			prevSep = false
		case c == '.' || c == '_' || c == '-':
			if prevSep {
				return false
			}
			prevSep = true
		default:
			return false
		}
	}
	return !prevSep
}

// PathFromProcCgroup picks the cgroup path to use from the contents of
// /proc/PID/cgroup: the first line whose path names a container, else the
// unified (cgroup v2, "0::") line, else the name=systemd line, else the
// first line.
func PathFromProcCgroup(data []byte) string {
	var unified, systemd, first string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		// hierarchy-id:controllers:path; the path may contain colons.
		_, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		controllers, path, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		if r, ok := ParsePath(path); ok && !r.Weak {
			return path
		}
		switch {
		case controllers == "" && unified == "":
			unified = path
		case controllers == "name=systemd" && systemd == "":
			systemd = path
		}
		if first == "" {
			first = path
		}
	}
	switch {
	case unified != "" && unified != "/":
		return unified
	case systemd != "":
		return systemd
	case unified != "":
		return unified
	}
	return first
}
