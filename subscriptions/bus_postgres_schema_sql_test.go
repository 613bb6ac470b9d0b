package subscriptions

import (
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
)

var updateSchemaFile = flag.Bool("update-schema-sql", false, "rewrite ../sql/fraiseql_events.sql from SchemaSQL")

// schemaFile is the SQL of the default bus in the sdist, for migration
// tools that cannot run the schema command.
const schemaFile = "../sql/fraiseql_events.sql"

const schemaFileHeader = `-- The objects of the PostgreSQL bus with the default options (table
-- fraiseql_events in schema public): what an executor creates when they are
-- missing. Apply it before any executor starts or any SQL publishes; for
-- other names or grants run: python -m fraiseql.subscriptions.schema --help
-- Generated from the engine (go test ./subscriptions -run TestSchemaSQLFile
-- -update-schema-sql); do not edit.
`

func TestSchemaSQLFileIsTheEnginesSQL(t *testing.T) {
	sql, err := SchemaSQL(PostgresOptions{}, "public")
	if err != nil {
		t.Fatal(err)
	}
	want := schemaFileHeader + sql
	if *updateSchemaFile {
		if err := os.WriteFile(schemaFile, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s is not what SchemaSQL prints: rerun with -update-schema-sql", schemaFile)
	}
}

func TestSchemaSQLIsWhatEnsureSchemaRuns(t *testing.T) {
	opts, err := PostgresOptions{Table: "t x"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	s := newPgSchema(opts)
	sql, err := SchemaSQL(PostgresOptions{Table: "t x"}, "app")
	if err != nil {
		t.Fatal(err)
	}
	if want := s.tableSQL(`"app"."t x"`) + ";\n" + s.objectsSQL("app", `"app"."t x_id_seq"`) + ";\n"; sql != want {
		t.Fatalf("SchemaSQL:\n%s\nwant:\n%s", sql, want)
	}
	for _, name := range []string{`"app"."t x_positions"`, `"app"."t x_commits"`, `"app"."t x_publish"(channel text`,
		`CREATE CONSTRAINT TRIGGER "t x_stamp"`, `CREATE TRIGGER "t x_arm"`, `nextval(E'"app"."t x_id_seq"'::regclass)`, `REVOKE ALL ON FUNCTION "app"."t x_publish"(text, text, jsonb) FROM PUBLIC`} {
		if !strings.Contains(sql, name) {
			t.Errorf("no %s in\n%s", name, sql)
		}
	}
	// A schema name is 1 to 63 bytes (NAMEDATALEN - 1): PostgreSQL would
	// cut a longer one, and the SQL would name another schema.
	for _, schema := range []string{"", strings.Repeat("s", pgMaxIdentifier+1), strings.Repeat("é", 32)} {
		_, err := SchemaSQL(PostgresOptions{}, schema)
		if KindOf(err) != KindValue || !strings.Contains(err.Error(), "schema must be a name of 1 to 63 bytes") {
			t.Errorf("schema of %d bytes: %v", len(schema), err)
		}
	}
	for _, schema := range []string{"s", strings.Repeat("s", pgMaxIdentifier), strings.Repeat("é", 31) + "s"} {
		if sql, err := SchemaSQL(PostgresOptions{}, schema); err != nil || !strings.Contains(sql, `"`+schema+`"."fraiseql_events"`) {
			t.Errorf("schema of %d bytes: %v", len(schema), err)
		}
	}
	if _, err := SchemaSQL(PostgresOptions{Table: strings.Repeat("t", 64)}, "public"); KindOf(err) != KindValue {
		t.Errorf("long table: %v", err)
	}
}

func TestGrantsSQL(t *testing.T) {
	sql, err := GrantsSQL(PostgresOptions{}, "public", "reader", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`GRANT EXECUTE ON FUNCTION "public"."fraiseql_publish"(text, text, jsonb) TO "reader";`,
		`GRANT SELECT, INSERT, DELETE ON "public"."fraiseql_events" TO "reader";`,
		`GRANT SELECT, INSERT, UPDATE ON "public"."fraiseql_events_positions" TO "reader";`,
		`GRANT SELECT, INSERT, DELETE ON "public"."fraiseql_events_commits" TO "reader";`,
		`pg_get_serial_sequence(E'"public"."fraiseql_events"', 'id'), E'reader')`,
	} {
		if !strings.Contains(sql, want) {
			t.Errorf("no %s in\n%s", want, sql)
		}
	}
	sql, _ = GrantsSQL(PostgresOptions{}, "public", "", "writer")
	if strings.Contains(sql, "SELECT") || !strings.Contains(sql, `TO "writer"`) {
		t.Errorf("publisher grants:\n%s", sql)
	}
	if sql, _ := GrantsSQL(PostgresOptions{}, "public", "", ""); sql != "" {
		t.Errorf("no roles: %q", sql)
	}
	if !errors.Is(&BusError{cause: ErrSchemaMissing}, ErrSchemaMissing) {
		t.Error("ErrSchemaMissing is not matched")
	}
}
