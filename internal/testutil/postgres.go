package testutil

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// PostgresServer is a real PostgreSQL server started for the tests of one
// test binary.
type PostgresServer struct {
	// Port is the TCP port the server listens on (127.0.0.1 only).
	Port int
	// User is the superuser the tests connect as (trust authentication).
	User string

	bin     string
	dataDir string
	runAs   string
	dbSeq   atomic.Int64
}

// pgOnce shares one server between all tests of a test binary: initdb and a
// cold start cost seconds, a fresh database per test costs milliseconds.
var pgOnce struct {
	sync.Once
	srv *PostgresServer
	err error
}

// Postgres returns a DSN for a new, empty database on a real PostgreSQL
// server shared by the test binary. It installs Debian's postgresql package
// when no server binaries are found, runs initdb in a temporary directory as
// an unprivileged user (PostgreSQL refuses to run as root) and starts the
// server on a free port of 127.0.0.1. It skips (or fails, when
// VIGIL_REQUIRE_PRIVILEGED=1) when none of that is possible.
//
// The server is stopped by StopPostgres, which TestMain should call after
// m.Run; without it the server outlives the test binary.
func Postgres(t testing.TB) string {
	t.Helper()
	pgOnce.Do(func() { pgOnce.srv, pgOnce.err = startPostgres() })
	if pgOnce.err != nil {
		SkipOrFail(t, "real PostgreSQL unavailable: "+pgOnce.err.Error())
	}
	srv := pgOnce.srv
	name := fmt.Sprintf("test_%d_%d", os.Getpid(), srv.dbSeq.Add(1))
	if out, err := srv.psql("postgres", "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		// WITH (FORCE) closes connections a failed test may have leaked.
		_, _ = srv.psql("postgres", "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", srv.User, srv.Port, name)
}

// StopPostgres stops the shared server if one was started. Call it from
// TestMain after m.Run.
func StopPostgres() {
	srv := pgOnce.srv
	if srv == nil {
		return
	}
	cmd := srv.command(filepath.Join(srv.bin, "pg_ctl"), "-D", srv.dataDir, "-m", "immediate", "-w", "stop")
	_ = cmd.Run()
	_ = os.RemoveAll(filepath.Dir(srv.dataDir))
}

func startPostgres() (*PostgresServer, error) {
	bin, err := postgresBinDir()
	if err != nil {
		if os.Geteuid() != 0 {
			return nil, fmt.Errorf("postgresql not installed and not root to install it: %w", err)
		}
		if out, err := exec.Command("apt-get", "update").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("apt-get update: %w: %s", err, out)
		}
		cmd := exec.Command("apt-get", "install", "-y", "--no-install-recommends", "postgresql")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("apt-get install postgresql: %w: %s", err, out)
		}
		if bin, err = postgresBinDir(); err != nil {
			return nil, err
		}
	}
	srv := &PostgresServer{bin: bin}
	if os.Geteuid() == 0 {
		srv.runAs = "nobody"
	}
	if srv.runAs != "" {
		u, err := user.Lookup(srv.runAs)
		if err != nil {
			return nil, fmt.Errorf("look up user %s: %w", srv.runAs, err)
		}
		srv.User = u.Username
	} else {
		u, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("current user: %w", err)
		}
		srv.User = u.Username
	}
	root, err := os.MkdirTemp("", "vigil-pg-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	srv.dataDir = filepath.Join(root, "data")
	if srv.runAs != "" {
		if out, err := exec.Command("chown", "-R", srv.runAs, root).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("chown %s: %w: %s", root, err, out)
		}
		// The temp root is private to root by default; the server user must
		// reach its data directory through it.
		if err := os.Chmod(root, 0o755); err != nil {
			return nil, fmt.Errorf("chmod %s: %w", root, err)
		}
	}
	if out, err := srv.command(filepath.Join(bin, "initdb"), "-D", srv.dataDir, "-U", srv.User,
		"--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	srv.Port = port
	// fsync off: the tests need a real server's semantics (locks, MVCC,
	// ON CONFLICT), not its durability.
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories=%s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
		port, root)
	logFile := filepath.Join(root, "server.log")
	if out, err := srv.command(filepath.Join(bin, "pg_ctl"), "-D", srv.dataDir, "-l", logFile,
		"-o", opts, "-w", "-t", "60", "start").CombinedOutput(); err != nil {
		logText, _ := os.ReadFile(logFile)
		return nil, fmt.Errorf("pg_ctl start: %w: %s %s", err, out, logText)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := srv.psql("postgres", "SELECT 1"); err == nil {
			break
		} else if time.Now().After(deadline) {
			return nil, fmt.Errorf("server did not answer: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return srv, nil
}

// psql runs one SQL statement against database db.
func (s *PostgresServer) psql(db, sql string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(s.bin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
		"-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-U", s.User, "-d", db, "-c", sql)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// command builds a command that runs as the server's unprivileged user when
// the tests run as root.
func (s *PostgresServer) command(name string, args ...string) *exec.Cmd {
	if s.runAs == "" {
		return exec.Command(name, args...)
	}
	cmd := exec.Command("runuser", append([]string{"-u", s.runAs, "--", name}, args...)...)
	// The caller's working directory may be closed to the server user.
	cmd.Dir = "/"
	return cmd
}

// postgresBinDir finds the newest installed server's bin directory (Debian
// keeps them in /usr/lib/postgresql/<major>/bin, outside PATH).
func postgresBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		return majorOf(dirs[i]) > majorOf(dirs[j])
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("no initdb found")
}

func majorOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
