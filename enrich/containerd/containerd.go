// Package containerd looks up container metadata in containerd: name,
// image reference and digest, labels, runtime, creation time and whether
// the container is privileged, across every namespace (default, k8s.io for
// Kubernetes' CRI, moby for Docker, ...).
package containerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrNotFound means no namespace holds a container with the id.
var ErrNotFound = errors.New("container not found")

// Labels containerd's CRI plugin and nerdctl put on containers.
const (
	LabelCRIKind          = "io.cri-containerd.kind"
	LabelPodName          = "io.kubernetes.pod.name"
	LabelPodNamespace     = "io.kubernetes.pod.namespace"
	LabelPodUID           = "io.kubernetes.pod.uid"
	LabelContainerName    = "io.kubernetes.container.name"
	LabelNerdctlName      = "nerdctl/name"
	criKindSandbox        = "sandbox"
	namespaceListLifetime = 30 * time.Second
)

// Info is what containerd knows of one container.
type Info struct {
	ID        string
	Namespace string
	// Name is the CRI or nerdctl container name, else the id.
	Name string
	// Image is the image reference; empty for containers run from a plain
	// directory (ctr run --rootfs) and for Docker's containers, whose
	// images Docker keeps to itself.
	Image       string
	ImageDigest string
	// Rootfs is the OCI spec's root path.
	Rootfs string
	// RuntimeHandler is containerd's runtime name (io.containerd.runc.v2).
	RuntimeHandler string
	Labels         map[string]string
	CreatedAt      time.Time
	// Privileged is true when the OCI spec grants CAP_SYS_ADMIN (or every
	// capability) and access to every device, as --privileged does.
	Privileged bool
	// PodLabels are the labels of the pod's sandbox, for CRI containers.
	PodLabels map[string]string
}

// Client reads container metadata from one containerd socket.
type Client struct {
	c       *client.Client
	timeout time.Duration

	mu       sync.Mutex
	nsList   []string
	nsListAt time.Time
}

// Dial connects to containerd on socket and checks that it answers. A
// missing socket is reported as os.ErrNotExist so callers can tell "no
// containerd here" from "containerd is broken".
func Dial(ctx context.Context, socket string, timeout time.Duration) (*Client, error) {
	if _, err := os.Stat(socket); err != nil {
		return nil, fmt.Errorf("containerd socket %s: %w", socket, err)
	}
	c, err := client.New(socket, client.WithTimeout(timeout))
	if err != nil {
		return nil, fmt.Errorf("connect containerd: %w", err)
	}
	cl := &Client{c: c, timeout: timeout}
	if _, err := cl.namespaces(ctx, true); err != nil {
		c.Close()
		return nil, err
	}
	return cl, nil
}

// Close releases the connection.
func (c *Client) Close() error { return c.c.Close() }

// namespaces returns containerd's namespaces, cached briefly because every
// miss in a namespace-less lookup needs them.
func (c *Client) namespaces(ctx context.Context, refresh bool) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !refresh && c.nsList != nil && time.Since(c.nsListAt) < namespaceListLifetime {
		return c.nsList, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	list, err := c.c.NamespaceService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containerd namespaces: %w", err)
	}
	c.nsList, c.nsListAt = list, time.Now()
	return list, nil
}

