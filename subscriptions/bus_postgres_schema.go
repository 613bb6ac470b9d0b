package subscriptions

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The PostgreSQL bus's objects on the server, all in the schema where the
// table is created (the first of the search_path, as for any unqualified
// name):
//
//   - the table, the log of events. xid is the top-level transaction that
//     wrote the row: the listener reads by transaction (see
//     bus_postgres_listener.go), never by id alone.
//   - Table+"_positions": where executors with an InstanceID keep their
//     position (pgPosition) across restarts.
//   - Table+"_commits": the commit stamp of each transaction that
//     inserted into the table, however it did (the bus, the function, a
//     plain INSERT): a statement trigger on the table (Table+"_arm")
//     inserts the transaction's row, and a deferred constraint trigger
//     (Table+"_stamp") takes its stamp from the id sequence as the
//     transaction commits, under a shared advisory lock that the
//     listener's horizon waits for. Stamps are the bus order (see
//     bus_postgres_listener.go).
//   - the publish function (Function), SECURITY DEFINER so that a role
//     granted only EXECUTE on it can publish; EXECUTE is revoked from
//     PUBLIC. It refuses what Executor.Publish refuses, with the same
//     messages, by raising in the caller's transaction.

// pgSchema holds the names and SQL of the bus's objects.
type pgSchema struct {
	table, positions, commits, function string // unquoted names
	channel                             string // the NOTIFY channel

	sqlCheck string // what exists, in one query
	sqlTable string // creates the table, unqualified
}

// pgFunctionArgs is the signature of the publish function.
const pgFunctionArgs = "(text, text, jsonb)"

func newPgSchema(opts PostgresOptions) pgSchema {
	t := opts.Table
	s := pgSchema{
		table:     t,
		positions: suffixed(t, "_positions"),
		commits:   suffixed(t, "_commits"),
		function:  opts.Function,
		channel:   opts.NotifyChannel,
	}
	table := pgx.Identifier{t}.Sanitize()
	s.sqlCheck = `SELECT n.nspname,
	(SELECT count(*) = 2 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname IN ('xid', 'idem_key') AND NOT a.attisdropped),
	to_regclass(format('%I.%I', n.nspname, $2::text)) IS NOT NULL,
	coalesce((SELECT p.prosrc FROM pg_proc p WHERE p.oid = to_regprocedure(format('%I.%I` + pgFunctionArgs + `', n.nspname, $3::text))), ''),
	EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = to_regclass(format('%I.%I', n.nspname, $4::text)) AND g.tgname = $5),
	coalesce((SELECT p.prosrc FROM pg_proc p WHERE p.oid = to_regprocedure(format('%I.%I()', n.nspname, $5::text))), ''),
	EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid AND g.tgname = $6),
	coalesce(pg_get_serial_sequence($1, 'id'), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass($1)`
	// payload is bytea so that the bytes come back exactly as published
	// (text would reject NUL bytes and invalid UTF-8; jsonb would
	// re-encode).
	s.sqlTable = `CREATE TABLE IF NOT EXISTS ` + table + ` (
	id bigserial PRIMARY KEY,
	channel text NOT NULL,
	event_type text NOT NULL,
	payload bytea NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	xid xid8 NOT NULL DEFAULT pg_current_xact_id()
)`
	return s
}

// functionBody is the publish function's body for the table in schema.
// Its text is compared with the installed one to decide whether to
// replace it (another channel or table).
func (s pgSchema) functionBody(schema string) string {
	qualified := pgx.Identifier{schema, s.table}.Sanitize()
	name := quoteLiteral(s.function)
	return fmt.Sprintf(`
#variable_conflict use_variable
DECLARE
	payload bytea;
BEGIN
	IF channel IS NULL OR channel = '' THEN
		RAISE EXCEPTION '%%: channel must not be empty', %[1]s USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF octet_length(channel) > %[2]d THEN
		RAISE EXCEPTION '%%: channel is %% bytes, over the limit of %[2]d', %[1]s, octet_length(channel) USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF event_type IS NULL THEN
		RAISE EXCEPTION '%%: event_type must not be null', %[1]s USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF octet_length(event_type) > %[2]d THEN
		RAISE EXCEPTION '%%: event_type is %% bytes, over the limit of %[2]d', %[1]s, octet_length(event_type) USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF jsonb_typeof(data) IS DISTINCT FROM 'object' THEN
		RAISE EXCEPTION '%%: event data must be a JSON object, got %%', %[1]s, coalesce(jsonb_typeof(data), 'null') USING ERRCODE = 'invalid_parameter_value';
	END IF;
	payload := convert_to(data::text, 'UTF8');
	IF octet_length(payload) > %[3]d THEN
		RAISE EXCEPTION '%%: event payload is %% bytes, over the max_payload_bytes limit of %[3]d', %[1]s, octet_length(payload) USING ERRCODE = 'program_limit_exceeded';
	END IF;
	INSERT INTO %[4]s (channel, event_type, payload) VALUES (channel, event_type, payload);
	PERFORM pg_notify(%[5]s, '');
END
`, name, MaxIDBytes, DefaultMaxPayloadBytes, qualified, quoteLiteral(s.channel))
}

