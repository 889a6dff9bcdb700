package procmode

import (
	"net/netip"
	"testing"
)

// FuzzProcParsers feeds arbitrary bytes to every /proc and sock_diag
// parser: none may panic, whatever a racing or hostile /proc returns.
//
//	go test -fuzz FuzzProcParsers -fuzztime 1m ./collector/procmode/
func FuzzProcParsers(f *testing.F) {
	f.Add([]byte("4242 (a b) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 9876 0 0\n"))
	f.Add([]byte("  sl  local_address rem_address   st\n   0: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21234 1\n"))
	f.Add([]byte("Num       RefCount Protocol Flags    Type St Inode Path\n0000000000000000: 00000002 00000000 00010000 0001 01 12345 /run/x.sock\n"))
	f.Add([]byte("flags:\t0100002\nmnt_id:\t29\n"))
	f.Add([]byte{0x24, 0, 0, 0, 0x14, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 2, 0, 9, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseStat(b)
		var st procStat
		parseStatus(b, &st)
		_ = parseCgroup(b)
		_, _, _ = parseFdinfo(b)
		_ = parseMountTypes(b)
		_, _ = splitCmdline(b, 64)
		_ = envValue(b, "LD_PRELOAD")
		tab := &sockTable{byIno: make(map[uint64]sockInfo), listenPorts: make(map[uint16][]netip.Addr)}
		parseInetTable(b, "tcp", "inet", tab)
		parseUnixTable(b, tab)
		for ino, s := range tab.byIno {
			_, _ = sockEvent(s, int(ino%1024), tab, "")
		}
		_, _ = parseUnixDiag(b, make(map[uint64]uint64))
		_, _ = fdKind(string(b))
	})
}
