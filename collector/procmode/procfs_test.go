package procmode

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
)

// hexWord prints a 4-byte group of an address as /proc/net does: the
// 32-bit word in host byte order, as an integer.
func hexWord(b []byte) string {
	const digits = "0123456789ABCDEF"
	v := binary.NativeEndian.Uint32(b)
	out := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		out[i] = digits[v&0xf]
		v >>= 4
	}
	return string(out)
}

func procAddr(ap netip.AddrPort) string {
	raw := ap.Addr().AsSlice()
	s := ""
	for w := 0; w < len(raw); w += 4 {
		s += hexWord(raw[w : w+4])
	}
	const digits = "0123456789ABCDEF"
	p := ap.Port()
	return s + ":" + string([]byte{digits[p>>12&0xf], digits[p>>8&0xf], digits[p>>4&0xf], digits[p&0xf]})
}

func TestParseHexAddr(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want string
		ok   bool
	}{
		{"an IPv4 loopback address and port parse", procAddr(netip.MustParseAddrPort("127.0.0.1:631")), "127.0.0.1:631", true},
		{"an IPv4 wildcard with port zero parses", "00000000:0000", "0.0.0.0:0", true},
		{"an IPv6 loopback address parses", procAddr(netip.MustParseAddrPort("[::1]:8080")), "[::1]:8080", true},
		{"an IPv4-mapped IPv6 address keeps its mapping", procAddr(netip.MustParseAddrPort("[::ffff:10.0.0.7]:443")), "[::ffff:10.0.0.7]:443", true},
		{"an address without a port is refused", "0100007F", "", false},
		{"an address of the wrong length is refused", "0100:0050", "", false},
		{"a port that is not hex is refused", "0100007F:zz", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseHexAddr(tc.in)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if ok && got.String() != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestParseSocketTables(t *testing.T) {
	lo := func(port uint16) string { return procAddr(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)) }
	any4 := procAddr(netip.AddrPortFrom(netip.IPv4Unspecified(), 8080))
	tcp := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		"   0: " + any4 + " 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 100 0 0 10 0\n" +
		"   1: " + lo(8080) + " " + lo(40000) + " 01 00000000:00000000 00:00000000 00000000     0        0 1002 1 0 20 4 30 10 -1\n" +
		"   2: " + lo(40000) + " " + lo(8080) + " 01 00000000:00000000 00:00000000 00000000     0        0 1003 1 0 20 4 30 10 -1\n" +
		"   3: " + lo(40001) + " " + lo(9) + " 02 00000000:00000000 00:00000000 00000000     0        0 1004 1 0 20 4 30 10 -1\n" +
		"   4: " + lo(5000) + " " + lo(6000) + " 06 00000000:00000000 00:00000000 00000000     0        0 0 1 0 20 4 30 10 -1\n"
	udp := "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n" +
		"  10: " + lo(5353) + " 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2001 2 0 0\n" +
		"  11: " + lo(45000) + " " + lo(53) + " 01 00000000:00000000 00:00000000 00000000     0        0 2002 2 0 0\n"
	unixTab := "Num       RefCount Protocol Flags    Type St Inode Path\n" +
		"0000000000000000: 00000002 00000000 00010000 0001 01 3001 /run/docker.sock\n" +
		"0000000000000000: 00000003 00000000 00000000 0001 03 3002 /run/docker.sock\n" +
		"0000000000000000: 00000003 00000000 00000000 0001 03 3003\n" +
		"0000000000000000: 00000002 00000000 00010000 0001 01 3004 @abstract name\n"
	tab := &sockTable{byIno: make(map[uint64]sockInfo), listenPorts: make(map[uint16][]netip.Addr)}
	parseInetTable([]byte(tcp), "tcp", "inet", tab)
	parseInetTable([]byte(udp), "udp", "inet", tab)
	parseUnixTable([]byte(unixTab), tab)

	cases := []struct {
		name      string
		ino       uint64
		wantKind  string
		wantLocal string
		wantPeer  string
	}{
		{"a listening TCP socket is a listen", 1001, "listen", "0.0.0.0:8080", ""},
		{"an established socket on a listening port is an accept", 1002, "accept", "127.0.0.1:8080", "127.0.0.1:40000"},
		{"an established socket from an ephemeral port is a connect", 1003, "connect", "127.0.0.1:40000", "127.0.0.1:8080"},
		{"a connect still in SYN_SENT is a connect", 1004, "connect", "127.0.0.1:40001", "127.0.0.1:9"},
		{"an unconnected bound UDP socket is a bind", 2001, "bind", "127.0.0.1:5353", ""},
		{"a connected UDP socket is a connect", 2002, "connect", "127.0.0.1:45000", "127.0.0.1:53"},
		{"a listening unix socket is a listen on its path", 3001, "listen", "/run/docker.sock", ""},
		{"a connected unix socket with its listener's path is an accept", 3002, "accept", "/run/docker.sock", ""},
		{"a connected unix socket without a path is a connect", 3003, "connect", "", ""},
		{"an abstract unix listener keeps its name with spaces", 3004, "listen", "@abstract name", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, ok := tab.byIno[tc.ino]
			if !ok {
				t.Fatalf("inode %d not parsed", tc.ino)
			}
			kind, ev := sockEvent(s, 7, tab, "")
			if kind != tc.wantKind || ev == nil {
				t.Fatalf("kind = %q, want %q", kind, tc.wantKind)
			}
			var local, remote string
			addr := func(a interface {
				GetIp() string
				GetPort() uint32
				GetPath() string
			}) string {
				if a == nil {
					return ""
				}
				if a.GetPath() != "" || a.GetIp() == "" {
					return a.GetPath()
				}
				return netip.AddrPortFrom(netip.MustParseAddr(a.GetIp()), uint16(a.GetPort())).String()
			}
			if l := ev.GetListen(); l != nil {
				local = addr(l.Local)
			}
			if c := ev.GetConnect(); c != nil {
				local, remote = addr(c.Local), addr(c.Remote)
			}
			if a := ev.GetAccept(); a != nil {
				local, remote = addr(a.Local), addr(a.Remote)
				if a.NewFd != 7 || ev.Result != 7 {
					t.Errorf("accept new_fd %d result %d, want 7", a.NewFd, ev.Result)
				}
			}
			if b := ev.GetBind(); b != nil {
				local = addr(b.Local)
			}
			if local != tc.wantLocal || remote != tc.wantPeer {
				t.Errorf("local %q remote %q, want %q %q", local, remote, tc.wantLocal, tc.wantPeer)
			}
		})
	}
	if _, ok := tab.byIno[0]; ok {
		t.Error("a socket with inode 0 (TIME_WAIT) was kept")
	}
}

