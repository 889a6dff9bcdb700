package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
	"github.com/vigilsec/vigil/stream/limits"
)

// Ingester durably accepts batches. The findings stage implements it and
// de-duplicates by (sensor id, boot id, sequence) in the same transaction
// that stores what the batch produced, so a replayed batch is reported as a
// duplicate and changes nothing. The Server acknowledges a batch only after
// Ingest returns nil.
type Ingester interface {
	Ingest(ctx context.Context, b *vigilv1.Batch) (duplicate bool, err error)
}

// ErrBatchRejected is for Ingesters: wrap it to say a batch can never be
// accepted (as opposed to a transient store failure). The sensor is then
// told codes.InvalidArgument and drops the batch instead of retrying it.
var ErrBatchRejected = errors.New("batch rejected")

// HealthRecorder keeps each sensor's latest health report (coverage).
type HealthRecorder interface {
	RecordHealth(ctx context.Context, hello *vigilv1.Hello, h *vigilv1.SensorHealth) error
}

// PolicySource supplies the collection policy pushed to sensors.
type PolicySource interface {
	// Policy returns the current policy (nil for none) and a channel that
	// is closed when it is replaced.
	Policy() (*vigilv1.CollectionPolicy, <-chan struct{})
}

// ReasonBatchInvalid is the ErrorInfo reason on a refused batch; its
// metadata carries "sequence", "sensor_id" and "boot_id".
const ReasonBatchInvalid = "BATCH_INVALID"

// ReasonMessageInvalid is the ErrorInfo reason when a stream is refused
// for something other than a batch (a bad Hello, a second Hello, an empty
// message): no batch is to blame, so the sensor keeps its spool.
const ReasonMessageInvalid = "MESSAGE_INVALID"

// errorDomain is the ErrorInfo domain of Vigil's statuses.
const errorDomain = "vigil.dev"

// Server is the backend's end of the wire (SensorService).
type Server struct {
	vigilv1.UnimplementedSensorServiceServer
	cfg    ServerConfig
	ing    Ingester
	health HealthRecorder
	pol    PolicySource
	log    *slog.Logger
	m      serverMetrics
}

type serverMetrics struct {
	streams   prometheus.Gauge
	batches   *prometheus.CounterVec
	events    prometheus.Counter
	dropped   prometheus.Counter
	ingestDur prometheus.Histogram
	healthErr prometheus.Counter
}

