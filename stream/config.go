package stream

import (
	"errors"
	"fmt"
	"time"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
	"github.com/vigilsec/vigil/stream/limits"
)

// ClientConfig configures the sensor side of the wire.
type ClientConfig struct {
	// Backend is the backend's gRPC address, HOST:PORT.
	Backend string `yaml:"backend"`
	// CAFile verifies the backend's certificate; empty uses the system roots.
	CAFile string `yaml:"ca_file" flag:"ca"`
	// ServerName overrides the name checked in the backend's certificate.
	ServerName string `yaml:"server_name"`
	// CertFile and KeyFile are the sensor's client certificate for mutual TLS.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Insecure sends in plaintext. It must be set explicitly.
	Insecure bool `yaml:"insecure"`
	// Token is the sensor token; callers read it from VIGIL_SENSOR_TOKEN and
	// never from the config file.
	Token string `yaml:"-"`
	// SensorID names this sensor; BootID is the host's boot id (read from
	// /proc/sys/kernel/random/boot_id when empty).
	SensorID string `yaml:"sensor_id"`
	BootID   string `yaml:"boot_id"`
	// Version is the sensor's version, sent in Hello.
	Version string `yaml:"-"`

	// SpoolDir holds batches not yet acknowledged. Empty keeps them in
	// memory only, so a sensor restart loses them.
	SpoolDir string `yaml:"spool_dir"`
	// SpoolMaxBytes bounds the spool; when a new batch does not fit, the
	// oldest batches are dropped and counted. Default 256 MiB.
	SpoolMaxBytes int64 `yaml:"spool_max_bytes"`
	// SpoolWriteAfter is how long a batch may stay in memory only while the
	// backend is reachable; a sensor killed outright (SIGKILL, OOM) loses at
	// most this much unacknowledged data. Smaller is safer and costs disk
	// writes at full event rate. Default 1 s.
	SpoolWriteAfter time.Duration `yaml:"spool_write_after"`

	// BatchMaxEvents, BatchMaxBytes and BatchMaxDelay seal a batch, whichever
	// comes first. Defaults 2048 events, 1 MiB and 100 ms, which keeps an
	// event's wait on the sensor under 250 ms.
	BatchMaxEvents int           `yaml:"batch_max_events"`
	BatchMaxBytes  int           `yaml:"batch_max_bytes"`
	BatchMaxDelay  time.Duration `yaml:"batch_max_delay"`
	// MaxInFlight is how many batches may be sent before their acks arrive.
	// Default 16.
	MaxInFlight int `yaml:"max_in_flight"`

	// ReconnectMin and ReconnectMax bound the exponential backoff (with
	// jitter) between connection attempts. Defaults 250 ms and 30 s.
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	ReconnectMax time.Duration `yaml:"reconnect_max"`
	// KeepaliveTime and KeepaliveTimeout tune gRPC keepalive pings.
	// Defaults 30 s and 10 s.
	KeepaliveTime    time.Duration `yaml:"keepalive_time"`
	KeepaliveTimeout time.Duration `yaml:"keepalive_timeout"`
	// HealthInterval is how often HealthFunc's report is sent. Default 30 s.
	HealthInterval time.Duration `yaml:"health_interval"`
	// FlushTimeout is how long Run keeps trying to deliver the spool after
	// its input channel closes. Default 5 s.
	FlushTimeout time.Duration `yaml:"flush_timeout"`

	// Host describes this machine; it travels once per stream in Hello.
	Host *vigilv1.Host `yaml:"-"`
	// HealthFunc, when set, is called every HealthInterval and its report is
	// sent (with the spool's figures filled in).
	HealthFunc func() *vigilv1.SensorHealth `yaml:"-"`
	// OnPolicy, when set, is called with each collection policy the backend
	// pushes. It runs on the stream's receive goroutine and must not block.
	OnPolicy func(*vigilv1.CollectionPolicy) `yaml:"-"`
}

// DefaultClientConfig returns a ClientConfig with every default filled in.
func DefaultClientConfig() ClientConfig {
	return ClientConfig{
		SpoolMaxBytes:    256 << 20,
		SpoolWriteAfter:  time.Second,
		BatchMaxEvents:   2048,
		BatchMaxBytes:    1 << 20,
		BatchMaxDelay:    100 * time.Millisecond,
		MaxInFlight:      16,
		ReconnectMin:     250 * time.Millisecond,
		ReconnectMax:     30 * time.Second,
		KeepaliveTime:    30 * time.Second,
		KeepaliveTimeout: 10 * time.Second,
		HealthInterval:   30 * time.Second,
		FlushTimeout:     5 * time.Second,
	}
}

