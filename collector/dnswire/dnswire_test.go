package dnswire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func sample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read sample: %v", err)
	}
	return b
}

func TestParseCapturedQueries(t *testing.T) {
	cases := []struct {
		name, file string
		qname      string
		qtype      string
		tcp        bool
	}{
		{"go's A query is lowercased without the trailing dot", "go-www-a-udp.query", "www.example.test", "A", false},
		{"go's AAAA query names its type", "go-www-aaaa-udp.query", "www.example.test", "AAAA", false},
		{"go's TXT query names its type", "go-txt-txt-udp.query", "txt.example.test", "TXT", false},
		{"a query for a missing name parses like any other", "go-missing-a-udp.query", "missing.example.test", "A", false},
		{"a TCP query is read after its length prefix", "go-big-a-tcp.query", "big.example.test", "A", true},
		{"busybox's query parses", "busybox-www-a-udp.query", "www.example.test", "A", false},
		{"glibc's A query from sendmmsg parses", "glibc-www-a-udp.query", "www.example.test", "A", false},
		{"glibc's AAAA query from sendmmsg parses", "glibc-www-aaaa-udp.query", "www.example.test", "AAAA", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := sample(t, c.file)
			q, err := ParseQuery(raw)
			if err != nil {
				t.Fatalf("ParseQuery: %v", err)
			}
			if q.Name != c.qname || q.Type != c.qtype || q.TCP != c.tcp || q.Questions != 1 || q.Class != 1 {
				t.Errorf("got %+v, want name %s type %s tcp %v, one IN question", q, c.qname, c.qtype, c.tcp)
			}
			if _, err := ParseResponse(raw); !errors.Is(err, ErrNotResponse) {
				t.Errorf("ParseResponse of a query: %v, want ErrNotResponse", err)
			}
		})
	}
}

func TestParseCapturedResponses(t *testing.T) {
	cases := []struct {
		name, file string
		qname      string
		qtype      string
		rcode      string
		addrs      string
		cnames     string
		truncated  bool
		tcp        bool
	}{
		{"an A answer through a CNAME gives the target and both addresses", "go-www-a-udp.response",
			"www.example.test", "A", "NOERROR", "[192.0.2.10 192.0.2.11]", "[edge.cdn.example.net]", false, false},
		{"an AAAA answer gives the IPv6 address", "go-www-aaaa-udp.response",
			"www.example.test", "AAAA", "NOERROR", "[2001:db8::10]", "[edge.cdn.example.net]", false, false},
		{"a TXT answer has no addresses", "go-txt-txt-udp.response",
			"txt.example.test", "TXT", "NOERROR", "[]", "[]", false, false},
		{"a missing name is NXDOMAIN", "go-missing-a-udp.response",
			"missing.example.test", "A", "NXDOMAIN", "[]", "[]", false, false},
		{"a cut UDP answer has the TC bit", "go-big-a-udp.response",
			"big.example.test", "A", "NOERROR", "[]", "[]", true, false},
		{"the TCP retry carries all forty addresses", "go-big-a-tcp.response",
			"big.example.test", "A", "NOERROR", fortyAddrs(), "[]", false, true},
		{"a rebinding answer shows the metadata address", "go-rebind-a-udp.response",
			"rebind.example.test", "A", "NOERROR", "[169.254.169.254]", "[]", false, false},
		{"the answer busybox got parses", "busybox-www-a-udp.response",
			"www.example.test", "A", "NOERROR", "[192.0.2.10 192.0.2.11]", "[edge.cdn.example.net]", false, false},
		{"the answer glibc got parses", "glibc-www-aaaa-udp.response",
			"www.example.test", "AAAA", "NOERROR", "[2001:db8::10]", "[edge.cdn.example.net]", false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := sample(t, c.file)
			r, err := ParseResponse(raw)
			if err != nil {
				t.Fatalf("ParseResponse: %v", err)
			}
			got := fmt.Sprintf("%s %s %s %v %v tc=%v tcp=%v", r.Name, r.Type, r.RCode, r.AddressStrings(), r.CNAMEs, r.Truncated, r.TCP)
			want := fmt.Sprintf("%s %s %s %s %s tc=%v tcp=%v", c.qname, c.qtype, c.rcode, c.addrs, c.cnames, c.truncated, c.tcp)
			if got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
			q, err := ParseQuery(sample(t, strings.TrimSuffix(c.file, ".response")+".query"))
			if err != nil {
				t.Fatal(err)
			}
			if q.ID != r.ID {
				t.Errorf("query id %d and response id %d differ", q.ID, r.ID)
			}
			if _, err := ParseQuery(raw); !errors.Is(err, ErrNotQuery) {
				t.Errorf("ParseQuery of a response: %v, want ErrNotQuery", err)
			}
		})
	}
}

