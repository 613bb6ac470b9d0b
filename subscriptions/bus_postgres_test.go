//go:build !mutate

// The engine area of `make mutate` builds without this file (tag mutate):
// its tests use Redis or PostgreSQL and would slow every engine mutant's
// run. The buses area runs them.

package subscriptions

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/jackc/pgx/v5"

	"github.com/fraiseql/fraiseql-subscriptions/internal/pgtest"
)

func startPgBus(t *testing.T, opts PostgresOptions, c *collector) *PostgresBus {
	t.Helper()
	b, err := newPostgresBus(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	if c != nil {
		c.settle = func(t *testing.T) { waitReads(t, b, 2) }
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Start(ctx, c.deliver); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// waitReads waits until b's listener has completed n more reads: with n
// >= 2 the last began after the call, so whatever was committed before the
// call and would be delivered has been. The negative checks wait on it.
func waitReads(t *testing.T, b *PostgresBus, n uint64) {
	t.Helper()
	want := b.reads.Load() + n
	for deadline := time.Now().Add(10 * time.Second); b.reads.Load() < want; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d reads of the bus, want %d", b.reads.Load(), want)
		}
	}
}

func pgEvent(src string, n int) Event {
	return Event{Type: "tick", Channel: "ch", Data: json.RawMessage(fmt.Sprintf(`{"src":%q,"n":%d}`, src, n))}
}

// checkExactlyOnce checks that got holds exactly want, in that order.
func checkInOrder(t *testing.T, got, want []Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Type != want[i].Type || got[i].Channel != want[i].Channel || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Fatalf("event %d: got %s %s %s, want %s %s %s", i,
				got[i].Channel, got[i].Type, got[i].Data, want[i].Channel, want[i].Type, want[i].Data)
		}
	}
}

func pgConnect(t *testing.T, connString string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestPostgresBusTwoBuses(t *testing.T) {
	srv := pgtest.Start(t)
	var ca, cb collector
	a := startPgBus(t, PostgresOptions{ConnString: srv.ConnString()}, &ca)
	b := startPgBus(t, PostgresOptions{ConnString: srv.URL("postgres", "", "postgres")}, &cb)
	ctx := context.Background()

	var want []Event
	for i := 0; i < 60; i++ {
		bus, src := Bus(a), "a"
		if i%3 == 1 {
			bus, src = b, "b"
		}
		ev := pgEvent(src, i)
		if err := bus.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
		want = append(want, ev)
	}
	checkInOrder(t, ca.waitFor(t, len(want), 10*time.Second), want)
	checkInOrder(t, cb.waitFor(t, len(want), 10*time.Second), want)

	sa, sb := a.Stats(), b.Stats()
	if sa.Published != 40 || sb.Published != 20 || sa.Received != 60 || sb.Received != 60 {
		t.Fatalf("stats: %+v %+v", sa, sb)
	}
	if sa.LagMillis <= 0 || sa.LagMillis > 5000 {
		t.Fatalf("lag %v", sa.LagMillis)
	}
}

func TestPostgresBusDefaultsAndClose(t *testing.T) {
	srv := pgtest.Start(t)
	var c collector
	b := startPgBus(t, PostgresOptions{ConnString: srv.ConnString()}, &c)
	o := b.opts
	if o.Table != "fraiseql_events" || o.NotifyChannel != "fraiseql_events" || o.Retention != time.Hour ||
		o.PollInterval != time.Second || o.ConnectTimeout != 5*time.Second {
		t.Fatalf("defaults: %+v", o)
	}
	if err := b.Start(context.Background(), c.deliver); err == nil {
		t.Fatal("second Start succeeded")
	}
	// An event with no data still round-trips.
	if err := b.Publish(context.Background(), Event{Type: "t", Channel: "c"}); err != nil {
		t.Fatal(err)
	}
	got := c.waitFor(t, 1, 5*time.Second)
	if got[0].Type != "t" || got[0].Channel != "c" || len(got[0].Data) != 0 {
		t.Fatalf("got %+v", got[0])
	}
	// Close is idempotent, removes the LISTEN and refuses further use.
	conn := pgConnect(t, srv.ConnString())
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), pgEvent("x", 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	// Backends exit asynchronously after the client leaves.
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var n int
		if err := conn.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections left open after Close", n)
		}
	}

	// A bus that was never started closes too; a bad connection string is
	// refused without echoing its password.
	nb, err := NewPostgresBus(PostgresOptions{ConnString: srv.ConnString()})
	if err != nil {
		t.Fatal(err)
	}
	if err := nb.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := NewPostgresBus(PostgresOptions{ConnString: "postgres://u:hunter2secret@host:notaport/db"}); err == nil ||
		strings.Contains(err.Error(), "hunter2secret") {
		t.Fatalf("bad connection string: %v", err)
	}
}

