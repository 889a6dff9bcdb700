package procmode

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// sock_diag for AF_UNIX (include/uapi/linux/unix_diag.h); x/sys/unix does
// not define these.
const (
	udiagShowPeer = 0x4 // UDIAG_SHOW_PEER
	unixDiagPeer  = 2   // UNIX_DIAG_PEER attribute
	unixDiagReqSz = 24  // sizeof(struct unix_diag_req)
	unixDiagMsgSz = 16  // sizeof(struct unix_diag_msg)
)

// unixPeers returns, for every connected unix socket of the sensor's own
// network namespace, the inode of its peer. /proc/net/unix shows a path
// only on the listening and the accepted side; the client side of a
// connection learns its remote path through its peer (the accepted socket,
// which carries the listener's path). sock_diag for unix sockets needs no
// privilege.
func unixPeers() (map[uint64]uint64, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	req := make([]byte, unix.SizeofNlMsghdr+unixDiagReqSz)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], 1) // sequence
	r := req[unix.SizeofNlMsghdr:]
	r[0] = unix.AF_UNIX
	ne.PutUint32(r[4:], ^uint32(0)) // every state
	ne.PutUint32(r[12:], udiagShowPeer)
	ne.PutUint32(r[16:], ^uint32(0)) // no cookie
	ne.PutUint32(r[20:], ^uint32(0))
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("sock_diag request: %w", err)
	}
	peers := make(map[uint64]uint64)
	buf := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("sock_diag read: %w", err)
		}
		done, err := parseUnixDiag(buf[:n], peers)
		if err != nil || done {
			return peers, err
		}
	}
}

// parseUnixDiag adds the peers in one netlink read to peers and reports
// whether the dump is complete.
func parseUnixDiag(b []byte, peers map[uint64]uint64) (bool, error) {
	ne := binary.NativeEndian
	for len(b) >= unix.SizeofNlMsghdr {
		l := int(ne.Uint32(b[0:]))
		typ := ne.Uint16(b[4:])
		if l < unix.SizeofNlMsghdr || l > len(b) {
			return false, errors.New("sock_diag: bad message length")
		}
		msg := b[unix.SizeofNlMsghdr:l]
		switch typ {
		case unix.NLMSG_DONE:
			return true, nil
		case unix.NLMSG_ERROR:
			if len(msg) >= 4 {
				if errno := int32(ne.Uint32(msg)); errno != 0 {
					return true, fmt.Errorf("sock_diag: %w", unix.Errno(-errno))
				}
			}
			return true, nil
		case unix.SOCK_DIAG_BY_FAMILY:
			if len(msg) >= unixDiagMsgSz {
				ino := uint64(ne.Uint32(msg[4:]))
				attrs := msg[unixDiagMsgSz:]
				for len(attrs) >= 4 {
					al := int(ne.Uint16(attrs[0:]))
					at := ne.Uint16(attrs[2:])
					if al < 4 || al > len(attrs) {
						break
					}
					if at == unixDiagPeer && al >= 8 {
						peers[ino] = uint64(ne.Uint32(attrs[4:]))
					}
					attrs = attrs[min((al+3)&^3, len(attrs)):]
				}
			}
		}
		b = b[min((l+3)&^3, len(b)):]
	}
	return false, nil
}