// NewServer builds the SensorService. health and pol may be nil.
func NewServer(cfg ServerConfig, ing Ingester, health HealthRecorder, pol PolicySource, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	cfg = cfg.withDefaults()
	if ing == nil {
		return nil, errors.New("stream server: nil ingester")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	registerZstd()
	m := serverMetrics{
		streams:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_stream_server_streams", Help: "Sensor streams open now."}),
		batches:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_stream_server_batches_total", Help: "Batches received, by result (accepted, duplicate, invalid, failed)."}, []string{"result"}),
		events:    prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_stream_server_events_total", Help: "Events in accepted batches."}),
		dropped:   prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_stream_server_sensor_dropped_events_total", Help: "Events sensors reported dropping (spool full, refused batches)."}),
		ingestDur: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vigil_stream_server_ingest_seconds", Help: "Time Ingest took per batch.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		healthErr: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_stream_server_health_errors_total", Help: "Health reports that were invalid or could not be recorded."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.streams, m.batches, m.events, m.dropped, m.ingestDur, m.healthErr} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	return &Server{cfg: cfg, ing: ing, health: health, pol: pol, log: log.With("component", "stream"), m: m}, nil
}

// Register adds SensorService to g.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	vigilv1.RegisterSensorServiceServer(g, s)
}

// NewGRPCServer builds the backend's gRPC server from cfg: TLS (mutual when
// a client CA is set) unless Insecure, keepalive enforcement, the message
// size limit, token checks on every service but health, and the gRPC health
// service (its status for "vigil.v1.SensorService" is SERVING). Callers
// Register their services on it and Serve.
func NewGRPCServer(cfg ServerConfig, opts ...grpc.ServerOption) (*grpc.Server, *health.Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("stream server config: %w", err)
	}
	registerZstd()
	var creds credentials.TransportCredentials
	if cfg.Insecure {
		creds = insecure.NewCredentials()
	} else {
		tc, err := ServerTLSConfig(cfg.CertFile, cfg.KeyFile, cfg.ClientCAFile)
		if err != nil {
			return nil, nil, err
		}
		creds = credentials.NewTLS(tc)
	}
	base := []grpc.ServerOption{
		grpc.Creds(creds),
		grpc.MaxRecvMsgSize(cfg.Limits.MaxMessageBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: cfg.KeepaliveMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: cfg.KeepaliveTime, Timeout: cfg.KeepaliveTimeout}),
		grpc.ChainStreamInterceptor(cfg.Tokens.StreamAuthInterceptor()),
		grpc.ChainUnaryInterceptor(cfg.Tokens.UnaryAuthInterceptor()),
	}
	g := grpc.NewServer(append(base, opts...)...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	hs.SetServingStatus(vigilv1.SensorService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	return g, hs, nil
}

// refuse ends a stream because of an invalid message. The status names the
// field and limit (BadRequest) and the batch (ErrorInfo), so the sensor can
// drop exactly that batch.
func refuse(b *vigilv1.Batch, err error) error {
	var ve *limits.ValidationError
	if !errors.As(err, &ve) {
		ve = &limits.ValidationError{Field: "batch", Reason: err.Error()}
	}
	msg := "invalid message: " + ve.Error()
	if b != nil {
		msg = fmt.Sprintf("batch %d refused: %s", b.Sequence, ve.Error())
	}
	st := status.New(codes.InvalidArgument, msg)
	details := []protoadapt.MessageV1{&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: ve.Field, Description: ve.Reason}}}}
	if b == nil {
		details = append(details, &errdetails.ErrorInfo{Reason: ReasonMessageInvalid, Domain: errorDomain})
	} else {
		details = append(details, &errdetails.ErrorInfo{
			Reason: ReasonBatchInvalid,
			Domain: errorDomain,
			Metadata: map[string]string{
				"sequence":  strconv.FormatUint(b.Sequence, 10),
				"sensor_id": limits.Truncate(b.SensorId),
				"boot_id":   limits.Truncate(b.BootId),
			},
		})
	}
	if wd, derr := st.WithDetails(details...); derr == nil {
		st = wd
	}
	return st.Err()
}

// Stream serves one sensor: Hello first, then batches and health reports.
func (s *Server) Stream(st grpc.BidiStreamingServer[vigilv1.SensorMessage, vigilv1.BackendMessage]) error {
	ctx := st.Context()
	first, err := st.Recv()
	if err != nil {
		if err == io.EOF {
			return nil
		}
		return err
	}
	hello := first.GetHello()
	if err := limits.ValidateHello(hello, s.cfg.Limits); err != nil {
		return refuse(nil, err)
	}
	log := s.log.With("sensor_id", hello.SensorId, "boot_id", hello.BootId)
	log.Info("sensor connected", "version", hello.Version, "last_acked_sequence", hello.LastAckedSequence)
	s.m.streams.Inc()
	defer s.m.streams.Dec()

	var sendMu sync.Mutex
	send := func(m *vigilv1.BackendMessage) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return st.Send(m)
	}
	if s.pol != nil {
		p, changed := s.pol.Policy()
		if p != nil {
			if err := send(&vigilv1.BackendMessage{Kind: &vigilv1.BackendMessage_Policy{Policy: p}}); err != nil {
				return err
			}
		}
		// The pusher must be gone before Stream returns: a stream may not
		// be sent on after its handler ends.
		pctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.pushPolicies(pctx, changed, send)
		}()
		defer func() {
			stop()
			<-done
		}()
	}

	// Replays within one stream are skipped here; across streams (after a
	// reconnect) the Ingester's durable record decides. Sensors send each
	// boot id's batches in increasing sequence order.
	lastSeq := map[string]uint64{}
	for {
		m, err := st.Recv()
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		switch k := m.Kind.(type) {
		case *vigilv1.SensorMessage_Batch:
			if err := s.batch(ctx, hello, k.Batch, lastSeq, send); err != nil {
				if status.Code(err) == codes.InvalidArgument {
					log.Warn("batch refused", "err", err)
				}
				return err
			}
		case *vigilv1.SensorMessage_Health:
			// Health is advisory: a bad report is dropped, the stream
			// and its batches go on.
			if err := limits.ValidateHealth(k.Health, s.cfg.Limits); err != nil {
				s.m.healthErr.Inc()
				log.Warn("health report refused", "err", err)
				continue
			}
			if s.health != nil {
				if err := s.health.RecordHealth(ctx, hello, k.Health); err != nil {
					s.m.healthErr.Inc()
					log.Warn("record sensor health", "err", err)
				}
			}
		case *vigilv1.SensorMessage_Hello:
			return refuse(nil, &limits.ValidationError{Field: "hello", Reason: "sent twice on one stream"})
		default:
			return refuse(nil, &limits.ValidationError{Field: "kind", Reason: "empty or unknown message"})
		}
	}
}

