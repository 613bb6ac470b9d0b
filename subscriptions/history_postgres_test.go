//go:build !mutate

// Positions, resume and catch-up on the PostgreSQL bus, against PostgreSQL.

package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fraiseql/fraiseql-subscriptions/internal/pgtest"
)

func historyPostgresExecutor(t *testing.T, connString string, opts Options) *Executor {
	t.Helper()
	opts.Bus = BusConfig{Kind: BusPostgres, Postgres: PostgresOptions{ConnString: connString,
		PollInterval: 50 * time.Millisecond, ConnectTimeout: 5 * time.Second}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := NewExecutor(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

func TestPostgresResumeOnAnotherExecutor(t *testing.T) {
	srv := pgtest.Start(t)
	a := historyPostgresExecutor(t, srv.ConnString(), Options{})
	b := historyPostgresExecutor(t, srv.ConnString(), Options{})
	registerWith(t, a, Registration{SubscriptionID: "twin", Positions: true})
	registerWith(t, a, Registration{SubscriptionID: "cut", Positions: true})
	publishN(t, a, 1, 20)
	read := waitFrames(t, a, "cut", 7)
	a.Complete("cut")
	publishN(t, b, 21, 30)
	registerWith(t, b, Registration{SubscriptionID: "resumed", After: framePosition(t, read[6])})
	publishN(t, a, 31, 40)
	twin := waitFrames(t, a, "twin", 39)
	sameFrames(t, waitFrames(t, b, "resumed", 39-7), "resumed", twin[7:], "twin")
	if p := framePosition(t, twin[0]); !strings.HasPrefix(p, "p") {
		t.Fatalf("position %s", p)
	}
}

func TestPostgresPrunedForeignAndRecreatedPositionsRefused(t *testing.T) {
	srv := pgtest.Start(t)
	e := historyPostgresExecutor(t, srv.ConnString(), Options{})
	registerWith(t, e, Registration{SubscriptionID: "a", Positions: true, Query: `subscription { users { n } }`})
	publishN(t, e, 1, 10)
	frames := waitFrames(t, e, "a", 10)
	// Pruning (as the listener does it, oldest commits first) of the first five.
	srv.Exec(t, `WITH gone AS (DELETE FROM fraiseql_events_commits WHERE stamp <= $1 RETURNING xid)
DELETE FROM fraiseql_events WHERE xid IN (SELECT xid FROM gone)`, stampOf(t, framePosition(t, frames[4])))
	for _, c := range []struct {
		after string
		want  error
	}{
		{framePosition(t, frames[0]), ErrPositionExpired},
		{framePosition(t, frames[4]), ErrPositionExpired},
		{"r1:1-1", ErrPositionInvalid},
		{strings.Replace(framePosition(t, frames[5]), "p", "p1", 1), ErrPositionInvalid},
	} {
		err := e.Register(Registration{ConnectionID: "c", SubscriptionID: "r", Query: `subscription { users { n } }`, TenantID: "t", After: c.after})
		if !errors.Is(err, c.want) {
			t.Fatalf("after %s: got %v, want %v", c.after, err, c.want)
		}
	}
	registerWith(t, e, Registration{SubscriptionID: "r", Query: `subscription { users { n } }`, After: framePosition(t, frames[5])})
	sameFrames(t, waitFrames(t, e, "r", 4), "r", frames[6:], "a")
	// The table dropped and created again: a new epoch.
	old := framePosition(t, frames[9])
	_ = e.Close(context.Background())
	srv.Exec(t, `DROP TABLE fraiseql_events CASCADE`)
	c := historyPostgresExecutor(t, srv.ConnString(), Options{})
	err := c.Register(Registration{ConnectionID: "c", SubscriptionID: "r", Query: `subscription { users { n } }`, TenantID: "t", After: old})
	if !errors.Is(err, ErrPositionInvalid) {
		t.Fatalf("after a recreated table: %v", err)
	}
}

func stampOf(t *testing.T, pos string) int64 {
	t.Helper()
	var stamp, id int64
	if _, err := fmt.Sscanf(pos[strings.Index(pos, ":")+1:], "%d-%d", &stamp, &id); err != nil {
		t.Fatal(err)
	}
	return stamp
}

func TestPostgresCatchUpBurstThroughQueueOfEight(t *testing.T) {
	srv := pgtest.Start(t)
	e := historyPostgresExecutor(t, srv.ConnString(), Options{QueueSize: 8, OnOverflow: OverflowCatchUp})
	registerWith(t, e, Registration{SubscriptionID: "a", Query: `subscription { users { n } }`})
	checkCatchUpBurst(t, e, BusConfig{Kind: BusPostgres, Postgres: PostgresOptions{ConnString: srv.ConnString()}}, 60*time.Second)
}
