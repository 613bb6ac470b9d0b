// Package redistest starts throwaway redis-server processes for tests.
//
// Start runs redis-server on a free port of 127.0.0.1 with append-only
// persistence in a temporary directory, so that Kill and StartAgain keep
// the data as a crash would, and kills it when the test ends. If
// redis-server is not on PATH the test fails (it is not skipped).
package redistest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/fraiseql/fraiseql-subscriptions/internal/pgtest"
)

// Server is one running (or killed) redis-server.
type Server struct {
	// Port is the TCP port the server listens on, on 127.0.0.1.
	Port int
	dir  string
	exe  string

	mu     sync.Mutex
	proc   *os.Process // nil when not running
	exited chan error  // receives the process's end
}

// Start starts a server and registers its end with t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	exe, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: redis-server is not installed (apt-get install redis-server): %v", err)
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	s := &Server{dir: dir, exe: exe}
	t.Cleanup(func() { s.Kill(); os.RemoveAll(dir) })
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if s.Port, err = pgtest.FreePort(); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("redistest: %v", lastErr)
	return nil
}

// URL is the server's redis:// URL.
func (s *Server) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.Port) }

// Addr is the server's host:port.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }

// Kill stops the server with SIGKILL; it does nothing if it is not running.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	_ = s.proc.Kill()
	<-s.exited
	s.proc = nil
}

// StartAgain starts a killed server on the same port, with its data.
func (s *Server) StartAgain(t testing.TB) {
	t.Helper()
	var err error
	for i := 0; i < 20; i++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("redistest: restarting: %v", err)
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command(s.exe, "--port", fmt.Sprint(s.Port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no")
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server on port %d exited: %v", s.Port, err)
		default:
		}
		if c, err := net.DialTimeout("tcp", s.Addr(), 100*time.Millisecond); err == nil {
			c.Close()
			s.proc, s.exited = cmd.Process, exited
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	return fmt.Errorf("redis-server on port %d did not start within 10s", s.Port)
}
