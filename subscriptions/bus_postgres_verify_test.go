//go:build !mutate

package subscriptions

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fraiseql/fraiseql-subscriptions/internal/pgtest"
)

// VerifySchema: nothing is created, each missing object is named, and the
// objects SchemaSQL prints are exactly what the bus needs.
func TestPostgresVerifySchemaNamesWhatIsMissing(t *testing.T) {
	srv := pgtest.Start(t)
	opts := PostgresOptions{ConnString: srv.ConnString(), VerifySchema: true, ConnectTimeout: 5 * time.Second}
	start := func() error {
		b, err := newPostgresBus(opts)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close(context.Background())
		var c collector
		return b.Start(context.Background(), c.deliver)
	}
	err := start()
	if !errors.Is(err, ErrSchemaMissing) {
		t.Fatalf("Start: %v", err)
	}
	for _, want := range []string{`table "fraiseql_events"`, `table "fraiseql_events_positions"`,
		`table "fraiseql_events_commits" and its trigger "fraiseql_events_stamp"`, `function "fraiseql_publish"(text, text, jsonb)`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("no %s in %v", want, err)
		}
	}
	conn := pgConnect(t, srv.ConnString())
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_class WHERE relname LIKE 'fraiseql%'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("created %d relations (%v)", n, err)
	}

	sql, err := SchemaSQL(PostgresOptions{}, "public")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), sql, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	var c collector
	b := startPgBus(t, opts, &c)
	if err := b.Publish(context.Background(), pgEvent("x", 1)); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, 1, 5*time.Second)

	// Another version of the function, and no stamp trigger: both named, nothing else.
	srv.Exec(t, `CREATE OR REPLACE FUNCTION fraiseql_publish(channel text, event_type text, data jsonb) RETURNS void
LANGUAGE sql AS 'SELECT'`)
	srv.Exec(t, `DROP TRIGGER fraiseql_events_stamp ON fraiseql_events_commits`)
	err = start()
	want := `missing trigger "fraiseql_events_stamp" on table "public"."fraiseql_events_commits", function ` +
		`"public"."fraiseql_publish"(text, text, jsonb) as this version makes it (the installed one differs)`
	if !errors.Is(err, ErrSchemaMissing) || !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("Start: %v", err)
	}
}

// SchemaSQL names the id sequence of a table with a long name as
// PostgreSQL names it (the table's name cut, on a character boundary, so
// that "_id_seq" fits), and a bus that only verifies its objects runs on it.
func TestSchemaSQLLongTableNames(t *testing.T) {
	srv := pgtest.Start(t)
	conn := pgConnect(t, srv.ConnString())
	ctx := context.Background()
	srv.Exec(t, `CREATE SCHEMA app`)
	for _, table := range []string{
		strings.Repeat("t", 55), strings.Repeat("t", 56), strings.Repeat("t", 57), strings.Repeat("t", 63),
		strings.Repeat("é", 28) + "t", strings.Repeat("é", 31), // a cut inside a two-byte character
	} {
		opts := PostgresOptions{Table: table, Function: "f", InstanceID: "x"}
		sql, err := SchemaSQL(opts, "app")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("%d bytes: %v", len(table), err)
		}
		var same bool
		err = conn.QueryRow(ctx, `SELECT $1::regclass = pg_get_serial_sequence($2, 'id')::regclass`,
			serialSequence("app", table), pgx.Identifier{"app", table}.Sanitize()).Scan(&same)
		if err != nil || !same {
			t.Fatalf("%d bytes: sequence %s is not the table's (%v)", len(table), serialSequence("app", table), err)
		}
		srv.Exec(t, `DROP FUNCTION app.f(text, text, jsonb)`)
		srv.Exec(t, `DROP TABLE app.`+pgx.Identifier{table}.Sanitize()+` CASCADE`)
	}
}
