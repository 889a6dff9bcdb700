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
	imds *imds.Client
}

// New returns a client for the IMDS at endpoint ("" for the SDK's default,
// http://169.254.169.254). It never falls back to IMDSv1: an instance that
// refuses tokens is reported as failing rather than read without one.
// Retries are left to the caller, which backs off between attempts.
func New(endpoint string, timeout time.Duration) *Client {
	return &Client{imds: imds.New(imds.Options{
		Endpoint:          endpoint,
		ClientEnableState: imds.ClientEnabled,
		EnableFallback:    aws.FalseTernary,
		Retryer:           aws.NopRetryer{},
		HTTPClient:        &http.Client{Timeout: timeout},
	})}
}

// Identity fetches a session token (PUT /latest/api/token), then the
// instance identity document with it.
func (c *Client) Identity(ctx context.Context) (*Identity, error) {
	out, err := c.imds.GetInstanceIdentityDocument(ctx, &imds.GetInstanceIdentityDocumentInput{})
	if err != nil {
		return nil, fmt.Errorf("imds identity document: %w", err)
	}
	d := out.InstanceIdentityDocument
	if d.InstanceID == "" {
		return nil, errors.New("imds identity document: no instance id")
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
// HTTP error (so something is there, refusing us) rather than from no
// IMDS at all (connection refused, timeout).
func Answered(err error) bool {
	var re interface{ HTTPStatusCode() int }
	return errors.As(err, &re) && re.HTTPStatusCode() != 0
}
