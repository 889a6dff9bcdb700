// Package ecs reads ECS task identity: the task metadata endpoint v4
// (TMDE, for a sensor running as a task: the Fargate sidecar or the EC2
// daemon), the ECS agent's introspection API on EC2 hosts (task ARN, family,
// revision and container name for any Docker id on the host) and the
// com.amazonaws.ecs.* labels the agent puts on every task container.
package ecs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// ErrNotFound means the source does not know the container.
var ErrNotFound = errors.New("ecs container not found")

// Labels the ECS agent puts on task containers.
const (
	LabelCluster       = "com.amazonaws.ecs.cluster"
	LabelContainerName = "com.amazonaws.ecs.container-name"
	LabelTaskARN       = "com.amazonaws.ecs.task-arn"
	LabelFamily        = "com.amazonaws.ecs.task-definition-family"
	LabelRevision      = "com.amazonaws.ecs.task-definition-version"
)

// Launch types as TMDE reports them.
const (
	LaunchTypeEC2     = "EC2"
	LaunchTypeFargate = "FARGATE"
)

// maxBody bounds what we read from a metadata endpoint; a task document
// with many containers is still well under it.
const maxBody = 4 << 20

// Task is the TMDE v4 task document (${ECS_CONTAINER_METADATA_URI_V4}/task).
type Task struct {
	Cluster          string              `json:"Cluster"`
	TaskARN          string              `json:"TaskARN"`
	Family           string              `json:"Family"`
	Revision         string              `json:"Revision"`
	DesiredStatus    string              `json:"DesiredStatus"`
	KnownStatus      string              `json:"KnownStatus"`
	AvailabilityZone string              `json:"AvailabilityZone"`
	LaunchType       string              `json:"LaunchType"`
	Containers       []ContainerMetadata `json:"Containers"`
}

// ContainerMetadata is one container in TMDE v4 (${URI} and the Containers
// of ${URI}/task).
type ContainerMetadata struct {
	DockerID     string            `json:"DockerId"`
	Name         string            `json:"Name"`
	DockerName   string            `json:"DockerName"`
	Image        string            `json:"Image"`
	ImageID      string            `json:"ImageID"`
	Labels       map[string]string `json:"Labels"`
	CreatedAt    *time.Time        `json:"CreatedAt"`
	StartedAt    *time.Time        `json:"StartedAt"`
	Type         string            `json:"Type"`
	ContainerARN string            `json:"ContainerARN"`
}

// Container returns the task's container with the given Docker id
// (64 hex on EC2, <task id>-<n> on Fargate).
func (t *Task) Container(dockerID string) (*ContainerMetadata, bool) {
	for i := range t.Containers {
		if t.Containers[i].DockerID == dockerID {
			return &t.Containers[i], true
		}
	}
	return nil, false
}

// Identity is the Ecs message for one container of the task.
func (t *Task) Identity(c *ContainerMetadata) *vigilv1.Ecs {
	e := &vigilv1.Ecs{
		Cluster:          t.Cluster,
		TaskArn:          t.TaskARN,
		TaskFamily:       t.Family,
		TaskRevision:     t.Revision,
		LaunchType:       t.LaunchType,
		AvailabilityZone: t.AvailabilityZone,
	}
	if c != nil {
		e.ContainerName = c.Name
		e.ContainerArn = c.ContainerARN
	}
	Normalize(e)
	return e
}

// TaskMetadataClient reads the task metadata endpoint v4.
type TaskMetadataClient struct {
	base string
	http *http.Client
}

// NewTaskMetadataClient reads TMDE v4 at baseURI (the value of
// ECS_CONTAINER_METADATA_URI_V4).
func NewTaskMetadataClient(baseURI string, hc *http.Client) *TaskMetadataClient {
	return &TaskMetadataClient{base: strings.TrimRight(baseURI, "/"), http: hc}
}

// Task fetches ${URI}/task: the sensor's own task with all its containers.
func (c *TaskMetadataClient) Task(ctx context.Context) (*Task, error) {
	var t Task
	if err := getJSON(ctx, c.http, c.base+"/task", &t); err != nil {
		return nil, fmt.Errorf("task metadata: %w", err)
	}
	return &t, nil
}

// Container fetches ${URI}: the sensor's own container.
func (c *TaskMetadataClient) Container(ctx context.Context) (*ContainerMetadata, error) {
	var m ContainerMetadata
	if err := getJSON(ctx, c.http, c.base, &m); err != nil {
		return nil, fmt.Errorf("container metadata: %w", err)
	}
	return &m, nil
}

// AgentMetadata is the agent introspection /v1/metadata document.
type AgentMetadata struct {
	Cluster              string `json:"Cluster"`
	ContainerInstanceArn string `json:"ContainerInstanceArn"`
	Version              string `json:"Version"`
}

// AgentTask is one task in the agent introspection /v1/tasks document.
type AgentTask struct {
	Arn           string           `json:"Arn"`
	DesiredStatus string           `json:"DesiredStatus"`
	KnownStatus   string           `json:"KnownStatus"`
	Family        string           `json:"Family"`
	Version       string           `json:"Version"`
	Containers    []AgentContainer `json:"Containers"`
}