// armBody is the body of the statement trigger on the table: the first
// insert of a transaction arms its commit stamp; a transaction-local
// setting spares the later ones the insert (a rolled-back savepoint
// undoes both).
func (s pgSchema) armBody(schema string) string {
	commits := pgx.Identifier{schema, s.commits}.Sanitize()
	return fmt.Sprintf(`
DECLARE
	armed text := pg_current_xact_id()::text || %[2]s;
BEGIN
	IF current_setting('fraiseql.armed', true) IS DISTINCT FROM armed THEN
		INSERT INTO %[1]s (xid) VALUES (pg_current_xact_id()) ON CONFLICT (xid) DO NOTHING;
		PERFORM set_config('fraiseql.armed', armed, true);
	END IF;
	RETURN NULL;
END
`, commits, quoteLiteral(" "+commits))
}

// stampBody is the body of the deferred trigger function that stamps a
// transaction as it commits: a value of the id sequence taken then is
// above every id of the transaction and, for two transactions that wrote
// the same row, above every value the one that committed first took
// (the second could only write that row after that commit). The shared
// lock, held until the transaction ends, is what the listener's horizon
// waits for: once it gets the lock exclusively, every stamp taken so far
// belongs to a transaction that is over.
// seq is the id sequence (pg_get_serial_sequence), named in the body so
// that each commit does not look it up.
func (s pgSchema) stampBody(schema, seq string) string {
	return fmt.Sprintf(`
BEGIN
	PERFORM pg_advisory_xact_lock_shared(%[3]d, hashtext(%[4]s));
	UPDATE %[1]s SET stamp = nextval(%[2]s::regclass), committed_at = clock_timestamp() WHERE xid = NEW.xid;
	RETURN NULL;
END
`, pgx.Identifier{schema, s.commits}.Sanitize(), quoteLiteral(seq), pgOrderClass, quoteLiteral(s.table))
}

// suffixed is table+suffix, table cut so that the name fits.
func suffixed(table, suffix string) string {
	return truncateIdent(table, pgMaxIdentifier-len(suffix)) + suffix
}

// objectsSQL creates or updates everything but the table, in schema; seq
// is the table's id sequence.
func (s pgSchema) objectsSQL(schema, seq string) string {
	table := pgx.Identifier{schema, s.table}.Sanitize()
	createdIdx := pgx.Identifier{suffixed(s.table, "_created_at_idx")}.Sanitize()
	oldXidIdx := pgx.Identifier{schema, suffixed(s.table, "_xid_idx")}.Sanitize()
	xidIdx := pgx.Identifier{suffixed(s.table, "_xid_id_idx")}.Sanitize()
	stampIdx := pgx.Identifier{suffixed(s.commits, "_stamp_idx")}.Sanitize()
	armFn := pgx.Identifier{schema, s.armFunction()}.Sanitize()
	arm := pgx.Identifier{s.armFunction()}.Sanitize()
	positions := pgx.Identifier{schema, s.positions}.Sanitize()
	fn := pgx.Identifier{schema, s.function}.Sanitize()
	body := s.functionBody(schema)
	commits := pgx.Identifier{schema, s.commits}.Sanitize()
	stampFn := pgx.Identifier{schema, s.stampFunction()}.Sanitize()
	stamp := pgx.Identifier{s.stampFunction()}.Sanitize()
	return `ALTER TABLE ` + table + ` ADD COLUMN IF NOT EXISTS xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX IF NOT EXISTS ` + createdIdx + ` ON ` + table + ` (created_at);
CREATE INDEX IF NOT EXISTS ` + xidIdx + ` ON ` + table + ` (xid, id);
ALTER TABLE ` + table + ` ADD COLUMN IF NOT EXISTS idem_key text;
CREATE UNIQUE INDEX IF NOT EXISTS ` + pgx.Identifier{suffixed(s.table, "_idem_key_idx")}.Sanitize() + ` ON ` + table + ` (idem_key)
	WHERE idem_key IS NOT NULL;
DROP INDEX IF EXISTS ` + oldXidIdx + `;
CREATE TABLE IF NOT EXISTS ` + positions + ` (
	instance_id text PRIMARY KEY,
	snapshot pg_snapshot NOT NULL,
	upto pg_snapshot,
	after_last bigint NOT NULL DEFAULT 0,
	after_id bigint NOT NULL DEFAULT 0,
	updated_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE ` + positions + ` ADD COLUMN IF NOT EXISTS after_stamp bigint;
ALTER TABLE ` + positions + ` ADD COLUMN IF NOT EXISTS pruned_unread bigint NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS ` + commits + ` (
	xid xid8 PRIMARY KEY,
	stamp bigint
);
ALTER TABLE ` + commits + ` ADD COLUMN IF NOT EXISTS committed_at timestamptz;
UPDATE ` + commits + ` SET committed_at = now() WHERE committed_at IS NULL AND stamp IS NOT NULL;
CREATE INDEX IF NOT EXISTS ` + stampIdx + ` ON ` + commits + ` (stamp);
CREATE OR REPLACE FUNCTION ` + stampFn + `() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS ` + dollarQuote(s.stampBody(schema, seq)) + `;
REVOKE ALL ON FUNCTION ` + stampFn + `() FROM PUBLIC;
DROP TRIGGER IF EXISTS ` + stamp + ` ON ` + commits + `;
CREATE CONSTRAINT TRIGGER ` + stamp + ` AFTER INSERT ON ` + commits + `
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ` + stampFn + `();
CREATE OR REPLACE FUNCTION ` + armFn + `() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS ` + dollarQuote(s.armBody(schema)) + `;
REVOKE ALL ON FUNCTION ` + armFn + `() FROM PUBLIC;
DROP TRIGGER IF EXISTS ` + arm + ` ON ` + table + `;
CREATE TRIGGER ` + arm + ` AFTER INSERT ON ` + table + `
FOR EACH STATEMENT EXECUTE FUNCTION ` + armFn + `();
-- Transactions that inserted before the triggers existed (an earlier
-- version published from Go without a stamp) get one as this commits,
-- in the order of their last ids.
INSERT INTO ` + commits + ` (xid)
	SELECT e.xid FROM ` + table + ` e WHERE NOT EXISTS (SELECT 1 FROM ` + commits + ` c WHERE c.xid = e.xid)
	GROUP BY e.xid ORDER BY max(e.id);
CREATE OR REPLACE FUNCTION ` + fn + `(channel text, event_type text, data jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS ` + dollarQuote(body) + `;
REVOKE ALL ON FUNCTION ` + fn + pgFunctionArgs + ` FROM PUBLIC`
}