func TestPostgresBusTerminateListener(t *testing.T) {
	srv := pgtest.Start(t)
	var cl, cp collector
	opts := PostgresOptions{ConnString: srv.ConnString(), PollInterval: 200 * time.Millisecond}
	listener := startPgBus(t, opts, &cl)
	publisher := startPgBus(t, opts, &cp)
	admin := pgConnect(t, srv.ConnString())
	ctx := context.Background()

	const total = 300
	want := make([]Event, total)
	for i := range want {
		want[i] = pgEvent("p", i)
	}
	errc := make(chan error, 1)
	go func() {
		for _, ev := range want {
			if err := publisher.Publish(ctx, ev); err != nil {
				errc <- err
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		errc <- nil
	}()

	delivered := 0
	for kill := 0; kill < 3; kill++ {
		// Kill while events flow: once the listener has delivered more
		// since the last kill (or everything).
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			n := len(cl.events())
			if n > delivered || n == total {
				delivered = n
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no event delivered since the last kill (%d of %d)", n, total)
			}
		}
		pid := listener.listenPID.Load()
		var ok bool
		if err := admin.QueryRow(ctx, "SELECT pg_terminate_backend($1)", int32(pid)).Scan(&ok); err != nil || !ok {
			t.Fatalf("pg_terminate_backend(%d): %v %v", pid, ok, err)
		}
		// Wait for the listener to be back before killing it again.
		deadline := time.Now().Add(5 * time.Second)
		for listener.listenPID.Load() == pid && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	checkInOrder(t, cl.waitFor(t, total, 15*time.Second), want)
	checkInOrder(t, cp.waitFor(t, total, 15*time.Second), want)
	if s := listener.Stats(); s.Reconnects < 3 || s.Received != total {
		t.Fatalf("listener stats: %+v", s)
	}
}

// The listener's connection is terminated while it waits for notifications:
// its warning gives the server's reason (the FATAL error the wait read), not
// the closed connection a later query would find, and it reconnects.
func TestPostgresBusListenerTerminatedWhileWaitingSaysWhy(t *testing.T) {
	srv := pgtest.Start(t)
	logs := &logCollector{}
	var c collector
	bus := startPgBus(t, PostgresOptions{ConnString: srv.ConnString(), PollInterval: time.Hour, Logger: logs}, &c)
	// Its first round ends with a prune, then it waits (no poll in the test's time).
	for deadline := time.Now().Add(10 * time.Second); bus.prunes.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the listener's first round did not end")
		}
	}
	pid := bus.listenPID.Load()
	var ok bool
	if err := pgConnect(t, srv.ConnString()).QueryRow(context.Background(), "SELECT pg_terminate_backend($1)", int32(pid)).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d): %v %v", pid, ok, err)
	}
	lost := logs.waitFor(t, LogWarning, "PostgreSQL bus listener connection lost to ")
	if !strings.Contains(lost.Msg, "terminating connection due to administrator command (SQLSTATE 57P01)") {
		t.Fatalf("the warning does not give the server's reason: %s", lost.Msg)
	}
	for deadline := time.Now().Add(10 * time.Second); bus.listenPID.Load() == pid; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the listener did not reconnect")
		}
	}
}