func fortyAddrs() string {
	var s []string
	for i := 1; i <= 40; i++ {
		s = append(s, fmt.Sprintf("198.51.100.%d", i))
	}
	return fmt.Sprint(s)
}

// TestCutSamplesReportTruncation cuts every sample at every length, as a
// BPF capture bound would: the parse never panics, and either still finds
// the same question (the cut fell after it) or says ErrTruncated.
func TestCutSamplesReportTruncation(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.query")
	more, _ := filepath.Glob("testdata/*.response")
	files = append(files, more...)
	if len(files) == 0 {
		t.Fatal("no samples")
	}
	for _, f := range files {
		t.Run("a cut "+filepath.Base(f)+" is a truncation or the same question", func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			isQuery := strings.HasSuffix(f, ".query")
			full, err := parseEither(raw, isQuery)
			if err != nil {
				t.Fatalf("the whole sample does not parse: %v", err)
			}
			for n := range len(raw) {
				got, err := parseEither(raw[:n], isQuery)
				switch {
				case err == nil && got != full:
					t.Errorf("cut at %d of %d: parsed %q, want %q or ErrTruncated", n, len(raw), got, full)
				case err != nil && !errors.Is(err, ErrTruncated):
					t.Errorf("cut at %d of %d: %v, want ErrTruncated", n, len(raw), err)
				}
			}
		})
	}
}

// parseEither returns the question as text.
func parseEither(b []byte, query bool) (string, error) {
	if query {
		q, err := ParseQuery(b)
		return q.Name + " " + q.Type, err
	}
	r, err := ParseResponse(b)
	return r.Name + " " + r.Type, err
}

func TestCutResponseKeepsTheAnswersBeforeTheCut(t *testing.T) {
	raw := sample(t, "go-big-a-tcp.response")
	r, err := ParseResponse(raw[:len(raw)-100])
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("err %v, want ErrTruncated", err)
	}
	if r.Name != "big.example.test" || len(r.Addresses) == 0 || len(r.Addresses) >= 40 {
		t.Errorf("got name %q with %d addresses, want the question and some but not all 40", r.Name, len(r.Addresses))
	}
}

// msg assembles a message: a header with the given flags and counts, then
// raw bytes.
func msg(flags uint16, qd, an uint16, body ...[]byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, 0x1234)
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint16(b, qd)
	b = binary.BigEndian.AppendUint16(b, an)
	b = append(b, 0, 0, 0, 0)
	for _, x := range body {
		b = append(b, x...)
	}
	return b
}

