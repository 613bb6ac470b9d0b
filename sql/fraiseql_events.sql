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
CREATE INDEX IF NOT EXISTS "fraiseql_events_xid_id_idx" ON "public"."fraiseql_events" (xid, id);
ALTER TABLE "public"."fraiseql_events" ADD COLUMN IF NOT EXISTS idem_key text;
CREATE UNIQUE INDEX IF NOT EXISTS "fraiseql_events_idem_key_idx" ON "public"."fraiseql_events" (idem_key)
	WHERE idem_key IS NOT NULL;
DROP INDEX IF EXISTS "public"."fraiseql_events_xid_idx";
CREATE TABLE IF NOT EXISTS "public"."fraiseql_events_positions" (
	instance_id text PRIMARY KEY,
	snapshot pg_snapshot NOT NULL,
	upto pg_snapshot,
	after_last bigint NOT NULL DEFAULT 0,
	after_id bigint NOT NULL DEFAULT 0,
	updated_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE "public"."fraiseql_events_positions" ADD COLUMN IF NOT EXISTS after_stamp bigint;
ALTER TABLE "public"."fraiseql_events_positions" ADD COLUMN IF NOT EXISTS pruned_unread bigint NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS "public"."fraiseql_events_commits" (
	xid xid8 PRIMARY KEY,
	stamp bigint
);
ALTER TABLE "public"."fraiseql_events_commits" ADD COLUMN IF NOT EXISTS committed_at timestamptz;
UPDATE "public"."fraiseql_events_commits" SET committed_at = now() WHERE committed_at IS NULL AND stamp IS NOT NULL;
CREATE INDEX IF NOT EXISTS "fraiseql_events_commits_stamp_idx" ON "public"."fraiseql_events_commits" (stamp);
CREATE OR REPLACE FUNCTION "public"."fraiseql_events_stamp"() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fraiseql$
BEGIN
	PERFORM pg_advisory_xact_lock_shared(1179733071, hashtext(E'fraiseql_events'));
	UPDATE "public"."fraiseql_events_commits" SET stamp = nextval(E'"public"."fraiseql_events_id_seq"'::regclass), committed_at = clock_timestamp() WHERE xid = NEW.xid;
	RETURN NULL;
END
$fraiseql$;
REVOKE ALL ON FUNCTION "public"."fraiseql_events_stamp"() FROM PUBLIC;
DROP TRIGGER IF EXISTS "fraiseql_events_stamp" ON "public"."fraiseql_events_commits";
CREATE CONSTRAINT TRIGGER "fraiseql_events_stamp" AFTER INSERT ON "public"."fraiseql_events_commits"
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.stamp IS NULL) EXECUTE FUNCTION "public"."fraiseql_events_stamp"();
CREATE OR REPLACE FUNCTION "public"."fraiseql_events_arm"() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fraiseql$
DECLARE
	armed text := pg_current_xact_id()::text || ' ' || TG_RELID::text;
BEGIN
	IF current_setting('fraiseql.armed', true) IS DISTINCT FROM armed THEN
		INSERT INTO "public"."fraiseql_events_commits" (xid) VALUES (pg_current_xact_id()) ON CONFLICT (xid) DO NOTHING;
		PERFORM set_config('fraiseql.armed', armed, true);
	END IF;
	RETURN NULL;
END
$fraiseql$;
REVOKE ALL ON FUNCTION "public"."fraiseql_events_arm"() FROM PUBLIC;
DROP TRIGGER IF EXISTS "fraiseql_events_arm" ON "public"."fraiseql_events";
CREATE TRIGGER "fraiseql_events_arm" AFTER INSERT ON "public"."fraiseql_events"
FOR EACH STATEMENT EXECUTE FUNCTION "public"."fraiseql_events_arm"();
-- Transactions that inserted before the triggers existed (an earlier
-- version published from Go without a stamp) get one as this commits,
-- in the order of their last ids.
INSERT INTO "public"."fraiseql_events_commits" (xid)
	SELECT e.xid FROM "public"."fraiseql_events" e WHERE NOT EXISTS (SELECT 1 FROM "public"."fraiseql_events_commits" c WHERE c.xid = e.xid)
	GROUP BY e.xid ORDER BY max(e.id);
CREATE OR REPLACE FUNCTION "public"."fraiseql_publish"(channel text, event_type text, data jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fraiseql$
#variable_conflict use_variable
DECLARE
	payload bytea;
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
	PERFORM pg_notify(E'fraiseql_events', '');
END
$fraiseql$;
REVOKE ALL ON FUNCTION "public"."fraiseql_publish"(text, text, jsonb) FROM PUBLIC;
