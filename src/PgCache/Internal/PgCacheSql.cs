using System.Globalization;

namespace PgCache.Internal;

// Runtime statements, formatted once per schema with the quoted table name; values are always parameters.
// Parameters are positional: $1 tenant, $2 key(s); reads then take $3 now and $4 the refresh step.
internal sealed class PgCacheSql
{
    // One round trip: the read, plus the sliding refresh folded into the same statement. Entries without sliding
    // expiration are never written; sliding ones only when the expiry moves by at least the refresh step ($4).
    private const string GetFormat = """
        WITH hit AS (
            SELECT key_hash, value, sliding, absolute_expires_at, expires_at
            FROM {0}
            WHERE tenant_id = $1
              AND key_hash = hashtextextended($2, 0)
              AND key = $2
              AND expires_at > $3
        ), touched AS (
            UPDATE {0} AS c
            SET expires_at = LEAST(hit.absolute_expires_at, $3 + hit.sliding)
            FROM hit
            WHERE c.tenant_id = $1
              AND c.key_hash = hit.key_hash
              AND hit.sliding IS NOT NULL
              AND LEAST(hit.absolute_expires_at, $3 + hit.sliding) - hit.expires_at >= LEAST($4, hit.sliding / 10)
        )
        SELECT value
        FROM hit
        """;

    private const string GetManyFormat = """
        WITH hit AS (
            SELECT key_hash, key, value, sliding, absolute_expires_at, expires_at
            FROM {0}
            WHERE tenant_id = $1
              AND key_hash = ANY(ARRAY(SELECT hashtextextended(k, 0) FROM unnest($2::text[]) AS k))
              AND key = ANY($2)
              AND expires_at > $3
        ), touched AS (
            UPDATE {0} AS c
            SET expires_at = LEAST(hit.absolute_expires_at, $3 + hit.sliding)
            FROM hit
            WHERE c.tenant_id = $1
              AND c.key_hash = hit.key_hash
              AND hit.sliding IS NOT NULL
              AND LEAST(hit.absolute_expires_at, $3 + hit.sliding) - hit.expires_at >= LEAST($4, hit.sliding / 10)
        )
        SELECT key, value
        FROM hit
        """;

    // Writes: $3 value(s), $4 expires_at (NULL = never), $5 sliding, $6 absolute, $7 tags. One upsert.
    private const string SetFormat = """
        INSERT INTO {0} AS c (tenant_id, key, value, expires_at, sliding, absolute_expires_at, tags)
        VALUES ($1, $2, $3, COALESCE($4, 'infinity'), $5, $6, $7)
        ON CONFLICT (tenant_id, key_hash) DO UPDATE
        SET key = EXCLUDED.key,
            value = EXCLUDED.value,
            expires_at = EXCLUDED.expires_at,
            sliding = EXCLUDED.sliding,
            absolute_expires_at = EXCLUDED.absolute_expires_at,
            tags = EXCLUDED.tags
        """;

    private const string SetManyFormat = """
        INSERT INTO {0} AS c (tenant_id, key, value, expires_at, sliding, absolute_expires_at, tags)
        SELECT $1, u.k, u.v, COALESCE($4, 'infinity'), $5, $6, $7
        FROM unnest($2::text[], $3::bytea[]) AS u(k, v)
        ON CONFLICT (tenant_id, key_hash) DO UPDATE
        SET key = EXCLUDED.key,
            value = EXCLUDED.value,
            expires_at = EXCLUDED.expires_at,
            sliding = EXCLUDED.sliding,
            absolute_expires_at = EXCLUDED.absolute_expires_at,
            tags = EXCLUDED.tags
        """;

    private const string RefreshFormat = """
        UPDATE {0}
        SET expires_at = LEAST(absolute_expires_at, $3 + sliding)
        WHERE tenant_id = $1
          AND key_hash = hashtextextended($2, 0)
          AND key = $2
          AND expires_at > $3
          AND sliding IS NOT NULL
        """;

    private const string RemoveFormat = """
        DELETE FROM {0}
        WHERE tenant_id = $1
          AND key_hash = hashtextextended($2, 0)
          AND key = $2
        """;

    private const string RemoveManyFormat = """
        DELETE FROM {0}
        WHERE tenant_id = $1
          AND key_hash = ANY(ARRAY(SELECT hashtextextended(k, 0) FROM unnest($2::text[]) AS k))
          AND key = ANY($2)
        """;

    private const string RemoveByTagFormat = """
        DELETE FROM {0}
        WHERE tenant_id = $1
          AND tags @> ARRAY[$2]::text[]
        """;

    private const string RemoveTenantFormat = """
        DELETE FROM {0}
        WHERE tenant_id = $1
        """;

    public PgCacheSql(string quotedSchema)
    {
        var table = quotedSchema + ".cache_entry";
        Get = Format(GetFormat, table);
        GetMany = Format(GetManyFormat, table);
        Set = Format(SetFormat, table);
        SetMany = Format(SetManyFormat, table);
        Refresh = Format(RefreshFormat, table);
        Remove = Format(RemoveFormat, table);
        RemoveMany = Format(RemoveManyFormat, table);
        RemoveByTag = Format(RemoveByTagFormat, table);
        RemoveTenant = Format(RemoveTenantFormat, table);
    }

    public string Get { get; }

    public string GetMany { get; }

    public string Set { get; }

    public string SetMany { get; }

    public string Refresh { get; }

    public string Remove { get; }

    public string RemoveMany { get; }

    public string RemoveByTag { get; }

    public string RemoveTenant { get; }

    private static string Format(string format, string table) => string.Format(CultureInfo.InvariantCulture, format, table);
}
