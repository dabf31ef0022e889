-- PgRateLimit schema, version 2: coalesced decisions for hot partitions.
--
-- Several decisions of one partition, coalesced by one app instance, in one statement: the row is locked once, the
-- decisions are made in arrival order exactly as ratelimit_acquire would make them one after the other, and the count
-- is written once. A hot partition then costs one statement per batch instead of one per request; exactness across
-- instances is unchanged, since the row's count decides.
--   p_permits          the permits of each decision, in arrival order
-- Returns, per decision, whether it was granted; the window's count after the last one; the time left in the window.
CREATE OR REPLACE FUNCTION {schema}.ratelimit_acquire_batch(
    p_limiter_id text,
    p_partition_key text,
    p_permits integer[],
    p_limit integer,
    p_window interval,
    p_count_rejected boolean,
    OUT acquired boolean[],
    OUT hits bigint,
    OUT retry_after interval)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_now           timestamptz := clock_timestamp();
    v_window_secs   double precision := extract(epoch FROM p_window);
    v_window_start  timestamptz := to_timestamp(floor(extract(epoch FROM v_now) / v_window_secs) * v_window_secs);
    v_hits          bigint;
    v_permits       integer;
BEGIN
    -- Takes the row lock and starts the window afresh if it is a new one; counts nothing yet.
    INSERT INTO {schema}.rate_limit_counter AS c (limiter_id, partition_key, window_start, hits, expires_at)
    VALUES (p_limiter_id, p_partition_key, v_window_start, 0, v_window_start + p_window)
    ON CONFLICT (limiter_id, partition_key) DO UPDATE
    SET hits = CASE WHEN c.window_start = EXCLUDED.window_start THEN c.hits ELSE 0 END,
        window_start = EXCLUDED.window_start,
        expires_at = EXCLUDED.expires_at
    RETURNING c.hits INTO v_hits;

    acquired := '{}';
    FOREACH v_permits IN ARRAY p_permits LOOP
        IF v_hits + v_permits <= p_limit THEN
            v_hits := v_hits + v_permits;
            acquired := acquired || true;
        ELSE
            IF p_count_rejected THEN
                v_hits := v_hits + v_permits;
            END IF;
            acquired := acquired || false;
        END IF;
    END LOOP;

    UPDATE {schema}.rate_limit_counter AS c
    SET hits = v_hits
    WHERE c.limiter_id = p_limiter_id AND c.partition_key = p_partition_key;

    hits := v_hits;
    retry_after := (v_window_start + p_window) - v_now;
END;
$$;
