-- PgCache schema, version 3: cache_get_entry, the read of the near cache.
--
-- The same read as cache_get (one live entry, a sliding one extended in the same call at most once per
-- LEAST(p_step, sliding / 10) and never beyond its absolute expiry), but it also returns what an in-process copy
-- needs to know when to stop serving itself: the effective expiry after this read (NULL for never), the sliding
-- window, the absolute expiry and the tags (so a removal by tag finds the copies it removed). Called only on a
-- near-cache miss; the plain get keeps its single bytea result.
CREATE OR REPLACE FUNCTION {schema}.cache_get_entry(p_tenant_id text, p_key text, p_now timestamptz, p_step interval)
RETURNS TABLE (value bytea, expires_at timestamptz, sliding interval, absolute_expires_at timestamptz, tags text[])
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    hit record;
    v_expires timestamptz;
BEGIN
    SELECT c.key_hash, c.value, c.sliding, c.absolute_expires_at, c.expires_at, c.tags
    INTO hit
    FROM {schema}.cache_entry AS c
    WHERE c.tenant_id = p_tenant_id
      AND c.key_hash = hashtextextended(p_key, 0)
      AND c.key = p_key
      AND c.expires_at > p_now;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_expires := hit.expires_at;
    IF hit.sliding IS NOT NULL
       AND LEAST(hit.absolute_expires_at, p_now + hit.sliding) - hit.expires_at >= LEAST(p_step, hit.sliding / 10) THEN
        v_expires := LEAST(hit.absolute_expires_at, p_now + hit.sliding);
        UPDATE {schema}.cache_entry AS c
        SET expires_at = v_expires
        WHERE c.tenant_id = p_tenant_id
          AND c.key_hash = hit.key_hash;
    END IF;
    RETURN QUERY SELECT hit.value, NULLIF(v_expires, 'infinity'::timestamptz), hit.sliding, hit.absolute_expires_at, hit.tags;
END;
$$;
