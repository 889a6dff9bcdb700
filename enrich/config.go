package enrich

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Config configures enrichment. Start from DefaultConfig and override
// fields (YAML decoding onto the defaults keeps the enable switches on
// unless a file turns them off).
type Config struct {
	// ProcRoot is the host's /proc (/host/proc when the sensor runs in a
	// container with the host's /proc mounted there).
	ProcRoot string `yaml:"proc_root"`
	// HostRoot is the host's root file system, for /etc/os-release.
	HostRoot string `yaml:"host_root"`
	// CgroupRoot is where the cgroup file systems are mounted; it is
	// walked to map cgroup ids to paths when events carry only the id.
	CgroupRoot string `yaml:"cgroup_root"`

	// CacheSize bounds the number of cgroups remembered.
	CacheSize int `yaml:"cache_size"`
	// CacheTTL is how long container metadata is served before it is
	// looked up again (in the background; events keep the cached data
	// meanwhile). Cgroups unseen for this long are dropped.
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// Workers is the number of background lookup goroutines.
	Workers int `yaml:"workers"`
	// QueueSize bounds pending lookups; when full, a lookup waits for the
	// next event of that cgroup instead of blocking this one.
	QueueSize int `yaml:"queue_size"`
	// LookupTimeout bounds one request to a source.
	LookupTimeout time.Duration `yaml:"lookup_timeout"`
	// DetectTimeout bounds source detection in Start.
	DetectTimeout time.Duration `yaml:"detect_timeout"`
	// RetryMin and RetryMax bound the exponential backoff for failing
	// sources and for containers whose lookup failed.
	RetryMin time.Duration `yaml:"retry_min"`
	RetryMax time.Duration `yaml:"retry_max"`
	// RedetectInterval is how often absent sources are probed again
	// (containerd may start after the sensor).
	RedetectInterval time.Duration `yaml:"redetect_interval"`

	Containerd ContainerdConfig `yaml:"containerd"`
	Kubelet    KubeletConfig    `yaml:"kubelet"`
	ECS        ECSConfig        `yaml:"ecs"`
	EC2        EC2Config        `yaml:"ec2"`
}

// KubeletConfig configures the optional kubelet source, which adds pod
// labels and the service account (the CRI labels carry neither) and
// identifies pods of runtimes without a containerd socket (CRI-O). It is
// off by default: it needs a token allowed to read nodes/proxy.
type KubeletConfig struct {
	Enabled bool `yaml:"enabled"`
	// URL is the kubelet API: https://127.0.0.1:10250 with hostNetwork,
	// else https://$NODE_IP:10250.
	URL string `yaml:"url"`
	// TokenFile is the bearer token, re-read on every request.
	TokenFile string `yaml:"token_file"`
	// CAFile verifies the kubelet's certificate when set.
	CAFile string `yaml:"ca_file"`
	// InsecureSkipVerify skips certificate verification; kubelet serving
	// certificates are self-signed unless serverTLSBootstrap is on.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// Refresh is how often the node's pod list is re-read.
	Refresh time.Duration `yaml:"refresh"`
}

// ContainerdConfig configures the containerd source.
type ContainerdConfig struct {
	Enabled bool `yaml:"enabled"`
	// Socket is containerd's gRPC socket.
	Socket string `yaml:"socket"`
}

// ECSConfig configures the ECS sources.
type ECSConfig struct {
	Enabled bool `yaml:"enabled"`
	// MetadataURI is the task metadata endpoint v4; defaults to
	// $ECS_CONTAINER_METADATA_URI_V4 (set by ECS in every task container).
	// Empty when the sensor is not an ECS task.
	MetadataURI string `yaml:"metadata_uri"`
	// AgentURI is the ECS agent's introspection API on EC2 hosts.
	AgentURI string `yaml:"agent_uri"`
	// TaskRefresh is how often the sensor's own task document is re-read.
	TaskRefresh time.Duration `yaml:"task_refresh"`
}

