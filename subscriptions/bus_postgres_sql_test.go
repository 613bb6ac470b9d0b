//go:build !mutate

// The engine area of `make mutate` builds without this file (tag mutate):
// its tests use Redis or PostgreSQL and would slow every engine mutant's
// run. The buses area runs them.

package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fraiseql/fraiseql-subscriptions/internal/pgtest"
)

// Events published from SQL: the publish function, transactions, grants,
// resuming, batches and a very large transaction.

// sqlEvent is the event fraiseql_publish('ch', typ, data) delivers: data
// as jsonb writes it (keys sorted, a space after ':' and ',').
func sqlEvent(typ, data string) Event {
	return Event{Type: typ, Channel: "ch", Data: []byte(data)}
}

func mustExec(t *testing.T, q interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, sql string, args ...any) {
	t.Helper()
	if _, err := q.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func begin(t *testing.T, conn *pgx.Conn) pgx.Tx {
	t.Helper()
	tx, err := conn.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

// TestPostgresSQLPublish: an event published by SQL is delivered once if
// its transaction commits and never if it rolls back, in one order with
// events published from Go.
func TestPostgresSQLPublish(t *testing.T) {
	srv := pgtest.Start(t)
	var c collector
	bus := startPgBus(t, PostgresOptions{ConnString: srv.ConnString(), PollInterval: 50 * time.Millisecond}, &c)
	conn := pgConnect(t, srv.ConnString())
	ctx := context.Background()

	first := pgEvent("go", 0)
	if err := bus.Publish(ctx, first); err != nil {
		t.Fatal(err)
	}
	tx := begin(t, conn)
	mustExec(t, tx, `SELECT fraiseql_publish('ch', 'sql', '{"n":1,"a":[1, 2.50, "é"]}')`)
	mustExec(t, tx, `SELECT fraiseql_publish(channel => 'ch', event_type => 'sql', data => jsonb_build_object('n', 2))`)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	tx = begin(t, conn)
	mustExec(t, tx, `SELECT fraiseql_publish('ch', 'sql', '{"rolled":"back"}')`)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// A savepoint rolled back takes its events with it; the rest stays.
	tx = begin(t, conn)
	mustExec(t, tx, `SAVEPOINT s`)
	mustExec(t, tx, `SELECT fraiseql_publish('ch', 'sql', '{"savepoint":"rolled back"}')`)
	mustExec(t, tx, `ROLLBACK TO SAVEPOINT s`)
	mustExec(t, tx, `SELECT fraiseql_publish('ch', 'sql', '{"n":3}')`)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	last := pgEvent("go", 4)
	if err := bus.Publish(ctx, last); err != nil {
		t.Fatal(err)
	}
	want := []Event{first, sqlEvent("sql", `{"a": [1, 2.50, "é"], "n": 1}`), sqlEvent("sql", `{"n": 2}`),
		sqlEvent("sql", `{"n": 3}`), last}
	checkInOrder(t, c.waitFor(t, len(want), 10*time.Second), want)
	waitReads(t, bus, 2) // nothing else comes
	checkInOrder(t, c.events(), want)
}

// TestPostgresSQLPublishRefused: what Executor.Publish refuses, the
// function refuses too, by an error in the caller's transaction.
func TestPostgresSQLPublishRefused(t *testing.T) {
	srv := pgtest.Start(t)
	var c collector
	startPgBus(t, PostgresOptions{ConnString: srv.ConnString(), PollInterval: 50 * time.Millisecond}, &c)
	conn := pgConnect(t, srv.ConnString())
	ctx := context.Background()

	cases := []struct{ call, code, msg string }{
		{`fraiseql_publish('ch', 't', '[1, 2]')`, "22023", "fraiseql_publish: event data must be a JSON object, got array"},
		{`fraiseql_publish('ch', 't', '"s"')`, "22023", "fraiseql_publish: event data must be a JSON object, got string"},
		{`fraiseql_publish('ch', 't', 'null')`, "22023", "fraiseql_publish: event data must be a JSON object, got null"},
		{`fraiseql_publish('ch', 't', NULL)`, "22023", "fraiseql_publish: event data must be a JSON object, got null"},
		{`fraiseql_publish('', 't', '{}')`, "22023", "fraiseql_publish: channel must not be empty"},
		{`fraiseql_publish(NULL, 't', '{}')`, "22023", "fraiseql_publish: channel must not be empty"},
		{`fraiseql_publish('ch', NULL, '{}')`, "22023", "fraiseql_publish: event_type must not be null"},
		{`fraiseql_publish(repeat('c', 1025), 't', '{}')`, "22023", "fraiseql_publish: channel is 1025 bytes, over the limit of 1024"},
		{`fraiseql_publish('ch', repeat('é', 513), '{}')`, "22023", "fraiseql_publish: event_type is 1026 bytes, over the limit of 1024"},
		// {"s": "..."} is 9 bytes more than the string.
		{`fraiseql_publish('ch', 't', jsonb_build_object('s', repeat('x', 1048568)))`, "54000",
			"fraiseql_publish: event payload is 1048577 bytes, over the max_payload_bytes limit of 1048576"},
	}
	for _, tc := range cases {
		tx := begin(t, conn)
		mustExec(t, tx, `SELECT fraiseql_publish('ch', 't', '{"before":"the error"}')`)
		_, err := tx.Exec(ctx, "SELECT "+tc.call)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != tc.code || pgErr.Message != tc.msg {
			t.Fatalf("%s: got %v, want %s %q", tc.call, err, tc.code, tc.msg)
		}
		// The caller's transaction is aborted: its earlier event goes too.
		if err := tx.Commit(ctx); !errors.Is(err, pgx.ErrTxCommitRollback) {
			t.Fatalf("commit after a refused event: %v", err)
		}
	}
	// The largest accepted payload is exactly the limit.
	mustExec(t, conn, `SELECT fraiseql_publish('ch', 'max', jsonb_build_object('s', repeat('x', 1048567)))`)
	got := c.waitFor(t, 1, 10*time.Second)
	if got[0].Type != "max" || len(got[0].Data) != DefaultMaxPayloadBytes {
		t.Fatalf("got %s of %d bytes", got[0].Type, len(got[0].Data))
	}
}

// TestPostgresSQLConcurrentTransactions: interleaved transactions arrive
// each in its own write order, whole, once.
func TestPostgresSQLConcurrentTransactions(t *testing.T) {
	srv := pgtest.Start(t)
	var c collector
	startPgBus(t, PostgresOptions{ConnString: srv.ConnString(), PollInterval: 50 * time.Millisecond}, &c)
	ctx := context.Background()
	t1 := begin(t, pgConnect(t, srv.ConnString()))
	t2 := begin(t, pgConnect(t, srv.ConnString()))
	pub := func(tx pgx.Tx, data string) {
		mustExec(t, tx, `SELECT fraiseql_publish('ch', 'e', $1)`, data)
	}
	pub(t1, `{"a": 1}`)
	pub(t2, `{"b": 1}`)
	pub(t1, `{"a": 2}`)
	pub(t2, `{"b": 2}`)
	pub(t1, `{"a": 3}`)
	if err := t2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := t1.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var want []Event
	for _, d := range []string{`{"b": 1}`, `{"b": 2}`, `{"a": 1}`, `{"a": 2}`, `{"a": 3}`} {
		want = append(want, sqlEvent("e", d))
	}
	checkInOrder(t, c.waitFor(t, len(want), 10*time.Second), want)
}

// TestPostgresSQLSameRowCommitOrder: two transactions that update the same
// row arrive in the order they committed, although the one that committed
// second took the first id.
func TestPostgresSQLSameRowCommitOrder(t *testing.T) {
	srv := pgtest.Start(t)
	var c collector
	startPgBus(t, PostgresOptions{ConnString: srv.ConnString(), PollInterval: 50 * time.Millisecond}, &c)
	ctx := context.Background()
	admin := pgConnect(t, srv.ConnString())
	mustExec(t, admin, `CREATE TABLE items (id int PRIMARY KEY, v text)`)
	mustExec(t, admin, `INSERT INTO items VALUES (1, 'initial')`)
	mustExec(t, admin, `CREATE FUNCTION items_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM fraiseql_publish('ch', 'update', jsonb_build_object('v', NEW.v));
	RETURN NEW;
END $$`)
	mustExec(t, admin, `CREATE TRIGGER items_changed AFTER UPDATE ON items FOR EACH ROW EXECUTE FUNCTION items_changed()`)

	connA, connB := pgConnect(t, srv.ConnString()), pgConnect(t, srv.ConnString())
	a, b := begin(t, connA), begin(t, connB)
	mustExec(t, b, `SELECT fraiseql_publish('ch', 'note', '{"by": "b"}')`) // the lowest id
	mustExec(t, a, `UPDATE items SET v = 'a' WHERE id = 1`)
	updated := make(chan error, 1)
	go func() {
		_, err := b.Exec(ctx, `UPDATE items SET v = 'b' WHERE id = 1`) // waits for a
		updated <- err
	}()
	// Wait until b is blocked on a's row lock.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var waiting bool
		if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted)`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second update never waited for the first")
		}
	}
	mustExec(t, a, `SELECT fraiseql_publish('ch', 'note', '{"by": "a"}')`)
	if err := a.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-updated; err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	want := []Event{
		sqlEvent("update", `{"v": "a"}`), sqlEvent("note", `{"by": "a"}`),
		sqlEvent("note", `{"by": "b"}`), sqlEvent("update", `{"v": "b"}`),
	}
	checkInOrder(t, c.waitFor(t, len(want), 10*time.Second), want)
}

// storePosition runs an executor's bus with opts (an InstanceID) until it
// has received an event that pub published, then stops it: its position
// is stored, and what commits from then on waits for its restart.
func storePosition(t *testing.T, opts PostgresOptions, pub *PostgresBus) {
	t.Helper()
	ctx := context.Background()
	var c collector
	b := startPgBus(t, opts, &c)
	if err := pub.Publish(ctx, pgEvent("before", 0)); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, 1, 5*time.Second)
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestPostgresSQLCommitOrderEventsBeforeWrite: transaction a publishes
// first and writes the shared row last, after b wrote it and committed.
// b committed first, so its events come first, although every id of a is
// below b's (also when a's first publish was undone by a savepoint). The
// listener is down meanwhile, so that one read sees both (a listener
// reading between the two commits would order them anyway).
func TestPostgresSQLCommitOrderEventsBeforeWrite(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	opts := PostgresOptions{ConnString: srv.ConnString(), PollInterval: 50 * time.Millisecond, InstanceID: "reader"}
	publisher := startPgBus(t, PostgresOptions{ConnString: srv.ConnString()}, nil)
	storePosition(t, opts, publisher)
	admin := pgConnect(t, srv.ConnString())
	mustExec(t, admin, `CREATE TABLE items (id int PRIMARY KEY, v text)`)
	mustExec(t, admin, `INSERT INTO items VALUES (1, 'initial')`)

	a, b := begin(t, pgConnect(t, srv.ConnString())), begin(t, pgConnect(t, srv.ConnString()))
	// The first publish of a is undone with its savepoint: the publishes
	// after it must arm the stamp again.
	mustExec(t, a, `SAVEPOINT early`)
	mustExec(t, a, `SELECT fraiseql_publish('ch', 'e', '{"by": "a", "n": 0}')`)
	mustExec(t, a, `ROLLBACK TO SAVEPOINT early`)
	mustExec(t, a, `SELECT fraiseql_publish('ch', 'e', '{"by": "a", "n": 1}')`)
	mustExec(t, a, `SELECT fraiseql_publish('ch', 'e', '{"by": "a", "n": 2}')`)
	mustExec(t, b, `UPDATE items SET v = 'b' WHERE id = 1`)
	mustExec(t, b, `SELECT fraiseql_publish('ch', 'e', '{"by": "b", "n": 1}')`)
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Events committed between the two, from Go and from SQL.
	fromGo := pgEvent("go", 1)
	if err := publisher.Publish(ctx, fromGo); err != nil {
		t.Fatal(err)
	}
	mustExec(t, admin, `SELECT fraiseql_publish('ch', 'e', '{"by": "c", "n": 1}')`)
	mustExec(t, a, `UPDATE items SET v = 'a' WHERE id = 1`)
	if err := a.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	var c2 collector
	startPgBus(t, opts, &c2)
	want := []Event{
		sqlEvent("e", `{"n": 1, "by": "b"}`), fromGo, sqlEvent("e", `{"n": 1, "by": "c"}`),
		sqlEvent("e", `{"n": 1, "by": "a"}`), sqlEvent("e", `{"n": 2, "by": "a"}`),
	}
	checkInOrder(t, c2.waitFor(t, len(want), 10*time.Second), want)
	// One stamp per transaction that published, from SQL or from Go.
	var stamps int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM fraiseql_events_commits WHERE stamp IS NOT NULL`).Scan(&stamps); err != nil {
		t.Fatal(err)
	}
	if stamps != 5 {
		t.Fatalf("%d commit stamps, want 5 (one per transaction that published)", stamps)
	}
}

