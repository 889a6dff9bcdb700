// Package dnswire parses DNS messages captured in BPF: the question of a
// query a process sent, and the question, response code, addresses and CNAMEs
// of a response it received.
//
// Payloads come from the kernel as they were on the socket, cut at the
// capture bound: a UDP datagram, or a TCP segment that starts with the 2-byte
// length prefix of RFC 1035 section 4.2.2. The parsers accept both (see
// parseFramed for how they tell), never panic, and report a payload that
// ends early with ErrTruncated, returning what was parsed before the cut.
//
// The wire format itself is read by golang.org/x/net/dns/dnsmessage, which
// bounds names (255 bytes) and labels (63), follows at most 10 compression
// pointers per name (so pointer loops end), and checks every length against
// the buffer. This package adds the framing, the presentation of names and
// type and rcode names as dig and Falco print them.
package dnswire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// Errors the parsers return; wrapped with detail, test with errors.Is.
var (
	// ErrTruncated means the payload ended before the message did (the
	// capture bound, or a short read).
	ErrTruncated = errors.New("dns message truncated")
	// ErrMalformed means the bytes are not a DNS message.
	ErrMalformed = errors.New("malformed dns message")
	// ErrNotQuery is returned by ParseQuery for a message with the QR bit set.
	ErrNotQuery = errors.New("dns message is a response, not a query")
	// ErrNotResponse is returned by ParseResponse for a query.
	ErrNotResponse = errors.New("dns message is a query, not a response")
	// ErrNoQuestion means the message carries no question.
	ErrNoQuestion = errors.New("dns message has no question")
)

// Question is the first question of a message.
type Question struct {
	// Name is the queried name in lower case without the trailing dot ("."
	// for the root). Bytes outside printable ASCII, and the backslash, are
	// written \DDD as dig does, so the name is always valid UTF-8.
	Name string
	// Type is the type's mnemonic ("A", "AAAA", "TXT", "ANY", ...), or
	// "TYPE" and the number for types without one (RFC 3597).
	Type string
	// TypeCode is the numeric type.
	TypeCode uint16
	// Class is the numeric class (1 for IN).
	Class uint16
}

// Query is a parsed DNS query.
type Query struct {
	// ID is the message id, which pairs the query with its response.
	ID uint16
	Question
	// Questions is the number of questions the header announces (almost
	// always 1; only the first is parsed).
	Questions uint16
	// TCP is true when the payload carried the TCP length prefix.
	TCP bool
}

// Response is a parsed DNS response.
type Response struct {
	ID uint16
	Question
	// RCode is the response code's name ("NOERROR", "NXDOMAIN", ...), or
	// "RCODE" and the number.
	RCode string
	// RCodeNum is the numeric (header) response code.
	RCodeNum uint8
	// Truncated is the TC bit: the server cut the answer (the client
	// retries over TCP).
	Truncated bool
	// Authoritative is the AA bit.
	Authoritative bool
	// Addresses are the A and AAAA records of the answer section, in order.
	Addresses []netip.Addr
	// CNAMEs are the targets of CNAME records in the answer section, in
	// order, in the same form as Question.Name.
	CNAMEs []string
	// TCP is true when the payload carried the TCP length prefix.
	TCP bool
}

// AddressStrings returns Addresses as text, for the event model.
func (r *Response) AddressStrings() []string {
	if len(r.Addresses) == 0 {
		return nil
	}
	out := make([]string, len(r.Addresses))
	for i, a := range r.Addresses {
		out[i] = a.String()
	}
	return out
}

// ParseQuery parses the question of a DNS query.
func ParseQuery(payload []byte) (Query, error) {
	return parseFramed(payload, parseQuery)
}

func parseQuery(msg []byte, tcp bool) (Query, error) {
	q := Query{TCP: tcp}
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return q, classify("header", err)
	}
	q.ID = h.ID
	q.Questions = binary.BigEndian.Uint16(msg[4:6])
	if h.Response {
		return q, ErrNotQuery
	}
	err = parseQuestion(&p, &q.Question)
	return q, err
}

// ParseResponse parses the question, response code and the A, AAAA and
// CNAME answers of a DNS response. On ErrTruncated the returned Response
// holds the header, the question when it was complete, and the answers
// before the cut.
func ParseResponse(payload []byte) (Response, error) {
	return parseFramed(payload, parseResponse)
}

