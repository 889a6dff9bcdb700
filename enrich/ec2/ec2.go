// Package ec2 reads the EC2 instance identity through the instance
// metadata service with IMDSv2 session tokens (aws-sdk-go-v2's imds
// client): instance id and type, AMI, region, account and availability
// zone.
package ec2

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// Identity is the part of the instance identity document Vigil reports.
type Identity struct {
	InstanceID       string
	InstanceType     string
	ImageID          string
	Region           string
	AccountID        string
	AvailabilityZone string
	Architecture     string
	PrivateIP        string
}

// Client reads the instance identity document.
type Client struct {
	endpoint string
	timeout  time.Duration
}

// New returns a client for the IMDS at endpoint ("" for the SDK's default,
// http://169.254.169.254). It never falls back to IMDSv1: an instance that
// refuses tokens is reported as failing rather than read without one.
// Retries are left to the caller, which backs off between attempts.
func New(endpoint string, timeout time.Duration) *Client {
	return &Client{endpoint: endpoint, timeout: timeout}
}

// Error is a failed identity request, with the last HTTP status the IMDS
// answered (0 when nothing answered).
type Error struct {
	Err    error
	Status int
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// statusRecorder remembers the last HTTP status, because the SDK hides it
// inside errors that do not unwrap when the token request fails.
type statusRecorder struct {
	inner  *http.Client
	status atomic.Int32
}

func (r *statusRecorder) Do(req *http.Request) (*http.Response, error) {
	resp, err := r.inner.Do(req)
	if resp != nil {
		r.status.Store(int32(resp.StatusCode))
	}
	return resp, err
}

// Identity fetches a session token (PUT /latest/api/token), then the
// instance identity document with it.
func (c *Client) Identity(ctx context.Context) (*Identity, error) {
	// A fresh SDK client per attempt: the SDK's token provider turns
	// itself off for good after one failed connection, which would send
	// every later attempt without a token.
	rec := &statusRecorder{inner: &http.Client{Timeout: c.timeout}}
	cl := imds.New(imds.Options{
		Endpoint:          c.endpoint,
		ClientEnableState: imds.ClientEnabled,
		EnableFallback:    aws.FalseTernary,
		Retryer:           aws.NopRetryer{},
		HTTPClient:        rec,
	})
	out, err := cl.GetInstanceIdentityDocument(ctx, &imds.GetInstanceIdentityDocumentInput{})
	if err != nil {
		return nil, &Error{Err: fmt.Errorf("imds identity document: %w", err), Status: int(rec.status.Load())}
	}
	d := out.InstanceIdentityDocument
	if d.InstanceID == "" {
		return nil, &Error{Err: errors.New("imds identity document: no instance id"), Status: int(rec.status.Load())}
	}
	return &Identity{
		InstanceID:       d.InstanceID,
		InstanceType:     d.InstanceType,
		ImageID:          d.ImageID,
		Region:           d.Region,
		AccountID:        d.AccountID,
		AvailabilityZone: d.AvailabilityZone,
		Architecture:     d.Architecture,
		PrivateIP:        d.PrivateIP,
	}, nil
}

// Answered reports whether err came from an IMDS that answered with an
// HTTP error (something is there, refusing us) rather than from no IMDS at
// all (connection refused, timeout).
func Answered(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status != 0
}
