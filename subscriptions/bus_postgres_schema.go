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
//     bus_postgres_listener.go). The bus's own publishes, transactions of
//     one statement, insert their row already stamped, under the same
//     lock, and set the arm trigger's mark: the stamp trigger does not
//     fire for them (WHEN), the arm trigger returns at once (see
//     PostgresBus.publishSQL).
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

// pgSequenceOf is the id sequence of the table (c, in namespace n),
// quoted as pgx.Identifier quotes it, empty without one: the stamp
// trigger names it.
const pgSequenceOf = `coalesce((SELECT '"' || replace(sn.nspname, '"', '""') || '"."' || replace(sq.relname, '"', '""') || '"'
	FROM pg_class sq JOIN pg_namespace sn ON sn.oid = sq.relnamespace
	WHERE sq.oid = pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), 'id')::regclass), '')`

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
	EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'idem_key' AND NOT a.attisdropped),
	to_regclass(format('%I.%I', n.nspname, $2::text)) IS NOT NULL,
	coalesce((SELECT p.prosrc FROM pg_proc p WHERE p.oid = to_regprocedure(format('%I.%I` + pgFunctionArgs + `', n.nspname, $3::text))), ''),
	EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = to_regclass(format('%I.%I', n.nspname, $4::text)) AND g.tgname = $5
		AND g.tgqual IS NOT NULL),
	coalesce((SELECT p.prosrc FROM pg_proc p WHERE p.oid = to_regprocedure(format('%I.%I()', n.nspname, $5::text))), ''),
	EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid AND g.tgname = $6),
	coalesce((SELECT p.prosrc FROM pg_proc p WHERE p.oid = to_regprocedure(format('%I.%I()', n.nspname, $6::text))), ''),
	` + pgSequenceOf + `
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

// serialSequence is the quoted name PostgreSQL gives the id sequence of
// a table that tableSQL creates in schema (makeObjectName: the table's
// name cut so that "_id_seq" fits), unless a relation of that name
// already exists there.
func serialSequence(schema, table string) string {
	return pgx.Identifier{schema, truncateIdent(table, pgMaxIdentifier-len("_id_seq")) + "_id_seq"}.Sanitize()
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
// setting, the mark (pgArmedMark), spares the later ones the insert (a
// rolled-back savepoint undoes both).
func (s pgSchema) armBody(schema string) string {
	commits := pgx.Identifier{schema, s.commits}.Sanitize()
	return fmt.Sprintf(`
DECLARE
	armed text := %[2]s;
BEGIN
	IF current_setting('fraiseql.armed', true) IS DISTINCT FROM armed THEN
		INSERT INTO %[1]s (xid) VALUES (pg_current_xact_id()) ON CONFLICT (xid) DO NOTHING;
		PERFORM set_config('fraiseql.armed', armed, true);
	END IF;
	RETURN NULL;
END
`, commits, fmt.Sprintf(pgArmedMark, "TG_RELID"))
}

// pgArmedMark is the value of the setting fraiseql.armed once a
// transaction's commit row is in place, given the table's oid: one per
// transaction and table.
const pgArmedMark = `pg_current_xact_id()::text || ' ' || %s::text`

// stampBody is the body of the deferred trigger function that stamps a
// transaction as it commits (the trigger fires for the rows inserted
// without a stamp: not for the bus's own): a value of the id sequence
// taken then is
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
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.stamp IS NULL) EXECUTE FUNCTION ` + stampFn + `();
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
	missing, seq, err := b.missingObjects(ctx, q)
	if err != nil {
		return b.schemaError("checking", err)
	}
	if len(missing) == 0 {
		b.schemaReady(seq)
		return nil
	}
	if b.opts.VerifySchema {
		return &BusError{msg: fmt.Sprintf("the PostgreSQL bus's objects for table %q are not in place (the executor "+
			"was told not to create them): missing %s", b.opts.Table, strings.Join(missing, ", ")), cause: ErrSchemaMissing}
	}
	seq, err = b.createSchema(ctx, q)
	if err != nil {
		return b.schemaError("creating", err)
	}
	b.schemaReady(seq)
	return nil
}

// schemaReady records that the bus's objects are in place, with seq the
// table's id sequence (pgSequenceOf).
func (b *PostgresBus) schemaReady(seq string) {
	b.publishing.Store(b.publishSQL(seq))
	b.tableReady.Store(true)
}

// createSchema runs tableSQL and objectsSQL in one transaction. It
// returns the table's id sequence (pgSequenceOf).
func (b *PostgresBus) createSchema(ctx context.Context, q interface {
	Begin(context.Context) (pgx.Tx, error)
}) (string, error) {
	tx, err := q.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", int32(pgLockClass), b.opts.Table); err != nil {
		return "", err
	}
	// Another executor may have just done it: the DDL would then only
	// take locks that readers of the table wait for.
	if missing, seq, err := b.missingObjects(ctx, tx); err != nil || len(missing) == 0 {
		return seq, err
	}
	if _, err := tx.Exec(ctx, b.schema.tableSQL(b.tableIdent)); err != nil {
		return "", err
	}
	var schema, seq string
	if err := tx.QueryRow(ctx, `SELECT n.nspname, `+pgSequenceOf+` FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass($1)`, b.tableIdent).Scan(&schema, &seq); err != nil {
		return "", err
	}
	// Simple protocol: several statements, no parameters.
	if _, err := tx.Exec(ctx, b.schema.objectsSQL(schema, seq), pgx.QueryExecModeSimpleProtocol); err != nil {
		return "", err
	}
	return seq, tx.Commit(ctx)
}

