package proctable

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// passwdRefresh is how old a cached passwd file may be before a uid it lacks
// makes it be read again (a user added since).
const passwdRefresh = 30 * time.Second

// maxPasswdNs bounds the mount namespaces whose passwd files are cached.
const maxPasswdNs = 4096

// maxPasswdBytes bounds how much of a passwd file is read.
const maxPasswdBytes = 4 << 20

type passwdFile struct {
	names  map[uint32]string
	loaded time.Time
}

// userCache maps uids to names per mount namespace, because a container's
// /etc/passwd is not the host's.
type userCache struct {
	mu   sync.Mutex
	byNs map[uint64]*passwdFile
}

func newUserCache() *userCache {
	return &userCache{byNs: make(map[uint64]*passwdFile)}
}

// cached returns the name of uid in mount namespace ns when that
// namespace's passwd file is cached; ok is false when the caller must
// resolve it with resolve. An empty name with ok true means the uid has no
// passwd entry.
func (u *userCache) cached(ns uint64, uid uint32, now time.Time) (name string, ok bool) {
	if ns == 0 {
		return "", false
	}
	u.mu.Lock()
	f := u.byNs[ns]
	u.mu.Unlock()
	if f == nil {
		return "", false
	}
	name, ok = f.names[uid]
	if !ok && now.Sub(f.loaded) > passwdRefresh {
		return "", false
	}
	return name, true
}

// resolve returns the name of uid as pid sees it, reading
// /proc/PID/root/etc/passwd when the cache cannot answer. ok is false when
// the passwd file could not be read.
func (u *userCache) resolve(t *Table, pid uint32, ns uint64, uid uint32) (string, bool) {
	now := t.cfg.Now()
	if name, ok := u.cached(ns, uid, now); ok {
		return name, true
	}
	names, err := readPasswd(filepath.Join(t.cfg.ProcRoot, itoa(pid), "root/etc/passwd"))
	if err != nil {
		t.m.passwdErr.Inc()
		return "", false
	}
	t.m.passwdRead.Inc()
	if ns != 0 {
		u.mu.Lock()
		if len(u.byNs) >= maxPasswdNs {
			clear(u.byNs)
		}
		u.byNs[ns] = &passwdFile{names: names, loaded: now}
		u.mu.Unlock()
	}
	return names[uid], true
}

// readPasswd parses name:password:uid:... lines.
func readPasswd(path string) (map[uint32]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names := make(map[uint32]string)
	sc := bufio.NewScanner(io.LimitReader(f, maxPasswdBytes))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.SplitN(line, ":", 4)
		if len(fields) < 4 {
			continue
		}
		uid, err := strconv.ParseUint(fields[2], 10, 32)
		if err != nil {
			continue
		}
		if _, dup := names[uint32(uid)]; !dup {
			// The first entry for a uid wins, as getpwuid does.
			names[uint32(uid)] = fields[0]
		}
	}
	return names, sc.Err()
}
