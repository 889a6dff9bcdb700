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

// stripTCPLength removes the 2-byte length DNS over TCP puts before each
// message (RFC 1035 4.2.2), when the payload starts with one: the length
// names the rest of the payload, or more than the probe copied. A message
// written apart from its length starts with its id instead.
func stripTCPLength(p []byte) []byte {
	if len(p) < 2+12 {
		return p
	}
	n := int(p[0])<<8 | int(p[1])
	if n == len(p)-2 || n > len(p)-2 && len(p) >= minTruncatedTCP {
		return p[2:]
	}
	return p
}

// minTruncatedTCP is the shortest payload taken as a length-prefixed
// message cut by the probe's copy bound (DNSPayloadBytes is at least this).
const minTruncatedTCP = 256
