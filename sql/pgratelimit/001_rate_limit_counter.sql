-- PgRateLimit schema, version 1. Idempotent: safe to run on every deploy.
-- Tokens: the schema token, and {ratelimit_persistence}, rendered as UNLOGGED (default, PgRateLimit:Durability=Unlogged)
-- or as nothing (Logged). By hand: sed 's/{ratelimit_persistence}/UNLOGGED/'.
--
-- UNLOGGED: no WAL per decision; after a crash or a failover every counter starts again from zero, which is usually
-- acceptable for rate limits. Choose Logged to keep counts across a failover.

-- One row per (limiter, partition): the limiter id carries the policy name, so two policies keyed by the same user
-- never share a counter. The row is reused from window to window; within a window only hits changes (no indexed
-- column), so increments are HOT updates.
CREATE {ratelimit_persistence} TABLE IF NOT EXISTS {schema}.rate_limit_counter (
    limiter_id      text        COLLATE "C" NOT NULL,
    partition_key   text        COLLATE "C" NOT NULL,
    window_start    timestamptz NOT NULL,
    hits            bigint      NOT NULL,
    expires_at      timestamptz NOT NULL,
    CONSTRAINT rate_limit_counter_pkey PRIMARY KEY (limiter_id, partition_key)
)
WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.05);

CREATE INDEX IF NOT EXISTS rate_limit_counter_expires_at_idx ON {schema}.rate_limit_counter (expires_at);

-- One decision, atomically, in one statement. Windows are aligned to the epoch on the database clock
-- (clock_timestamp()), so every app instance agrees whatever its own clock says.
--   p_permits          the permits asked for (weighted requests ask for more than one)
--   p_limit            the permits per window
--   p_count_rejected   true: a rejected request still counts; false: only admitted requests count
-- Returns whether the permits were granted, the window's count after the decision, and the time left in the window.
CREATE OR REPLACE FUNCTION {schema}.ratelimit_acquire(
    p_limiter_id text,
    p_partition_key text,
    p_permits integer,
    p_limit integer,
    p_window interval,
    p_count_rejected boolean,
    OUT acquired boolean,
    OUT hits bigint,
    OUT retry_after interval)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_now           timestamptz := clock_timestamp();
    v_window_secs   double precision := extract(epoch FROM p_window);
    v_window_start  timestamptz := to_timestamp(floor(extract(epoch FROM v_now) / v_window_secs) * v_window_secs);
BEGIN
    INSERT INTO {schema}.rate_limit_counter AS c (limiter_id, partition_key, window_start, hits, expires_at)
    VALUES (p_limiter_id, p_partition_key, v_window_start, p_permits, v_window_start + p_window)
    ON CONFLICT (limiter_id, partition_key) DO UPDATE
    SET hits = CASE WHEN c.window_start = EXCLUDED.window_start THEN c.hits + EXCLUDED.hits ELSE EXCLUDED.hits END,
        window_start = EXCLUDED.window_start,
        expires_at = EXCLUDED.expires_at
    WHERE p_count_rejected
       OR c.window_start <> EXCLUDED.window_start
       OR c.hits + EXCLUDED.hits <= p_limit
    RETURNING c.hits INTO hits;

    IF hits IS NULL THEN
        -- Not counted: the row was left as it was; report its count.
        SELECT c.hits INTO hits
        FROM {schema}.rate_limit_counter AS c
        WHERE c.limiter_id = p_limiter_id AND c.partition_key = p_partition_key;
        acquired := false;
    ELSE
        acquired := hits <= p_limit;
    END IF;
    retry_after := (v_window_start + p_window) - v_now;
END;
$$;

-- Deletes at most p_batch_size counters whose window ended before p_now. Called by the PgFirst maintenance runner,
-- or by pg_cron: SELECT {schema}.ratelimit_delete_expired(5000);
CREATE OR REPLACE FUNCTION {schema}.ratelimit_delete_expired(p_batch_size integer, p_now timestamptz DEFAULT now())
RETURNS integer
LANGUAGE sql
AS $$
    WITH doomed AS (
        SELECT limiter_id, partition_key
        FROM {schema}.rate_limit_counter
        WHERE expires_at <= p_now
        ORDER BY expires_at
        LIMIT p_batch_size
        FOR UPDATE SKIP LOCKED
    ), deleted AS (
        DELETE FROM {schema}.rate_limit_counter AS c
        USING doomed
        WHERE c.limiter_id = doomed.limiter_id
          AND c.partition_key = doomed.partition_key
          AND c.expires_at <= p_now
        RETURNING 1
    )
    SELECT count(*)::integer FROM deleted;
$$;
