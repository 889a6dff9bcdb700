package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
	"github.com/vigilsec/vigil/stream/limits"
)

// Client is the sensor's end of the wire: it batches events, spools them
// and delivers them to the backend exactly once per acknowledgement.
type Client struct {
	cfg   ClientConfig
	log   *slog.Logger
	conn  *grpc.ClientConn
	spool *spool
	m     clientMetrics

	// lockstep makes the next session send one batch at a time, after a
	// failure that no status attributed to a batch, so that a batch that
	// fails again is known to be the culprit.
	lockstep bool
}

type clientMetrics struct {
	eventsIn       prometheus.Counter
	eventsRejected prometheus.Counter
	batchesSealed  prometheus.Counter
	batchesSent    prometheus.Counter
	batchesAcked   prometheus.Counter
	eventsAcked    prometheus.Counter
	duplicates     prometheus.Counter
	quarantined    prometheus.Counter
	spoolErrors    prometheus.Counter
	sessions       *prometheus.CounterVec
	connected      prometheus.Gauge
}

func newClientMetrics(reg prometheus.Registerer, s *spool) (clientMetrics, error) {
	m := clientMetrics{
		eventsIn:       prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_stream_client_events_total", Help: "Events handed to the stream client."}),
		eventsRejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_stream_client_events_unmarshalable_total", Help: "Events that could not be marshalled and were dropped."}),
		batchesSealed:  prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_stream_client_batches_sealed_total", Help: "Batches sealed into the spool."}),
		batchesSent:    prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_stream_client_batches_sent_total", Help: "Batch sends, retries included."}),
		batchesAcked:   prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_stream_client_batches_acked_total", Help: "Batches the backend acknowledged."}),
		eventsAcked:    prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_stream_client_events_acked_total", Help: "Events in acknowledged batches."}),
		duplicates:     prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_stream_client_duplicate_acks_total", Help: "Batches the backend had already accepted (replays)."}),
		quarantined:    prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_stream_client_batches_quarantined_total", Help: "Batches the backend refused as invalid; dropped and reported."}),
		spoolErrors:    prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_stream_client_spool_write_errors_total", Help: "Spool writes that failed (the batch stayed in memory)."}),
		sessions:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_stream_client_sessions_total", Help: "Stream sessions by how they ended."}, []string{"end"}),
		connected:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_stream_client_connected", Help: "1 while a stream to the backend is open."}),
	}
	cs := []prometheus.Collector{m.eventsIn, m.eventsRejected, m.batchesSealed, m.batchesSent, m.batchesAcked, m.eventsAcked, m.duplicates, m.quarantined, m.spoolErrors, m.sessions, m.connected,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_stream_client_spool_bytes", Help: "Bytes held in the spool."}, func() float64 { return float64(s.stats().bytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_stream_client_spool_batches", Help: "Batches held in the spool."}, func() float64 { return float64(s.stats().entries) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vigil_stream_client_spool_dropped_batches_total", Help: "Batches dropped because the spool was full or a batch was refused."}, func() float64 { return float64(s.stats().droppedBatches) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vigil_stream_client_spool_dropped_events_total", Help: "Events in dropped batches."}, func() float64 { return float64(s.stats().droppedEvents) }),
	}
	if reg != nil {
		for _, c := range cs {
			if err := reg.Register(c); err != nil {
				return m, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// NewClient checks cfg, opens the spool (queueing whatever an earlier run
// left in it) and prepares the connection; nothing is dialled until Run.
func NewClient(cfg ClientConfig, log *slog.Logger, reg prometheus.Registerer) (*Client, error) {
	cfg = cfg.withDefaults()
	if cfg.BootID == "" {
		b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
		if err != nil {
			return nil, fmt.Errorf("read boot id: %w", err)
		}
		cfg.BootID = strings.TrimSpace(string(b))
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("stream client config: %w", err)
	}
	if err := limits.CheckID(cfg.BootID, spoolBootIDLen); err != nil {
		return nil, fmt.Errorf("stream client config: boot_id: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "stream")
	registerZstd()

	var creds credentials.TransportCredentials
	if cfg.Insecure {
		creds = insecure.NewCredentials()
	} else {
		tc, err := ClientTLSConfig(cfg.CAFile, cfg.CertFile, cfg.KeyFile, cfg.ServerName)
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(tc)
	}
	codec := newFrameCodec()
	conn, err := grpc.NewClient(cfg.Backend,
		grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: cfg.KeepaliveTime, Timeout: cfg.KeepaliveTimeout, PermitWithoutStream: true}),
		grpc.WithDefaultCallOptions(grpc.UseCompressor(zstdName), grpc.ForceCodecV2(codec)),
		// The stream itself retries with our backoff; keep gRPC's
		// reconnects from hammering a down backend either.
		grpc.WithConnectParams(grpcConnectParams(cfg)),
	)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", cfg.Backend, err)
	}
	sp, problems, err := openSpool(cfg.SpoolDir, cfg.SpoolMaxBytes, cfg.BootID)
	if err != nil {
		conn.Close()
		return nil, err
	}
	sp.writeAfter = cfg.SpoolWriteAfter
	for _, p := range problems {
		log.Warn("spool file dropped", "problem", p)
	}
	if st := sp.stats(); st.entries > 0 {
		log.Info("spool holds batches from an earlier run; replaying", "batches", st.entries, "bytes", st.bytes)
	}
	m, err := newClientMetrics(reg, sp)
	if err != nil {
		sp.close()
		conn.Close()
		return nil, err
	}
	return &Client{cfg: cfg, log: log, conn: conn, spool: sp, m: m}, nil
}

// Run reads events from in until ctx is cancelled or in is closed,
// batching, spooling and sending them. When in closes it keeps delivering
// for up to FlushTimeout; whatever is still spooled then is replayed by the
// next run (with a spool directory). Run returns nil on either way out, or
// the error of saving the spool at the end. A Client runs once. Run owns
// the events it receives: it briefly swaps an event's context pointers
// while marshalling it, and shared Process, Container, Kubernetes and Ecs
// messages must not change once an event holding them has been sent (hand
// out a new pointer instead); sharing them by pointer is what lets a batch
// carry each of them once.
func (c *Client) Run(ctx context.Context, in <-chan *vigilv1.Event) error {
	defer c.conn.Close()
	sendCtx, stopSend := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.sendLoop(sendCtx)
	}()
	err := c.batchLoop(ctx, in)
	if err == nil && ctx.Err() == nil {
		c.flush(ctx)
	}
	stopSend()
	wg.Wait()
	if cerr := c.spool.close(); err == nil {
		err = cerr
	}
	return err
}

// flush waits for the spool to empty, FlushTimeout or ctx.
func (c *Client) flush(ctx context.Context) {
	deadline := time.NewTimer(c.cfg.FlushTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for c.spool.stats().entries > 0 {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			c.log.Warn("backend did not take the whole spool before shutdown; it stays spooled", "batches", c.spool.stats().entries)
			return
		case <-tick.C:
		}
	}
}

// batchLoop seals a batch when it reaches BatchMaxEvents or BatchMaxBytes,
// or BatchMaxDelay after its first event.
func (c *Client) batchLoop(ctx context.Context, in <-chan *vigilv1.Event) error {
	b := newBatchBuilder()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	seal := func() error {
		timer.Stop()
		if b.count == 0 && !c.spool.unreported() {
			return nil
		}
		n := b.count
		_, err := c.spool.append(b, c.cfg.SensorID, time.Now())
		switch {
		case errors.Is(err, errFrameTooLarge):
			c.log.Warn("batch larger than the spool dropped", "events", n)
			return nil
		case err != nil:
			// A full or failing disk must not stop the sensor: the batch
			// is queued in memory all the same and sent when it can be.
			c.m.spoolErrors.Inc()
			c.log.Warn("spool write failed; batch kept in memory only", "err", err)
		}
		c.m.batchesSealed.Inc()
		return nil
	}
	maxBytes := c.cfg.BatchMaxBytes - frameHeaderSlack - len(c.cfg.SensorID) - len(c.cfg.BootID)
	for {
		select {
		case <-ctx.Done():
			return seal()
		case <-timer.C:
			if err := seal(); err != nil {
				return err
			}
		case <-c.spool.lost:
			// Report a loss now, in a batch of its own if need be,
			// rather than when the next event comes.
			if b.count == 0 {
				if err := seal(); err != nil {
					return err
				}
			}
		case e, ok := <-in:
			if !ok {
				return seal()
			}
			c.m.eventsIn.Inc()
			if err := b.add(e); err != nil {
				c.m.eventsRejected.Inc()
				c.log.Warn("event dropped", "err", err)
				continue
			}
			if b.count == 1 {
				timer.Reset(c.cfg.BatchMaxDelay)
			}
			if b.count >= c.cfg.BatchMaxEvents || len(b.events)+len(b.shared) >= maxBytes {
				if err := seal(); err != nil {
					return err
				}
			}
		}
	}
}

// sendLoop runs sessions until ctx ends, backing off exponentially with
// jitter between failed ones.
func (c *Client) sendLoop(ctx context.Context) {
	backoff := c.cfg.ReconnectMin
	for ctx.Err() == nil {
		acked, err := c.session(ctx)
		c.m.connected.Set(0)
		if ctx.Err() != nil {
			c.m.sessions.WithLabelValues("shutdown").Inc()
			return
		}
		end := status.Code(err).String()
		c.m.sessions.WithLabelValues(end).Inc()
		if acked > 0 {
			backoff = c.cfg.ReconnectMin
		}
		wait := jitter(backoff)
		c.log.Warn("stream to backend ended; reconnecting", "err", err, "retry_in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(backoff*2, c.cfg.ReconnectMax)
	}
}

// jitter spreads a wait over [d/2, d], so that sensors cut off together do
// not all reconnect at the same moment.
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// session opens one stream and sends the spool from its head until the
// stream fails; it returns how many batches were acknowledged.
func (c *Client) session(ctx context.Context) (acked int, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sctx = metadata.AppendToOutgoingContext(sctx, "authorization", "Bearer "+c.cfg.Token)
	st, err := vigilv1.NewSensorServiceClient(c.conn).Stream(sctx)
	if err != nil {
		return 0, err
	}
	// A failed Send says only io.EOF; the stream's status comes from Recv,
	// which only the receive goroutine below calls.
	recvErr := make(chan error, 1)
	streamErr := func(err error) error {
		if !errors.Is(err, io.EOF) {
			return err
		}
		select {
		case err := <-recvErr:
			if err == io.EOF {
				return status.Error(codes.Unavailable, "backend closed the stream")
			}
			return err
		case <-time.After(5 * time.Second):
			return status.Error(codes.Unavailable, "stream broke without a status")
		}
	}

	window := c.cfg.MaxInFlight
	lockstep := c.lockstep
	if lockstep {
		window = 1
	}
	acks := make(chan *vigilv1.Ack, window+1)
	go func() {
		for {
			m, err := st.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			switch k := m.Kind.(type) {
			case *vigilv1.BackendMessage_Ack:
				select {
				case acks <- k.Ack:
				case <-sctx.Done():
					recvErr <- sctx.Err()
					return
				}
			case *vigilv1.BackendMessage_Policy:
				if c.cfg.OnPolicy != nil && k.Policy != nil {
					c.cfg.OnPolicy(k.Policy)
				}
			}
		}
	}()
	hello := &vigilv1.SensorMessage{Kind: &vigilv1.SensorMessage_Hello{Hello: &vigilv1.Hello{
		SensorId:          c.cfg.SensorID,
		BootId:            c.cfg.BootID,
		Version:           c.cfg.Version,
		Host:              c.cfg.Host,
		LastAckedSequence: c.spool.lastAckedSeq(),
	}}}
	if err := st.Send(hello); err != nil {
		return 0, streamErr(err)
	}
	c.m.connected.Set(1)
	if err := c.spool.setConnected(true); err != nil {
		return 0, err
	}
	defer func() {
		if err := c.spool.setConnected(false); err != nil {
			c.log.Error("write spool", "err", err)
		}
	}()

	var health <-chan time.Time
	if c.cfg.HealthFunc != nil {
		t := time.NewTicker(c.cfg.HealthInterval)
		defer t.Stop()
		health = t.C
		if err := c.sendHealth(st); err != nil {
			return 0, streamErr(err)
		}
	}

	// Batches still unacknowledged after SpoolWriteAfter go to disk even
	// when no new batch comes to trigger it.
	persist := time.NewTicker(max(c.cfg.SpoolWriteAfter/2, 10*time.Millisecond))
	defer persist.Stop()

	var pending []*spoolEntry // sent, awaiting acks, in order
	var lastID uint64
	defer func() {
		for _, p := range pending {
			c.spool.markSent(p, false)
		}
	}()
	// fail attributes a stream error to a batch when it can.
	fail := func(err error) error {
		if seq, ok := refusedSequence(err); ok {
			for _, p := range pending {
				if p.seq == seq {
					c.quarantine(p, err)
					return err
				}
			}
		}
		code := status.Code(err)
		if code == codes.InvalidArgument && hasErrorInfo(err) {
			// Refused for something no batch caused (a bad Hello):
			// keep every batch and retry with backoff.
			return err
		}
		if code == codes.InvalidArgument || code == codes.ResourceExhausted {
			if lockstep && len(pending) == 1 {
				c.quarantine(pending[0], err)
				c.lockstep = false
				return err
			}
			c.lockstep = true
		}
		return err
	}
	for {
		if len(pending) < window {
			if e := c.spool.next(lastID); e != nil {
				frame, err := c.spool.frame(e)
				lastID = e.id
				if err != nil {
					c.log.Warn("spooled batch unreadable; dropped", "err", err)
					continue
				}
				c.spool.markSent(e, true)
				pending = append(pending, e)
				if err := st.SendMsg(rawFrame(frame)); err != nil {
					return acked, fail(streamErr(err))
				}
				c.m.batchesSent.Inc()
				continue
			}
		}
		select {
		case <-ctx.Done():
			st.CloseSend()
			return acked, ctx.Err()
		case err := <-recvErr:
			if err == io.EOF {
				err = status.Error(codes.Unavailable, "backend closed the stream")
			}
			return acked, fail(err)
		case a := <-acks:
			if len(pending) == 0 || pending[0].seq != a.Sequence {
				return acked, fmt.Errorf("ack for sequence %d out of order", a.Sequence)
			}
			e := pending[0]
			pending = pending[1:]
			c.spool.ack(e)
			acked++
			c.lockstep = false
			c.m.batchesAcked.Inc()
			c.m.eventsAcked.Add(float64(e.events))
			if a.Duplicate {
				c.m.duplicates.Inc()
			}
			if lockstep {
				// The suspect batch went through; back to full speed.
				window, lockstep = c.cfg.MaxInFlight, false
			}
		case <-health:
			if err := c.sendHealth(st); err != nil {
				return acked, fail(streamErr(err))
			}
		case <-c.spool.notify:
		case now := <-persist.C:
			if err := c.spool.writeBehind(now); err != nil {
				c.m.spoolErrors.Inc()
				c.log.Warn("spool write failed", "err", err)
			}
		}
	}
}

func (c *Client) sendHealth(st grpc.BidiStreamingClient[vigilv1.SensorMessage, vigilv1.BackendMessage]) error {
	h := c.cfg.HealthFunc()
	if h == nil {
		return nil
	}
	h = proto.CloneOf(h)
	sp := c.spool.stats()
	h.SensorId = c.cfg.SensorID
	if h.Time == nil {
		h.Time = timestamppb.Now()
	}
	h.SpoolBytes = uint64(sp.bytes)
	h.SpoolLimitBytes = uint64(sp.limit)
	h.SpoolDroppedBatches = sp.droppedBatches
	h.SpoolDroppedEvents = sp.droppedEvents
	return st.Send(&vigilv1.SensorMessage{Kind: &vigilv1.SensorMessage_Health{Health: h}})
}

func (c *Client) quarantine(e *spoolEntry, err error) {
	c.log.Error("backend refused a batch; dropped it and reported the loss", "sequence", e.seq, "events", e.events, "err", err)
	c.spool.quarantine(e)
	c.m.quarantined.Inc()
}

// refusedSequence reads the sequence a refusal names (ErrorInfo detail).
func refusedSequence(err error) (uint64, bool) {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		return 0, false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Reason == ReasonBatchInvalid {
			if seq, err := strconv.ParseUint(info.Metadata["sequence"], 10, 64); err == nil {
				return seq, true
			}
		}
	}
	return 0, false
}

// grpcConnectParams makes gRPC's own transport reconnects follow the same
// bounds as our stream retries.
func grpcConnectParams(cfg ClientConfig) grpc.ConnectParams {
	return grpc.ConnectParams{
		Backoff: backoff.Config{
			BaseDelay:  cfg.ReconnectMin,
			Multiplier: 1.6,
			Jitter:     0.2,
			MaxDelay:   cfg.ReconnectMax,
		},
		MinConnectTimeout: 5 * time.Second,
	}
}

// hasErrorInfo says whether a status carries one of our ErrorInfo details.
func hasErrorInfo(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == errorDomain {
			return true
		}
	}
	return false
}
