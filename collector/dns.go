package collector

import (
	"errors"
	"fmt"

	"github.com/vigilsec/vigil/collector/dnswire"
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// ErrBadDNS means a payload to or from port 53 was not a DNS message.
var ErrBadDNS = errors.New("payload on port 53 is not a dns message")

// parseDNSQuery and parseDNSAnswer turn a captured UDP payload into the
// event's DNS message. A payload cut at the capture bound still yields what
// was parsed before the cut.
func parseDNSQuery(payload []byte) (*vigilv1.DnsQuery, error) {
	q, err := dnswire.ParseQuery(payload)
	if err != nil && !errors.Is(err, dnswire.ErrTruncated) {
		return nil, fmt.Errorf("%w: %w", ErrBadDNS, err)
	}
	return &vigilv1.DnsQuery{Name: q.Name, Type: q.Type, Id: uint32(q.ID)}, nil
}

func parseDNSAnswer(payload []byte) (*vigilv1.DnsAnswer, error) {
	r, err := dnswire.ParseResponse(payload)
	if err != nil && !errors.Is(err, dnswire.ErrTruncated) {
		return nil, fmt.Errorf("%w: %w", ErrBadDNS, err)
	}
	return &vigilv1.DnsAnswer{
		Name: r.Name, Type: r.Type, Id: uint32(r.ID), Rcode: r.RCode,
		Addresses: r.AddressStrings(), Cnames: r.CNAMEs,
	}, nil
}
