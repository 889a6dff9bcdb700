package ecs

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/protobuf/proto"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name string
		in   *vigilv1.Ecs
		want *vigilv1.Ecs
	}{
		{
			name: "a Fargate cluster ARN is split into the short name and the ARN",
			in:   &vigilv1.Ecs{Cluster: "arn:aws:ecs:ap-northeast-1:123456789012:cluster/simple-ecs-cluster"},
			want: &vigilv1.Ecs{Cluster: "simple-ecs-cluster", ClusterArn: "arn:aws:ecs:ap-northeast-1:123456789012:cluster/simple-ecs-cluster"},
		},
		{
			name: "an EC2 short cluster name gets its ARN from the task ARN",
			in:   &vigilv1.Ecs{Cluster: "default", TaskArn: "arn:aws:ecs:us-west-2:111122223333:task/default/158d1c8083dd49d6b527399fd6414f5c"},
			want: &vigilv1.Ecs{Cluster: "default", ClusterArn: "arn:aws:ecs:us-west-2:111122223333:cluster/default",
				TaskArn: "arn:aws:ecs:us-west-2:111122223333:task/default/158d1c8083dd49d6b527399fd6414f5c"},
		},
		{
			name: "a missing cluster is read from a new-style task ARN",
			in:   &vigilv1.Ecs{TaskArn: "arn:aws:ecs:us-west-2:111122223333:task/prod/158d1c8083dd49d6b527399fd6414f5c"},
			want: &vigilv1.Ecs{Cluster: "prod", ClusterArn: "arn:aws:ecs:us-west-2:111122223333:cluster/prod",
				TaskArn: "arn:aws:ecs:us-west-2:111122223333:task/prod/158d1c8083dd49d6b527399fd6414f5c"},
		},
		{
			name: "an old-style task ARN without the cluster leaves the cluster empty",
			in:   &vigilv1.Ecs{TaskArn: "arn:aws:ecs:us-west-2:111122223333:task/158d1c8083dd49d6b527399fd6414f5c"},
			want: &vigilv1.Ecs{TaskArn: "arn:aws:ecs:us-west-2:111122223333:task/158d1c8083dd49d6b527399fd6414f5c"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			Normalize(tt.in)
			if !proto.Equal(tt.in, tt.want) {
				t.Fatalf("Normalize = %v, want %v", tt.in, tt.want)
			}
		})
	}
}

func TestFromLabels(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		want   *vigilv1.Ecs
	}{
		{
			name: "the agent's labels give cluster, task, family, revision and container name",
			labels: map[string]string{
				LabelCluster: "default", LabelContainerName: "curl", LabelFamily: "curltest", LabelRevision: "24",
				LabelTaskARN: "arn:aws:ecs:us-west-2:111122223333:task/default/8f03e41243824aea923aca126495f665",
			},
			want: &vigilv1.Ecs{Cluster: "default", ClusterArn: "arn:aws:ecs:us-west-2:111122223333:cluster/default",
				TaskArn:    "arn:aws:ecs:us-west-2:111122223333:task/default/8f03e41243824aea923aca126495f665",
				TaskFamily: "curltest", TaskRevision: "24", ContainerName: "curl"},
		},
		{name: "a container without the task ARN label is not an ECS container", labels: map[string]string{LabelCluster: "default"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := FromLabels(tt.labels)
			if ok != (tt.want != nil) || (ok && !proto.Equal(got, tt.want)) {
				t.Fatalf("FromLabels = %v, %v; want %v", got, ok, tt.want)
			}
		})
	}
}

func TestAgentClient(t *testing.T) {
	const id = "3f4a1b2c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7a8"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("dockerid") {
		case id, id[:12]:
			_, _ = w.Write([]byte(`{"Arn":"arn:aws:ecs:us-west-2:111122223333:task/default/t1","Family":"nginx","Version":"5",
				"Containers":[{"DockerId":"` + id + `","DockerName":"ecs-nginx-5-nginx","Name":"nginx"}]}`))
		case "broken":
			http.Error(w, "boom", http.StatusInternalServerError)
		default:
			http.Error(w, `{"error":"not found"}`, http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	c := NewAgentClient(srv.URL, srv.Client())
	tests := []struct {
		name     string
		id       string
		wantName string
		wantErr  error
	}{
		{name: "a full Docker id maps to its task and container name", id: id, wantName: "nginx"},
		{name: "a short Docker id maps to its task and container name", id: id[:12], wantName: "nginx"},
		{name: "an unknown Docker id is reported as not found", id: "0000", wantErr: ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task, err := c.TaskByDockerID(context.Background(), tt.id)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := task.Identity("default", tt.id); got.ContainerName != tt.wantName || got.TaskFamily != "nginx" || got.LaunchType != LaunchTypeEC2 {
				t.Fatalf("Identity = %v", got)
			}
		})
	}
	t.Run("a server error is an error, not a miss", func(t *testing.T) {
		_, err := c.TaskByDockerID(context.Background(), "broken")
		var se *StatusError
		if !errors.As(err, &se) || se.Code != 500 || errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v, want a 500 StatusError", err)
		}
	})
}