// AgentContainer is a container of an AgentTask.
type AgentContainer struct {
	DockerID   string `json:"DockerId"`
	DockerName string `json:"DockerName"`
	Name       string `json:"Name"`
}

// Identity is the Ecs message for the task's container with dockerID, in
// cluster (from /v1/metadata). The agent only runs on EC2 hosts.
func (t *AgentTask) Identity(cluster, dockerID string) *vigilv1.Ecs {
	e := &vigilv1.Ecs{
		Cluster:      cluster,
		TaskArn:      t.Arn,
		TaskFamily:   t.Family,
		TaskRevision: t.Version,
		LaunchType:   LaunchTypeEC2,
	}
	for _, c := range t.Containers {
		// The agent accepts short ids in the query, so match by prefix.
		if c.DockerID == dockerID || (len(dockerID) >= 12 && strings.HasPrefix(c.DockerID, dockerID)) {
			e.ContainerName = c.Name
		}
	}
	Normalize(e)
	return e
}

// AgentClient reads the ECS agent introspection API.
type AgentClient struct {
	base string
	http *http.Client
}

// NewAgentClient reads the introspection API at baseURI
// (http://localhost:51678 on EC2 container instances).
func NewAgentClient(baseURI string, hc *http.Client) *AgentClient {
	return &AgentClient{base: strings.TrimRight(baseURI, "/"), http: hc}
}

// Metadata fetches /v1/metadata: the cluster and container instance.
func (c *AgentClient) Metadata(ctx context.Context) (*AgentMetadata, error) {
	var m AgentMetadata
	if err := getJSON(ctx, c.http, c.base+"/v1/metadata", &m); err != nil {
		return nil, fmt.Errorf("agent metadata: %w", err)
	}
	return &m, nil
}

// TaskByDockerID fetches /v1/tasks?dockerid=ID, the task that runs a
// container. It returns ErrNotFound when the agent does not know the id.
func (c *AgentClient) TaskByDockerID(ctx context.Context, dockerID string) (*AgentTask, error) {
	var t AgentTask
	err := getJSON(ctx, c.http, c.base+"/v1/tasks?dockerid="+url.QueryEscape(dockerID), &t)
	if err != nil {
		return nil, fmt.Errorf("agent task for %s: %w", dockerID, err)
	}
	if t.Arn == "" {
		return nil, fmt.Errorf("agent task for %s: %w", dockerID, ErrNotFound)
	}
	return &t, nil
}

// Tasks fetches /v1/tasks: every task the agent runs on this instance.
func (c *AgentClient) Tasks(ctx context.Context) ([]AgentTask, error) {
	var doc struct {
		Tasks []AgentTask `json:"Tasks"`
	}
	if err := getJSON(ctx, c.http, c.base+"/v1/tasks", &doc); err != nil {
		return nil, fmt.Errorf("agent tasks: %w", err)
	}
	return doc.Tasks, nil
}

// FromLabels builds the Ecs message from a container's com.amazonaws.ecs.*
// labels; ok is false when the container carries none.
func FromLabels(labels map[string]string) (*vigilv1.Ecs, bool) {
	arn := labels[LabelTaskARN]
	if arn == "" {
		return nil, false
	}
	e := &vigilv1.Ecs{
		Cluster:       labels[LabelCluster],
		TaskArn:       arn,
		TaskFamily:    labels[LabelFamily],
		TaskRevision:  labels[LabelRevision],
		ContainerName: labels[LabelContainerName],
	}
	Normalize(e)
	return e, true
}

// Normalize fills the cluster ARN and short cluster name from each other
// and from the task ARN: TMDE gives a short name on EC2 and an ARN on
// Fargate, and findings want both.
func Normalize(e *vigilv1.Ecs) {
	if strings.HasPrefix(e.Cluster, "arn:") {
		e.ClusterArn = e.Cluster
		if i := strings.LastIndexByte(e.Cluster, '/'); i >= 0 {
			e.Cluster = e.Cluster[i+1:]
		}
	}
	if e.ClusterArn == "" && e.Cluster != "" {
		// arn:aws:ecs:<region>:<account>:task/<cluster>/<task id>
		if prefix, rest, ok := strings.Cut(e.TaskArn, ":task/"); ok && strings.Contains(rest, "/") {
			e.ClusterArn = prefix + ":cluster/" + e.Cluster
		}
	}
	if e.Cluster == "" && e.TaskArn != "" {
		if _, rest, ok := strings.Cut(e.TaskArn, ":task/"); ok {
			if cluster, _, ok := strings.Cut(rest, "/"); ok {
				e.Cluster = cluster
				Normalize(e)
			}
		}
	}
}

// StatusError is a metadata endpoint answering with a non-2xx status.
type StatusError struct {
	URL  string
	Code int
}

func (e *StatusError) Error() string { return fmt.Sprintf("GET %s: HTTP %d", e.URL, e.Code) }

func getJSON(ctx context.Context, hc *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusBadRequest {
		// The agent answers an unknown dockerid with 400 or 404.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		return fmt.Errorf("%w: %w", ErrNotFound, &StatusError{URL: u, Code: resp.StatusCode})
	}
	if resp.StatusCode/100 != 2 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		return &StatusError{URL: u, Code: resp.StatusCode}
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", u, err)
	}
	return nil
}