// TestPostgresBusResume: an executor with an InstanceID gets, after a
// restart, every event committed while it was down, once; one without
// starts at new events.
func TestPostgresBusResume(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	opts := PostgresOptions{ConnString: srv.ConnString(), PollInterval: 50 * time.Millisecond}
	withID := opts
	withID.InstanceID = `exec "1"`
	publisher := startPgBus(t, opts, nil)
	conn := pgConnect(t, srv.ConnString())
	storePosition(t, withID, publisher)

	// While it is down: events from Go and SQL, one batch, one rollback.
	var want []Event
	for i := 0; i < 3; i++ {
		ev := pgEvent("down", i)
		if err := publisher.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
		want = append(want, ev)
	}
	batch := []Event{pgEvent("batch", 0), pgEvent("batch", 1)}
	if err := publisher.PublishBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	want = append(want, batch...)
	mustExec(t, conn, `SELECT fraiseql_publish('ch', 'sql', '{"n": 1}')`)
	want = append(want, sqlEvent("sql", `{"n": 1}`))
	tx := begin(t, conn)
	mustExec(t, tx, `SELECT fraiseql_publish('ch', 'sql', '{"n": 2}')`)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	var c2, fresh collector
	second := startPgBus(t, withID, &c2)
	startPgBus(t, opts, &fresh)
	after := pgEvent("after", 0)
	if err := publisher.Publish(ctx, after); err != nil {
		t.Fatal(err)
	}
	want = append(want, after)
	checkInOrder(t, c2.waitFor(t, len(want), 10*time.Second), want)
	checkInOrder(t, fresh.waitFor(t, 1, 5*time.Second), []Event{after})

	// Stopped again with nothing new: the next restart delivers nothing.
	if err := second.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var c3 collector
	waitReads(t, startPgBus(t, withID, &c3), 2)
	if got := c3.events(); len(got) != 0 {
		t.Fatalf("a restart with nothing new delivered %d events, the first %s", len(got), got[0].Data)
	}
}

