// Package kubernetes reads pod metadata from the node's kubelet (GET
// /pods): pod labels and service account, which the CRI labels do not
// carry, and pod identity for runtimes Vigil cannot ask directly (CRI-O).
package kubernetes

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// maxBody bounds the pod list read from the kubelet (a busy node's list
// is a few MiB).
const maxBody = 64 << 20

// Pod is what Vigil keeps of a pod.
type Pod struct {
	UID            string
	Name           string
	Namespace      string
	Labels         map[string]string
	ServiceAccount string
	Containers     []Container
}

// Container is one container status of a pod.
type Container struct {
	Name string
	// ID is the runtime's container id, without the "containerd://"
	// style prefix.
	ID string
	// Runtime is the prefix of the kubelet's containerID ("containerd",
	// "cri-o", "docker").
	Runtime string
	Image   string
	ImageID string
}

// Index finds pods by uid and containers by id.
type Index struct {
	byUID       map[string]*Pod
	byContainer map[string]*Pod
}

// NewIndex indexes a pod list.
func NewIndex(pods []Pod) *Index {
	ix := &Index{byUID: make(map[string]*Pod, len(pods)), byContainer: make(map[string]*Pod)}
	for i := range pods {
		p := &pods[i]
		ix.byUID[p.UID] = p
		for _, c := range p.Containers {
			if c.ID != "" {
				ix.byContainer[c.ID] = p
			}
		}
	}
	return ix
}

// Pod returns the pod with uid.
func (ix *Index) Pod(uid string) (*Pod, bool) {
	p, ok := ix.byUID[uid]
	return p, ok
}

// ByContainer returns the pod running container id, and that container.
func (ix *Index) ByContainer(id string) (*Pod, *Container, bool) {
	p, ok := ix.byContainer[id]
	if !ok {
		return nil, nil, false
	}
	for i := range p.Containers {
		if p.Containers[i].ID == id {
			return p, &p.Containers[i], true
		}
	}
	return nil, nil, false
}

// KubeletConfig says how to reach the kubelet.
type KubeletConfig struct {
	// URL is the kubelet's API, normally https://127.0.0.1:10250 (with
	// hostNetwork) or https://$NODE_IP:10250.
	URL string
	// TokenFile holds the bearer token (the pod's service account token;
	// re-read on every request because projected tokens rotate).
	TokenFile string
	// CAFile verifies the kubelet's serving certificate when set.
	CAFile string
	// InsecureSkipVerify skips verification of the kubelet's certificate,
	// which is self-signed unless serverTLSBootstrap is on.
	InsecureSkipVerify bool
	Timeout            time.Duration
}

// KubeletClient lists the node's pods from the kubelet.
type KubeletClient struct {
	cfg  KubeletConfig
	http *http.Client
}

// NewKubeletClient builds a client; it fails only on an unreadable CA
// file.
func NewKubeletClient(cfg KubeletConfig) (*KubeletClient, error) {
	tlsCfg := &tls.Config{InsecureSkipVerify: cfg.InsecureSkipVerify} //nolint:gosec // opt-in, documented on the field
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kubelet ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kubelet ca file %s: no certificates", cfg.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	return &KubeletClient{cfg: cfg, http: &http.Client{Transport: tr, Timeout: cfg.Timeout}}, nil
}

// StatusError is the kubelet answering with a non-2xx status.
type StatusError struct{ Code int }

func (e *StatusError) Error() string { return fmt.Sprintf("kubelet /pods: HTTP %d", e.Code) }

// Pods lists the pods on the node.
func (c *KubeletClient) Pods(ctx context.Context) ([]Pod, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.cfg.URL, "/")+"/pods", nil)
	if err != nil {
		return nil, err
	}
	if c.cfg.TokenFile != "" {
		tok, err := os.ReadFile(c.cfg.TokenFile)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("kubelet token: %w", err)
		}
		if t := strings.TrimSpace(string(tok)); t != "" {
			req.Header.Set("Authorization", "Bearer "+t)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("kubelet /pods: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		return nil, &StatusError{Code: resp.StatusCode}
	}
	return DecodePodList(io.LimitReader(resp.Body, maxBody))
}

// podList is the part of a v1 PodList that Vigil reads.
type podList struct {
	Items []struct {
		Metadata struct {
			Name      string            `json:"name"`
			Namespace string            `json:"namespace"`
			UID       string            `json:"uid"`
			Labels    map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec struct {
			ServiceAccountName string `json:"serviceAccountName"`
		} `json:"spec"`
		Status struct {
			ContainerStatuses          []containerStatus `json:"containerStatuses"`
			InitContainerStatuses      []containerStatus `json:"initContainerStatuses"`
			EphemeralContainerStatuses []containerStatus `json:"ephemeralContainerStatuses"`
		} `json:"status"`
	} `json:"items"`
}

type containerStatus struct {
	Name        string `json:"name"`
	Image       string `json:"image"`
	ImageID     string `json:"imageID"`
	ContainerID string `json:"containerID"`
}

// DecodePodList reads a v1 PodList document.
func DecodePodList(r io.Reader) ([]Pod, error) {
	var l podList
	if err := json.NewDecoder(r).Decode(&l); err != nil {
		return nil, fmt.Errorf("decode pod list: %w", err)
	}
	pods := make([]Pod, 0, len(l.Items))
	for _, it := range l.Items {
		p := Pod{
			UID:            it.Metadata.UID,
			Name:           it.Metadata.Name,
			Namespace:      it.Metadata.Namespace,
			Labels:         it.Metadata.Labels,
			ServiceAccount: it.Spec.ServiceAccountName,
		}
		for _, group := range [][]containerStatus{it.Status.ContainerStatuses, it.Status.InitContainerStatuses, it.Status.EphemeralContainerStatuses} {
			for _, cs := range group {
				runtime, id, _ := strings.Cut(cs.ContainerID, "://")
				p.Containers = append(p.Containers, Container{Name: cs.Name, ID: id, Runtime: runtime, Image: cs.Image, ImageID: cs.ImageID})
			}
		}
		pods = append(pods, p)
	}
	return pods, nil
}