func TestParseProcFiles(t *testing.T) {
	t.Run("a comm with spaces and parentheses does not shift the stat fields", func(t *testing.T) {
		line := "4242 (evil ) (x) S 1 4242 4242 34816 4242 4194560 120 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 18446744073709551615\n"
		st, err := parseStat([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		if st.comm != "evil ) (x" || st.ppid != 1 || st.sid != 4242 || st.tty != 34816 || st.startTicks != 987654 || st.state != 'S' {
			t.Errorf("parsed %+v", st)
		}
		if st.flags&pfKthread != 0 {
			t.Error("a user process parsed as a kernel thread")
		}
	})
	t.Run("a truncated stat line is refused", func(t *testing.T) {
		if _, err := parseStat([]byte("1 (init) S 0 1")); err == nil {
			t.Error("no error")
		}
	})
	t.Run("status gives ids, thread group, innermost namespace pid and capabilities", func(t *testing.T) {
		var st procStat
		parseStatus([]byte("Name:\tsh\nTgid:\t900\nPid:\t901\nUid:\t1000\t0\t0\t0\nGid:\t100\t50\t50\t50\nNSpid:\t901\t7\nCapEff:\t00000000a80425fb\n"), &st)
		if st.tgid != 900 || st.uid != 1000 || st.euid != 0 || st.gid != 100 || st.egid != 50 || st.nsPid != 7 || st.capEff != 0xa80425fb {
			t.Errorf("parsed %+v", st)
		}
	})
	cgroups := []struct {
		name, in, want string
	}{
		{"the unified hierarchy wins when it places the process below the root", "0::/ecs/task/abc\n", "/ecs/task/abc"},
		{"the systemd hierarchy is used under cgroup v1", "12:memory:/docker/x\n1:name=systemd:/docker/x\n0::/\n", "/docker/x"},
		{"a process in the root cgroup gets /", "0::/\n", "/"},
	}
	for _, tc := range cgroups {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseCgroup([]byte(tc.in)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	fdinfo := []struct {
		name      string
		in        string
		wantFlags uint32
		wantMnt   int
		wantErr   bool
	}{
		{"octal flags and the mount id are read", "pos:\t0\nflags:\t0100001\nmnt_id:\t29\nino:\t123\n", 0o100001, 29, false},
		{"fdinfo without flags is refused", "pos:\t0\n", 0, 0, true},
		{"flags that are not octal are refused", "flags:\t0900\n", 0, 0, true},
	}
	for _, tc := range fdinfo {
		t.Run(tc.name, func(t *testing.T) {
			flags, mnt, err := parseFdinfo([]byte(tc.in))
			if (err != nil) != tc.wantErr || flags != tc.wantFlags || mnt != tc.wantMnt {
				t.Errorf("got %#o %d %v", flags, mnt, err)
			}
		})
	}
	kinds := []struct {
		name, link, want string
	}{
		{"a socket link is a socket", "socket:[123]", "socket"},
		{"a pipe link is a pipe", "pipe:[9]", "pipe"},
		{"a pseudo-terminal is a tty", "/dev/pts/3", "tty"},
		{"a regular path is a file", "/var/log/app.log", "file"},
		{"an anonymous inode is other", "anon_inode:[eventfd]", "other"},
		{"a closed descriptor is none", "", "none"},
	}
	for _, tc := range kinds {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := fdKind(tc.link); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("mountinfo maps mount ids to file system types", func(t *testing.T) {
		m := parseMountTypes([]byte("29 1 0:26 / / rw,relatime - overlay overlay rw,lowerdir=/a\n30 29 0:5 / /proc rw - proc proc rw\n"))
		if m[29] != "overlay" || m[30] != "proc" {
			t.Errorf("got %v", m)
		}
	})
	t.Run("cmdline arguments are split and cut at the bound", func(t *testing.T) {
		args, trunc := splitCmdline([]byte("sh\x00-c\x00echo hi\x00"), 0)
		if !slices.Equal(args, []string{"sh", "-c", "echo hi"}) || trunc {
			t.Errorf("got %q %v", args, trunc)
		}
		args, trunc = splitCmdline([]byte("sh\x00-c\x00echo hi\x00"), 5)
		if !slices.Equal(args, []string{"sh", "-c"}) || !trunc {
			t.Errorf("bounded: got %q %v", args, trunc)
		}
	})
	t.Run("an environment variable is found by exact name", func(t *testing.T) {
		env := []byte("LD_PRELOAD_X=no\x00LD_PRELOAD=/tmp/evil.so\x00PATH=/bin\x00")
		if got := envValue(env, "LD_PRELOAD"); got != "/tmp/evil.so" {
			t.Errorf("got %q", got)
		}
	})
}
