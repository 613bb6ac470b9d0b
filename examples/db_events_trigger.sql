-- Events from the database: every INSERT, UPDATE and DELETE of a table is
-- published inside the transaction that makes it, on a channel named after
-- the table, with the new row (the old one for DELETE) as the event data.
-- Subscribers get it if and only if the transaction commits.
--
-- fraiseql_publish(channel, event_type, data) must exist first (with the
-- default table; with table="t" it is t_publish): apply the bus's objects in
-- a migration, then this file, as the owner of the tables:
--   python -m fraiseql.subscriptions.schema | psql "$DATABASE_URL" -1
--   psql "$DATABASE_URL" -1 -f examples/db_events_trigger.sql
-- (or start an executor once, with a role allowed to create them).
--
-- The row is the event data: a row's tenant_id keeps it to that tenant, and
-- a user_id column keeps it to that one user (the row filter). If user_id
-- means something else in a table, build the executors with
-- row_filter="<the column that should filter>" or row_filter=None.
-- then, in Python:
--   executor.register_subscription("c", "s",
--       'subscription { orders(where: {status: {eq: "paid"}}) { id status total } }',
--       user_id="u", tenant_id="acme")

-- One trigger function serves every table: event types are
-- <table>_insert, <table>_update and <table>_delete.
CREATE OR REPLACE FUNCTION fraiseql_publish_row() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM fraiseql_publish(TG_TABLE_NAME, TG_TABLE_NAME || '_delete', row_to_json(OLD)::jsonb);
        RETURN OLD;
    END IF;
    PERFORM fraiseql_publish(TG_TABLE_NAME, TG_TABLE_NAME || '_' || lower(TG_OP), row_to_json(NEW)::jsonb);
    RETURN NEW;
END
$$;

-- A table whose rows carry tenant_id: each row reaches only the
-- subscriptions of its tenant.
CREATE TABLE IF NOT EXISTS orders (
    id bigint PRIMARY KEY,
    tenant_id text NOT NULL,
    customer text NOT NULL,
    status text NOT NULL,
    total numeric(10, 2) NOT NULL
);

DROP TRIGGER IF EXISTS orders_publish ON orders;
CREATE TRIGGER orders_publish AFTER INSERT OR UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION fraiseql_publish_row();