func TestPostgresBusServerRestart(t *testing.T) {
	srv := pgtest.Start(t)
	var c collector
	opts := PostgresOptions{ConnString: srv.ConnString(), PollInterval: 200 * time.Millisecond, ConnectTimeout: 2 * time.Second}
	bus := startPgBus(t, opts, &c)
	ctx := context.Background()
	var want []Event
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			ev := pgEvent("r", i)
			if err := bus.Publish(ctx, ev); err != nil {
				t.Fatal(err)
			}
			want = append(want, ev)
		}
	}
	publish(0, 10)
	c.waitFor(t, 10, 5*time.Second)

	srv.Stop()
	start := time.Now()
	err := bus.Publish(ctx, pgEvent("lost", 0))
	if err == nil || !strings.HasPrefix(err.Error(), "publishing to PostgreSQL failed: ") {
		t.Fatalf("Publish with the server down: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Publish with the server down took %v", d)
	}
	t.Logf("publish error after %v: %v", time.Since(start), err)

	srv.StartAgain(t)
	publish(10, 30) // pooled connections are stale: Publish must recover
	checkInOrder(t, c.waitFor(t, 30, 15*time.Second), want)
	if s := bus.Stats(); s.Reconnects == 0 || s.Published != 30 || s.Received != 30 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestPostgresBusLargePayload(t *testing.T) {
	srv := pgtest.Start(t)
	var c collector
	bus := startPgBus(t, PostgresOptions{ConnString: srv.ConnString()}, &c)
	var want []Event
	for _, size := range []int{200 << 10, 1 << 20} {
		raw := make([]byte, size*3/4)
		rand.Read(raw)
		data := []byte(`{"blob":"` + base64.StdEncoding.EncodeToString(raw) + `","unicode":"é ✓ \u0000"}`)
		ev := Event{Type: "big", Channel: "blobs", Data: data}
		if err := bus.Publish(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		want = append(want, ev)
	}
	checkInOrder(t, c.waitFor(t, len(want), 10*time.Second), want)
}

func TestPostgresBusQuotedNames(t *testing.T) {
	srv := pgtest.Start(t)
	srv.Exec(t, "CREATE TABLE t (x int)")
	// Quotes, a backslash and the tag the function body is quoted with.
	table := `my-events"table$fraiseql$`
	notify := `wake"; DROP TABLE t; -- \' $fraiseql$`
	opts := PostgresOptions{ConnString: srv.ConnString(), Table: table, NotifyChannel: notify}
	var ca, cb collector
	a := startPgBus(t, opts, &ca)
	startPgBus(t, opts, &cb)

	var want []Event
	for i, ch := range []string{`x'; DROP TABLE t; --`, `"; DROP TABLE t; --`, `$1`, "ch\\'"} {
		ev := Event{Type: `it's "quoted"`, Channel: ch, Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}
		if err := a.Publish(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		want = append(want, ev)
	}
	// The SQL function, named after the table, notifies the channel.
	conn := pgConnect(t, srv.ConnString())
	fn := pgx.Identifier{table + "_publish"}.Sanitize()
	if _, err := conn.Exec(context.Background(), `LISTEN `+pgx.Identifier{notify}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), `SELECT `+fn+`('x''; --', 'sql', '{"n": 4}')`); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n, err := conn.WaitForNotification(wctx); err != nil || n.Channel != notify {
		t.Fatalf("notification: %+v, %v", n, err)
	}
	want = append(want, Event{Type: "sql", Channel: "x'; --", Data: json.RawMessage(`{"n": 4}`)})
	checkInOrder(t, ca.waitFor(t, len(want), 5*time.Second), want)
	checkInOrder(t, cb.waitFor(t, len(want), 5*time.Second), want)

	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil || n != len(want) {
		t.Fatalf("table %s: %d rows, %v", table, n, err)
	}
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatalf("table t was dropped: %v", err)
	}
}

