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

// passwdRefresh is how old cached passwd and group files may be before an
// id they lack makes them be read again (a user added since).
const passwdRefresh = 30 * time.Second

// maxPasswdNs bounds the mount namespaces whose passwd files are cached.
const maxPasswdNs = 4096

// maxPasswdBytes bounds how much of a passwd file is read.
const maxPasswdBytes = 4 << 20

// accountFiles are one mount namespace's user and group names.
type accountFiles struct {
	users  map[uint32]string
	groups map[uint32]string
	loaded time.Time
}

// userCache maps uids and gids to names per mount namespace, because a
// container's /etc/passwd is not the host's.
type userCache struct {
	mu   sync.Mutex
	byNs map[uint64]*accountFiles
}

func newUserCache() *userCache {
	return &userCache{byNs: make(map[uint64]*accountFiles)}
}

// cached returns the names of uid and gid in mount namespace ns when that
// namespace's files are cached; ok is false when the caller must resolve
// them with resolve. An empty name with ok true means the id has no entry.
func (u *userCache) cached(ns uint64, uid, gid uint32, now time.Time) (user, group string, ok bool) {
	if ns == 0 {
		return "", "", false
	}
	u.mu.Lock()
	f := u.byNs[ns]
	u.mu.Unlock()
	if f == nil {
		return "", "", false
	}
	user, uok := f.users[uid]
	group, gok := f.groups[gid]
	if (!uok || !gok) && now.Sub(f.loaded) > passwdRefresh {
		return "", "", false
	}
	return user, group, true
}

// resolve returns the names of uid and gid as pid sees them, reading
// /proc/PID/root/etc/passwd and group when the cache cannot answer. ok is
// false when the passwd file could not be read.
func (u *userCache) resolve(t *Table, pid uint32, ns uint64, uid, gid uint32) (user, group string, ok bool) {
	now := t.cfg.Now()
	if user, group, ok := u.cached(ns, uid, gid, now); ok {
		return user, group, true
	}
	root := filepath.Join(t.cfg.ProcRoot, itoa(pid), "root/etc")
	users, err := readAccounts(filepath.Join(root, "passwd"))
	if err != nil {
		t.m.passwdErr.Inc()
		return "", "", false
	}
	t.m.passwdRead.Inc()
	// An image without /etc/group still has user names.
	groups, _ := readAccounts(filepath.Join(root, "group"))
	if ns != 0 {
		u.mu.Lock()
		if len(u.byNs) >= maxPasswdNs {
			clear(u.byNs)
		}
		u.byNs[ns] = &accountFiles{users: users, groups: groups, loaded: now}
		u.mu.Unlock()
	}
	return users[uid], groups[gid], true
}

// readAccounts parses name:password:id:... lines (passwd and group share
// the layout up to the id).
func readAccounts(path string) (map[uint32]string, error) {
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
		id, err := strconv.ParseUint(fields[2], 10, 32)
		if err != nil {
			continue
		}
		if _, dup := names[uint32(id)]; !dup {
			// The first entry for an id wins, as getpwuid does.
			names[uint32(id)] = fields[0]
		}
	}
	return names, sc.Err()
}
