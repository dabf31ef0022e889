using Npgsql;
using NpgsqlTypes;
using PgFirst.Core;

#pragma warning disable VSTHRD103 // Rows are read whole by ReadAsync (default, non-sequential access): column reads do no I/O.

namespace PgCache;

/// <summary>
/// The operator's view of the PostgreSQL cache table, across tenants: sizes, expired rows the cleanup has not reached,
/// the biggest tenants and tags, one entry's metadata, and bulk removal. Used by the <c>pgfirst-admin</c> tool. The
/// reads scan the table (an admin command, not a request path); removals are single statements.
/// </summary>
public sealed class PgCacheManager
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly string _schema;
    private readonly string _table;
    private readonly TimeProvider? _timeProvider;

    /// <summary>Initializes a new instance of the <see cref="PgCacheManager"/> class. Does no I/O.</summary>
    /// <param name="dataSource">The data source; not disposed.</param>
    /// <param name="schemaName">The PgFirst schema.</param>
    /// <param name="timeProvider">
    /// The clock expiry is judged by, or <see langword="null"/> for the database server's clock (<c>now()</c>). The
    /// apps write expiry times from their own clock: an operator's machine whose clock runs ahead would otherwise call
    /// live entries expired, and the cleanup would remove them.
    /// </param>
    /// <exception cref="ArgumentException">The schema name is invalid.</exception>
    public PgCacheManager(NpgsqlDataSource dataSource, string schemaName, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentException.ThrowIfNullOrEmpty(schemaName);
        _dataSource = dataSource;
        _schema = PgSqlIdentifier.Quote(schemaName);
        _table = _schema + ".cache_entry";
        _timeProvider = timeProvider;
    }

    /// <summary>Reads the cache's size: entries, value bytes, expired entries not yet removed, per tenant, and the most used tags.</summary>
    /// <param name="tenantId">One tenant, or <see langword="null"/> for all.</param>
    /// <param name="top">How many tenants and tags to list (1 to 1,000).</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The statistics.</returns>
    /// <exception cref="ArgumentException">The tenant id is invalid.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="top"/> is out of range.</exception>
    public async Task<PgCacheStats> GetStatsAsync(string? tenantId = null, int top = 10, CancellationToken cancellationToken = default)
    {
        if (tenantId is not null)
        {
            PgTenantId.Validate(tenantId, nameof(tenantId));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(top, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(top, 1000);
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        var tenants = new List<PgCacheTenantStats>();
        var command = new NpgsqlCommand(
            $"""
            SELECT tenant_id, count(*), COALESCE(sum(octet_length(value)), 0)::bigint, count(*) FILTER (WHERE expires_at <= COALESCE($2, now()))
            FROM {_table}
            WHERE $1::text IS NULL OR tenant_id = $1
            GROUP BY tenant_id
            ORDER BY 2 DESC, 1
            """,
            connection);
        await using (command.ConfigureAwait(false))
        {
            command.Parameters.Add(Text(tenantId));
            command.Parameters.Add(Now());
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    tenants.Add(new PgCacheTenantStats(reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3)));
                }
            }
        }

        var tags = new List<PgCacheTagCount>();
        var tagCommand = new NpgsqlCommand(
            $"""
            SELECT t.tag, count(*)
            FROM {_table} AS c, unnest(c.tags) AS t(tag)
            WHERE c.tags IS NOT NULL AND ($1::text IS NULL OR c.tenant_id = $1)
            GROUP BY t.tag
            ORDER BY 2 DESC, 1
            LIMIT $2
            """,
            connection);
        await using (tagCommand.ConfigureAwait(false))
        {
            tagCommand.Parameters.Add(Text(tenantId));
            tagCommand.Parameters.Add(new NpgsqlParameter<int> { TypedValue = top, NpgsqlDbType = NpgsqlDbType.Integer });
            var reader = await tagCommand.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    tags.Add(new PgCacheTagCount(reader.GetString(0), reader.GetInt64(1)));
                }
            }
        }

        return new PgCacheStats(
            tenants.Sum(t => t.Entries),
            tenants.Sum(t => t.ValueBytes),
            tenants.Sum(t => t.Expired),
            tenants.Count,
            tenants.Take(top).ToList(),
            tags);
    }

    /// <summary>Reads one entry's metadata (not its value).</summary>
    /// <param name="tenantId">The tenant.</param>
    /// <param name="key">The key, exactly as the app gave it.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The entry, expired or not, or <see langword="null"/> when there is none.</returns>
    /// <exception cref="ArgumentException">The tenant id or key is invalid.</exception>
    public async Task<PgCacheEntryInfo?> GetEntryAsync(string tenantId, string key, CancellationToken cancellationToken = default)
    {
        PgTenantId.Validate(tenantId, nameof(tenantId));
        ArgumentException.ThrowIfNullOrEmpty(key);
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        var command = new NpgsqlCommand(
            $"""
            SELECT octet_length(value), NULLIF(expires_at, 'infinity'), sliding, absolute_expires_at, tags, expires_at <= COALESCE($3, now())
            FROM {_table}
            WHERE tenant_id = $1 AND key_hash = hashtextextended($2, 0) AND key = $2
            """,
            connection);
        await using var commandScope = command.ConfigureAwait(false);
        command.Parameters.Add(Text(tenantId));
        command.Parameters.Add(Text(key));
        command.Parameters.Add(Now());
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            return null;
        }

        DateTimeOffset? expiresAt = reader.IsDBNull(1) ? null : reader.GetFieldValue<DateTimeOffset>(1);
        return new PgCacheEntryInfo(
            tenantId,
            key,
            reader.GetInt32(0),
            expiresAt,
            reader.IsDBNull(2) ? null : reader.GetFieldValue<TimeSpan>(2),
            reader.IsDBNull(3) ? null : reader.GetFieldValue<DateTimeOffset>(3),
            reader.IsDBNull(4) ? [] : reader.GetFieldValue<string[]>(4),
            reader.GetBoolean(5));
    }

    /// <summary>Counts what a removal would remove, without removing it (the dry run of the removal methods).</summary>
    /// <param name="scope">What to count.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The entries in scope.</returns>
    public async Task<long> CountAsync(PgCacheScope scope, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(scope);
        return (long)(await ScalarAsync($"SELECT count(*) FROM {_table} WHERE {PgCacheScope.Where}", scope, cancellationToken).ConfigureAwait(false))!;
    }

    /// <summary>Removes every entry in scope, in one statement.</summary>
    /// <param name="scope">What to remove.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The entries removed.</returns>
    public async Task<long> RemoveAsync(PgCacheScope scope, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(scope);
        return (long)(await ScalarAsync($"WITH d AS (DELETE FROM {_table} WHERE {PgCacheScope.Where} RETURNING 1) SELECT count(*) FROM d", scope, cancellationToken).ConfigureAwait(false))!;
    }

    /// <summary>Removes every expired entry now, in batches (what the maintenance runner does on its interval).</summary>
    /// <param name="batchSize">The rows per batch (1 to 100,000).</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The entries removed.</returns>
    public async Task<long> CleanupAsync(int batchSize = 10_000, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(batchSize, 100_000);
        long total = 0;
        while (true)
        {
            var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using var connectionScope = connection.ConfigureAwait(false);
            var command = new NpgsqlCommand($"SELECT {_schema}.cache_delete_expired($1, COALESCE($2, now()))", connection);
            await using var commandScope = command.ConfigureAwait(false);
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = batchSize, NpgsqlDbType = NpgsqlDbType.Integer });
            command.Parameters.Add(Now());
            var removed = (int)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
            total += removed;
            if (removed < batchSize)
            {
                return total;
            }
        }
    }

    private async Task<object?> ScalarAsync(string sql, PgCacheScope scope, CancellationToken cancellationToken)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        var command = new NpgsqlCommand(sql, connection);
        await using var commandScope = command.ConfigureAwait(false);
        command.Parameters.Add(Text(scope.TenantId));
        command.Parameters.Add(Text(scope.Tag));
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
    }

    private static NpgsqlParameter<string?> Text(string? value) => new() { TypedValue = value, NpgsqlDbType = NpgsqlDbType.Text };

    // The configured clock's time, or NULL for the server's now().
    private NpgsqlParameter Now() => new() { Value = _timeProvider is { } time ? time.GetUtcNow() : DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz };
}