func parseResponse(msg []byte, tcp bool) (Response, error) {
	r := Response{TCP: tcp}
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return r, classify("header", err)
	}
	if !h.Response {
		return r, ErrNotResponse
	}
	r.ID = h.ID
	r.RCodeNum = uint8(h.RCode)
	r.RCode = RCodeName(uint8(h.RCode))
	r.Truncated = h.Truncated
	r.Authoritative = h.Authoritative
	if err := parseQuestion(&p, &r.Question); err != nil {
		return r, err
	}
	if err := p.SkipAllQuestions(); err != nil {
		return r, classify("questions", err)
	}
	for {
		rh, err := p.AnswerHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			return r, nil
		}
		if err != nil {
			return r, classify("answer", err)
		}
		switch rh.Type {
		case dnsmessage.TypeA:
			if rh.Length != 4 {
				// dnsmessage would read the first 4 bytes of any length.
				return r, fmt.Errorf("an A record of %d bytes: %w", rh.Length, ErrMalformed)
			}
			a, err := p.AResource()
			if err != nil {
				return r, classify("A record", err)
			}
			r.Addresses = append(r.Addresses, netip.AddrFrom4(a.A))
		case dnsmessage.TypeAAAA:
			if rh.Length != 16 {
				return r, fmt.Errorf("AAAA record of %d bytes: %w", rh.Length, ErrMalformed)
			}
			a, err := p.AAAAResource()
			if err != nil {
				return r, classify("AAAA record", err)
			}
			r.Addresses = append(r.Addresses, netip.AddrFrom16(a.AAAA))
		case dnsmessage.TypeCNAME:
			c, err := p.CNAMEResource()
			if err != nil {
				return r, classify("CNAME record", err)
			}
			r.CNAMEs = append(r.CNAMEs, presentName(c.CNAME))
		default:
			if err := p.SkipAnswer(); err != nil {
				return r, classify("answer", err)
			}
		}
	}
}

func parseQuestion(p *dnsmessage.Parser, q *Question) error {
	dq, err := p.Question()
	if errors.Is(err, dnsmessage.ErrSectionDone) {
		return ErrNoQuestion
	}
	if err != nil {
		return classify("question", err)
	}
	q.Name = presentName(dq.Name)
	q.TypeCode = uint16(dq.Type)
	q.Type = TypeName(uint16(dq.Type))
	q.Class = uint16(dq.Class)
	return nil
}

// parseFramed reads the payload both as a plain (UDP) message and as a TCP
// message after its 2-byte length prefix, and keeps the better reading.
//
// The two cannot be told apart by a flag: a UDP message starts with its
// random 16-bit id, which may happen to look like a length. So each reading
// is scored: parsed with exactly one question (what resolvers send) beats
// parsed, which beats cut short with one question, which beats cut short,
// which beats malformed; a framed reading without exactly one question
// counts as malformed. A misaligned reading (TCP bytes read as UDP or the
// reverse) puts the flags or the id where the question count belongs, and
// scores low. On a tie the framed reading wins when the prefix equals the
// payload length (an exact TCP segment), the plain one otherwise. The second
// reading is skipped when the first is a clean parse.
func parseFramed[T any](payload []byte, parse func(msg []byte, tcp bool) (T, error)) (T, error) {
	if len(payload) < 2 {
		var zero T
		return zero, fmt.Errorf("%d bytes: %w", len(payload), ErrTruncated)
	}
	plain := payload
	framed := payload[2:]
	prefix := int(binary.BigEndian.Uint16(payload))
	exact := prefix == len(framed)
	if prefix < len(framed) {
		// More than one message in the segment; read the first.
		framed = framed[:prefix]
	}
	firstMsg, firstTCP, secondMsg, secondTCP := plain, false, framed, true
	if exact {
		firstMsg, firstTCP, secondMsg, secondTCP = framed, true, plain, false
	}
	v1, err1 := parse(firstMsg, firstTCP)
	s1 := score(firstMsg, err1, firstTCP)
	if s1 == scoreClean {
		return v1, nil
	}
	v2, err2 := parse(secondMsg, secondTCP)
	if score(secondMsg, err2, secondTCP) > s1 {
		return v2, err2
	}
	return v1, err1
}