// armFunction names the statement trigger function, and the trigger,
// that arm the commit stamp of a transaction inserting into the table.
func (s pgSchema) armFunction() string {
	return suffixed(s.table, "_arm")
}

// stampFunction names the trigger function, and the trigger, that stamp
// commits.
func (s pgSchema) stampFunction() string {
	return suffixed(s.table, "_stamp")
}

// quoteLiteral quotes s as an escape string constant, which reads the
// same whatever standard_conforming_strings is.
func quoteLiteral(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `'`, `''`)
	return `E'` + s + `'`
}

// dollarQuote quotes body with a tag that does not occur in it (a table
// or channel name could contain any tag chosen in advance).
func dollarQuote(body string) string {
	tag := "$fraiseql$"
	for i := 0; strings.Contains(body, tag); i++ {
		tag = fmt.Sprintf("$fraiseql%d$", i)
	}
	return tag + body + tag
}

// ensureSchema creates or updates the bus's objects when they are not all
// there as this bus would make them. An advisory lock serialises
// executors starting together: concurrent CREATE ... IF NOT EXISTS can
// otherwise fail on a unique violation in the catalog.
func (b *PostgresBus) ensureSchema(ctx context.Context, q interface {
	Begin(context.Context) (pgx.Tx, error)
	QueryRow(context.Context, string, ...any) pgx.Row
}) error {
	if b.tableReady.Load() {
		return nil
	}
	// When everything is in place, run no DDL at all: it needs the CREATE
	// privilege on the schema, which an executor's role may lack.
	if ok, err := b.schemaInPlace(ctx, q); err != nil || ok {
		if ok {
			b.tableReady.Store(true)
		}
		return err
	}
	tx, err := q.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", int32(pgLockClass), b.opts.Table); err != nil {
		return err
	}
	// Another executor may have just done it: the DDL would then only
	// take locks that readers of the table wait for.
	if ok, err := b.schemaInPlace(ctx, tx); err != nil || ok {
		if ok {
			b.tableReady.Store(true)
		}
		return err
	}
	if _, err := tx.Exec(ctx, b.schema.sqlTable); err != nil {
		return err
	}
	var schema, seq string
	if err := tx.QueryRow(ctx, `SELECT n.nspname, pg_get_serial_sequence($1, 'id') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass($1)`, b.tableIdent).Scan(&schema, &seq); err != nil {
		return err
	}
	// Simple protocol: several statements, no parameters.
	if _, err := tx.Exec(ctx, b.schema.objectsSQL(schema, seq), pgx.QueryExecModeSimpleProtocol); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	b.tableReady.Store(true)
	return nil
}

// schemaInPlace reports whether the table, its xid column, the positions
// table, this bus's version of the function and of the commit stamp
// trigger, and the trigger that arms it, all exist.
func (b *PostgresBus) schemaInPlace(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (bool, error) {
	var schema, body, stampBody, seq string
	var hasXid, hasPositions, hasStamp, hasArm bool
	err := q.QueryRow(ctx, b.schema.sqlCheck, b.tableIdent, b.schema.positions, b.schema.function,
		b.schema.commits, b.schema.stampFunction(), b.schema.armFunction()).
		Scan(&schema, &hasXid, &hasPositions, &body, &hasStamp, &stampBody, &hasArm, &seq)
	if err == pgx.ErrNoRows {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return hasXid && hasPositions && hasStamp && hasArm && body == b.schema.functionBody(schema) &&
		stampBody == b.schema.stampBody(schema, seq), nil
}