/// <summary>Which cache entries a bulk removal covers: a tenant, a tag (in one tenant or all), or everything.</summary>
public sealed class PgCacheScope
{
    private PgCacheScope(string? tenantId, string? tag)
    {
        TenantId = tenantId;
        Tag = tag;
    }

    /// <summary>Gets every entry of every tenant.</summary>
    public static PgCacheScope All { get; } = new(null, null);

    /// <summary>Gets the tenant, or <see langword="null"/> for all.</summary>
    public string? TenantId { get; }

    /// <summary>Gets the tag, or <see langword="null"/> for any.</summary>
    public string? Tag { get; }

    internal const string Where = "($1::text IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR tags @> ARRAY[$2]::text[])";

    /// <summary>Returns the scope of one tenant's entries.</summary>
    /// <param name="tenantId">The tenant.</param>
    /// <returns>The scope.</returns>
    /// <exception cref="ArgumentException">The tenant id is invalid.</exception>
    public static PgCacheScope Tenant(string tenantId)
    {
        PgTenantId.Validate(tenantId, nameof(tenantId));
        return new(tenantId, null);
    }

    /// <summary>Returns the scope of the entries carrying a tag, in one tenant or all.</summary>
    /// <param name="tag">The tag.</param>
    /// <param name="tenantId">The tenant, or <see langword="null"/> for every tenant.</param>
    /// <returns>The scope.</returns>
    /// <exception cref="ArgumentException">The tag is empty or the tenant id is invalid.</exception>
    public static PgCacheScope WithTag(string tag, string? tenantId = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(tag);
        if (tenantId is not null)
        {
            PgTenantId.Validate(tenantId, nameof(tenantId));
        }

        return new(tenantId, tag);
    }

