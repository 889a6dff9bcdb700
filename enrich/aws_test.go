package enrich

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// agentDockerID is the container in testdata/agent_task.json.
const agentDockerID = "3f4a1b2c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7a8"

// newFakeAgent serves the ECS agent introspection API; it knows the one
// task in agent_task.json and answers other Docker ids with 404.
func newFakeAgent(t *testing.T, queries *atomic.Int32) string {
	t.Helper()
	md, task := fixture(t, "agent_metadata.json"), fixture(t, "agent_task.json")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/metadata":
			_, _ = w.Write(md)
		case r.URL.Path == "/v1/tasks" && r.URL.Query().Get("dockerid") != "":
			queries.Add(1)
			id := r.URL.Query().Get("dockerid")
			if !strings.HasPrefix(agentDockerID, id) {
				http.Error(w, `{"error":"unable to find task"}`, http.StatusNotFound)
				return
			}
			_, _ = w.Write(task)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// newFakeTMDE serves the task metadata endpoint v4 under /v4/<id>, as
// ECS_CONTAINER_METADATA_URI_V4 points at, and returns that URI.
func newFakeTMDE(t *testing.T, taskFile string) string {
	t.Helper()
	task, ctr := fixture(t, taskFile), fixture(t, "tmde_ec2_container.json")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/task"):
			_, _ = w.Write(task)
		case strings.HasPrefix(r.URL.Path, "/v4/"):
			_, _ = w.Write(ctr)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/v4/ea32192c8553fbff06c9340478a2ff089b2bb5646fb718b4ee206641c9086d66"
}

func TestECSAndEC2(t *testing.T) {
	const (
		ec2TaskID   = "158d1c8083dd49d6b527399fd6414f5c"
		ec2TaskCtr  = "ee08638adaaf009d78c248913f629e38299471d45fe7dc944d1039077e3424ca"
		agentTaskID = "e01d58a8151b40e8bc0122647b9ecfec"
		fargateTask = "e40860c2b55a4200b03c3197f6c59714"
	)
	tests := []struct {
		name      string
		path      string
		tmde      string // task fixture served by TMDE; "" for none
		agent     bool
		imds      imdsMode
		wantECS   *vigilv1.Ecs
		wantName  string
		wantImage string
		wantHost  bool // EC2 identity expected on Host()
	}{
		{
			name:  "an ECS on EC2 container under cgroup v1 is identified through the agent introspection API",
			path:  "/ecs/" + agentTaskID + "/" + agentDockerID,
			agent: true, imds: imdsV2,
			wantECS: &vigilv1.Ecs{
				Cluster: "default", ClusterArn: "arn:aws:ecs:us-west-2:111122223333:cluster/default",
				TaskArn:    "arn:aws:ecs:us-west-2:111122223333:task/default/e01d58a8-151b-40e8-bc01-22647b9ecfec",
				TaskFamily: "nginx", TaskRevision: "5", ContainerName: "nginx-curl",
				LaunchType: "EC2", AvailabilityZone: "us-west-2b",
			},
			wantName: "nginx-curl", wantHost: true,
		},
		{
			name:  "an ECS on EC2 container under cgroup v2 is identified through the agent introspection API",
			path:  "/ecstasks.slice/ecstasks-" + agentTaskID + ".slice/docker-" + agentDockerID + ".scope",
			agent: true, imds: imdsV2,
			wantECS: &vigilv1.Ecs{
				Cluster: "default", ClusterArn: "arn:aws:ecs:us-west-2:111122223333:cluster/default",
				TaskArn:    "arn:aws:ecs:us-west-2:111122223333:task/default/e01d58a8-151b-40e8-bc01-22647b9ecfec",
				TaskFamily: "nginx", TaskRevision: "5", ContainerName: "nginx-curl",
				LaunchType: "EC2", AvailabilityZone: "us-west-2b",
			},
			wantName: "nginx-curl", wantHost: true,
		},
		{
			name: "a container of the sensor's own EC2 task is identified from the task metadata endpoint v4",
			path: "/ecs/" + ec2TaskID + "/" + ec2TaskCtr,
			tmde: "tmde_ec2_task.json", imds: imdsV2,
			wantECS: &vigilv1.Ecs{
				Cluster: "default", ClusterArn: "arn:aws:ecs:us-west-2:111122223333:cluster/default",
				TaskArn:    "arn:aws:ecs:us-west-2:111122223333:task/default/158d1c8083dd49d6b527399fd6414f5c",
				TaskFamily: "curltest", TaskRevision: "26", ContainerName: "curl",
				LaunchType: "EC2", AvailabilityZone: "us-west-2d",
				ContainerArn: "arn:aws:ecs:us-west-2:111122223333:container/1bdcca8b-f905-4ee6-885c-4064cb70f6e6",
			},
			wantName: "curl", wantImage: "111122223333.dkr.ecr.us-west-2.amazonaws.com/curltest:latest", wantHost: true,
		},
		{
			name: "a Fargate container is identified from the task metadata endpoint v4 while IMDS is down",
			path: "/ecs/" + fargateTask + "/" + fargateTask + "-2886439692",
			tmde: "tmde_fargate_task.json", imds: imdsDown,
			wantECS: &vigilv1.Ecs{
				Cluster: "simple-ecs-cluster", ClusterArn: "arn:aws:ecs:ap-northeast-1:123456789012:cluster/simple-ecs-cluster",
				TaskArn:    "arn:aws:ecs:ap-northeast-1:123456789012:task/simple-ecs-cluster/e40860c2b55a4200b03c3197f6c59714",
				TaskFamily: "dev-yamada", TaskRevision: "3", ContainerName: "dev-yamada",
				LaunchType: "FARGATE", AvailabilityZone: "ap-northeast-1c",
				ContainerArn: "arn:aws:ecs:ap-northeast-1:123456789012:container/simple-ecs-cluster/e40860c2b55a4200b03c3197f6c59714/b31c78c2-9905-4b57-bfc1-e9f8a3689607",
			},
			wantName: "dev-yamada", wantImage: "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/dev-nginx:latest",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.ECS.Enabled = true
			var agentQueries atomic.Int32
			cfg.ECS.AgentURI = ""
			if tt.agent {
				cfg.ECS.AgentURI = newFakeAgent(t, &agentQueries)
			}
			if tt.tmde != "" {
				cfg.ECS.MetadataURI = newFakeTMDE(t, tt.tmde)
			}
			if tt.imds != imdsUnavail {
				cfg.EC2.Enabled = true
				cfg.EC2.Endpoint = newFakeIMDS(t, tt.imds).url
			}
			e, reg := startEnricher(t, cfg)

			first := &vigilv1.Event{CgroupPath: tt.path}
			e.Enrich(first)
			if first.Container == nil || first.Container.Id == "" {
				t.Fatalf("first event has no container id: %v", first.Container)
			}
			ev := waitComplete(t, e, tt.path)
			got := ev.Ecs
			if got == nil {
				t.Fatalf("event has no ECS context; container %v", ev.Container)
			}
			w := tt.wantECS
			if got.Cluster != w.Cluster || got.ClusterArn != w.ClusterArn || got.TaskArn != w.TaskArn ||
				got.TaskFamily != w.TaskFamily || got.TaskRevision != w.TaskRevision || got.ContainerName != w.ContainerName ||
				got.LaunchType != w.LaunchType || got.AvailabilityZone != w.AvailabilityZone || got.ContainerArn != w.ContainerArn {
				t.Fatalf("Ecs = %v\nwant  %v", got, w)
			}
			if ev.Container.Name != tt.wantName || ev.Container.Image != tt.wantImage {
				t.Fatalf("Container = %v, want name %q image %q", ev.Container, tt.wantName, tt.wantImage)
			}
			h := e.Host()
			if tt.wantHost {
				if h.InstanceId != "i-0123456789abcdef0" || h.Region != "us-west-2" || h.AccountId != "0123456789" ||
					h.InstanceType != "t2.micro" || h.AmiId != "ami-0123456789abcdef0" || h.AvailabilityZone != "us-west-2b" {
					t.Fatalf("Host = %v, want the EC2 identity", h)
				}
			} else if h.InstanceId != "" || h.Region != "" || h.AccountId != "" {
				t.Fatalf("Host = %v, want no EC2 identity", h)
			}
			if h.Hostname == "" || h.Kernel == "" || h.BootId == "" {
				t.Fatalf("Host = %v, want hostname, kernel and boot id", h)
			}
			// Later events share the same messages rather than copies.
			again := &vigilv1.Event{CgroupPath: tt.path}
			e.Enrich(again)
			if again.Ecs != ev.Ecs || again.Container != ev.Container {
				t.Fatal("a later event got different message pointers for the same container")
			}
			if tt.agent && agentQueries.Load() != 1 {
				t.Fatalf("agent asked %d times for one container, want once (cached)", agentQueries.Load())
			}
			if hits := counterValue(t, reg, "vigil_enrich_cache_hits_total"); hits < 1 {
				t.Fatalf("cache hits = %v, want > 0", hits)
			}
		})
	}
}

