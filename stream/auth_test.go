package stream

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
	"github.com/vigilsec/vigil/stream/streamtest"
)

// rawStream opens SensorService.Stream by hand, so tests can send what a
// well-behaved Client never would.
func rawStream(t *testing.T, addr string, certs streamtest.Certs, token string, withClientCert bool) (grpc.BidiStreamingClient[vigilv1.SensorMessage, vigilv1.BackendMessage], error) {
	t.Helper()
	cert, key := "", ""
	if withClientCert {
		cert, key = certs.ClientCert, certs.ClientKey
	}
	tc, err := ClientTLSConfig(certs.CA, cert, key, "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	return vigilv1.NewSensorServiceClient(conn).Stream(ctx)
}

func helloMsg(sensor string) *vigilv1.SensorMessage {
	return &vigilv1.SensorMessage{Kind: &vigilv1.SensorMessage_Hello{Hello: &vigilv1.Hello{SensorId: sensor, BootId: "boot-1", Version: "test"}}}
}

func batchMsg(b *vigilv1.Batch) *vigilv1.SensorMessage {
	return &vigilv1.SensorMessage{Kind: &vigilv1.SensorMessage_Batch{Batch: b}}
}

// firstReply sends msgs and returns the first reply or the stream's status.
func firstReply(st grpc.BidiStreamingClient[vigilv1.SensorMessage, vigilv1.BackendMessage], err error, msgs ...*vigilv1.SensorMessage) (*vigilv1.BackendMessage, error) {
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if err := st.Send(m); err != nil {
			break // the status comes from Recv
		}
	}
	return st.Recv()
}

func TestSensorStreamAuthentication(t *testing.T) {
	certs := writeCerts(t)
	ts := startServer(t, certs, "", newCountingIngester(false), nil)
	f := newEventFactory()
	okBatch := &vigilv1.Batch{SensorId: "sensor-auth", BootId: "boot-1", Sequence: 1, Events: []*vigilv1.Event{f.event(1)}}
	for _, tc := range []struct {
		name  string
		token string
		want  codes.Code
	}{
		{"a stream without a token is unauthenticated", "", codes.Unauthenticated},
		{"a stream with a wrong token is unauthenticated", "not-the-token", codes.Unauthenticated},
		{"a stream with a token differing in one byte is unauthenticated", testSensorToken[:len(testSensorToken)-1] + "X", codes.Unauthenticated},
		{"a stream with the API token is refused", testAPIToken, codes.PermissionDenied},
		{"a stream with the sensor token is acknowledged", testSensorToken, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := rawStream(t, ts.addr, certs, tc.token, false)
			reply, err := firstReply(st, err, helloMsg("sensor-auth"), batchMsg(okBatch))
			if got := status.Code(err); got != tc.want {
				t.Fatalf("status %v (%v), want %v", got, err, tc.want)
			}
			if tc.want == codes.OK && reply.GetAck().GetSequence() != 1 {
				t.Fatalf("reply %v, want ack of sequence 1", reply)
			}
		})
	}
}