// EC2Config configures the EC2 instance metadata source.
type EC2Config struct {
	Enabled bool `yaml:"enabled"`
	// Endpoint overrides the IMDS endpoint; empty uses the SDK's default
	// (http://169.254.169.254).
	Endpoint string `yaml:"endpoint"`
}

// Defaults.
const (
	DefaultContainerdSocket = "/run/containerd/containerd.sock"
	DefaultAgentURI         = "http://localhost:51678"
)

// DefaultConfig returns the documented defaults: every source on,
// containerd on its standard socket, TMDE from the environment, the agent
// on localhost:51678, the SDK's IMDS endpoint.
func DefaultConfig() Config {
	return Config{
		ProcRoot:         "/proc",
		HostRoot:         "/",
		CgroupRoot:       "/sys/fs/cgroup",
		CacheSize:        8192,
		CacheTTL:         5 * time.Minute,
		Workers:          2,
		QueueSize:        1024,
		LookupTimeout:    2 * time.Second,
		DetectTimeout:    2 * time.Second,
		RetryMin:         time.Second,
		RetryMax:         2 * time.Minute,
		RedetectInterval: time.Minute,
		Containerd:       ContainerdConfig{Enabled: true, Socket: DefaultContainerdSocket},
		Kubelet: KubeletConfig{
			URL:                "https://127.0.0.1:10250",
			TokenFile:          "/var/run/secrets/kubernetes.io/serviceaccount/token",
			InsecureSkipVerify: true,
			Refresh:            30 * time.Second,
		},
		ECS: ECSConfig{
			Enabled:     true,
			MetadataURI: os.Getenv("ECS_CONTAINER_METADATA_URI_V4"),
			AgentURI:    DefaultAgentURI,
			TaskRefresh: 30 * time.Second,
		},
		EC2: EC2Config{Enabled: true},
	}
}

// Validate reports the first setting that cannot work, by its YAML key.
func (c *Config) Validate() error {
	var errs []error
	positive := func(key string, v time.Duration) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("enrich.%s: must be positive, got %s", key, v))
		}
	}
	if c.CacheSize < 16 {
		errs = append(errs, fmt.Errorf("enrich.cache_size: must be at least 16, got %d", c.CacheSize))
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("enrich.workers: must be at least 1, got %d", c.Workers))
	}
	if c.QueueSize < 1 {
		errs = append(errs, fmt.Errorf("enrich.queue_size: must be at least 1, got %d", c.QueueSize))
	}
	positive("cache_ttl", c.CacheTTL)
	positive("lookup_timeout", c.LookupTimeout)
	positive("detect_timeout", c.DetectTimeout)
	positive("retry_min", c.RetryMin)
	positive("redetect_interval", c.RedetectInterval)
	if c.RetryMax < c.RetryMin {
		errs = append(errs, fmt.Errorf("enrich.retry_max: must be at least retry_min (%s), got %s", c.RetryMin, c.RetryMax))
	}
	if c.Containerd.Enabled && c.Containerd.Socket == "" {
		errs = append(errs, errors.New("enrich.containerd.socket: required when containerd is enabled"))
	}
	if c.Kubelet.Enabled {
		if c.Kubelet.URL == "" {
			errs = append(errs, errors.New("enrich.kubelet.url: required when the kubelet source is enabled"))
		}
		positive("kubelet.refresh", c.Kubelet.Refresh)
	}
	if c.ECS.Enabled && c.ECS.AgentURI == "" && c.ECS.MetadataURI == "" {
		errs = append(errs, errors.New("enrich.ecs: agent_uri or metadata_uri required when ecs is enabled"))
	}
	if c.ECS.Enabled {
		positive("ecs.task_refresh", c.ECS.TaskRefresh)
	}
	if c.ProcRoot == "" {
		errs = append(errs, errors.New("enrich.proc_root: required"))
	}
	return errors.Join(errs...)
}
