package procmode

import (
	"cmp"
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/timestamppb"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// candidates lists the processes in scope: every process in the pid
// namespace (or below cfg.RootPid) except kernel threads, zombies, the
// sensor and the sensor's own children, parents first.
func (c *Collector) candidates(cfg Config) []uint32 {
	pids, err := listPids(cfg.ProcRoot)
	if err != nil {
		c.log.Warn("list processes", "error", err)
		return nil
	}
	type cand struct {
		pid   uint32
		start uint64
	}
	stats := make(map[uint32]procStat, len(pids))
	var out []cand
	for _, pid := range pids {
		if pid == c.self {
			continue
		}
		st, err := readStat(cfg.ProcRoot, pid)
		if err != nil {
			continue
		}
		stats[pid] = st
	}
	for pid, st := range stats {
		if st.flags&pfKthread != 0 || st.ppid == c.self || st.state == 'Z' || st.state == 'X' {
			continue
		}
		if c.state(pid, false) != nil || c.isRefused(pid, st.startTicks) {
			continue // traced already, or cannot be
		}
		if cfg.RootPid != 0 && !descends(pid, cfg.RootPid, stats) {
			continue
		}
		out = append(out, cand{pid, st.startTicks})
	}
	slices.SortFunc(out, func(a, b cand) int { return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.pid, b.pid)) })
	res := make([]uint32, len(out))
	for i, x := range out {
		res[i] = x.pid
	}
	return res
}

// descends reports whether pid is root or one of its descendants.
func descends(pid, root uint32, stats map[uint32]procStat) bool {
	for range 256 { // bounded: a ppid cycle cannot exist, but /proc races can
		if pid == root {
			return true
		}
		st, ok := stats[pid]
		if !ok || st.ppid == 0 || st.ppid == pid {
			return false
		}
		pid = st.ppid
	}
	return false
}

// scanLoop hands the tracer every process in scope, every ScanInterval; the
// tracer seizes those it does not trace yet.
func (c *Collector) scanLoop(ctx context.Context, t *tracer, cfg Config) {
	if cfg.ScanInterval <= 0 {
		return
	}
	tk := time.NewTicker(cfg.ScanInterval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		start := time.Now()
		pids := c.candidates(cfg)
		c.m.pollSeconds.WithLabelValues("scan").Observe(time.Since(start).Seconds())
		if len(pids) == 0 {
			continue
		}
		select {
		case t.seize <- pids:
			t.bell.ring()
		case <-ctx.Done():
			return
		}
	}
}

// pollLoop polls the descriptors of every traced process each interval.
func (c *Collector) pollLoop(ctx context.Context, interval time.Duration, net, files bool) {
	name := "net"
	if files {
		name = "files"
	}
	tk := time.NewTicker(interval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		start := time.Now()
		pass := newPollPass()
		for _, ps := range c.snapshot() {
			if ctx.Err() != nil {
				return
			}
			c.pollWith(ps, net, files, pass)
		}
		c.m.pollSeconds.WithLabelValues(name).Observe(time.Since(start).Seconds())
	}
}

// pollPass caches what every process of one namespace shares, for one
// pass over the processes.
type pollPass struct {
	tables map[uint64]*sockTable     // by network namespace inode
	mounts map[uint64]map[int]string // mount id to fstype, by mount namespace
	// peers are the unix socket peers of the sensor's namespace, read at
	// most once per pass (peersRead).
	peers     map[uint64]uint64
	peersRead bool
}

func newPollPass() *pollPass {
	return &pollPass{tables: make(map[uint64]*sockTable), mounts: make(map[uint64]map[int]string)}
}

// pollProcess polls one process on its own (at its exit stop).
func (c *Collector) pollProcess(ps *procState, net, files bool) {
	c.pollWith(ps, net, files, newPollPass())
}

type newSock struct {
	fd  int
	ino uint64
}

// ringLink is what /proc/PID/fd shows for an io_uring. What a program
// submits through one passes through no system call, so a new ring is
// reported as its setup; it is keyed like a file, so it is reported once.
const ringLink = "anon_inode:[io_uring]"

type newFile struct {
	fd   int
	path string
	key  fdKey
}