func TestTokensAuthorizeByRole(t *testing.T) {
	tokens := Tokens{Sensor: testSensorToken, API: testAPIToken}
	for _, tc := range []struct {
		name   string
		header string
		role   Role
		want   error
	}{
		{"the API token reads the API", "Bearer " + testAPIToken, RoleAPI, nil},
		{"the scheme is case-insensitive", "bearer " + testAPIToken, RoleAPI, nil},
		{"a sensor token on the API is refused", "Bearer " + testSensorToken, RoleAPI, ErrWrongRole},
		{"an API token on the sensor stream is refused", "Bearer " + testAPIToken, RoleSensor, ErrWrongRole},
		{"the sensor token streams", "Bearer " + testSensorToken, RoleSensor, nil},
		{"no header is unauthenticated", "", RoleAPI, ErrUnauthenticated},
		{"a token without the Bearer scheme is unauthenticated", testAPIToken, RoleAPI, ErrUnauthenticated},
		{"an empty bearer token is unauthenticated", "Bearer ", RoleAPI, ErrUnauthenticated},
		{"an unknown token is unauthenticated", "Bearer guess", RoleAPI, ErrUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tokens.Authorize(tc.header, tc.role); !errors.Is(err, tc.want) {
				t.Fatalf("Authorize = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("an unset API token never matches", func(t *testing.T) {
		if err := (Tokens{Sensor: testSensorToken}).Authorize("Bearer ", RoleAPI); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("Authorize = %v, want ErrUnauthenticated", err)
		}
	})
	t.Run("identical sensor and API tokens are rejected by Validate", func(t *testing.T) {
		if err := (Tokens{Sensor: "same", API: "same"}).Validate(); err == nil {
			t.Fatal("Validate accepted one token for both roles")
		}
	})
}

func TestTransportSecurity(t *testing.T) {
	certs := writeCerts(t)
	mtls := startServer(t, certs, "", newCountingIngester(false), func(c *ServerConfig) { c.ClientCAFile = certs.CA })
	plain := startServer(t, certs, "", newCountingIngester(false), nil)
	for _, tc := range []struct {
		name       string
		addr       string
		ca         string
		clientCert bool
		want       codes.Code
	}{
		{"a sensor with a client certificate passes mutual TLS", mtls.addr, certs.CA, true, codes.OK},
		{"a sensor without a client certificate fails mutual TLS", mtls.addr, certs.CA, false, codes.Unavailable},
		{"a sensor trusting another CA does not connect", plain.addr, certs.OtherCA, false, codes.Unavailable},
		{"a sensor trusting the backend's CA connects", plain.addr, certs.CA, false, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := certs
			c.CA = tc.ca
			st, err := rawStream(t, tc.addr, c, testSensorToken, tc.clientCert)
			f := newEventFactory()
			_, err = firstReply(st, err, helloMsg("sensor-tls"), batchMsg(&vigilv1.Batch{SensorId: "sensor-tls", BootId: "b", Sequence: 1, Events: []*vigilv1.Event{f.event(0)}}))
			if got := status.Code(err); got != tc.want {
				t.Fatalf("status %v (%v), want %v", got, err, tc.want)
			}
		})
	}
	t.Run("the health service answers without a token", func(t *testing.T) {
		tc, err := ClientTLSConfig(certs.CA, "", "", "")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(plain.addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: "vigil.v1.SensorService"})
		if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health = %v, %v; want SERVING", resp, err)
		}
	})
	t.Run("a server without a certificate refuses to start unless insecure", func(t *testing.T) {
		cfg := DefaultServerConfig()
		cfg.Tokens = Tokens{Sensor: "s"}
		if _, _, err := NewGRPCServer(cfg); err == nil {
			t.Fatal("NewGRPCServer started without TLS and without insecure")
		}
		cfg.Insecure = true
		if _, _, err := NewGRPCServer(cfg); err != nil {
			t.Fatalf("insecure server: %v", err)
		}
	})
}

func TestPlaintextOnlyWhenBothSidesSayInsecure(t *testing.T) {
	certs := writeCerts(t)
	for _, tc := range []struct {
		name           string
		clientInsecure bool
		wantDelivered  bool
	}{
		{"an insecure sensor reaches an insecure backend", true, true},
		{"a TLS sensor does not talk to a plaintext backend", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ing := newCountingIngester(false)
			ts := startServer(t, certs, "", ing, func(c *ServerConfig) {
				c.Insecure, c.CertFile, c.KeyFile = true, "", ""
			})
			cfg := clientConfig(ts.addr, certs, "sensor-plain", "")
			if tc.clientInsecure {
				cfg.Insecure, cfg.CAFile = true, ""
			}
			c, err := NewClient(cfg, testLogger(t), prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			in := make(chan *vigilv1.Event)
			ctx, cancel := context.WithCancel(context.Background())
			wait := runClient(t, c, ctx, in)
			f := newEventFactory()
			for i := 0; i < 5; i++ {
				in <- f.event(i)
			}
			if tc.wantDelivered {
				waitFor(t, 10*time.Second, "delivery", func() bool { return ing.events.Load() == 5 })
			} else {
				time.Sleep(500 * time.Millisecond)
				if n := ing.events.Load(); n != 0 {
					t.Fatalf("%d events crossed from a TLS client to a plaintext server", n)
				}
			}
			cancel()
			if err := wait(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
