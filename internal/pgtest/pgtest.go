// Package pgtest starts throwaway PostgreSQL clusters for tests.
//
// Start runs initdb into a fresh temporary directory, starts the server on a
// free port of 127.0.0.1 (and on a Unix socket in the same directory) with
// trust authentication, and stops it with "pg_ctl stop -m immediate" when the
// test ends. PostgreSQL refuses to run as root: when the test runs as root,
// the cluster is created and run as the system user "postgres".
//
// The binaries initdb and pg_ctl are looked up on PATH, then in
// /usr/lib/postgresql/*/bin. If they cannot be found the test fails (it is
// not skipped) with a message saying what to install.
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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is one running (or stopped) throwaway cluster.
type Server struct {
	// Port is the TCP port the server listens on, on 127.0.0.1.
	Port int
	// Dir holds the cluster: data directory, socket and log file.
	Dir string

	binDir  string
	dataDir string
	logFile string
	cred    *syscall.Credential // non-nil when commands run as "postgres"

	mu      sync.Mutex
	running bool
}

// Start creates and starts a cluster, registers its stop and removal with
// t.Cleanup, and returns it.
func Start(t testing.TB) *Server {
	t.Helper()
	binDir, err := findBinDir()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	s := &Server{binDir: binDir}

	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s.Dir = dir
	s.dataDir = filepath.Join(dir, "data")
	s.logFile = filepath.Join(dir, "postgres.log")

	if os.Geteuid() == 0 {
		cred, err := postgresCredential()
		if err != nil {
			t.Fatalf("pgtest: running as root and %v", err)
		}
		s.cred = cred
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("pgtest: %v", err)
	}

	if out, err := s.run("initdb", "-D", s.dataDir, "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"); err != nil {
		t.Fatalf("pgtest: initdb failed: %v\n%s", err, out)
	}
	// TCP connections from 127.0.0.1 are trusted unless SetPassword adds a
	// rule for a user before this one.
	hba := "local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"
	if err := s.writeFile(filepath.Join(s.dataDir, "pg_hba.conf"), hba); err != nil {
		t.Fatalf("pgtest: %v", err)
	}

	t.Cleanup(s.Stop)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := FreePort()
		if err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		s.Port = port
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("pgtest: %v", lastErr)
	return nil
}

// ConnString returns a key=value connection string for the superuser
// "postgres" and database "postgres" over TCP.
func (s *Server) ConnString() string { return s.ConnStringFor("postgres", "", "postgres") }

// ConnStringFor returns a key=value connection string for user, password
// (may be empty) and database over TCP.
func (s *Server) ConnStringFor(user, password, database string) string {
	cs := fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable", s.Port, user, database)
	if password != "" {
		cs += " password=" + password
	}
	return cs
}

// URL returns a postgres:// URL for user, password (may be empty) and database.
func (s *Server) URL(user, password, database string) string {
	auth := user
	if password != "" {
		auth += ":" + password
	}
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", auth, s.Port, database)
}

// Restart stops the server immediately (as a crash would) and starts it
// again on the same port. Existing connections are broken.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	s.StartAgain(t)
}

// StartAgain starts a server stopped with Stop, on the same port.
func (s *Server) StartAgain(t testing.TB) {
	t.Helper()
	var err error
	// The port may be briefly unavailable right after a stop.
	for i := 0; i < 20; i++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("pgtest: restarting: %v", err)
}

// Stop stops the server with "pg_ctl stop -m immediate". It does nothing if
// the server is not running.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return
	}
	s.run("pg_ctl", "stop", "-D", s.dataDir, "-m", "immediate", "-w", "-t", "30")
	s.running = false
}

// SetPassword creates (or alters) the login role user with password and
// requires password authentication (scram-sha-256) for that user over TCP.
// Other users stay trusted.
func (s *Server) SetPassword(t testing.TB, user, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.ConnString())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", user).Scan(&exists); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	verb := "CREATE"
	if exists {
		verb = "ALTER"
	}
	ident := pgx.Identifier{user}.Sanitize()
	lit := "'" + strings.ReplaceAll(password, "'", "''") + "'"
	if _, err := conn.Exec(ctx, "SET password_encryption = 'scram-sha-256'"); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if _, err := conn.Exec(ctx, verb+" ROLE "+ident+" LOGIN SUPERUSER PASSWORD "+lit); err != nil {
		t.Fatalf("pgtest: setting the password: %v", err)
	}
	hbaPath := filepath.Join(s.dataDir, "pg_hba.conf")
	old, err := os.ReadFile(hbaPath)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	rule := fmt.Sprintf("host all %q 127.0.0.1/32 scram-sha-256\nhost all %q ::1/128 scram-sha-256\n", user, user)
	if err := s.writeFile(hbaPath, rule+string(old)); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	// The postmaster reloads asynchronously; wait until the rule applies.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c, err := pgx.Connect(ctx, s.ConnStringFor(user, "", "postgres"))
		if err != nil {
			return // a password is now required
		}
		c.Close(ctx)
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("pgtest: the password rule for %q did not take effect", user)
}

// Exec runs sql as the superuser on database "postgres".
func (s *Server) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.ConnString())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// Log returns the server log, for failure messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logFile)
	return string(b)
}

// FreePort returns a TCP port of 127.0.0.1 that nothing listens on.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return nil
	}
	// fsync=off only risks data on an operating system crash; commits
	// stay durable across "pg_ctl stop -m immediate" (Restart).
	opts := fmt.Sprintf("-k %s -p %d -c listen_addresses=127.0.0.1 -c fsync=off",
		s.Dir, s.Port)
	out, err := s.run("pg_ctl", "start", "-D", s.dataDir, "-l", s.logFile, "-w", "-t", "60", "-o", opts)
	if err != nil {
		return fmt.Errorf("pg_ctl start failed: %v\n%s\n%s", err, out, s.Log())
	}
	s.running = true
	return nil
}

// run runs a PostgreSQL binary, as "postgres" when the test runs as root.
func (s *Server) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(s.binDir, name), args...)
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
		cmd.Env = append(cmd.Env, "HOME="+s.Dir, "USER=postgres", "LOGNAME=postgres")
	}
	return cmd.CombinedOutput()
}

// writeFile writes a file of the cluster, owned by the user running it.
func (s *Server) writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	if s.cred != nil {
		return os.Chown(path, int(s.cred.Uid), int(s.cred.Gid))
	}
	return nil
}

func postgresCredential() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("there is no \"postgres\" user to run PostgreSQL as (initdb refuses root): %v", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// findBinDir finds the directory holding initdb and pg_ctl.
func findBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Sort(sort.Reverse(sort.StringSlice(matches))) // newest version first (for single-digit majors)
	for _, m := range matches {
		dir := filepath.Dir(m)
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH nor in /usr/lib/postgresql/*/bin; " +
		"install the PostgreSQL server (e.g. apt-get install postgresql) to run these tests")
}
