package dnswire

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// update regenerates testdata/ from real resolver clients:
//
//	go test ./collector/dnswire -run TestCaptureSamples -update
//
// As root, the stub also listens on 127.0.0.1:53 so busybox nslookup and
// glibc (getent, in a private mount namespace whose resolv.conf points at
// the stub) can be captured as well.
var update = flag.Bool("update", false, "capture fresh DNS samples into testdata/")

// exchange is one query and the stub's answer as they crossed the socket.
type exchange struct {
	transport string // "udp" or "tcp"
	query     []byte // as received (TCP: with the length prefix)
	response  []byte // as sent (TCP: with the length prefix)
}

// stubServer answers a fixed zone on UDP and TCP and records every
// exchange.
type stubServer struct {
	udp  net.PacketConn
	tcp  net.Listener
	mu   sync.Mutex
	log  []exchange
	addr string
}

func startStub(t *testing.T, addr string) *stubServer {
	t.Helper()
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatalf("listen udp %s: %v", addr, err)
	}
	ln, err := net.Listen("tcp4", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		t.Fatalf("listen tcp: %v", err)
	}
	s := &stubServer{udp: pc, tcp: ln, addr: pc.LocalAddr().String()}
	t.Cleanup(func() { pc.Close(); ln.Close() })
	go s.serveUDP()
	go s.serveTCP()
	return s
}

func (s *stubServer) take() []exchange {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.log
	s.log = nil
	return out
}

func (s *stubServer) serveUDP() {
	buf := make([]byte, 65535)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		q := append([]byte(nil), buf[:n]...)
		resp, err := answer(q, false)
		if err != nil {
			continue
		}
		s.mu.Lock()
		s.log = append(s.log, exchange{"udp", q, resp})
		s.mu.Unlock()
		_, _ = s.udp.WriteTo(resp, from)
	}
}

func (s *stubServer) serveTCP() {
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			for {
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				q := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, q); err != nil {
					return
				}
				resp, err := answer(q, true)
				if err != nil {
					return
				}
				framed := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
				framed = append(framed, resp...)
				s.mu.Lock()
				s.log = append(s.log, exchange{"tcp", append(l[:], q...), framed})
				s.mu.Unlock()
				if _, err := c.Write(framed); err != nil {
					return
				}
			}
		}()
	}
}

