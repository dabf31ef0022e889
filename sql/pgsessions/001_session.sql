-- PgSessions schema, version 1. Idempotent: safe to run on every deploy.
--
-- A logged table: sessions are user-visible state (a cart, a sign-in) and must survive a crash and a failover.
CREATE TABLE IF NOT EXISTS {schema}.session (
    -- SHA-256 of the cookie's session key. The key itself is never stored, so a leaked table or backup cannot be
    -- replayed as cookies, and lookups cannot be timed against the secret (the CVE-2019-25025 lesson).
    key_hash            bytea       NOT NULL,
    -- The public id (ISession.Id): shown on "your sessions" pages and used to revoke; useless as a cookie.
    session_id          uuid        NOT NULL,
    tenant_id           text        COLLATE "C" NOT NULL,
    user_id             text        COLLATE "C",
    created_at          timestamptz NOT NULL,
    last_seen_at        timestamptz NOT NULL,
    idle_timeout        interval    NOT NULL,
    absolute_expires_at timestamptz NOT NULL,
    -- The one effective expiry: LEAST(last_seen_at + idle_timeout, absolute_expires_at). Kept as a column so loads,
    -- cleanup and listings compare one indexed value.
    expires_at          timestamptz NOT NULL,
    -- Optimistic concurrency: every data write is "UPDATE … WHERE version = the version read".
    version             bigint      NOT NULL,
    data                bytea       NOT NULL,
    client_ip           text,
    user_agent          text,
    CONSTRAINT session_pkey PRIMARY KEY (key_hash),
    CONSTRAINT session_key_hash_length CHECK (octet_length(key_hash) = 32)
)
-- Room on each page so touches and writes stay on the page; touches change expires_at (indexed) and so are not HOT,
-- which is why the library touches at most once per touch interval.
WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.05);

CREATE UNIQUE INDEX IF NOT EXISTS session_session_id_idx ON {schema}.session (session_id);

-- "Your active sessions" and "sign out everywhere": only bound sessions are indexed.
CREATE INDEX IF NOT EXISTS session_user_idx ON {schema}.session (tenant_id, user_id) WHERE user_id IS NOT NULL;

-- Cleanup walks this index oldest-first.
CREATE INDEX IF NOT EXISTS session_expires_at_idx ON {schema}.session (expires_at);

-- Loads a live session, and slides its idle expiry in the same call when the last touch is at least p_touch old.
-- The version is not changed by a touch: a touch never conflicts with a concurrent write. One prepared call = one
-- round trip; the common case (a fresh touch) is a single index lookup and writes nothing.
CREATE OR REPLACE FUNCTION {schema}.session_load(p_key_hash bytea, p_tenant_id text, p_now timestamptz, p_touch interval)
RETURNS SETOF {schema}.session
LANGUAGE plpgsql
AS $$
DECLARE
    s {schema}.session;
BEGIN
    SELECT * INTO s
    FROM {schema}.session AS t
    WHERE t.key_hash = p_key_hash
      AND t.tenant_id = p_tenant_id
      AND t.expires_at > p_now;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_now - s.last_seen_at >= p_touch THEN
        UPDATE {schema}.session AS t
        SET last_seen_at = p_now,
            expires_at = LEAST(p_now + t.idle_timeout, t.absolute_expires_at)
        WHERE t.key_hash = p_key_hash
          AND t.expires_at > p_now
        RETURNING * INTO s;
        IF NOT FOUND THEN
            RETURN;
        END IF;
    END IF;
    RETURN NEXT s;
END;
$$;

-- Removes up to p_batch_size sessions that expired (idle or absolute) at p_now; returns how many. Run by the
-- PgFirst maintenance runner, or by pg_cron: SELECT {schema}.session_delete_expired(5000);
CREATE OR REPLACE FUNCTION {schema}.session_delete_expired(p_batch_size integer, p_now timestamptz DEFAULT now())
RETURNS integer
LANGUAGE sql
AS $$
    WITH doomed AS (
        SELECT key_hash
        FROM {schema}.session
        WHERE expires_at <= p_now
        ORDER BY expires_at
        LIMIT p_batch_size
        FOR UPDATE SKIP LOCKED
    ),
    deleted AS (
        DELETE FROM {schema}.session AS s
        USING doomed
        WHERE s.key_hash = doomed.key_hash
        RETURNING 1
    )
    SELECT count(*)::integer FROM deleted;
$$;