// pollWith compares the process's descriptors with the last poll and
// emits what is new.
func (c *Collector) pollWith(ps *procState, net, files bool, pass *pollPass) {
	if !net && !files {
		return
	}
	root := c.procRoot
	dir := pidDir(root, ps.tgid) + "/fd/"
	d, err := os.Open(dir)
	if err != nil {
		return // gone, or not readable
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return
	}
	ps.mu.Lock()
	// A process found running has its first listing taken as what it had
	// before tracing, not as new activity; separately for sockets and
	// files, which are polled at different intervals.
	quietNet := ps.baseline && !ps.polledNet()
	quietFiles := ps.baseline && !ps.polledFiles()
	var socks []newSock
	var rings []int
	var opened []newFile
	curSocks := make(map[uint64]struct{})
	var curFiles map[int]fdKey
	if files {
		curFiles = make(map[int]fdKey, len(names))
	}
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		link, err := os.Readlink(dir + n)
		if err != nil {
			continue
		}
		kind, ino := fdKind(link)
		switch {
		case kind == "socket" && net:
			curSocks[ino] = struct{}{}
			if _, ok := ps.socks[ino]; !ok && !quietNet {
				socks = append(socks, newSock{fd, ino})
			}
		case files && (link == ringLink || strings.HasPrefix(link, "/")):
			var st unix.Stat_t
			if unix.Stat(dir+n, &st) != nil {
				continue
			}
			k := fdKey{ino: st.Ino, dev: st.Dev}
			curFiles[fd] = k
			if old, ok := ps.fds[fd]; (ok && old == k) || quietFiles {
				continue
			}
			if link == ringLink {
				rings = append(rings, fd)
			} else {
				opened = append(opened, newFile{fd, strings.TrimSuffix(link, " (deleted)"), k})
			}
		}
	}
	if net {
		ps.socks = curSocks
		ps.flags |= polledNet
	}
	if files {
		ps.fds = curFiles
		ps.flags |= polledFiles
	}
	ps.mu.Unlock()
	if len(socks) > 0 {
		c.emitSockets(ps, socks, pass)
	}
	if len(opened) > 0 {
		c.emitOpens(ps, opened, pass)
	}
	if len(rings) > 0 {
		c.emitRings(ps, rings)
	}
}

// emitRings reports io_uring instances new since the last poll, as the
// io_uring_setup calls that made them; the entries asked for are not
// known here.
func (c *Collector) emitRings(ps *procState, fds []int) {
	proc := c.procs.Lookup(ps.tgid)
	if proc == nil {
		return
	}
	cg, cgID := ps.cgroupInfo()
	for _, fd := range fds {
		c.emit("io_uring_setup", &vigilv1.Event{
			Time:       timestamppb.Now(),
			Process:    proc,
			Tid:        ps.tgid,
			CgroupId:   cgID,
			CgroupPath: cg,
			Result:     int64(fd),
			Syscall:    "io_uring_setup",
			Kind:       &vigilv1.Event_IoUringSetup{IoUringSetup: &vigilv1.IoUringSetup{}},
		})
	}
}

// emitSockets reports new sockets: listen, accept, connect or bind.
func (c *Collector) emitSockets(ps *procState, socks []newSock, pass *pollPass) {
	root := c.procRoot
	ns := nsInode(root, ps.tgid, "net")
	tab := pass.tables[ns]
	if tab == nil || ns == 0 {
		var err error
		tab, err = readSockTable(root, ps.tgid)
		if err != nil {
			c.readErrors.Add(1)
			return
		}
		if ns != 0 {
			pass.tables[ns] = tab
		}
	}
	proc := c.procs.Lookup(ps.tgid)
	if proc == nil {
		return
	}
	for _, sk := range socks {
		s, ok := tab.byIno[sk.ino]
		if !ok {
			continue // netlink, packet, or closed since
		}
		peer := ""
		if s.proto == "unix" && s.state == unixConnected && s.path == "" && ns == c.netNs && ns != 0 {
			peer = c.unixPeerPath(sk.ino, tab, pass)
		}
		kind, ev := sockEvent(s, sk.fd, tab, peer)
		if ev == nil {
			continue
		}
		ev.Time = timestamppb.Now()
		ev.Process = proc
		ev.Tid = ps.tgid
		ev.CgroupPath, ev.CgroupId = ps.cgroupInfo()
		c.emit(kind, ev)
	}
}