// answer builds the stub zone's response, with name compression on:
//
//	www.example.test      CNAME edge.cdn.example.net; A 192.0.2.10, 192.0.2.11; AAAA 2001:db8::10
//	txt.example.test      TXT "v=spf1 -all"
//	big.example.test      40 A records; over UDP only TC=1 (the client retries over TCP)
//	rebind.example.test   A 169.254.169.254
//	anything else         NXDOMAIN
func answer(query []byte, tcp bool) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	name := strings.ToLower(q.Name.String())
	hdr := func(n string, typ dnsmessage.Type) dnsmessage.ResourceHeader {
		return dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(n), Type: typ, Class: dnsmessage.ClassINET, TTL: 60}
	}
	known := map[string]bool{"www.example.test.": true, "txt.example.test.": true, "big.example.test.": true, "rebind.example.test.": true}
	if !known[name] {
		rh.RCode = dnsmessage.RCodeNameError
	}
	if name == "big.example.test." && !tcp {
		rh.Truncated = true
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	qname := q.Name.String()
	switch {
	case name == "www.example.test." && (q.Type == dnsmessage.TypeA || q.Type == dnsmessage.TypeAAAA):
		if err := b.CNAMEResource(hdr(qname, dnsmessage.TypeCNAME), dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName("edge.cdn.example.net.")}); err != nil {
			return nil, err
		}
		if q.Type == dnsmessage.TypeA {
			for _, last := range []byte{10, 11} {
				if err := b.AResource(hdr("edge.cdn.example.net.", dnsmessage.TypeA), dnsmessage.AResource{A: [4]byte{192, 0, 2, last}}); err != nil {
					return nil, err
				}
			}
		} else {
			a := netip.MustParseAddr("2001:db8::10").As16()
			if err := b.AAAAResource(hdr("edge.cdn.example.net.", dnsmessage.TypeAAAA), dnsmessage.AAAAResource{AAAA: a}); err != nil {
				return nil, err
			}
		}
	case name == "txt.example.test." && q.Type == dnsmessage.TypeTXT:
		if err := b.TXTResource(hdr(qname, dnsmessage.TypeTXT), dnsmessage.TXTResource{TXT: []string{"v=spf1 -all"}}); err != nil {
			return nil, err
		}
	case name == "big.example.test." && q.Type == dnsmessage.TypeA && tcp:
		for i := range 40 {
			if err := b.AResource(hdr(qname, dnsmessage.TypeA), dnsmessage.AResource{A: [4]byte{198, 51, 100, byte(i + 1)}}); err != nil {
				return nil, err
			}
		}
	case name == "rebind.example.test." && q.Type == dnsmessage.TypeA:
		if err := b.AResource(hdr(qname, dnsmessage.TypeA), dnsmessage.AResource{A: [4]byte{169, 254, 169, 254}}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// TestCaptureSamples regenerates testdata/ with -update; without it, it
// checks that the committed samples are there.
func TestCaptureSamples(t *testing.T) {
	if !*update {
		if m, _ := filepath.Glob("testdata/*.query"); len(m) == 0 {
			t.Fatal("no samples in testdata/; run with -update")
		}
		return
	}
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	old, _ := filepath.Glob("testdata/*.query")
	more, _ := filepath.Glob("testdata/*.response")
	for _, f := range append(old, more...) {
		os.Remove(f)
	}
	addr := "127.0.0.1:0"
	port53 := false
	if os.Geteuid() == 0 {
		if pc, err := net.ListenPacket("udp4", "127.0.0.1:53"); err == nil {
			pc.Close()
			addr, port53 = "127.0.0.1:53", true
		}
	}
	stub := startStub(t, addr)
	save := func(source string) {
		t.Helper()
		for _, x := range stub.take() {
			q, err := ParseQuery(x.query)
			if err != nil {
				t.Fatalf("%s: captured query does not parse: %v", source, err)
			}
			label, _, _ := strings.Cut(q.Name, ".")
			base := fmt.Sprintf("testdata/%s-%s-%s-%s", source, label, strings.ToLower(q.Type), x.transport)
			if err := os.WriteFile(base+".query", x.query, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(base+".response", x.response, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("saved %s (%d/%d bytes)", base, len(x.query), len(x.response))
		}
	}

	// Go's resolver (net, PreferGo): A and AAAA in parallel with EDNS0,
	// TXT, NXDOMAIN, and the TCP retry after TC=1.
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, stub.addr)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.LookupIPAddr(ctx, "WWW.Example.test"); err != nil {
		t.Fatalf("go lookup www: %v", err)
	}
	if _, err := r.LookupTXT(ctx, "txt.example.test"); err != nil {
		t.Fatalf("go lookup txt: %v", err)
	}
	var dnsErr *net.DNSError
	if _, err := r.LookupIP(ctx, "ip4", "missing.example.test"); !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Fatalf("go lookup missing: %v, want not found", err)
	}
	if _, err := r.LookupIP(ctx, "ip4", "big.example.test"); err != nil {
		t.Fatalf("go lookup big: %v", err)
	}
	if _, err := r.LookupIP(ctx, "ip4", "rebind.example.test"); err != nil {
		t.Fatalf("go lookup rebind: %v", err)
	}
	save("go")

	if !port53 {
		t.Log("not root or 127.0.0.1:53 busy: busybox and glibc samples not refreshed")
		return
	}
	// busybox nslookup: its own resolver code, one query per type.
	if out, err := exec.CommandContext(ctx, "busybox", "nslookup", "-type=a", "www.example.test", "127.0.0.1").CombinedOutput(); err != nil {
		t.Fatalf("busybox nslookup: %v\n%s", err, out)
	}
	save("busybox")
	// glibc: getent in a mount namespace whose resolv.conf names the stub;
	// glibc sends A and AAAA together with sendmmsg.
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver 127.0.0.1\noptions attempts:1 timeout:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("mount --bind %s /etc/resolv.conf && getent ahosts www.example.test", conf)
	if out, err := exec.CommandContext(ctx, "unshare", "-m", "sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("glibc getent: %v\n%s", err, out)
	}
	save("glibc")
}