// TestPostgresSQLGrants: a role granted only EXECUTE on the function (and
// USAGE on the schema) publishes; it cannot touch the table; a role
// without the grant cannot call the function: nothing goes to PUBLIC.
func TestPostgresSQLGrants(t *testing.T) {
	srv := pgtest.Start(t)
	var c collector
	startPgBus(t, PostgresOptions{ConnString: srv.ConnString(), PollInterval: 50 * time.Millisecond}, &c)
	srv.Exec(t, `CREATE ROLE writer LOGIN`)
	srv.Exec(t, `CREATE ROLE stranger LOGIN`)
	srv.Exec(t, `GRANT USAGE ON SCHEMA public TO writer`)
	srv.Exec(t, `GRANT EXECUTE ON FUNCTION public.fraiseql_publish(text, text, jsonb) TO writer`)
	ctx := context.Background()

	writer := pgConnect(t, srv.ConnStringFor("writer", "", "postgres"))
	mustExec(t, writer, `SELECT fraiseql_publish('ch', 'w', '{"by": "writer"}')`)
	checkInOrder(t, c.waitFor(t, 1, 5*time.Second), []Event{sqlEvent("w", `{"by": "writer"}`)})

	denied := func(conn *pgx.Conn, sql string) {
		t.Helper()
		_, err := conn.Exec(ctx, sql)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" { // insufficient_privilege
			t.Fatalf("%s: got %v, want permission denied", sql, err)
		}
	}
	denied(writer, `INSERT INTO fraiseql_events (channel, event_type, payload) VALUES ('ch', 'x', '{}')`)
	denied(writer, `SELECT * FROM fraiseql_events`)
	denied(writer, `SELECT * FROM fraiseql_events_positions`)
	denied(writer, `SELECT * FROM fraiseql_events_commits`)
	stranger := pgConnect(t, srv.ConnStringFor("stranger", "", "postgres"))
	denied(stranger, `SELECT fraiseql_publish('ch', 'x', '{}')`)
	denied(stranger, `SELECT * FROM fraiseql_events`)

	// An executor whose role has only the grants the README lists (the
	// objects exist): it runs no DDL, publishes, reads and resumes.
	srv.Exec(t, `CREATE ROLE bus LOGIN`)
	srv.Exec(t, `GRANT SELECT, INSERT, DELETE ON fraiseql_events TO bus`)
	srv.Exec(t, `GRANT SELECT, INSERT, UPDATE ON fraiseql_events_positions TO bus`)
	srv.Exec(t, `GRANT SELECT, INSERT, DELETE ON fraiseql_events_commits TO bus`)
	srv.Exec(t, `GRANT USAGE ON SEQUENCE fraiseql_events_id_seq TO bus`)
	var cb collector
	other := startPgBus(t, PostgresOptions{ConnString: srv.ConnStringFor("bus", "", "postgres"), InstanceID: "b"}, &cb)
	ev := pgEvent("bus", 1)
	if err := other.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	checkInOrder(t, cb.waitFor(t, 1, 5*time.Second), []Event{ev})

	// No object of the bus has a grant to PUBLIC.
	var public int
	if err := writer.QueryRow(ctx, `SELECT count(*) FROM (
		SELECT relacl AS acl FROM pg_class WHERE relname LIKE 'fraiseql_events%'
		UNION ALL SELECT proacl FROM pg_proc WHERE proname IN ('fraiseql_publish', 'fraiseql_events_stamp')) o,
		aclexplode(o.acl) a WHERE a.grantee = 0`).Scan(&public); err != nil || public != 0 {
		t.Fatalf("%d grants to PUBLIC (%v)", public, err)
	}
}

