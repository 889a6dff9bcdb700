package stream

import (
	"context"
	"crypto/subtle"
	"errors"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Role is what a bearer token is allowed to do.
type Role int

const (
	// RoleSensor may stream events to the backend (SensorService) and
	// nothing else.
	RoleSensor Role = iota + 1
	// RoleAPI may read findings and coverage through the REST API.
	RoleAPI
)

// String names the role for logs and errors.
func (r Role) String() string {
	switch r {
	case RoleSensor:
		return "sensor"
	case RoleAPI:
		return "api"
	default:
		return "none"
	}
}

// ErrUnauthenticated means no token, or a token that matches no role. The
// REST API maps it to 401.
var ErrUnauthenticated = errors.New("missing or unknown bearer token")

// ErrWrongRole means a valid token of another role (a sensor token on the
// REST API). The REST API maps it to 403.
var ErrWrongRole = errors.New("token not allowed for this service")

// Tokens holds the shared secrets for each role. They are separate so that
// a sensor's token, which sits on every host, cannot read findings.
type Tokens struct {
	// Sensor is VIGIL_SENSOR_TOKEN.
	Sensor string
	// API is VIGIL_API_TOKEN.
	API string
}

// Validate requires a sensor token, and different tokens per role.
func (t Tokens) Validate() error {
	if t.Sensor == "" {
		return errors.New("sensor token: required (VIGIL_SENSOR_TOKEN)")
	}
	if t.API != "" && t.API == t.Sensor {
		return errors.New("api token: must differ from the sensor token")
	}
	return nil
}

// RoleOf returns the role a token grants, comparing in constant time so the
// comparison does not leak how much of a guess was right. An empty token, or
// an empty configured secret, never matches.
func (t Tokens) RoleOf(token string) (Role, bool) {
	if token == "" {
		return 0, false
	}
	// Compare against both so that timing does not reveal which role a
	// token is for.
	sensor := t.Sensor != "" && subtle.ConstantTimeCompare([]byte(token), []byte(t.Sensor)) == 1
	api := t.API != "" && subtle.ConstantTimeCompare([]byte(token), []byte(t.API)) == 1
	switch {
	case sensor:
		return RoleSensor, true
	case api:
		return RoleAPI, true
	}
	return 0, false
}

// Authorize checks an Authorization header value ("Bearer TOKEN") for role.
// It returns nil, ErrUnauthenticated or ErrWrongRole.
func (t Tokens) Authorize(header string, role Role) error {
	token, ok := bearer(header)
	if !ok {
		return ErrUnauthenticated
	}
	got, ok := t.RoleOf(token)
	if !ok {
		return ErrUnauthenticated
	}
	if got != role {
		return ErrWrongRole
	}
	return nil
}

// bearer extracts the token from "Bearer TOKEN" (scheme case-insensitive).
func bearer(header string) (string, bool) {
	const scheme = "bearer "
	if len(header) < len(scheme) || !strings.EqualFold(header[:len(scheme)], scheme) {
		return "", false
	}
	return strings.TrimSpace(header[len(scheme):]), true
}

// sensorServicePrefix is the full-method prefix of SensorService's RPCs.
const sensorServicePrefix = "/vigil.v1.SensorService/"

// authorizeContext checks the gRPC call's authorization metadata for role.
func (t Tokens) authorizeContext(ctx context.Context, role Role) error {
	md, _ := metadata.FromIncomingContext(ctx)
	var header string
	if v := md.Get("authorization"); len(v) > 0 {
		header = v[0]
	}
	switch err := t.Authorize(header, role); {
	case err == nil:
		return nil
	case errors.Is(err, ErrWrongRole):
		return status.Errorf(codes.PermissionDenied, "%v: %s token required", err, role)
	default:
		return status.Errorf(codes.Unauthenticated, "%v: send \"authorization: Bearer <%s token>\"", err, role)
	}
}

// roleFor says which role a gRPC method needs; false means the method is
// open (the gRPC health service, for load balancers).
func roleFor(fullMethod string) (Role, bool) {
	if strings.HasPrefix(fullMethod, sensorServicePrefix) {
		return RoleSensor, true
	}
	if strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/") {
		return 0, false
	}
	// Anything else served on this port is read access.
	return RoleAPI, true
}

// StreamAuthInterceptor refuses streams without the token their service
// needs: codes.Unauthenticated for a missing or unknown token,
// codes.PermissionDenied for another role's token.
func (t Tokens) StreamAuthInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if role, ok := roleFor(info.FullMethod); ok {
			if err := t.authorizeContext(ss.Context(), role); err != nil {
				return err
			}
		}
		return handler(srv, ss)
	}
}

// UnaryAuthInterceptor is StreamAuthInterceptor for unary calls.
func (t Tokens) UnaryAuthInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if role, ok := roleFor(info.FullMethod); ok {
			if err := t.authorizeContext(ctx, role); err != nil {
				return nil, err
			}
		}
		return handler(ctx, req)
	}
}