func name(labels ...string) []byte {
	var b []byte
	for _, l := range labels {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

func u16(v ...uint16) []byte {
	var b []byte
	for _, x := range v {
		b = binary.BigEndian.AppendUint16(b, x)
	}
	return b
}

func TestCraftedMessages(t *testing.T) {
	const (
		query    = 0x0100 // RD
		response = 0x8180 // QR RD RA
	)
	longName := make([]string, 0, 40)
	for range 40 {
		longName = append(longName, strings.Repeat("a", 10))
	}
	// A chain of 12 pointers, each to the previous, ending at a real name.
	chain := name("x")
	for i := range 12 {
		off := 12 + 3 + 2*i // the pointer before this one
		if i == 0 {
			off = 12
		}
		chain = append(chain, byte(0xC0|off>>8), byte(off))
	}
	cases := []struct {
		name     string
		payload  []byte
		response bool
		want     string // "name type" or "rcode"
		err      error
	}{
		{"upper case is lowered", msg(query, 1, 0, name("WWW", "Example", "COM"), u16(1, 1)), false, "www.example.com A", nil},
		{"binary bytes are escaped as \\DDD", msg(query, 1, 0, name("a\x00b", "c d\xff"), u16(16, 1)), false, `a\000b.c\032d\255 TXT`, nil},
		{"a backslash is escaped", msg(query, 1, 0, name(`a\b`), u16(1, 1)), false, `a\092b A`, nil},
		{"the root name is a dot", msg(query, 1, 0, name(), u16(2, 1)), false, ". NS", nil},
		{"an unknown type is TYPE and its number", msg(query, 1, 0, name("x"), u16(65280, 1)), false, "x TYPE65280", nil},
		{"ANY is named", msg(query, 1, 0, name("x"), u16(255, 1)), false, "x ANY", nil},
		{"HTTPS is named", msg(query, 1, 0, name("x"), u16(65, 1)), false, "x HTTPS", nil},
		{"an NXDOMAIN response names its rcode", msg(response|3, 1, 0, name("x"), u16(1, 1)), true, "NXDOMAIN", nil},
		{"an rcode without a name is RCODE and its number", msg(response|15, 1, 0, name("x"), u16(1, 1)), true, "RCODE15", nil},
		{"a pointer to itself is refused", msg(query, 1, 0, []byte{0xC0, 12}, u16(1, 1)), false, "", ErrMalformed},
		{"two pointers to each other are refused", msg(response, 1, 1, name("x"), u16(1, 1), []byte{0xC0, 21, 0xC0, 19}, u16(1, 1, 0, 60, 4), []byte{1, 2, 3, 4}), true, "", ErrMalformed},
		{"a chain of more than ten pointers is refused", msg(query, 1, 0, chain[3:], u16(1, 1)), false, "", ErrMalformed},
		{"a pointer past the end is a malformed or cut message", msg(query, 1, 0, []byte{0xC0, 200}, u16(1, 1)), false, "", ErrTruncated},
		{"a reserved label type is refused", msg(query, 1, 0, []byte{0x80, 'a', 0}, u16(1, 1)), false, "", ErrMalformed},
		{"a name over 255 bytes is refused", msg(query, 1, 0, name(longName...), u16(1, 1)), false, "", ErrMalformed},
		{"a label with a dot is refused", msg(query, 1, 0, name("a.b"), u16(1, 1)), false, "", ErrMalformed},
		{"a header without a question has no question", msg(query, 0, 0), false, "", ErrNoQuestion},
		{"an empty payload is cut", nil, false, "", ErrTruncated},
		{"one byte is cut", []byte{0x12}, false, "", ErrTruncated},
		{"a header alone announcing a question is cut", msg(query, 1, 0), false, "", ErrTruncated},
		{"a question without its type is cut", msg(query, 1, 0, name("x")), false, "", ErrTruncated},
		{"an answer record cut in its data is cut", msg(response, 1, 1, name("x"), u16(1, 1), []byte{0xC0, 12}, u16(1, 1, 0, 60, 4), []byte{1, 2}), true, "", ErrTruncated},
		{"an A record with 5 data bytes is refused", msg(response, 1, 1, name("x"), u16(1, 1), []byte{0xC0, 12}, u16(1, 1, 0, 60, 5), []byte{1, 2, 3, 4, 5}), true, "", ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got string
			var err error
			if c.response {
				var r Response
				r, err = ParseResponse(c.payload)
				got = r.RCode
			} else {
				var q Query
				q, err = ParseQuery(c.payload)
				got = q.Name + " " + q.Type
			}
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Errorf("err %v, want %v", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestUDPIDThatLooksLikeALengthStillParses(t *testing.T) {
	// A UDP query whose random id equals its length minus 2: the framed
	// reading is tried first and must lose to the plain one.
	q := msg(0x0100, 1, 0, name("example", "com"), u16(1, 1))
	binary.BigEndian.PutUint16(q, uint16(len(q)-2))
	got, err := ParseQuery(q)
	if err != nil || got.Name != "example.com" || got.TCP {
		t.Errorf("got %+v, %v; want example.com over UDP", got, err)
	}
}

func TestTCPSegmentWithTwoMessagesReadsTheFirst(t *testing.T) {
	one := msg(0x0100, 1, 0, name("first", "test"), u16(1, 1))
	two := msg(0x0100, 1, 0, name("second", "test"), u16(28, 1))
	seg := append(u16(uint16(len(one))), one...)
	seg = append(seg, u16(uint16(len(two)))...)
	seg = append(seg, two...)
	got, err := ParseQuery(seg)
	if err != nil || got.Name != "first.test" || !got.TCP {
		t.Errorf("got %+v, %v; want first.test over TCP", got, err)
	}
}

func FuzzParseQuery(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseQuery(b)
		if err == nil {
			checkName(t, q.Name)
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResponse(b)
		if err == nil || errors.Is(err, ErrTruncated) {
			if r.Name != "" {
				checkName(t, r.Name)
			}
			for _, c := range r.CNAMEs {
				checkName(t, c)
			}
		}
	})
}

func addSeeds(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.query")
	more, _ := filepath.Glob("testdata/*.response")
	for _, p := range append(files, more...) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// checkName asserts what the event model relies on: valid UTF-8 (protobuf
// strings must be), lower case, no trailing dot, bounded length.
func checkName(t *testing.T, n string) {
	t.Helper()
	if !utf8.ValidString(n) {
		t.Fatalf("name %q is not valid UTF-8", n)
	}
	if n != "." && strings.HasSuffix(n, ".") {
		t.Fatalf("name %q ends with a dot", n)
	}
	if strings.ToLower(n) != n {
		t.Fatalf("name %q is not lower case", n)
	}
	if len(n) > 4*255 {
		t.Fatalf("name of %d bytes", len(n))
	}
}

func BenchmarkParseQuery(b *testing.B) {
	raw := sample(b, "glibc-www-a-udp.query")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseQuery(raw); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
}

func BenchmarkParseResponse(b *testing.B) {
	raw := sample(b, "go-www-a-udp.response")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseResponse(raw); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "responses/s")
}