func TestPostgresBusConnectErrors(t *testing.T) {
	srv := pgtest.Start(t)
	const right, wrong = "Right-S3cret-pw", "Wr0ng-S3cret-pw"
	srv.SetPassword(t, "alice", right)

	// Sanity: the right password works.
	var c collector
	startPgBus(t, PostgresOptions{ConnString: srv.ConnStringFor("alice", right, "postgres")}, &c)

	freePort, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// A server that accepts connections and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		var held []net.Conn
		for {
			conn, err := silent.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, conn)
		}
	}()

	cases := []struct {
		name, connString string
		timeout          time.Duration
		want             string
	}{
		{"unreachable port", fmt.Sprintf("host=127.0.0.1 port=%d user=postgres password=%s sslmode=disable", freePort, wrong), 2 * time.Second, "connect"},
		{"wrong password", srv.ConnStringFor("alice", wrong, "postgres"), 2 * time.Second, "password authentication failed"},
		{"wrong password URL", srv.URL("alice", wrong, "postgres"), 2 * time.Second, "password authentication failed"},
		{"bad database", srv.ConnStringFor("alice", right, "no_such_db"), 2 * time.Second, `"no_such_db" does not exist`},
		{"silent server", fmt.Sprintf("postgres://alice:%s@%s/db?sslmode=disable", wrong, silent.Addr()), 500 * time.Millisecond, "within 500ms"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := NewPostgresBus(PostgresOptions{ConnString: tc.connString, ConnectTimeout: tc.timeout})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close(context.Background())
			start := time.Now()
			err = b.Start(context.Background(), func(Event) {})
			elapsed := time.Since(start)
			if err == nil {
				t.Fatal("Start succeeded")
			}
			t.Logf("after %v: %v", elapsed, err)
			if elapsed > tc.timeout+time.Second {
				t.Fatalf("Start took %v, over the %v timeout", elapsed, tc.timeout)
			}
			msg := err.Error()
			if strings.Contains(msg, wrong) || strings.Contains(msg, right) {
				t.Fatalf("the error reveals the password: %s", msg)
			}
			if !strings.HasPrefix(msg, "connecting to PostgreSQL at ") || !strings.Contains(msg, tc.want) {
				t.Fatalf("unexpected error: %s", msg)
			}
			// Publish fails the same way, without the password either.
			err = b.Publish(context.Background(), pgEvent("x", 0))
			if err == nil || strings.Contains(err.Error(), wrong) || !strings.HasPrefix(err.Error(), "publishing to PostgreSQL failed: ") {
				t.Fatalf("Publish: %v", err)
			}
			if d := time.Since(start); d > 2*tc.timeout+2*time.Second {
				t.Fatalf("Start and Publish took %v", d)
			}
		})
	}
}

