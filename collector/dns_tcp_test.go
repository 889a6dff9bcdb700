package collector

import (
	"bytes"
	"testing"
)

func TestStripTCPLength(t *testing.T) {
	msg := dnsQuery(t, "tcp.example", 0x4142)
	long := append(dnsQuery(t, "long.example", 1), bytes.Repeat([]byte{0}, 400)...)
	prefixed := func(m []byte) []byte { return append([]byte{byte(len(m) >> 8), byte(len(m))}, m...) }
	cases := []struct {
		name string
		in   []byte
		want []byte
	}{
		{"a length-prefixed message loses its length", prefixed(msg), msg},
		{"a message written apart from its length is left alone", msg, msg},
		{"a long message cut by the copy bound still loses its length", prefixed(long)[:300], long[:298]},
		{"a short message cut short keeps its bytes", prefixed(msg)[:10], prefixed(msg)[:10]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := stripTCPLength(tc.in); !bytes.Equal(got, tc.want) {
				t.Errorf("got % x, want % x", got, tc.want)
			}
		})
	}
}
