-- Events from the database: every INSERT, UPDATE and DELETE of a table is
-- published inside the transaction that makes it, on a channel named after
-- the table, with the new row (the old one for DELETE) as the event data.
-- Subscribers get it if and only if the transaction commits.
--
-- fraiseql_publish(channel, event_type, data) is created by the PostgreSQL
-- bus when an executor starts (with the default table; with table="t" it is
-- t_publish). Run this file after that, as the owner of the tables:
--   psql "$DATABASE_URL" -f examples/db_events_trigger.sql
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
