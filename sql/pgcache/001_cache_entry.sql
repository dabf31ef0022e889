-- PgCache schema, version 1. Idempotent: safe to run on every deploy.
-- Tokens: the schema token, and {cache_persistence}, which the library renders as UNLOGGED (the default,
-- PgCache:Durability=Unlogged) or as nothing (Logged). By hand: sed 's/{cache_persistence}/UNLOGGED/'.
--
-- UNLOGGED: writes skip the WAL (several times cheaper), but the table is emptied after a crash or an unclean
-- shutdown and is not replicated to standbys. Fine for a cache; choose Logged if a failover must keep it warm.
-- Switching an existing table: ALTER TABLE {schema}.cache_entry SET LOGGED (or SET UNLOGGED); it rewrites the table.

CREATE {cache_persistence} TABLE IF NOT EXISTS {schema}.cache_entry (
    -- The tenant is part of the key: one tenant can never see another's entries, whatever the key text.
    tenant_id           text        COLLATE "C" NOT NULL,
    -- The full key, stored and compared as given (no truncation, case and trailing spaces significant).
    key                 text        COLLATE "C" NOT NULL,
    -- A 64-bit hash of the key indexes it, so keys of any length fit the primary key. A collision (two keys, one
    -- hash) only evicts the older entry: reads always compare the full key.
    key_hash            bigint      GENERATED ALWAYS AS (hashtextextended(key, 0)) STORED,
    value               bytea       NOT NULL,
    -- The one effective expiry: min(absolute, last access + sliding), 'infinity' when none. Computed by the
    -- library from its TimeProvider, never from now(), so there is a single clock.
    expires_at          timestamptz NOT NULL,
    sliding             interval,
    absolute_expires_at timestamptz,
    tags                text[],
    CONSTRAINT cache_entry_pkey PRIMARY KEY (tenant_id, key_hash)
)
-- Free space on each page lets updates of value and expiry stay on the page (HOT when no indexed column changes).
WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.05);

-- Cleanup walks this index oldest-first. Sliding refreshes change expires_at and so are not HOT; the library refreshes
-- at most once per refresh granularity to keep that churn small.
CREATE INDEX IF NOT EXISTS cache_entry_expires_at_idx ON {schema}.cache_entry (expires_at);

-- RemoveByTag: one DELETE driven by this index.
CREATE INDEX IF NOT EXISTS cache_entry_tags_idx ON {schema}.cache_entry USING gin (tags) WHERE tags IS NOT NULL;

-- Reads one entry: the value, or NULL when missing or expired at p_now. A sliding entry's expiry is extended in the
-- same call, but only when it moves by at least min(p_step, sliding / 10) and never beyond the absolute expiry;
-- an entry without sliding expiration is never written. One prepared call = one round trip, and PL/pgSQL keeps the
-- plans of both statements, so a plain hit costs what the bare SELECT costs.
CREATE OR REPLACE FUNCTION {schema}.cache_get(p_tenant_id text, p_key text, p_now timestamptz, p_step interval)
RETURNS bytea
LANGUAGE plpgsql
AS $$
DECLARE
    hit record;
BEGIN
    SELECT c.key_hash, c.value, c.sliding, c.absolute_expires_at, c.expires_at
    INTO hit
    FROM {schema}.cache_entry AS c
    WHERE c.tenant_id = p_tenant_id
      AND c.key_hash = hashtextextended(p_key, 0)
      AND c.key = p_key
      AND c.expires_at > p_now;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF hit.sliding IS NOT NULL
       AND LEAST(hit.absolute_expires_at, p_now + hit.sliding) - hit.expires_at >= LEAST(p_step, hit.sliding / 10) THEN
        UPDATE {schema}.cache_entry AS c
        SET expires_at = LEAST(hit.absolute_expires_at, p_now + hit.sliding)
        WHERE c.tenant_id = p_tenant_id
          AND c.key_hash = hit.key_hash;
    END IF;
    RETURN hit.value;
END;
$$;

-- Reads many entries in one call, with the same sliding rule per entry. Missing and expired keys are absent.
CREATE OR REPLACE FUNCTION {schema}.cache_get_many(p_tenant_id text, p_keys text[], p_now timestamptz, p_step interval)
RETURNS TABLE (key text, value bytea)
LANGUAGE plpgsql
AS $$
DECLARE
    hit record;
BEGIN
    FOR hit IN
        SELECT c.key_hash, c.key, c.value, c.sliding, c.absolute_expires_at, c.expires_at
        FROM {schema}.cache_entry AS c
        WHERE c.tenant_id = p_tenant_id
          AND c.key_hash = ANY(ARRAY(SELECT hashtextextended(k, 0) FROM unnest(p_keys) AS k))
          AND c.key = ANY(p_keys)
          AND c.expires_at > p_now
    LOOP
        IF hit.sliding IS NOT NULL
           AND LEAST(hit.absolute_expires_at, p_now + hit.sliding) - hit.expires_at >= LEAST(p_step, hit.sliding / 10) THEN
            UPDATE {schema}.cache_entry AS c
            SET expires_at = LEAST(hit.absolute_expires_at, p_now + hit.sliding)
            WHERE c.tenant_id = p_tenant_id
              AND c.key_hash = hit.key_hash;
        END IF;
        key := hit.key;
        value := hit.value;
        RETURN NEXT;
    END LOOP;
END;
$$;

-- Deletes at most p_batch_size entries expired at p_now, oldest first, skipping rows other sessions hold, and returns
-- how many it deleted. Called by the PgFirst maintenance runner, or by pg_cron: SELECT {schema}.cache_delete_expired(5000);
CREATE OR REPLACE FUNCTION {schema}.cache_delete_expired(p_batch_size integer, p_now timestamptz DEFAULT now())
RETURNS integer
LANGUAGE sql
AS $$
    WITH doomed AS (
        SELECT tenant_id, key_hash
        FROM {schema}.cache_entry
        WHERE expires_at <= p_now
        ORDER BY expires_at
        LIMIT p_batch_size
        FOR UPDATE SKIP LOCKED
    ), deleted AS (
        DELETE FROM {schema}.cache_entry AS c
        USING doomed
        WHERE c.tenant_id = doomed.tenant_id
          AND c.key_hash = doomed.key_hash
        RETURNING 1
    )
    SELECT count(*)::integer FROM deleted;
$$;