// unixPeerPath returns the path a connected unix socket is connected to:
// its peer's, which is the accepted socket and carries the listener's path.
func (c *Collector) unixPeerPath(ino uint64, tab *sockTable, pass *pollPass) string {
	if !pass.peersRead {
		pass.peersRead = true
		peers, err := unixPeers()
		if err != nil {
			c.readErrors.Add(1)
		}
		pass.peers = peers
	}
	if p, ok := pass.peers[ino]; ok {
		return tab.byIno[p].path
	}
	return ""
}

// sockEvent turns a socket found on fd into the event the system call
// that made it would have produced. peerPath is the remote path of a
// connected unix socket, when known.
func sockEvent(s sockInfo, fd int, tab *sockTable, peerPath string) (string, *vigilv1.Event) {
	local := sockAddr(s.family, s.local)
	remote := sockAddr(s.family, s.remote)
	if s.proto == "unix" {
		local = &vigilv1.SocketAddress{Family: "unix", Path: s.path}
		remote = nil
	}
	switch {
	case s.listening:
		return "listen", &vigilv1.Event{Syscall: "listen",
			Kind: &vigilv1.Event_Listen{Listen: &vigilv1.Listen{Fd: int32(fd), Local: local, Protocol: s.proto}}}
	case s.proto == "tcp" && s.state != tcpClose:
		if tab.accepted(s) {
			return "accept", &vigilv1.Event{Syscall: "accept", Result: int64(fd),
				Kind: &vigilv1.Event_Accept{Accept: &vigilv1.Accept{Fd: -1, NewFd: int32(fd), Remote: remote, Local: local, Protocol: "tcp"}}}
		}
		return "connect", &vigilv1.Event{Syscall: "connect",
			Kind: &vigilv1.Event_Connect{Connect: &vigilv1.Connect{Fd: int32(fd), Remote: remote, Local: local, Protocol: "tcp"}}}
	case s.proto == "udp" && s.remote.Port() != 0:
		return "connect", &vigilv1.Event{Syscall: "connect",
			Kind: &vigilv1.Event_Connect{Connect: &vigilv1.Connect{Fd: int32(fd), Remote: remote, Local: local, Protocol: "udp"}}}
	case s.proto != "unix" && s.local.Port() != 0:
		return "bind", &vigilv1.Event{Syscall: "bind",
			Kind: &vigilv1.Event_Bind{Bind: &vigilv1.Bind{Fd: int32(fd), Local: local, Protocol: s.proto}}}
	case s.proto == "unix" && s.state == unixConnected:
		if s.path != "" {
			// An accepted unix socket carries its listener's path.
			return "accept", &vigilv1.Event{Syscall: "accept", Result: int64(fd),
				Kind: &vigilv1.Event_Accept{Accept: &vigilv1.Accept{Fd: -1, NewFd: int32(fd), Local: local, Protocol: "unix"}}}
		}
		return "connect", &vigilv1.Event{Syscall: "connect",
			Kind: &vigilv1.Event_Connect{Connect: &vigilv1.Connect{Fd: int32(fd), Remote: &vigilv1.SocketAddress{Family: "unix", Path: peerPath}, Protocol: "unix"}}}
	}
	return "", nil
}

// emitOpens reports newly opened files with their flags.
func (c *Collector) emitOpens(ps *procState, files []newFile, pass *pollPass) {
	root := c.procRoot
	proc := c.procs.Lookup(ps.tgid)
	if proc == nil {
		return
	}
	mntNs := nsInode(root, ps.tgid, "mnt")
	cg, cgID := ps.cgroupInfo()
	for _, f := range files {
		flags, mntID, err := fdinfoFlags(root, ps.tgid, f.fd)
		if err != nil {
			continue // closed since the listing
		}
		types := pass.mounts[mntNs]
		if _, ok := types[mntID]; !ok {
			if b, err := os.ReadFile(pidDir(root, ps.tgid) + "/mountinfo"); err == nil {
				types = parseMountTypes(b)
				pass.mounts[mntNs] = types
			}
		}
		c.emit("open", &vigilv1.Event{
			Time:       timestamppb.Now(),
			Process:    proc,
			Tid:        ps.tgid,
			CgroupId:   cgID,
			CgroupPath: cg,
			Result:     int64(f.fd),
			Syscall:    "openat",
			Kind: &vigilv1.Event_Open{Open: &vigilv1.FileOpen{
				Path:   f.path,
				Flags:  flags &^ uint32(unix.O_LARGEFILE),
				Fd:     int32(f.fd),
				Inode:  f.key.ino,
				Dev:    f.key.dev,
				Fstype: types[mntID],
			}},
		})
	}
}