// TestPostgresBusPublishBatch: a batch commits whole, in order, or not at all.
func TestPostgresBusPublishBatch(t *testing.T) {
	srv := pgtest.Start(t)
	var c collector
	bus := startPgBus(t, PostgresOptions{ConnString: srv.ConnString(), PollInterval: 50 * time.Millisecond}, &c)
	conn := pgConnect(t, srv.ConnString())
	ctx := context.Background()

	// A failing batch: the 1,000th event has a channel PostgreSQL refuses
	// (NUL in text); none of the 999 before it stays.
	bad := make([]Event, 1000)
	for i := range bad {
		bad[i] = pgEvent("bad", i)
	}
	bad[999].Channel = "nul\x00"
	if err := bus.PublishBatch(ctx, bad); err == nil || !strings.HasPrefix(err.Error(), "publishing to PostgreSQL failed: ") {
		t.Fatalf("bad batch: %v", err)
	}
	var rows int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM fraiseql_events`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d rows after a failed batch (%v)", rows, err)
	}

	good := make([]Event, 1000)
	for i := range good {
		good[i] = pgEvent("good", i)
	}
	good[10].Data = nil // an empty payload is kept as such
	if err := bus.PublishBatch(ctx, good); err != nil {
		t.Fatal(err)
	}
	if err := bus.PublishBatch(ctx, nil); err != nil {
		t.Fatal(err)
	}
	good[10].Data = []byte{}
	checkInOrder(t, c.waitFor(t, len(good), 10*time.Second), good)
	// One transaction: a single xid for the 1,000 rows.
	var xids int
	if err := conn.QueryRow(ctx, `SELECT count(DISTINCT xid) FROM fraiseql_events`).Scan(&xids); err != nil || xids != 1 {
		t.Fatalf("%d transactions for one batch (%v)", xids, err)
	}
	if s := bus.Stats(); s.Published != 1000 || s.Received != 1000 {
		t.Fatalf("stats: %+v", s)
	}
}

// TestPostgresSQLHugeTransaction: 100,000 events written by one
// transaction are all delivered, in order, while the listener's heap
// stays far below their size (it reads a page at a time).
func TestPostgresSQLHugeTransaction(t *testing.T) {
	srv := pgtest.Start(t)
	const total, pad = 100_000, 500
	var mu sync.Mutex
	var n int
	var bad string
	var peak uint64
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	deliver := func(ev Event) {
		mu.Lock()
		defer mu.Unlock()
		want := fmt.Sprintf(`{"n": %d, "pad": "%s"}`, n, strings.Repeat("x", pad))
		if bad == "" && string(ev.Data) != want {
			bad = fmt.Sprintf("event %d: %.40s", n, ev.Data)
		}
		n++
		if n%2000 == 0 {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
	}
	b, err := newPostgresBus(PostgresOptions{ConnString: srv.ConnString(), PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	if err := b.Start(context.Background(), deliver); err != nil {
		t.Fatal(err)
	}
	srv.Exec(t, fmt.Sprintf(`SELECT fraiseql_publish('big', 'row', jsonb_build_object('n', i, 'pad', repeat('x', %d)))
		FROM generate_series(0, %d) i`, pad, total-1))
	count := func() int { mu.Lock(); defer mu.Unlock(); return n }
	for deadline := time.Now().Add(120 * time.Second); count() < total && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	waitReads(t, b, 2) // nothing more comes
	mu.Lock()
	defer mu.Unlock()
	if n != total || bad != "" {
		t.Fatalf("delivered %d of %d; %s", n, total, bad)
	}
	const bytes = total * (pad + 20)
	growth := int64(peak) - int64(base)
	t.Logf("%d events, %d MB of payload: heap peak %.1f MB over the %.1f MB before", total, bytes>>20,
		float64(growth)/(1<<20), float64(base)/(1<<20))
	if growth > bytes/3 { // holding them at once would take more than bytes
		t.Fatalf("heap grew by %d MB while reading %d MB", growth>>20, bytes>>20)
	}
}

// TestPostgresBusSchemaUpgrade: a table made before the xid column
// existed is upgraded in place, and its rows are not delivered again.
func TestPostgresBusSchemaUpgrade(t *testing.T) {
	srv := pgtest.Start(t)
	srv.Exec(t, `CREATE TABLE fraiseql_events (
	id bigserial PRIMARY KEY, channel text NOT NULL, event_type text NOT NULL,
	payload bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`)
	srv.Exec(t, `INSERT INTO fraiseql_events (channel, event_type, payload) VALUES ('ch', 'old', '{}')`)
	var c collector
	bus := startPgBus(t, PostgresOptions{ConnString: srv.ConnString(), PollInterval: 50 * time.Millisecond}, &c)
	ev := pgEvent("new", 0)
	if err := bus.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	srv.Exec(t, `SELECT fraiseql_publish('ch', 'sql', '{}')`)
	checkInOrder(t, c.waitFor(t, 2, 5*time.Second), []Event{ev, sqlEvent("sql", `{}`)})
}

// TestPostgresBusBrokenRead breaks reads in the middle of a large
// transaction: the listener's connection is terminated, an executor with
// an InstanceID is closed, the listener panics, each after part of the
// rows were dispatched. Every event still arrives once, in order.
func TestPostgresBusBrokenRead(t *testing.T) {
	srv := pgtest.Start(t)
	const total = 5000
	admin := pgConnect(t, srv.ConnString())
	ctx := context.Background()
	opts := PostgresOptions{ConnString: srv.ConnString(), PollInterval: 50 * time.Millisecond, InstanceID: "broken"}

	var mu sync.Mutex
	var got []int
	var bus *PostgresBus
	stopAt := map[int]func(){
		1500: func() { // inside a page: the next FETCH fails
			if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", int32(bus.listenPID.Load())); err != nil {
				t.Error(err)
			}
		},
		2600: func() { // the listener stops after this row
			// Cancelled here, not when the goroutine's Close gets to it: on a
			// loaded machine the listener could otherwise read on past row 3500.
			bus.mu.Lock()
			cancel := bus.cancel
			bus.mu.Unlock()
			cancel()
			go bus.Close(ctx)
		},
		3500: func() { bus.armReaderPanic() }, // a bug of the listener, recovered
	}
	deliver := func(ev Event) {
		var d struct{ N int }
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Error(err)
		}
		mu.Lock()
		got = append(got, d.N)
		stop := stopAt[len(got)]
		mu.Unlock()
		if stop != nil {
			stop()
		}
	}
	start := func() {
		b, err := newPostgresBus(opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close(context.Background()) })
		bus = b
		if err := b.Start(ctx, deliver); err != nil {
			t.Fatal(err)
		}
	}
	start()
	srv.Exec(t, fmt.Sprintf(`SELECT count(fraiseql_publish('ch', 't', jsonb_build_object('n', i))) FROM generate_series(0, %d) i`, total-1))
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	for deadline := time.Now().Add(20 * time.Second); count() < 2600 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	first := bus
	<-first.done // closed after row 2600
	if n := count(); n < 2600 {
		t.Fatalf("only %d events before the close", n)
	}
	start() // same InstanceID: the rest
	for deadline := time.Now().Add(20 * time.Second); count() < total && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	waitReads(t, bus, 2) // nothing more comes
	mu.Lock()
	defer mu.Unlock()
	if len(got) != total {
		t.Fatalf("got %d events, want %d", len(got), total)
	}
	for i, n := range got {
		if n != i {
			t.Fatalf("event %d is n=%d (lost, duplicated or reordered)", i, n)
		}
	}
	if first.Stats().Reconnects != 1 || bus.Stats().Panics != 1 {
		t.Fatalf("reconnects: %d, panics: %d", first.Stats().Reconnects, bus.Stats().Panics)
	}
}

// TestPostgresBusBrokenReadRacedByLowerKey: a read breaks after its first
// page, in the middle of a transaction, and before the retry another
// transaction commits that took its id before every row of that one. The
// retry delivers the rest of the first transaction, then the second:
// nothing lost, nothing twice, in commit order.
func TestPostgresBusBrokenReadRacedByLowerKey(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	const total = pgPageSize + 500
	b, err := newPostgresBus(PostgresOptions{ConnString: srv.ConnString(), PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	// The transaction that takes the lowest id once the bus has made the
	// table; the fault commits it.
	low := make(chan pgx.Tx, 1)
	var armed atomic.Bool // set once the first page is delivered: the next page read fails
	var faults atomic.Int32
	b.readFault = func() error {
		if !armed.CompareAndSwap(true, false) {
			return nil
		}
		faults.Add(1)
		if err := (<-low).Commit(ctx); err != nil {
			t.Error(err)
		}
		return errors.New("test: the page read breaks")
	}
	var c collector
	c.settle = func(t *testing.T) { waitReads(t, b, 2) }
	deliver := func(ev Event) {
		c.deliver(ev)
		if len(c.events()) == pgPageSize {
			armed.Store(true)
		}
	}
	if err := b.Start(ctx, deliver); err != nil {
		t.Fatal(err)
	}
	tx := begin(t, pgConnect(t, srv.ConnString()))
	mustExec(t, tx, `SELECT fraiseql_publish('ch', 'low', '{"n": 0}')`)
	low <- tx
	srv.Exec(t, fmt.Sprintf(`SELECT count(fraiseql_publish('ch', 'big', jsonb_build_object('n', i))) FROM generate_series(1, %d) i`, total))
	want := make([]Event, 0, total+1)
	for i := 1; i <= total; i++ {
		want = append(want, sqlEvent("big", fmt.Sprintf(`{"n": %d}`, i)))
	}
	want = append(want, sqlEvent("low", `{"n": 0}`))
	checkInOrder(t, c.waitFor(t, len(want), 20*time.Second), want)
	if n, r := faults.Load(), b.Stats().Reconnects; n != 1 || r != 1 {
		t.Fatalf("%d broken reads, %d reconnects: want 1 and 1", n, r)
	}
}

// The table's id sequence renamed while the bus runs: the publish from Go
// that finds the name it knew gone looks at the bus's objects again, takes
// the new name, and brings the stamp trigger up to date with it, so that
// publishing from SQL goes on too.
func TestPostgresSQLPublishAfterTheSequenceWasRenamed(t *testing.T) {
	srv := pgtest.Start(t)
	var c collector
	bus := startPgBus(t, PostgresOptions{ConnString: srv.ConnString(), PollInterval: 50 * time.Millisecond}, &c)
	conn := pgConnect(t, srv.ConnString())
	ctx := context.Background()
	first := pgEvent("go", 0)
	if err := bus.Publish(ctx, first); err != nil {
		t.Fatal(err)
	}
	mustExec(t, conn, `ALTER SEQUENCE fraiseql_events_id_seq RENAME TO fraiseql_events_ids`)
	second := pgEvent("go", 1)
	if err := bus.Publish(ctx, second); err != nil {
		t.Fatalf("the publish after the rename: %v", err)
	}
	mustExec(t, conn, `SELECT fraiseql_publish('ch', 'sql', '{"n":2}')`)
	want := []Event{first, second, sqlEvent("sql", `{"n": 2}`)}
	checkInOrder(t, c.waitFor(t, len(want), 10*time.Second), want)
}