// withDefaults fills zero fields from DefaultClientConfig.
func (c ClientConfig) withDefaults() ClientConfig {
	d := DefaultClientConfig()
	if c.SpoolMaxBytes == 0 {
		c.SpoolMaxBytes = d.SpoolMaxBytes
	}
	if c.SpoolWriteAfter <= 0 {
		c.SpoolWriteAfter = d.SpoolWriteAfter
	}
	if c.BatchMaxEvents == 0 {
		c.BatchMaxEvents = d.BatchMaxEvents
	}
	if c.BatchMaxBytes == 0 {
		c.BatchMaxBytes = d.BatchMaxBytes
	}
	if c.BatchMaxDelay == 0 {
		c.BatchMaxDelay = d.BatchMaxDelay
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = d.MaxInFlight
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = d.ReconnectMin
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = d.ReconnectMax
	}
	if c.KeepaliveTime == 0 {
		c.KeepaliveTime = d.KeepaliveTime
	}
	if c.KeepaliveTimeout == 0 {
		c.KeepaliveTimeout = d.KeepaliveTimeout
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = d.HealthInterval
	}
	if c.FlushTimeout == 0 {
		c.FlushTimeout = d.FlushTimeout
	}
	return c
}

// Validate reports the first setting that cannot work, naming its key.
func (c ClientConfig) Validate() error {
	var errs []error
	if c.Backend == "" {
		errs = append(errs, errors.New("backend: required (HOST:PORT)"))
	}
	if c.Insecure && (c.CAFile != "" || c.CertFile != "") {
		errs = append(errs, errors.New("insecure: cannot be combined with ca_file or cert_file"))
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("cert_file and key_file: set both or neither"))
	}
	if c.Token == "" {
		errs = append(errs, errors.New("token: required (VIGIL_SENSOR_TOKEN)"))
	}
	if err := limits.CheckID(c.SensorID, 256); err != nil {
		errs = append(errs, fmt.Errorf("sensor_id: %w", err))
	}
	if c.SpoolMaxBytes < 0 {
		errs = append(errs, errors.New("spool_max_bytes: must not be negative"))
	}
	if c.BatchMaxEvents < 0 || c.BatchMaxBytes < 0 || c.BatchMaxDelay < 0 {
		errs = append(errs, errors.New("batch_max_events, batch_max_bytes, batch_max_delay: must not be negative"))
	}
	if c.SpoolMaxBytes > 0 && c.BatchMaxBytes > 0 && int64(c.BatchMaxBytes) > c.SpoolMaxBytes {
		errs = append(errs, fmt.Errorf("spool_max_bytes: %d is smaller than batch_max_bytes %d", c.SpoolMaxBytes, c.BatchMaxBytes))
	}
	if c.ReconnectMin < 0 || c.ReconnectMax < c.ReconnectMin {
		errs = append(errs, errors.New("reconnect_min, reconnect_max: need 0 <= min <= max"))
	}
	return errors.Join(errs...)
}

// ServerConfig configures the backend side of the wire.
type ServerConfig struct {
	// CertFile and KeyFile are the backend's TLS certificate and key.
	CertFile string `yaml:"tls_cert"`
	KeyFile  string `yaml:"tls_key"`
	// ClientCAFile, when set, requires sensors to present a certificate
	// signed by it (mutual TLS).
	ClientCAFile string `yaml:"tls_client_ca"`
	// Insecure serves plaintext. It must be set explicitly.
	Insecure bool `yaml:"insecure"`
	// Tokens are the accepted bearer tokens; callers read them from
	// VIGIL_SENSOR_TOKEN and VIGIL_API_TOKEN.
	Tokens Tokens `yaml:"-"`
	// Limits bound what a sensor may send.
	Limits limits.Limits `yaml:"limits"`
	// KeepaliveMinTime is the most often a sensor may ping; KeepaliveTime
	// and KeepaliveTimeout are the server's own pings. Defaults 10 s, 60 s,
	// 20 s.
	KeepaliveMinTime time.Duration `yaml:"keepalive_min_time"`
	KeepaliveTime    time.Duration `yaml:"keepalive_time"`
	KeepaliveTimeout time.Duration `yaml:"keepalive_timeout"`
}

// DefaultServerConfig returns a ServerConfig with every default filled in.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		Limits:           limits.DefaultLimits(),
		KeepaliveMinTime: 10 * time.Second,
		KeepaliveTime:    60 * time.Second,
		KeepaliveTimeout: 20 * time.Second,
	}
}

func (c ServerConfig) withDefaults() ServerConfig {
	d := DefaultServerConfig()
	c.Limits = c.Limits.WithDefaults()
	if c.KeepaliveMinTime == 0 {
		c.KeepaliveMinTime = d.KeepaliveMinTime
	}
	if c.KeepaliveTime == 0 {
		c.KeepaliveTime = d.KeepaliveTime
	}
	if c.KeepaliveTimeout == 0 {
		c.KeepaliveTimeout = d.KeepaliveTimeout
	}
	return c
}

// Validate reports the first setting that cannot work, naming its key.
func (c ServerConfig) Validate() error {
	var errs []error
	if c.Insecure && (c.CertFile != "" || c.ClientCAFile != "") {
		errs = append(errs, errors.New("insecure: cannot be combined with tls_cert or tls_client_ca"))
	}
	if !c.Insecure && (c.CertFile == "" || c.KeyFile == "") {
		errs = append(errs, errors.New("tls_cert and tls_key: required unless insecure is set"))
	}
	if err := c.Tokens.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("limits: %w", err))
	}
	return errors.Join(errs...)
}
