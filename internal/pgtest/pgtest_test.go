package pgtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func query(t *testing.T, connString string) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, "SELECT 41 + 1").Scan(&n)
	return n, err
}

func TestStartRestartPassword(t *testing.T) {
	start := time.Now()
	s := Start(t)
	t.Logf("cluster started in %v on port %d", time.Since(start), s.Port)
	if n, err := query(t, s.ConnString()); err != nil || n != 42 {
		t.Fatalf("query: %d, %v", n, err)
	}

	start = time.Now()
	s.Restart(t)
	t.Logf("restarted in %v", time.Since(start))
	if n, err := query(t, s.URL("postgres", "", "postgres")); err != nil || n != 42 {
		t.Fatalf("query after restart: %d, %v", n, err)
	}

	s.SetPassword(t, "alice", "right-pass'word")
	if _, err := query(t, s.ConnStringFor("alice", "wrong", "postgres")); err == nil {
		t.Fatal("wrong password accepted")
	} else if !strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("unexpected error: %v", err)
	}
	if n, err := query(t, s.URL("alice", "right-pass%27word", "postgres")); err != nil || n != 42 {
		t.Fatalf("query with password: %d, %v", n, err)
	}

	s.Stop()
	if _, err := query(t, s.ConnString()); err == nil {
		t.Fatal("server still answers after Stop")
	}
	s.StartAgain(t)
	if n, err := query(t, s.ConnString()); err != nil || n != 42 {
		t.Fatalf("query after StartAgain: %d, %v", n, err)
	}
}
