using System.Globalization;

namespace PgCache.Internal;

// Runtime statements, formatted once per schema with the quoted table name; values are always parameters.
// Parameters are positional: $1 tenant, $2 key(s); reads then take $3 now and $4 the refresh step.
internal sealed class PgCacheSql
{
    // Reads are one prepared call of a PL/pgSQL function (sql/pgcache/001_cache_entry.sql): the plain SELECT when no
    // sliding refresh is due, plus the UPDATE only when it is. Measured: a CTE carrying the UPDATE cost about twice the
    // bare SELECT on every hit; the function costs the same as the SELECT.
    private const string GetFormat = "SELECT {0}.cache_get($1, $2, $3, $4)";

    // The near cache's read (sql/pgcache/003_cache_get_entry.sql): the value with its expiry and tags.
    private const string GetEntryFormat = "SELECT value, expires_at, sliding, absolute_expires_at, tags FROM {0}.cache_get_entry($1, $2, $3, $4)";

    private const string GetManyFormat = "SELECT key, value FROM {0}.cache_get_many($1, $2, $3, $4)";

    // Reads on a read replica, where nothing can be written: the value, and whether a sliding refresh is due (the
    // rule of cache_get). A due entry is read again on the primary, which extends it.
    private const string ReplicaGetFormat = """
        SELECT c.value,
               c.sliding IS NOT NULL
               AND LEAST(c.absolute_expires_at, $3 + c.sliding) - c.expires_at >= LEAST($4, c.sliding / 10)
        FROM {0} AS c
        WHERE c.tenant_id = $1
          AND c.key_hash = hashtextextended($2, 0)
          AND c.key = $2
          AND c.expires_at > $3
        """;

    private const string ReplicaGetManyFormat = """
        SELECT c.key,
               c.value,
               c.sliding IS NOT NULL
               AND LEAST(c.absolute_expires_at, $3 + c.sliding) - c.expires_at >= LEAST($4, c.sliding / 10)
        FROM {0} AS c
        WHERE c.tenant_id = $1
          AND c.key_hash = ANY(ARRAY(SELECT hashtextextended(k, 0) FROM unnest($2::text[]) AS k))
          AND c.key = ANY($2)
          AND c.expires_at > $3
        """;

    // Writes: $3 value(s), $4 expires_at (NULL = never), $5 sliding, $6 absolute, $7 tags. One upsert.
    private const string SetFormat = """
        INSERT INTO {0} AS c (tenant_id, key, value, expires_at, sliding, absolute_expires_at, tags)
        VALUES ($1, $2, $3, COALESCE($4, 'infinity'), $5, $6, $7)
        """ + UpsertTail;

    private const string SetManyFormat = """
        INSERT INTO {0} AS c (tenant_id, key, value, expires_at, sliding, absolute_expires_at, tags)
        SELECT $1, u.k, u.v, COALESCE($4, 'infinity'), $5, $6, $7
        FROM unnest($2::text[], $3::bytea[]) AS u(k, v)
        """ + UpsertTail;

    // A set replaces the whole entry, the key text included (a hash collision evicts the older key).
    private const string UpsertTail = """

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
        Get = Format(GetFormat, quotedSchema);
        GetEntry = Format(GetEntryFormat, quotedSchema);
        GetMany = Format(GetManyFormat, quotedSchema);
        ReplicaGet = Format(ReplicaGetFormat, table);
        ReplicaGetMany = Format(ReplicaGetManyFormat, table);
        Set = Format(SetFormat, table);
        SetMany = Format(SetManyFormat, table);
        Refresh = Format(RefreshFormat, table);
        Remove = Format(RemoveFormat, table);
        RemoveMany = Format(RemoveManyFormat, table);
        RemoveByTag = Format(RemoveByTagFormat, table);
        RemoveTenant = Format(RemoveTenantFormat, table);
    }

    public string Get { get; }

    public string GetEntry { get; }

    // A write's near-cache invalidation, in the same implicit transaction as the write (one batch).
    public string Notify { get; } = "SELECT pg_notify($1, $2)";

    public string GetMany { get; }

    public string ReplicaGet { get; }

    public string ReplicaGetMany { get; }

    public string Set { get; }

    public string SetMany { get; }

    public string Refresh { get; }

    public string Remove { get; }

    public string RemoveMany { get; }

    public string RemoveByTag { get; }

    public string RemoveTenant { get; }

    private static string Format(string format, string table) => string.Format(CultureInfo.InvariantCulture, format, table);
}
