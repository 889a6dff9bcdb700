package procmode

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"strconv"
	"strings"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// TCP states as /proc/net/tcp prints them (include/net/tcp_states.h).
const (
	tcpEstablished = 0x01
	tcpSynSent     = 0x02
	tcpListen      = 0x0a
	tcpClose       = 0x07
)

// unixAcceptCon is __SO_ACCEPTCON in /proc/net/unix's Flags: a listening
// unix socket.
const unixAcceptCon = 0x10000

// unixConnected is SS_CONNECTED in /proc/net/unix's St column.
const unixConnected = 0x03

// sockInfo is one socket from the /proc/net tables.
type sockInfo struct {
	proto  string // "tcp", "udp", "unix"
	family string // "inet", "inet6", "unix"
	local  netip.AddrPort
	remote netip.AddrPort
	state  uint8
	// path is a unix socket's bound path ("@name" for abstract ones).
	path      string
	listening bool
}

// sockTable is the sockets of one network namespace, by inode.
type sockTable struct {
	byIno map[uint64]sockInfo
	// listenPorts holds the local addresses of listening TCP sockets, so
	// an established socket on one of them is told apart as accepted.
	listenPorts map[uint16][]netip.Addr
}

// readSockTable reads the socket tables of pid's network namespace (through
// /proc/PID/net, which is that namespace's view, not the sensor's).
func readSockTable(procRoot string, pid uint32) (*sockTable, error) {
	t := &sockTable{byIno: make(map[uint64]sockInfo), listenPorts: make(map[uint16][]netip.Addr)}
	dir := pidDir(procRoot, pid) + "/net/"
	var errs []error
	read := 0
	for _, f := range []struct{ name, proto, family string }{
		{"tcp", "tcp", "inet"}, {"tcp6", "tcp", "inet6"}, {"udp", "udp", "inet"}, {"udp6", "udp", "inet6"},
	} {
		b, err := os.ReadFile(dir + f.name)
		if err != nil {
			// tcp6 and udp6 are absent when IPv6 is off.
			errs = append(errs, err)
			continue
		}
		read++
		parseInetTable(b, f.proto, f.family, t)
	}
	if b, err := os.ReadFile(dir + "unix"); err == nil {
		read++
		parseUnixTable(b, t)
	}
	if read == 0 {
		return nil, errors.Join(errs...)
	}
	return t, nil
}

// parseInetTable parses /proc/net/{tcp,tcp6,udp,udp6}:
//
//	sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
//	0: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21234 ...
func parseInetTable(b []byte, proto, family string, t *sockTable) {
	for i, line := range strings.Split(string(b), "\n") {
		if i == 0 {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		local, ok1 := parseHexAddr(f[1])
		remote, ok2 := parseHexAddr(f[2])
		st, err1 := strconv.ParseUint(f[3], 16, 8)
		ino, err2 := strconv.ParseUint(f[9], 10, 64)
		if !ok1 || !ok2 || err1 != nil || err2 != nil || ino == 0 {
			continue
		}
		s := sockInfo{proto: proto, family: family, local: local, remote: remote, state: uint8(st)}
		if proto == "tcp" && st == tcpListen {
			s.listening = true
			t.listenPorts[local.Port()] = append(t.listenPorts[local.Port()], local.Addr())
		}
		t.byIno[ino] = s
	}
}

// parseHexAddr parses "0100007F:0277" (IPv4) or 32 hex digits and a port
// (IPv6). Addresses are 32-bit words in host byte order.
func parseHexAddr(s string) (netip.AddrPort, bool) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	raw, err := hex.DecodeString(a)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, false
	}
	// Each 32-bit word was printed as a host-order integer; turn it back
	// into network-order bytes.
	for w := 0; w < len(raw); w += 4 {
		binary.NativeEndian.PutUint32(raw[w:], binary.BigEndian.Uint32(raw[w:]))
	}
	var addr netip.Addr
	if len(raw) == 4 {
		addr = netip.AddrFrom4([4]byte(raw))
	} else {
		addr = netip.AddrFrom16([16]byte(raw))
	}
	return netip.AddrPortFrom(addr, uint16(port)), true
}

// parseUnixTable parses /proc/net/unix:
//
//	Num       RefCount Protocol Flags    Type St Inode Path
//	0000000000000000: 00000002 00000000 00010000 0001 01 12345 /run/foo.sock
func parseUnixTable(b []byte, t *sockTable) {
	for i, line := range strings.Split(string(b), "\n") {
		if i == 0 {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 7 {
			continue
		}
		flags, err1 := strconv.ParseUint(f[3], 16, 32)
		st, err2 := strconv.ParseUint(f[5], 16, 8)
		ino, err3 := strconv.ParseUint(f[6], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || ino == 0 {
			continue
		}
		s := sockInfo{proto: "unix", family: "unix", state: uint8(st), listening: flags&unixAcceptCon != 0}
		if len(f) >= 8 {
			// The path is the rest of the line; abstract names start with '@'.
			s.path = strings.Join(f[7:], " ")
		}
		t.byIno[ino] = s
	}
}

// accepted reports whether an established socket was accepted from a
// listener in this namespace (its local port is a listening port).
func (t *sockTable) accepted(s sockInfo) bool {
	for _, a := range t.listenPorts[s.local.Port()] {
		if a.IsUnspecified() || a == s.local.Addr() || a.Unmap() == s.local.Addr().Unmap() {
			return true
		}
	}
	return false
}

// sockAddr turns one end of an inet socket into the event's address, as the
// eBPF collector does (IPv4-mapped IPv6 addresses unmapped).
func sockAddr(family string, ap netip.AddrPort) *vigilv1.SocketAddress {
	if !ap.IsValid() {
		return nil
	}
	return &vigilv1.SocketAddress{Family: family, Ip: ap.Addr().Unmap().String(), Port: uint32(ap.Port())}
}

// remoteString is the "ip:port" form of Exec.stdio_remote, empty when the
// socket has no peer address.
func remoteString(s sockInfo) string {
	if s.proto == "unix" || !s.remote.IsValid() || s.remote.Port() == 0 {
		return ""
	}
	return netip.AddrPortFrom(s.remote.Addr().Unmap(), s.remote.Port()).String()
}