const (
	scoreMalformed = iota
	scoreCut
	scoreCutOneQuestion
	scoreParsed
	scoreClean
)

func score(msg []byte, err error, tcp bool) int {
	one := len(msg) >= 6 && binary.BigEndian.Uint16(msg[4:6]) == 1
	switch {
	case tcp && !one:
		// Resolvers always send one question over TCP; without it the
		// framed reading is a misreading of a UDP message, however far
		// it got.
		return scoreMalformed
	case err == nil && one:
		return scoreClean
	case err == nil:
		return scoreParsed
	case errors.Is(err, ErrTruncated) && one:
		return scoreCutOneQuestion
	case errors.Is(err, ErrTruncated):
		return scoreCut
	}
	return scoreMalformed
}

// classify maps a dnsmessage error to ErrTruncated or ErrMalformed. The
// package's errors are unexported; the ones that mean "the buffer ended"
// say "insufficient data" (errBaseLen, errCalcLen, errResourceLen) or
// "invalid pointer" (errInvalidPtr: the second byte of a pointer is
// missing).
func classify(what string, err error) error {
	if msg := err.Error(); strings.Contains(msg, "insufficient data") || strings.Contains(msg, "invalid pointer") {
		return fmt.Errorf("%s: %w", what, ErrTruncated)
	}
	return fmt.Errorf("%s: %w: %w", what, ErrMalformed, err)
}

// presentName writes a name in lower case without the trailing dot,
// escaping bytes that are not printable ASCII as \DDD.
func presentName(n dnsmessage.Name) string {
	b := n.Data[:n.Length]
	if len(b) == 1 && b[0] == '.' {
		return "."
	}
	if len(b) > 0 && b[len(b)-1] == '.' {
		b = b[:len(b)-1]
	}
	clean := true
	for _, c := range b {
		if c < '!' || c > '~' || c == '\\' || ('A' <= c && c <= 'Z') {
			clean = false
			break
		}
	}
	if clean {
		return string(b)
	}
	var s strings.Builder
	s.Grow(len(b) + 8)
	for _, c := range b {
		switch {
		case 'A' <= c && c <= 'Z':
			s.WriteByte(c + ('a' - 'A'))
		case c < '!' || c > '~' || c == '\\':
			s.WriteByte('\\')
			s.WriteByte('0' + c/100)
			s.WriteByte('0' + c/10%10)
			s.WriteByte('0' + c%10)
		default:
			s.WriteByte(c)
		}
	}
	return s.String()
}

// typeNames are the mnemonics of the types detection rules and people use.
var typeNames = map[uint16]string{
	1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX",
	16: "TXT", 17: "RP", 18: "AFSDB", 24: "SIG", 25: "KEY", 28: "AAAA",
	29: "LOC", 33: "SRV", 35: "NAPTR", 36: "KX", 37: "CERT", 39: "DNAME",
	41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP", 45: "IPSECKEY", 46: "RRSIG",
	47: "NSEC", 48: "DNSKEY", 49: "DHCID", 50: "NSEC3", 51: "NSEC3PARAM",
	52: "TLSA", 53: "SMIMEA", 55: "HIP", 59: "CDS", 60: "CDNSKEY",
	61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD", 64: "SVCB", 65: "HTTPS",
	99: "SPF", 108: "EUI48", 109: "EUI64", 249: "TKEY", 250: "TSIG",
	251: "IXFR", 252: "AXFR", 253: "MAILB", 254: "MAILA", 255: "ANY",
	256: "URI", 257: "CAA",
}

// TypeName returns the mnemonic of a DNS type, or "TYPE" and its number.
func TypeName(t uint16) string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return "TYPE" + strconv.Itoa(int(t))
}

var rcodeNames = [...]string{
	"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
	"YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE", "DSOTYPENI",
}

// RCodeName returns the name of a header response code, or "RCODE" and its
// number.
func RCodeName(rc uint8) string {
	if int(rc) < len(rcodeNames) {
		return rcodeNames[rc]
	}
	return "RCODE" + strconv.Itoa(int(rc))
}