// schemaError says that checking or creating the bus's objects failed,
// the server's reason first.
func (b *PostgresBus) schemaError(doing string, err error) error {
	return busError(fmt.Sprintf("%s the PostgreSQL bus's objects for table %q failed: %s", doing, b.opts.Table,
		Redacted(err, b.connString)), err)
}

// missingObjects names each of the bus's objects that is not in place as
// this bus would make it: the table, its xid and idem_key columns, the
// positions table, this bus's version of the function, of the commit
// stamp trigger and of the trigger that arms it. None: all are.
func (b *PostgresBus) missingObjects(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (missing []string, seq string, err error) {
	var schema, body, stampBody, armBody string
	var hasXid, hasIdemKey, hasPositions, hasStamp, hasArm bool
	err = q.QueryRow(ctx, b.schema.sqlCheck, b.tableIdent, b.schema.positions, b.schema.function,
		b.schema.commits, b.schema.stampFunction(), b.schema.armFunction()).
		Scan(&schema, &hasXid, &hasIdemKey, &hasPositions, &body, &hasStamp, &stampBody, &hasArm, &armBody, &seq)
	s := b.schema
	if err == pgx.ErrNoRows {
		// Without the table the schema is the search_path's first one.
		return []string{"table " + b.tableIdent, "table " + pgx.Identifier{s.positions}.Sanitize(),
			"table " + pgx.Identifier{s.commits}.Sanitize() + " and its trigger " + pgx.Identifier{s.stampFunction()}.Sanitize(),
			"trigger " + pgx.Identifier{s.armFunction()}.Sanitize() + " on table " + b.tableIdent,
			"function " + pgx.Identifier{s.function}.Sanitize() + pgFunctionArgs}, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	table := pgx.Identifier{schema, s.table}.Sanitize()
	if !hasXid {
		missing = append(missing, "column xid of table "+table)
	}
	if !hasIdemKey {
		missing = append(missing, "column idem_key of table "+table)
	}
	if !hasPositions {
		missing = append(missing, "table "+pgx.Identifier{schema, s.positions}.Sanitize())
	}
	stamp := "trigger " + pgx.Identifier{s.stampFunction()}.Sanitize() + " on table " + pgx.Identifier{schema, s.commits}.Sanitize()
	switch {
	case !hasStamp:
		missing = append(missing, stamp)
	case stampBody != s.stampBody(schema, seq):
		missing = append(missing, stamp+" as this version makes it (the installed one differs)")
	}
	arm := "trigger " + pgx.Identifier{s.armFunction()}.Sanitize() + " on table " + table
	switch {
	case !hasArm:
		missing = append(missing, arm)
	case armBody != s.armBody(schema):
		missing = append(missing, arm+" as this version makes it (the installed one differs)")
	}
	fn := "function " + pgx.Identifier{schema, s.function}.Sanitize() + pgFunctionArgs
	switch {
	case body == "":
		missing = append(missing, fn)
	case body != s.functionBody(schema):
		missing = append(missing, fn+" as this version makes it (the installed one differs)")
	}
	return missing, seq, nil
}

// SchemaSQL is the SQL that creates the PostgreSQL bus's objects for opts
// (Table, NotifyChannel, Function; defaults as for the bus) in schema, as
// an executor creates them when they are missing: for migration tools,
// to apply before any executor starts or SQL publishes. The stamp trigger
// names the id sequence PostgreSQL gives a new table (serialSequence).
func SchemaSQL(opts PostgresOptions, schema string) (string, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return "", err
	}
	if schema == "" || len(schema) > pgMaxIdentifier {
		return "", valueErrorf("schema must be a name of 1 to %d bytes, not %q", pgMaxIdentifier, schema)
	}
	s := newPgSchema(opts)
	return s.tableSQL(pgx.Identifier{schema, s.table}.Sanitize()) + ";\n" +
		s.objectsSQL(schema, serialSequence(schema, s.table)) + ";\n", nil
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
				"GRANT SELECT, INSERT, DELETE ON %s TO %s;\n"+
				"DO %s;\n",
				id(s.table), r, id(s.positions), r, id(s.commits), r,
				dollarQuote(fmt.Sprintf("BEGIN EXECUTE format('GRANT USAGE ON SEQUENCE %%s TO %%I', "+
					"pg_get_serial_sequence(%s, 'id'), %s); END", quoteLiteral(id(s.table)), quoteLiteral(role))))
		}
	}
	return out.String(), nil
}
