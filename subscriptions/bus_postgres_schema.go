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
//     published through the function, taken from the id sequence by a
//     deferred constraint trigger (Table+"_stamp") as the transaction
//     commits. The listener orders those transactions by it (see
//     bus_postgres_listener.go).
//   - the publish function (Function), SECURITY DEFINER so that a role
//     granted only EXECUTE on it can publish; EXECUTE is revoked from
//     PUBLIC. It refuses what Executor.Publish refuses, with the same
//     messages, by raising in the caller's transaction.

//
// Every object is created by tableSQL or objectsSQL: ensureSchema runs
// them, and SchemaSQL prints them for migration tools, so the two never
// differ.

// pgSchema holds the names and SQL of the bus's objects.
type pgSchema struct {
	table, positions, commits, function string // unquoted names
	channel                             string // the NOTIFY channel

	sqlCheck string // what exists, in one query
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
	s.sqlCheck = `SELECT n.nspname,
	EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'xid' AND NOT a.attisdropped),
	to_regclass(format('%I.%I', n.nspname, $2::text)) IS NOT NULL,
	coalesce((SELECT p.prosrc FROM pg_proc p WHERE p.oid = to_regprocedure(format('%I.%I` + pgFunctionArgs + `', n.nspname, $3::text))), ''),
	EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = to_regclass(format('%I.%I', n.nspname, $4::text)) AND g.tgname = $5)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass($1)`
	return s
}

