package collector

import (
	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// parseDNSQuery and parseDNSAnswer turn a captured UDP payload into the
// event's DNS message. The wire format is parsed by collector/dnswire; until
// that package lands only the transaction id is read here.
func parseDNSQuery(payload []byte) *vigilv1.DnsQuery {
	q := &vigilv1.DnsQuery{}
	if len(payload) >= 2 {
		q.Id = uint32(payload[0])<<8 | uint32(payload[1])
	}
	return q
}

func parseDNSAnswer(payload []byte) *vigilv1.DnsAnswer {
	a := &vigilv1.DnsAnswer{}
	if len(payload) >= 2 {
		a.Id = uint32(payload[0])<<8 | uint32(payload[1])
	}
	return a
}