// Lookup finds container id, first in namespace hint (when set), then in
// every other namespace. It returns ErrNotFound when no namespace has it.
func (c *Client) Lookup(ctx context.Context, hint, id string) (*Info, error) {
	list, err := c.namespaces(ctx, false)
	if err != nil {
		return nil, err
	}
	order := make([]string, 0, len(list)+1)
	if hint != "" {
		order = append(order, hint)
	}
	for _, ns := range list {
		if ns != hint {
			order = append(order, ns)
		}
	}
	for _, ns := range order {
		info, err := c.lookupIn(ctx, ns, id)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return info, nil
	}
	// A namespace created since the list was cached may hold it; refresh
	// once so new namespaces are seen without waiting for the lifetime.
	fresh, err := c.namespaces(ctx, true)
	if err != nil {
		return nil, err
	}
	for _, ns := range fresh {
		if slices.Contains(order, ns) {
			continue
		}
		info, err := c.lookupIn(ctx, ns, id)
		if err == nil {
			return info, nil
		}
		if !errdefs.IsNotFound(err) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("containerd %s: %w", id, ErrNotFound)
}

func (c *Client) lookupIn(ctx context.Context, ns, id string) (*Info, error) {
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(ctx, ns), c.timeout)
	defer cancel()
	ctr, err := c.c.ContainerService().Get(ctx, id)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, err
		}
		return nil, fmt.Errorf("get container %s/%s: %w", ns, id, err)
	}
	info := &Info{
		ID:             ctr.ID,
		Namespace:      ns,
		Name:           containerName(ctr),
		Image:          ctr.Image,
		RuntimeHandler: ctr.Runtime.Name,
		Labels:         ctr.Labels,
		CreatedAt:      ctr.CreatedAt,
	}
	if spec, err := parseSpec(ctr); err == nil {
		info.Privileged = Privileged(spec)
		if spec.Root != nil {
			info.Rootfs = spec.Root.Path
		}
	}
	if ctr.Image != "" {
		// The image may have been removed since the container was made;
		// the reference is still worth reporting without a digest.
		if img, err := c.c.ImageService().Get(ctx, ctr.Image); err == nil {
			info.ImageDigest = img.Target.Digest.String()
		} else if strings.HasPrefix(ctr.Image, "sha256:") {
			info.ImageDigest = ctr.Image
		}
	}
	if uid := ctr.Labels[LabelPodUID]; uid != "" && ctr.Labels[LabelCRIKind] != criKindSandbox {
		info.PodLabels = c.podLabels(ctx, uid)
	}
	return info, nil
}

// podLabels reads a pod's labels from its CRI sandbox container, whose
// containerd labels are the pod's labels plus the CRI's own.
func (c *Client) podLabels(ctx context.Context, uid string) map[string]string {
	list, err := c.c.ContainerService().List(ctx,
		fmt.Sprintf(`labels."%s"==%s,labels."%s"==%s`, LabelCRIKind, criKindSandbox, LabelPodUID, uid))
	if err != nil || len(list) == 0 {
		return nil
	}
	out := make(map[string]string)
	for k, v := range list[0].Labels {
		if strings.HasPrefix(k, "io.kubernetes.") || strings.HasPrefix(k, "io.cri-containerd.") {
			continue
		}
		out[k] = v
	}
	return out
}

func containerName(c containers.Container) string {
	for _, key := range []string{LabelContainerName, LabelNerdctlName} {
		if v := c.Labels[key]; v != "" {
			return v
		}
	}
	return c.ID
}

func parseSpec(c containers.Container) (*specs.Spec, error) {
	if c.Spec == nil {
		return nil, errors.New("container has no spec")
	}
	var s specs.Spec
	if err := json.Unmarshal(c.Spec.GetValue(), &s); err != nil {
		return nil, fmt.Errorf("decode oci spec: %w", err)
	}
	return &s, nil
}

// Privileged reports whether an OCI spec describes a privileged container:
// CAP_SYS_ADMIN in the effective set (every --privileged container has it
// along with all other capabilities) and a device cgroup rule allowing
// every device.
func Privileged(s *specs.Spec) bool {
	if s == nil || s.Process == nil || s.Process.Capabilities == nil {
		return false
	}
	if !slices.Contains(s.Process.Capabilities.Effective, "CAP_SYS_ADMIN") {
		return false
	}
	if s.Linux == nil || s.Linux.Resources == nil {
		return false
	}
	// Device rules apply in order, so the last rule covering every device
	// decides.
	all := false
	for _, d := range s.Linux.Resources.Devices {
		if (d.Type == "" || d.Type == "a") && d.Major == nil && d.Minor == nil {
			all = d.Allow
		}
	}
	return all
}
