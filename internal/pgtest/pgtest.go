// Package pgtest runs a throwaway PostgreSQL server for tests: Debian's postgresql
// binaries (/usr/lib/postgresql/*/bin), a cluster made by initdb in a temporary
// directory, owned by and run as a non-root user (the postgres user when the tests
// run as root, as in CI), listening on a free port of 127.0.0.1 only. It can be
// stopped and started again on the same port (an outage), and is stopped and removed
// when the test ends.
//
// When the binaries are missing the test fails if the environment variable CI is
// "true", and is skipped with the install command otherwise.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Hint is how to install what the tests need.
const Hint = "install PostgreSQL: apt-get install -y postgresql"

// Server is a running test cluster.
type Server struct {
	t       testing.TB
	bin     string
	dir     string // cluster data directory
	sock    string // unix socket directory
	port    int
	asUser  []string // prefix that runs a command as the cluster's owner
	running bool
	dbs     atomic.Int64
}

// Bin returns the directory of the newest installed PostgreSQL's binaries, or "".
func Bin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	return ""
}

// Need fails (CI=true) or skips the test when PostgreSQL is not installed, and
// returns the binaries' directory.
func Need(t testing.TB) string {
	t.Helper()
	bin := Bin()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL is missing (no /usr/lib/postgresql/*/bin/initdb); %s", Hint)
		}
		t.Skipf("PostgreSQL is not installed; %s", Hint)
	}
	return bin
}

// Start makes and starts a cluster; it is stopped and removed when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Need(t)
	s := &Server{t: t, bin: bin}
	var owner *user.User
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: the cluster belongs to the postgres user
		// (Debian's package creates it).
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("pgtest: running as root needs the postgres user: %v (%s)", err, Hint)
		}
		owner = u
		s.asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	// Not t.TempDir: the cluster's owner must reach it, and /tmp/xxx of root is 0700.
	base, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	s.dir, s.sock = filepath.Join(base, "data"), filepath.Join(base, "sock")
	for _, d := range []string{s.dir, s.sock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if owner != nil {
		uid, _ := strconv.Atoi(owner.Uid)
		gid, _ := strconv.Atoi(owner.Gid)
		for _, d := range []string{base, s.dir, s.sock} {
			if err := os.Chown(d, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	if out, err := s.cmd("initdb", "-D", s.dir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	s.port = freePort(t)
	conf := fmt.Sprintf("port = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nmax_connections = 200\n",
		s.port, s.sock)
	f, err := os.OpenFile(filepath.Join(s.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(conf)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	s.StartAgain()
	t.Cleanup(func() {
		if s.running {
			s.Stop()
		}
	})
	return s
}

func (s *Server) cmd(name string, args ...string) *exec.Cmd {
	argv := append(append(append([]string{}, s.asUser...), filepath.Join(s.bin, name)), args...)
	c := exec.Command(argv[0], argv[1:]...)
	c.Dir = "/"
	return c
}

// Stop stops the server (fast shutdown: open transactions are rolled back and
// clients disconnected).
func (s *Server) Stop() {
	s.t.Helper()
	if out, err := s.cmd("pg_ctl", "-D", s.dir, "-m", "fast", "-w", "stop").CombinedOutput(); err != nil {
		s.t.Fatalf("pgtest: pg_ctl stop: %v\n%s", err, out)
	}
	s.running = false
}

// StartAgain starts the (stopped) server on the same port.
func (s *Server) StartAgain() {
	s.t.Helper()
	logFile := filepath.Join(filepath.Dir(s.dir), "server.log")
	if out, err := s.cmd("pg_ctl", "-D", s.dir, "-l", logFile, "-w", "-t", "60", "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(logFile)
		s.t.Fatalf("pgtest: pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	s.running = true
}

// URL is the connection URL of database db.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// Port is the server's TCP port.
func (s *Server) Port() int { return s.port }

// NewDB creates an empty database and returns its URL.
func (s *Server) NewDB() string {
	s.t.Helper()
	name := fmt.Sprintf("t%d", s.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		s.t.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		s.t.Fatalf("pgtest: %v", err)
	}
	return s.URL(name)
}

// Exec runs sql on database url (a test's setup or its break-the-code step).
func (s *Server) Exec(url, sql string, args ...any) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		s.t.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		s.t.Fatalf("pgtest: %s: %v", strings.Fields(sql)[0], err)
	}
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