func TestIMDS(t *testing.T) {
	tests := []struct {
		name      string
		mode      imdsMode
		wantState string
		wantID    string
		wantPuts  bool
	}{
		{name: "IMDSv2 with a session token gives the instance identity", mode: imdsV2, wantState: StateOK, wantID: "i-0123456789abcdef0", wantPuts: true},
		{name: "an IMDS that is down leaves the host without EC2 identity and the source absent", mode: imdsDown, wantState: StateAbsent},
		{name: "an IMDS answering 401 degrades to no identity and reports the source failing", mode: imdsRefuse, wantState: StateFailing},
		{name: "an IMDS without the token API is not read without a token", mode: imdsV1Only, wantState: StateFailing, wantPuts: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.EC2.Enabled = true
			f := newFakeIMDS(t, tt.mode)
			cfg.EC2.Endpoint = f.url
			start := time.Now()
			e, reg := startEnricher(t, cfg)
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("Start took %s with IMDS in mode %d", d, tt.mode)
			}
			h := e.Host()
			if h.InstanceId != tt.wantID || (tt.wantID != "" && (h.Region != "us-west-2" || h.AccountId != "0123456789")) {
				t.Fatalf("Host = %v, want instance id %q", h, tt.wantID)
			}
			if h.Hostname == "" || h.Kernel == "" {
				t.Fatalf("Host = %v lost the local description", h)
			}
			st := sourceStatus(e, SourceEC2)
			if st.State != tt.wantState {
				t.Fatalf("ec2 source = %v, want state %s", st, tt.wantState)
			}
			if tt.wantState == StateFailing {
				if st.Errors == 0 || st.LastError == "" {
					t.Fatalf("failing source reports no error: %v", st)
				}
				if n := counterValue(t, reg, "vigil_enrich_source_errors_total", "source", SourceEC2); n == 0 {
					t.Fatal("vigil_enrich_source_errors_total{source=ec2_imds} = 0 for a failing IMDS")
				}
				if f.docGets.Load() != 0 && tt.mode == imdsV1Only {
					t.Fatal("the identity document was read without a token")
				}
			}
			if tt.wantPuts && f.tokenPuts.Load() == 0 {
				t.Fatal("no token was requested")
			}
			// Events go on regardless of IMDS.
			ev := &vigilv1.Event{CgroupPath: "/docker/" + agentDockerID}
			e.Enrich(ev)
			if ev.Container == nil || ev.Container.Id != agentDockerID {
				t.Fatalf("event not enriched with the container id while IMDS is %d: %v", tt.mode, ev.Container)
			}
		})
	}
}