    /// <inheritdoc />
    public override string ToString() => (TenantId, Tag) switch
    {
        (null, null) => "every entry of every tenant",
        (string t, null) => $"every entry of tenant '{t}'",
        (null, string g) => $"every entry tagged '{g}' in every tenant",
        (string t, string g) => $"every entry tagged '{g}' in tenant '{t}'",
    };
}

/// <summary>The cache table's size (<see cref="PgCacheManager.GetStatsAsync"/>).</summary>
/// <param name="Entries">The rows.</param>
/// <param name="ValueBytes">The bytes of their values.</param>
/// <param name="Expired">Rows past their expiry the cleanup has not removed yet (no get returns them).</param>
/// <param name="TenantCount">The tenants with entries.</param>
/// <param name="Tenants">The biggest tenants, by entries.</param>
/// <param name="TopTags">The most used tags, by entries.</param>
public sealed record PgCacheStats(long Entries, long ValueBytes, long Expired, int TenantCount, IReadOnlyList<PgCacheTenantStats> Tenants, IReadOnlyList<PgCacheTagCount> TopTags);

/// <summary>One tenant's share of the cache.</summary>
/// <param name="TenantId">The tenant.</param>
/// <param name="Entries">Its rows.</param>
/// <param name="ValueBytes">The bytes of their values.</param>
/// <param name="Expired">Its expired rows not yet removed.</param>
public sealed record PgCacheTenantStats(string TenantId, long Entries, long ValueBytes, long Expired);

/// <summary>A tag and the entries carrying it.</summary>
/// <param name="Tag">The tag.</param>
/// <param name="Entries">The entries.</param>
public sealed record PgCacheTagCount(string Tag, long Entries);

/// <summary>One entry's metadata (<see cref="PgCacheManager.GetEntryAsync"/>).</summary>
/// <param name="TenantId">The tenant.</param>
/// <param name="Key">The key.</param>
/// <param name="ValueBytes">The value's size.</param>
/// <param name="ExpiresAt">When it expires (sliding entries: unless read), or <see langword="null"/> for never.</param>
/// <param name="SlidingExpiration">Its sliding expiration, or <see langword="null"/>.</param>
/// <param name="AbsoluteExpiresAt">Its absolute expiry, or <see langword="null"/>.</param>
/// <param name="Tags">Its tags.</param>
/// <param name="Expired">Whether it has expired (and waits for the cleanup).</param>
public sealed record PgCacheEntryInfo(
    string TenantId,
    string Key,
    int ValueBytes,
    DateTimeOffset? ExpiresAt,
    TimeSpan? SlidingExpiration,
    DateTimeOffset? AbsoluteExpiresAt,
    IReadOnlyList<string> Tags,
    bool Expired);