func (s *Server) batch(ctx context.Context, hello *vigilv1.Hello, b *vigilv1.Batch, lastSeq map[string]uint64, send func(*vigilv1.BackendMessage) error) error {
	if b == nil {
		return refuse(nil, &limits.ValidationError{Field: "batch", Reason: "empty"})
	}
	if err := limits.ValidateBatch(b, s.cfg.Limits); err != nil {
		s.m.batches.WithLabelValues("invalid").Inc()
		return refuse(b, err)
	}
	if b.SensorId != hello.SensorId {
		s.m.batches.WithLabelValues("invalid").Inc()
		return refuse(b, &limits.ValidationError{Field: "batch.sensor_id", Reason: fmt.Sprintf("%q differs from the stream's sensor %q", limits.Truncate(b.SensorId), hello.SensorId)})
	}
	ack := func(dup bool) error {
		return send(&vigilv1.BackendMessage{Kind: &vigilv1.BackendMessage_Ack{Ack: &vigilv1.Ack{Sequence: b.Sequence, Duplicate: dup}}})
	}
	if last, ok := lastSeq[b.BootId]; ok && b.Sequence <= last {
		s.m.batches.WithLabelValues("duplicate").Inc()
		return ack(true)
	}
	limits.Resolve(b, hello.Host)
	start := time.Now()
	dup, err := s.ing.Ingest(ctx, b)
	s.m.ingestDur.Observe(time.Since(start).Seconds())
	if err != nil {
		if errors.Is(err, ErrBatchRejected) {
			s.m.batches.WithLabelValues("invalid").Inc()
			return refuse(b, &limits.ValidationError{Field: "batch", Reason: err.Error()})
		}
		s.m.batches.WithLabelValues("failed").Inc()
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		s.log.Error("ingest failed; sensor will retry", "sensor_id", b.SensorId, "sequence", b.Sequence, "err", err)
		return status.Errorf(codes.Unavailable, "ingest batch %d: %v", b.Sequence, err)
	}
	if len(lastSeq) >= 16 {
		// A sensor replays at most a few boots' spools; a stream cycling
		// through boot ids only loses this shortcut, not correctness.
		clear(lastSeq)
	}
	lastSeq[b.BootId] = b.Sequence
	if dup {
		s.m.batches.WithLabelValues("duplicate").Inc()
	} else {
		s.m.batches.WithLabelValues("accepted").Inc()
		s.m.events.Add(float64(len(b.Events)))
		s.m.dropped.Add(float64(b.DroppedEvents))
	}
	return ack(dup)
}

func (s *Server) pushPolicies(ctx context.Context, changed <-chan struct{}, send func(*vigilv1.BackendMessage) error) {
	for changed != nil {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		var p *vigilv1.CollectionPolicy
		p, changed = s.pol.Policy()
		if p == nil {
			continue
		}
		if err := send(&vigilv1.BackendMessage{Kind: &vigilv1.BackendMessage_Policy{Policy: p}}); err != nil {
			return
		}
	}
}

// PolicyBroadcaster is a PolicySource to Set from the config map loader.
type PolicyBroadcaster struct {
	mu      sync.Mutex
	policy  *vigilv1.CollectionPolicy
	changed chan struct{}
}

// NewPolicyBroadcaster starts with policy p (nil for none).
func NewPolicyBroadcaster(p *vigilv1.CollectionPolicy) *PolicyBroadcaster {
	return &PolicyBroadcaster{policy: p, changed: make(chan struct{})}
}

// Policy implements PolicySource.
func (b *PolicyBroadcaster) Policy() (*vigilv1.CollectionPolicy, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.policy, b.changed
}

// Set replaces the policy and wakes every stream to push it.
func (b *PolicyBroadcaster) Set(p *vigilv1.CollectionPolicy) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.policy = p
	close(b.changed)
	b.changed = make(chan struct{})
}
