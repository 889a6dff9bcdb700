package proctable

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// Seed fills the table from /proc, so processes older than the sensor have
// exec ids, parents and lineage. Processes the table already knows (from
// records that arrived while seeding) keep their entries. Parents always
// start before their children, so walking /proc in start-time order links
// every parent before its children.
func (t *Table) Seed(ctx context.Context) error {
	dirents, err := os.ReadDir(t.cfg.ProcRoot)
	if err != nil {
		return fmt.Errorf("seed from %s: %w", t.cfg.ProcRoot, err)
	}
	infos := make([]procInfo, 0, len(dirents))
	for _, d := range dirents {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		pid, err := strconv.ParseUint(d.Name(), 10, 32)
		if err != nil || !d.IsDir() {
			continue
		}
		info, err := readProc(t.cfg.ProcRoot, uint32(pid), t.cfg.MaxSeedArgBytes)
		if err != nil {
			// Exited while we listed; nothing to seed.
			continue
		}
		t.m.procRead.Inc()
		infos = append(infos, info)
	}
	slices.SortFunc(infos, func(a, b procInfo) int {
		return cmp.Or(cmp.Compare(a.startTicks, b.startTicks), cmp.Compare(a.pid, b.pid))
	})
	mounts := make(map[uint64][]overlayMount)
	seeded := 0
	for i := range infos {
		info := &infos[i]
		if info.exe != "" && !info.fileless {
			ms, ok := mounts[info.mntNs]
			if !ok || info.mntNs == 0 {
				ms = readOverlayMounts(t.cfg.ProcRoot, info.pid)
				mounts[info.mntNs] = ms
			}
			info.upper = onUpperLayer(ms, info.exe)
		}
		e := t.newSeedEntry(*info, t.entryForNoProc(info.ppid))
		t.mu.Lock()
		if cur := t.byPid[info.pid]; cur == nil || cur.exited && cur.startTicks != e.startTicks {
			t.insertLocked(e)
			t.queueLocked(e, t.needsExeJob(e), !e.userDone)
			seeded++
		}
		t.mu.Unlock()
	}
	t.log.Info("process table seeded", "processes", seeded)
	return nil
}

// newSeedEntry builds an entry from /proc data, linked to parent (nil for
// none). It resolves the user name on the spot: seeding and /proc fallbacks
// are off the per-event path.
func (t *Table) newSeedEntry(info procInfo, parent *entry) *entry {
	p := &vigilv1.Process{
		ExecId:        t.execIDTicks(info.pid, info.startTicks),
		Pid:           info.pid,
		Ppid:          info.ppid,
		NsPid:         info.nsPid,
		Comm:          info.comm,
		ExePath:       info.exe,
		Args:          info.args,
		ArgsTruncated: info.argsTruncated,
		Cwd:           info.cwd,
		Uid:           info.uid,
		Gid:           info.gid,
		Euid:          info.euid,
		Egid:          info.egid,
		Loginuid:      info.loginuid,
		Sid:           info.sid,
		Tty:           info.tty,
		StartTime:     t.startTimestamp(info.startTicks * TickNanos),
		ExeInode:      info.inode,
		ExeDev:        info.dev,
		ExeUpperLayer: info.upper,
		ExeFileless:   info.fileless,
		Compat32:      info.elf32,
		CapEffective:  info.capEff,
	}
	e := &entry{startTicks: info.startTicks, mntNs: info.mntNs}
	if user, group, ok := t.users.resolve(t, info.pid, info.mntNs, info.uid, info.gid); ok {
		p.UserName, p.GroupName = user, group
		e.userDone = true
	}
	if info.mtime != 0 {
		p.ExeCtime = timestamppb.New(time.Unix(0, info.ctime))
		p.ExeMtime = timestamppb.New(time.Unix(0, info.mtime))
		e.timesOK = true
		e.exe = exeFacts{dev: info.dev, ino: info.inode, size: info.size, mtimeNs: info.mtime, ctimeNs: info.ctime}
	}
	if parent != nil {
		t.mu.RLock()
		p.ParentExecId = parent.proc.ExecId
		p.Lineage = t.lineageFrom(parent)
		t.mu.RUnlock()
	}
	e.proc = p
	return e
}