func TestPostgresBusRetention(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	newBus := func(retention time.Duration) (*PostgresBus, *collector) {
		b, err := newPostgresBus(PostgresOptions{ConnString: srv.ConnString(), Retention: retention, PollInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		b.pruneEvery = 50 * time.Millisecond
		t.Cleanup(func() { b.Close(context.Background()) })
		c := &collector{}
		c.settle = func(t *testing.T) { waitReads(t, b, 2) }
		if err := b.Start(ctx, c.deliver); err != nil {
			t.Fatal(err)
		}
		return b, c
	}
	conn := pgConnect(t, srv.ConnString())
	count := func(where string) int {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+where).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitCount := func(where string, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for count(where) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%d rows where %s, want %d", count(where), where, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Rows committed longer ago than the retention go, recent ones stay,
	// whenever their transaction started.
	b, c := newBus(time.Hour)
	for i := 0; i < 5; i++ {
		if err := b.Publish(ctx, pgEvent("fresh", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `INSERT INTO fraiseql_events (channel, event_type, payload, created_at)
		SELECT 'ch', 'old', '{}', now() - interval '2 hours' FROM generate_series(1, 3)`); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, 8, 10*time.Second)
	if n := count("fraiseql_events WHERE event_type = 'old'"); n != 3 {
		t.Fatalf("%d rows that started long ago but committed now left, want 3", n)
	}
	if _, err := conn.Exec(ctx, `UPDATE fraiseql_events_commits SET committed_at = now() - interval '2 hours'
		WHERE xid IN (SELECT xid FROM fraiseql_events WHERE event_type = 'old')`); err != nil {
		t.Fatal(err)
	}
	waitCount("fraiseql_events WHERE event_type = 'old'", 0)
	if n := count("fraiseql_events"); n != 5 {
		t.Fatalf("%d rows left, want the 5 recent ones", n)
	}

	// With a short retention every row soon goes, and the bus still works.
	b2, c2 := newBus(time.Second)
	waitCount("fraiseql_events", 0)
	if err := b2.Publish(ctx, pgEvent("new", 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `SELECT fraiseql_publish('ch', 'sql', '{}')`); err != nil {
		t.Fatal(err)
	}
	c2.waitFor(t, 2, 10*time.Second)
	waitCount("fraiseql_events", 0)
	// The commit stamp of the SQL transaction goes with its rows.
	waitCount("fraiseql_events_commits", 0)
}

func TestPostgresBusConcurrentPublishers(t *testing.T) {
	srv := pgtest.Start(t)
	var c collector
	opts := PostgresOptions{ConnString: srv.ConnString()}
	// Executors starting together on a fresh database all create the table.
	var pubs []*PostgresBus
	for i := 0; i < 4; i++ {
		pubs = append(pubs, startPgBus(t, opts, nil))
	}
	startErrs := make(chan error, len(pubs))
	for i, b := range pubs {
		deliver := func(Event) {}
		if i == 0 {
			deliver = c.deliver
		}
		go func() { startErrs <- b.Start(context.Background(), deliver) }()
	}
	for range pubs {
		if err := <-startErrs; err != nil {
			t.Fatal(err)
		}
	}
	listener := pubs[0]
	c.settle = func(t *testing.T) { waitReads(t, listener, 2) }

	const writers, each = 9, 80
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			bus := pubs[w%len(pubs)]
			for i := 0; i < each; i++ {
				if err := bus.Publish(context.Background(), pgEvent(fmt.Sprint(w), i)); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := c.waitFor(t, writers*each, 20*time.Second)
	next := map[string]int{} // per writer, the next n expected
	for _, ev := range got {
		var d struct {
			Src string `json:"src"`
			N   int    `json:"n"`
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatal(err)
		}
		if d.N != next[d.Src] {
			t.Fatalf("writer %s: got event %d, want %d (lost, duplicated or reordered)", d.Src, d.N, next[d.Src])
		}
		next[d.Src]++
	}
	if s := listener.Stats(); s.Received != writers*each {
		t.Fatalf("stats: %+v", s)
	}
}

// TestPostgresBusOpenTransaction holds a transaction open on a lower id
// while higher ids commit: the later events are delivered at once, the
// open transaction's when it commits (never skipped, however long it
// stays open), and a rollback leaves nothing behind and nothing to wait for.
func TestPostgresBusOpenTransaction(t *testing.T) {
	srv := pgtest.Start(t)
	var c collector
	bus := startPgBus(t, PostgresOptions{ConnString: srv.ConnString(), PollInterval: 50 * time.Millisecond}, &c)
	conn := pgConnect(t, srv.ConnString())
	ctx := context.Background()

	for _, commit := range []bool{true, false} {
		c.reset()
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `SELECT fraiseql_publish('ch', 'slow', '{"open":true}')`); err != nil {
			t.Fatal(err)
		}
		later := []Event{pgEvent("later", 0), pgEvent("later", 1)}
		for _, ev := range later {
			if err := bus.Publish(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		// Delivered while the lower id is still in flight; then the poll
		// runs many times over with the transaction open.
		checkInOrder(t, c.waitFor(t, 2, 5*time.Second), later)
		waitReads(t, bus, 10)
		if commit {
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			slow := Event{Type: "slow", Channel: "ch", Data: []byte(`{"open": true}`)}
			checkInOrder(t, c.waitFor(t, 3, 5*time.Second), append(later, slow))
		} else {
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			waitReads(t, bus, 2)
			checkInOrder(t, c.events(), later)
		}
	}
}

// A backlog of several pages is delivered in one read: the pages after
// the first, sent without the horizon's statement, are dispatched at once,
// not left for the next notification or poll (an hour away here).
func TestPostgresBusPagesAfterTheFirstInTheSameRead(t *testing.T) {
	srv := pgtest.Start(t)
	var c collector
	bus := startPgBus(t, PostgresOptions{ConnString: srv.ConnString(), PollInterval: time.Hour}, &c)
	waitFirstRound(t, bus)
	reads := bus.reads.Load()
	want := make([]Event, 2*pgPageSize+1)
	for i := range want {
		want[i] = pgEvent("batch", i)
	}
	if err := bus.PublishBatch(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	// Only the batch's notification wakes the listener.
	for deadline := time.Now().Add(20 * time.Second); bus.reads.Load() == reads; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the listener did not read after the notification")
		}
	}
	checkInOrder(t, c.events(), want)
}

// waitFirstRound waits until the listener's first round has ended with a
// prune: it then waits for a notification or its next poll.
func waitFirstRound(t *testing.T, bus *PostgresBus) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); bus.prunes.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the listener's first round did not end")
		}
	}
}

// ownerLock lists the server processes that hold (granted) or wait for
// the advisory lock of a listener with InstanceID id on the default table.
func ownerLock(t *testing.T, conn *pgx.Conn, id string, granted bool) []int32 {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted = $3
	AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND classid = $1::bigint::oid AND objsubid = 2 AND objid = (hashtext($2)::bigint & 4294967295)::oid ORDER BY pid`,
		pgOwnerClass, "fraiseql_events "+id, granted)
	if err != nil {
		t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

// While another connection holds the InstanceID's lock, the listener's
// reconnections keep failing with ErrInstanceInUse: it warns once, not at
// each attempt, and takes the id back once it is free.
func TestPostgresBusInstanceInUseWarnedOnce(t *testing.T) {
	srv := pgtest.Start(t)
	logs := &logCollector{}
	var c collector
	bus := startPgBus(t, PostgresOptions{ConnString: srv.ConnString(), InstanceID: "x", PollInterval: time.Hour,
		ConnectTimeout: 2 * time.Second, Logger: logs}, &c)
	waitFirstRound(t, bus)
	admin := pgConnect(t, srv.ConnString())
	holder := pgConnect(t, srv.ConnString())
	ctx := context.Background()

	// The holder queues for the lock before the listener's connection
	// ends, so it gets the lock before any reconnection can.
	locked := make(chan error, 1)
	go func() {
		_, err := holder.Exec(ctx, `SELECT pg_advisory_lock($1, hashtext($2))`, pgOwnerClass, "fraiseql_events x")
		locked <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); len(ownerLock(t, admin, "x", false)) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the holder does not wait for the lock")
		}
	}
	pid := bus.listenPID.Load()
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", int32(pid)); err != nil {
		t.Fatal(err)
	}
	if err := <-locked; err != nil {
		t.Fatal(err)
	}
	// Each attempt is a new connection that waits for the lock in turn:
	// once the third waits, two have failed.
	waiters := map[int32]bool{}
	for deadline := time.Now().Add(30 * time.Second); len(waiters) < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d reconnection attempts waited for the lock", len(waiters))
		}
		for _, p := range ownerLock(t, admin, "x", false) {
			waiters[p] = true
		}
	}
	inUse := func() (n int) {
		logs.mu.Lock()
		defer logs.mu.Unlock()
		for _, r := range logs.recs {
			if strings.HasPrefix(r.Msg, "PostgreSQL bus listener cannot reconnect: ") {
				n++
				if r.Level != LogWarning || !strings.Contains(r.Msg, `instance_id "x" is in use`) {
					t.Errorf("record %+v", r)
				}
			}
		}
		return n
	}
	if n := inUse(); n != 1 {
		t.Fatalf("%d warnings that the instance is in use after 2 failed attempts, want 1", n)
	}
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, pgOwnerClass, "fraiseql_events x"); err != nil {
		t.Fatal(err)
	}
	logs.waitFor(t, LogInfo, "PostgreSQL bus listener connection restored")
	if n := inUse(); n != 1 {
		t.Fatalf("%d warnings that the instance is in use, want 1", n)
	}
	if got := ownerLock(t, admin, "x", true); len(got) != 1 || got[0] != int32(bus.listenPID.Load()) {
		t.Fatalf("the lock is held by %v, not by the listener's %d", got, bus.listenPID.Load())
	}
}

// holdProxy forwards TCP connections to a PostgreSQL server, but keeps
// the Terminate message a client sends as it closes, and the server's end
// of the connection, until the test ends: the server process lives on
// with what it holds. What the client let go of before closing is then
// told apart from what goes when the server process ends.
type holdProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func startHoldProxy(t *testing.T, target string) *holdProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{ln: ln, target: target}
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *holdProxy) connString() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", p.ln.Addr().(*net.TCPAddr).Port)
}

func (p *holdProxy) serve(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, client, server)
	p.mu.Unlock()
	go func() { io.Copy(client, server); client.Close() }()
	r := bufio.NewReader(client)
	// The startup message has no type byte; every later one has
	// (sslmode=disable: no SSLRequest before it).
	for typed := false; ; typed = true {
		if typed {
			if b, err := r.Peek(1); err != nil || b[0] == 'X' { // Terminate
				return
			}
		}
		if err := forwardMessage(server, r, typed); err != nil {
			return
		}
	}
}

// forwardMessage copies one message of the frontend protocol.
func forwardMessage(dst io.Writer, r *bufio.Reader, typed bool) error {
	head := make([]byte, 4)
	if typed {
		head = make([]byte, 5)
	}
	if _, err := io.ReadFull(r, head); err != nil {
		return err
	}
	size := int64(binary.BigEndian.Uint32(head[len(head)-4:]))
	if _, err := dst.Write(head); err != nil {
		return err
	}
	_, err := io.CopyN(dst, r, size-4)
	return err
}

// Close while the listener waits for notifications lets go of the
// InstanceID's lock on the listener's connection before closing it: the
// id is free as Close returns, not once the server process has ended (here
// it does not end while the test runs). (Close during a query cancels it,
// which closes the connection: the id is then free once the server
// process ends.)
func TestPostgresBusCloseFreesTheInstanceAtOnce(t *testing.T) {
	srv := pgtest.Start(t)
	proxy := startHoldProxy(t, fmt.Sprintf("127.0.0.1:%d", srv.Port))
	var c collector
	bus := startPgBus(t, PostgresOptions{ConnString: proxy.connString(), InstanceID: "x", PollInterval: time.Hour}, &c)
	waitFirstRound(t, bus)
	admin := pgConnect(t, srv.ConnString())
	pid := bus.listenPID.Load()
	if got := ownerLock(t, admin, "x", true); len(got) != 1 || got[0] != int32(pid) {
		t.Fatalf("the lock is held by %v, not by the listener's %d", got, pid)
	}
	if err := bus.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var alive bool
	if err := admin.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)", int32(pid)).Scan(&alive); err != nil || !alive {
		t.Fatalf("the listener's server process %d ended (%v): the test shows nothing", pid, err)
	}
	if got := ownerLock(t, admin, "x", true); len(got) != 0 {
		t.Fatalf("after Close the lock is held by %v", got)
	}
}

// A table dropped while the bus runs: the publish that finds it gone
// creates it again and publishes there, in the same call.
func TestPostgresBusPublishAfterTheTableWasDropped(t *testing.T) {
	srv := pgtest.Start(t)
	bus := startPgBus(t, PostgresOptions{ConnString: srv.ConnString()}, nil)
	ctx := context.Background()
	if err := bus.Publish(ctx, pgEvent("p", 0)); err != nil {
		t.Fatal(err)
	}
	srv.Exec(t, `DROP TABLE fraiseql_events`)
	if err := bus.Publish(ctx, pgEvent("p", 1)); err != nil {
		t.Fatalf("the publish after the table was dropped: %v", err)
	}
	var payload []byte
	if err := pgConnect(t, srv.ConnString()).QueryRow(ctx, "SELECT string_agg(convert_from(payload, 'UTF8'), ' ') FROM fraiseql_events").Scan(&payload); err != nil {
		t.Fatal(err)
	}
	if want := pgEvent("p", 1).Data; !bytes.Equal(payload, want) {
		t.Fatalf("the new table holds %s, want %s", payload, want)
	}
}

// A publish the server refuses is not tried again: the retry is for a
// statement that was certainly not run (nothing sent, or no table).
func TestPostgresBusRefusedPublishNotRetried(t *testing.T) {
	srv := pgtest.Start(t)
	bus := startPgBus(t, PostgresOptions{ConnString: srv.ConnString()}, nil)
	ctx := context.Background()
	if err := bus.Publish(ctx, pgEvent("p", 0)); err != nil {
		t.Fatal(err)
	}
	// A sequence counts the attempts: nextval is not rolled back.
	srv.Exec(t, `CREATE SEQUENCE attempts;
CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM nextval('attempts');
	RAISE EXCEPTION 'refused by the test';
END $$;
CREATE TRIGGER refuse BEFORE INSERT ON fraiseql_events FOR EACH STATEMENT EXECUTE FUNCTION refuse()`)
	err := bus.Publish(ctx, pgEvent("p", 1))
	if err == nil || !strings.Contains(err.Error(), "refused by the test") || errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("got %v, want the server's refusal", err)
	}
	var attempts int64
	if err := pgConnect(t, srv.ConnString()).QueryRow(ctx, "SELECT last_value FROM attempts").Scan(&attempts); err != nil {
		t.Fatal(err)
	}
	if attempts != 1 {
		t.Fatalf("the statement was run %d times, want 1", attempts)
	}
}