// tableSQL creates the table; table is its quoted name, qualified or not.
func (s pgSchema) tableSQL(table string) string {
	// payload is bytea so that the bytes come back exactly as published
	// (text would reject NUL bytes and invalid UTF-8; jsonb would
	// re-encode).
	return `CREATE TABLE IF NOT EXISTS ` + table + ` (
	id bigserial PRIMARY KEY,
	channel text NOT NULL,
	event_type text NOT NULL,
	payload bytea NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	xid xid8 NOT NULL DEFAULT pg_current_xact_id()
)`
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
	armed text;
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
	-- The first event of a transaction arms its commit stamp; a
	-- transaction-local setting spares the later ones the insert (a
	-- rolled-back savepoint undoes both).
	armed := pg_current_xact_id()::text || %[7]s;
	IF current_setting('fraiseql.armed', true) IS DISTINCT FROM armed THEN
		INSERT INTO %[6]s (xid) VALUES (pg_current_xact_id()) ON CONFLICT (xid) DO NOTHING;
		PERFORM set_config('fraiseql.armed', armed, true);
	END IF;
	PERFORM pg_notify(%[5]s, '');
END
`, name, MaxIDBytes, DefaultMaxPayloadBytes, qualified, quoteLiteral(s.channel),
		pgx.Identifier{schema, s.commits}.Sanitize(), quoteLiteral(" "+pgx.Identifier{schema, s.commits}.Sanitize()))
}

// stampBody is the body of the deferred trigger function that stamps a
// transaction as it commits: a value of the id sequence taken then is
// above every id of the transaction and, for two transactions that wrote
// the same row, above every value the one that committed first took
// (the second could only write that row after that commit).
func (s pgSchema) stampBody(schema string) string {
	return fmt.Sprintf(`
BEGIN
	UPDATE %[1]s SET stamp = nextval(pg_get_serial_sequence(%[2]s, 'id')) WHERE xid = NEW.xid;
	RETURN NULL;
END
`, pgx.Identifier{schema, s.commits}.Sanitize(), quoteLiteral(pgx.Identifier{schema, s.table}.Sanitize()))
}

// suffixed is table+suffix, table cut so that the name fits.
func suffixed(table, suffix string) string {
	return truncateIdent(table, pgMaxIdentifier-len(suffix)) + suffix
}

// objectsSQL creates or updates everything but the table, in schema.
func (s pgSchema) objectsSQL(schema string) string {
	table := pgx.Identifier{schema, s.table}.Sanitize()
	createdIdx := pgx.Identifier{suffixed(s.table, "_created_at_idx")}.Sanitize()
	xidIdx := pgx.Identifier{suffixed(s.table, "_xid_idx")}.Sanitize()
	fn := pgx.Identifier{schema, s.function}.Sanitize()
	body := s.functionBody(schema)
	commits := pgx.Identifier{schema, s.commits}.Sanitize()
	stampFn := pgx.Identifier{schema, s.stampFunction()}.Sanitize()
	stamp := pgx.Identifier{s.stampFunction()}.Sanitize()
	return `ALTER TABLE ` + table + ` ADD COLUMN IF NOT EXISTS xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX IF NOT EXISTS ` + createdIdx + ` ON ` + table + ` (created_at);
CREATE INDEX IF NOT EXISTS ` + xidIdx + ` ON ` + table + ` (xid);
CREATE TABLE IF NOT EXISTS ` + pgx.Identifier{schema, s.positions}.Sanitize() + ` (
	instance_id text PRIMARY KEY,
	snapshot pg_snapshot NOT NULL,
	upto pg_snapshot,
	after_last bigint NOT NULL DEFAULT 0,
	after_id bigint NOT NULL DEFAULT 0,
	updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ` + commits + ` (
	xid xid8 PRIMARY KEY,
	stamp bigint
);
CREATE OR REPLACE FUNCTION ` + stampFn + `() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS ` + dollarQuote(s.stampBody(schema)) + `;
REVOKE ALL ON FUNCTION ` + stampFn + `() FROM PUBLIC;
DROP TRIGGER IF EXISTS ` + stamp + ` ON ` + commits + `;
CREATE CONSTRAINT TRIGGER ` + stamp + ` AFTER INSERT ON ` + commits + `
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ` + stampFn + `();
CREATE OR REPLACE FUNCTION ` + fn + `(channel text, event_type text, data jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS ` + dollarQuote(body) + `;
REVOKE ALL ON FUNCTION ` + fn + pgFunctionArgs + ` FROM PUBLIC`
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
// there as this bus would make them, or, with VerifySchema, reports the
// missing ones (ErrSchemaMissing). An advisory lock serialises executors
// starting together: concurrent CREATE ... IF NOT EXISTS can otherwise
// fail on a unique violation in the catalog.
func (b *PostgresBus) ensureSchema(ctx context.Context, q interface {
	Begin(context.Context) (pgx.Tx, error)
	QueryRow(context.Context, string, ...any) pgx.Row
}) error {
	if b.tableReady.Load() {
		return nil
	}
	// When everything is in place, run no DDL at all: it needs the CREATE
	// privilege on the schema, which an executor's role may lack.
	missing, err := b.missingObjects(ctx, q)
	if err != nil {
		return b.schemaError("checking", err)
	}
	if len(missing) == 0 {
		b.tableReady.Store(true)
		return nil
	}
	if b.opts.VerifySchema {
		return &BusError{msg: fmt.Sprintf("the PostgreSQL bus's objects for table %q are not in place (the executor "+
			"was told not to create them): missing %s", b.opts.Table, strings.Join(missing, ", ")), cause: ErrSchemaMissing}
	}
	if err := b.createSchema(ctx, q); err != nil {
		return b.schemaError("creating", err)
	}
	b.tableReady.Store(true)
	return nil
}

// createSchema runs tableSQL and objectsSQL in one transaction.
func (b *PostgresBus) createSchema(ctx context.Context, q interface {
	Begin(context.Context) (pgx.Tx, error)
}) error {
	tx, err := q.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", int32(pgLockClass), b.opts.Table); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, b.schema.tableSQL(b.tableIdent)); err != nil {
		return err
	}
	var schema string
	if err := tx.QueryRow(ctx, `SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass($1)`, b.tableIdent).Scan(&schema); err != nil {
		return err
	}
	// Simple protocol: several statements, no parameters.
	if _, err := tx.Exec(ctx, b.schema.objectsSQL(schema), pgx.QueryExecModeSimpleProtocol); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// schemaError says that checking or creating the bus's objects failed,
// the server's reason first.
func (b *PostgresBus) schemaError(doing string, err error) error {
	return busError(fmt.Sprintf("%s the PostgreSQL bus's objects for table %q failed: %s", doing, b.opts.Table,
		Redacted(err, b.connString)), err)
}

// missingObjects names each of the bus's objects that is not in place as
// this bus would make it: the table, its xid column, the positions table,
// this bus's version of the function and the commit stamp trigger. None:
// all are.
func (b *PostgresBus) missingObjects(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) ([]string, error) {
	var schema, body string
	var hasXid, hasPositions, hasStamp bool
	err := q.QueryRow(ctx, b.schema.sqlCheck, b.tableIdent, b.schema.positions, b.schema.function,
		b.schema.commits, b.schema.stampFunction()).
		Scan(&schema, &hasXid, &hasPositions, &body, &hasStamp)
	s := b.schema
	if err == pgx.ErrNoRows {
		// Without the table the schema is the search_path's first one.
		return []string{"table " + b.tableIdent, "table " + pgx.Identifier{s.positions}.Sanitize(),
			"table " + pgx.Identifier{s.commits}.Sanitize() + " and its trigger " + pgx.Identifier{s.stampFunction()}.Sanitize(),
			"function " + pgx.Identifier{s.function}.Sanitize() + pgFunctionArgs}, nil
	}
	if err != nil {
		return nil, err
	}
	var missing []string
	if !hasXid {
		missing = append(missing, "column xid of table "+pgx.Identifier{schema, s.table}.Sanitize())
	}
	if !hasPositions {
		missing = append(missing, "table "+pgx.Identifier{schema, s.positions}.Sanitize())
	}
	if !hasStamp {
		missing = append(missing, "trigger "+pgx.Identifier{s.stampFunction()}.Sanitize()+" on table "+
			pgx.Identifier{schema, s.commits}.Sanitize())
	}
	fn := "function " + pgx.Identifier{schema, s.function}.Sanitize() + pgFunctionArgs
	switch {
	case body == "":
		missing = append(missing, fn)
	case body != s.functionBody(schema):
		missing = append(missing, fn+" as this version makes it (the installed one differs)")
	}
	return missing, nil
}

// SchemaSQL is the SQL that creates the PostgreSQL bus's objects for opts
// (Table, NotifyChannel, Function; defaults as for the bus) in schema, as
// an executor creates them when they are missing: for migration tools,
// to apply before any executor starts or SQL publishes.
func SchemaSQL(opts PostgresOptions, schema string) (string, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return "", err
	}
	if schema == "" || len(schema) > pgMaxIdentifier {
		return "", valueErrorf("schema must be a name of 1 to %d bytes, not %q", pgMaxIdentifier, schema)
	}
	s := newPgSchema(opts)
	return s.tableSQL(pgx.Identifier{schema, s.table}.Sanitize()) + ";\n" + s.objectsSQL(schema) + ";\n", nil
}

// GrantsSQL grants what an executor's role (executorRole) and a role that
// only publishes from SQL (publisherRole) need on the objects SchemaSQL
// creates; an empty role gets nothing.
func GrantsSQL(opts PostgresOptions, schema, executorRole, publisherRole string) (string, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return "", err
	}
	s := newPgSchema(opts)
	id := func(name string) string { return pgx.Identifier{schema, name}.Sanitize() }
	fn := id(s.function) + pgFunctionArgs
	var out strings.Builder
	for _, role := range []string{executorRole, publisherRole} {
		if role == "" {
			continue
		}
		r := pgx.Identifier{role}.Sanitize()
		fmt.Fprintf(&out, "GRANT USAGE ON SCHEMA %s TO %s;\nGRANT EXECUTE ON FUNCTION %s TO %s;\n",
			pgx.Identifier{schema}.Sanitize(), r, fn, r)
		if role == executorRole {
			fmt.Fprintf(&out, "GRANT SELECT, INSERT, DELETE ON %s TO %s;\n"+
				"GRANT SELECT, INSERT, UPDATE ON %s TO %s;\n"+
				"GRANT SELECT, DELETE ON %s TO %s;\n"+
				"DO %s;\n",
				id(s.table), r, id(s.positions), r, id(s.commits), r,
				dollarQuote(fmt.Sprintf("BEGIN EXECUTE format('GRANT USAGE ON SEQUENCE %%s TO %%I', "+
					"pg_get_serial_sequence(%s, 'id'), %s); END", quoteLiteral(id(s.table)), quoteLiteral(role))))
		}
	}
	return out.String(), nil
}
