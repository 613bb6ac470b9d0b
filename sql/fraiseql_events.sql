-- The objects of the PostgreSQL bus with the default options (table
-- fraiseql_events in schema public): what an executor creates when they are
-- missing. Apply it before any executor starts or any SQL publishes; for
-- other names or grants run: python -m fraiseql.subscriptions.schema --help
-- Generated from the engine (go test ./subscriptions -run TestSchemaSQLFile
-- -update-schema-sql); do not edit.
CREATE TABLE IF NOT EXISTS "public"."fraiseql_events" (
	id bigserial PRIMARY KEY,
	channel text NOT NULL,
	event_type text NOT NULL,
	payload bytea NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	xid xid8 NOT NULL DEFAULT pg_current_xact_id()
);
ALTER TABLE "public"."fraiseql_events" ADD COLUMN IF NOT EXISTS xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX IF NOT EXISTS "fraiseql_events_created_at_idx" ON "public"."fraiseql_events" (created_at);
CREATE INDEX IF NOT EXISTS "fraiseql_events_xid_idx" ON "public"."fraiseql_events" (xid);
CREATE TABLE IF NOT EXISTS "public"."fraiseql_events_positions" (
	instance_id text PRIMARY KEY,
	snapshot pg_snapshot NOT NULL,
	upto pg_snapshot,
	after_last bigint NOT NULL DEFAULT 0,
	after_id bigint NOT NULL DEFAULT 0,
	updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS "public"."fraiseql_events_commits" (
	xid xid8 PRIMARY KEY,
	stamp bigint
);
CREATE OR REPLACE FUNCTION "public"."fraiseql_events_stamp"() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fraiseql$
BEGIN
	UPDATE "public"."fraiseql_events_commits" SET stamp = nextval(pg_get_serial_sequence(E'"public"."fraiseql_events"', 'id')) WHERE xid = NEW.xid;
	RETURN NULL;
END
$fraiseql$;
REVOKE ALL ON FUNCTION "public"."fraiseql_events_stamp"() FROM PUBLIC;
DROP TRIGGER IF EXISTS "fraiseql_events_stamp" ON "public"."fraiseql_events_commits";
CREATE CONSTRAINT TRIGGER "fraiseql_events_stamp" AFTER INSERT ON "public"."fraiseql_events_commits"
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION "public"."fraiseql_events_stamp"();
CREATE OR REPLACE FUNCTION "public"."fraiseql_publish"(channel text, event_type text, data jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fraiseql$
#variable_conflict use_variable
DECLARE
	payload bytea;
	armed text;
BEGIN
	IF channel IS NULL OR channel = '' THEN
		RAISE EXCEPTION '%: channel must not be empty', E'fraiseql_publish' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF octet_length(channel) > 1024 THEN
		RAISE EXCEPTION '%: channel is % bytes, over the limit of 1024', E'fraiseql_publish', octet_length(channel) USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF event_type IS NULL THEN
		RAISE EXCEPTION '%: event_type must not be null', E'fraiseql_publish' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF octet_length(event_type) > 1024 THEN
		RAISE EXCEPTION '%: event_type is % bytes, over the limit of 1024', E'fraiseql_publish', octet_length(event_type) USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF jsonb_typeof(data) IS DISTINCT FROM 'object' THEN
		RAISE EXCEPTION '%: event data must be a JSON object, got %', E'fraiseql_publish', coalesce(jsonb_typeof(data), 'null') USING ERRCODE = 'invalid_parameter_value';
	END IF;
	payload := convert_to(data::text, 'UTF8');
	IF octet_length(payload) > 1048576 THEN
		RAISE EXCEPTION '%: event payload is % bytes, over the max_payload_bytes limit of 1048576', E'fraiseql_publish', octet_length(payload) USING ERRCODE = 'program_limit_exceeded';
	END IF;
	INSERT INTO "public"."fraiseql_events" (channel, event_type, payload) VALUES (channel, event_type, payload);
	-- The first event of a transaction arms its commit stamp; a
	-- transaction-local setting spares the later ones the insert (a
	-- rolled-back savepoint undoes both).
	armed := pg_current_xact_id()::text || E' "public"."fraiseql_events_commits"';
	IF current_setting('fraiseql.armed', true) IS DISTINCT FROM armed THEN
		INSERT INTO "public"."fraiseql_events_commits" (xid) VALUES (pg_current_xact_id()) ON CONFLICT (xid) DO NOTHING;
		PERFORM set_config('fraiseql.armed', armed, true);
	END IF;
	PERFORM pg_notify(E'fraiseql_events', '');
END
$fraiseql$;
REVOKE ALL ON FUNCTION "public"."fraiseql_publish"(text, text, jsonb) FROM PUBLIC;
