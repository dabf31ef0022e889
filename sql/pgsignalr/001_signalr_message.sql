-- PgFirst.SignalR schema, version 1. Idempotent: safe to run on every deploy.
--
-- The SignalR backplane sends every message with pg_notify. A NOTIFY payload is at most 7,999 bytes; a message whose
-- envelope is bigger is written here and its notification carries only the row's id, in the same statement, so the
-- row is committed exactly when the notification is and every listening instance can read it once.
--
-- UNLOGGED: a message lives for seconds; after a crash or a failover the rows are gone, as the notifications in
-- flight are. expires_at is the sender's now() + PgSignalROptions.LargeMessageRetention; the maintenance runner
-- deletes expired rows (signalr_delete_expired).
CREATE UNLOGGED TABLE IF NOT EXISTS {schema}.signalr_message (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel     text        COLLATE "C" NOT NULL,
    payload     bytea       NOT NULL,
    expires_at  timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS signalr_message_expires_at_idx ON {schema}.signalr_message (expires_at);

-- Expiry cleanup for the maintenance runner (or pg_cron: SELECT {schema}.signalr_delete_expired(5000)): at most
-- p_batch_size rows expired at p_now; returns how many.
CREATE OR REPLACE FUNCTION {schema}.signalr_delete_expired(p_batch_size integer, p_now timestamptz DEFAULT now())
RETURNS integer
LANGUAGE sql
AS $$
    WITH doomed AS (
        SELECT id FROM {schema}.signalr_message
        WHERE expires_at <= p_now
        ORDER BY expires_at
        LIMIT p_batch_size
        FOR UPDATE SKIP LOCKED
    ), deleted AS (
        DELETE FROM {schema}.signalr_message m USING doomed WHERE m.id = doomed.id RETURNING 1
    )
    SELECT count(*)::integer FROM deleted;
$$;
