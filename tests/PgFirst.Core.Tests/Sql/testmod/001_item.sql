-- A module used only by the tests: a table with an expiry and a cleanup function shaped like the real ones.
CREATE TABLE IF NOT EXISTS {schema}.item (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS item_expires_at_idx ON {schema}.item (expires_at);

CREATE OR REPLACE FUNCTION {schema}.item_delete_expired(p_batch_size integer, p_now timestamptz)
RETURNS integer
LANGUAGE sql
AS $$
    WITH doomed AS (
        SELECT id
        FROM {schema}.item
        WHERE expires_at <= p_now
        ORDER BY expires_at
        LIMIT p_batch_size
        FOR UPDATE SKIP LOCKED
    ), deleted AS (
        DELETE FROM {schema}.item AS i
        USING doomed
        WHERE i.id = doomed.id
        RETURNING 1
    )
    SELECT count(*)::integer FROM deleted;
$$;
