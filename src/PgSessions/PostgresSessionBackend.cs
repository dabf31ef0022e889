using System.Data;
using System.Text;
using Npgsql;
using NpgsqlTypes;
using PgFirst.Core;
using PgSessions.Internal;

namespace PgSessions;

/// <summary>
/// The PostgreSQL backend of PgSessions: the logged table <c>{schema}.session</c>, read with one prepared call of
/// <c>{schema}.session_load</c> (lookup and lazy touch together) and written with one call of <c>{schema}.session_commit</c>, which merges a concurrent request's changes instead of losing them.
/// </summary>
public sealed class PostgresSessionBackend : IPgSessionBackend
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly string _schemaName;
    private readonly PgSessionsSql _sql;
    private readonly PgPoolerMode _pooler;
    private readonly PgReplicaReads? _replicas;
    private readonly bool _asynchronous;

    /// <summary>
    /// Initializes a new instance of the <see cref="PostgresSessionBackend"/> class for a direct connection
    /// (<see cref="PgPoolerMode.None"/>). Does no I/O.
    /// </summary>
    /// <param name="dataSource">The data source; not disposed by the backend.</param>
    /// <param name="schemaName">The PgFirst schema.</param>
    public PostgresSessionBackend(NpgsqlDataSource dataSource, string schemaName)
        : this(dataSource, new PgFirstOptions { SchemaName = schemaName })
    {
    }

    /// <summary>
    /// Initializes a new instance of the <see cref="PostgresSessionBackend"/> class with the schema and pooler mode of
    /// <paramref name="options"/>. Does no I/O.
    /// </summary>
    /// <param name="dataSource">The data source; not disposed by the backend.</param>
    /// <param name="options">The shared options: <see cref="PgFirstOptions.SchemaName"/> and <see cref="PgFirstOptions.Pooler"/>.</param>
    /// <param name="replicas">
    /// The read replicas loads may use (<see cref="PgSessionOptions.ReadConsistency"/>), or <see langword="null"/> for
    /// the primary only.
    /// </param>
    /// <param name="durability">
    /// When session writes (inserts and commits) are durable: <see cref="PgSessionDurability.Asynchronous"/> runs them
    /// with <c>synchronous_commit = off</c> (<see cref="PgSessionOptions.CommitDurability"/>).
    /// </param>
    /// <exception cref="PgFirstPoolerException">The data source auto-prepares statements behind a transaction pooler.</exception>
    public PostgresSessionBackend(
        NpgsqlDataSource dataSource,
        PgFirstOptions options,
        PgReplicaReads? replicas = null,
        PgSessionDurability durability = PgSessionDurability.Synchronous)
    {
        if (!Enum.IsDefined(durability))
        {
            throw new ArgumentOutOfRangeException(nameof(durability), durability, "A session durability is Synchronous or Asynchronous.");
        }

        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(options);
        var schemaName = options.SchemaName;
        ArgumentException.ThrowIfNullOrEmpty(schemaName);
        PgPooler.EnsureCompatible(dataSource, options.Pooler);
        _dataSource = dataSource;
        _schemaName = schemaName;
        _pooler = options.Pooler;
        _replicas = replicas;
        _asynchronous = durability == PgSessionDurability.Asynchronous;
        _sql = new PgSessionsSql(schemaName);
    }

    /// <summary>Gets the schema module (<c>sql/pgsessions</c>): the session table, its functions and the Data Protection key table.</summary>
    public static PgSchemaModule SchemaModule { get; } = PgSchemaModule.FromAssembly("pgsessions", typeof(PostgresSessionBackend).Assembly);

    /// <summary>Gets the maintenance task that deletes sessions past their idle or absolute expiry.</summary>
    public static PgMaintenanceTask CleanupTask { get; } = new(SchemaModule, "session_delete_expired");

    /// <inheritdoc />
    public async ValueTask<PgSessionRecord?> LoadAsync(PgSessionLoadRequest request, CancellationToken cancellationToken)
    {
        if (_replicas?.Choose(ReplicaKey(request.KeyHash)) is { } replica
            && await ReplicaLoadAsync(replica, request, async: true, cancellationToken).ConfigureAwait(false) is { } fromReplica)
        {
            _replicas.Answered(replica);
            return fromReplica;
        }

        _replicas?.Answered(null);

        try
        {
            var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using var connectionScope = connection.ConfigureAwait(false);
            var command = LoadCommand(connection, request);
            await using var commandScope = command.ConfigureAwait(false);
            if (PgPooler.PreparesStatements(_pooler))
            {
                await command.PrepareAsync(cancellationToken).ConfigureAwait(false);
            }

            // No CommandBehavior.SingleRow: Npgsql sends it as a row-limited Execute, which costs more than it saves.
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using var readerScope = reader.ConfigureAwait(false);
            return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? ReadRecord(reader) : null;
        }
        catch (PostgresException ex) when (Translate(ex) is { } schemaError)
        {
            throw schemaError;
        }
    }

    /// <inheritdoc />
    public PgSessionRecord? Load(PgSessionLoadRequest request)
    {
#pragma warning disable VSTHRD002, CA2012 // With async false the ValueTask is already complete.
        if (_replicas?.Choose(ReplicaKey(request.KeyHash)) is { } replica
            && ReplicaLoadAsync(replica, request, async: false, CancellationToken.None).GetAwaiter().GetResult() is { } fromReplica)
        {
            _replicas.Answered(replica);
            return fromReplica;
        }
#pragma warning restore VSTHRD002, CA2012

        _replicas?.Answered(null);

        try
        {
            using var connection = _dataSource.OpenConnection();
            using var command = LoadCommand(connection, request);
            if (PgPooler.PreparesStatements(_pooler))
            {
                command.Prepare();
            }

            using var reader = command.ExecuteReader();
            return reader.Read() ? ReadRecord(reader) : null;
        }
        catch (PostgresException ex) when (Translate(ex) is { } schemaError)
        {
            throw schemaError;
        }
    }

    /// <inheritdoc />
    public async ValueTask<bool> InsertAsync(PgSessionRecord record, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        var inserted = await RunAsync(
            _sql.Insert,
            p =>
            {
                p.Add(Bytes(record.KeyHash));
                p.Add(new NpgsqlParameter<Guid> { TypedValue = record.SessionId, NpgsqlDbType = NpgsqlDbType.Uuid });
                p.Add(Text(record.TenantId));
                p.Add(Text(record.UserId));
                p.Add(Time(record.CreatedAt));
                p.Add(Time(record.LastSeenAt));
                p.Add(Interval(record.IdleTimeout));
                p.Add(Time(record.AbsoluteExpiresAt));
                p.Add(Bytes(record.Data));
                p.Add(Text(record.ClientIp));
                p.Add(Text(record.UserAgent));
                p.Add(Bool(_asynchronous));
            },
            async (command, ct) => await command.ExecuteScalarAsync(ct).ConfigureAwait(false) is true,
            cancellationToken).ConfigureAwait(false);
        _replicas?.Wrote(ReplicaKey(record.KeyHash));
        return inserted;
    }

    /// <inheritdoc />
    public async ValueTask<long?> UpdateAsync(PgSessionUpdate update, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(update);
        try
        {
            var version = await RunAsync(
                _sql.Update,
                p => BindUpdate(p, update),
                async (command, ct) => await command.ExecuteScalarAsync(ct).ConfigureAwait(false) is long version ? version : (long?)null,
                cancellationToken).ConfigureAwait(false);
            if (_replicas is not null)
            {
                _replicas.Wrote(ReplicaKey(update.KeyHash));
                _replicas.Wrote(ReplicaKey(update.NewKeyHash));
            }

            return version;
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            // The regenerated key hash collides with a live session: treat as a lost race, never overwrite it.
            return null;
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// One call of <c>{schema}.session_commit</c>: an <c>UPDATE … WHERE version = expected</c> as before when no other
    /// request committed in between; otherwise the row is locked for that statement and the changes are applied to its
    /// data there, so concurrent commits queue on the row lock instead of failing.
    /// </remarks>
    /// <exception cref="PgSessionException">The regenerated key hash already names another live session (random keys never do).</exception>
    public async ValueTask<PgSessionCommitResult> CommitAsync(PgSessionUpdate update, PgSessionChanges changes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(update);
        ArgumentNullException.ThrowIfNull(changes);
        var keys = new byte[changes.Items.Count][];
        var values = new byte[]?[changes.Items.Count];
        for (var i = 0; i < keys.Length; i++)
        {
            keys[i] = Encoding.UTF8.GetBytes(changes.Items[i].Key);
            values[i] = changes.Items[i].Value;
        }

        PgSessionCommitResult result;
        try
        {
            result = await RunAsync(
                _sql.Commit,
                p =>
                {
                    BindUpdate(p, update);
                    p.Add(Bool(changes.Cleared));
                    p.Add(new NpgsqlParameter<byte[][]> { TypedValue = keys, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea });
                    p.Add(new NpgsqlParameter<byte[]?[]> { TypedValue = values, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea });
                    p.Add(Bool(changes.BindsUser));
                    p.Add(OptionalInterval(changes.IdleTimeout));
                    p.Add(OptionalInterval(changes.AbsoluteLifetime));
                    p.Add(new NpgsqlParameter<int> { TypedValue = changes.MaxDataBytes, NpgsqlDbType = NpgsqlDbType.Integer });
                    p.Add(Bool(_asynchronous));
                },
                async (command, ct) =>
                {
                    var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
                    await using var readerScope = reader.ConfigureAwait(false);
                    if (!await reader.ReadAsync(ct).ConfigureAwait(false))
                    {
                        throw new InvalidOperationException("session_commit returned no row.");
                    }

                    return reader.GetInt32(0) switch
                    {
                        0 => new PgSessionCommitResult { Status = PgSessionCommitStatus.Written, Version = reader.GetInt64(10) },
                        1 => new PgSessionCommitResult { Status = PgSessionCommitStatus.Merged, Version = reader.GetInt64(10), Session = ReadRecord(reader, 2) },
                        2 => new PgSessionCommitResult { Status = PgSessionCommitStatus.Ended },
                        3 => new PgSessionCommitResult { Status = PgSessionCommitStatus.TooLarge, DataBytes = reader.GetInt32(1) },
                        var status => throw new InvalidOperationException($"session_commit returned the unknown status {status}."),
                    };
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            throw new PgSessionException("The regenerated session key collides with another live session; nothing was written.", ex);
        }

        if (_replicas is not null && result.Status is PgSessionCommitStatus.Written or PgSessionCommitStatus.Merged)
        {
            _replicas.Wrote(ReplicaKey(update.KeyHash));
            _replicas.Wrote(ReplicaKey(update.NewKeyHash));
        }

        return result;
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<PgSessionInfo>> ListAsync(string tenantId, string userId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        // A user's sessions span keys: under read-your-writes a standby answers once it has every write of this instance.
        if (_replicas?.Choose(null) is { } replica)
        {
            try
            {
                var sessions = await ListOnAsync(replica, tenantId, userId, now, cancellationToken).ConfigureAwait(false);
                _replicas.Answered(replica);
                return sessions;
            }
            catch (NpgsqlException) when (!cancellationToken.IsCancellationRequested)
            {
            }
        }

        _replicas?.Answered(null);

        try
        {
            return await ListOnAsync(_dataSource, tenantId, userId, now, cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException ex) when (Translate(ex) is { } schemaError)
        {
            throw schemaError;
        }
    }

    private async ValueTask<IReadOnlyList<PgSessionInfo>> ListOnAsync(NpgsqlDataSource dataSource, string tenantId, string userId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        var command = new NpgsqlCommand(_sql.List, connection);
        await using var commandScope = command.ConfigureAwait(false);
        command.Parameters.Add(Text(tenantId));
        command.Parameters.Add(Text(userId));
        command.Parameters.Add(Time(now));
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        var sessions = new List<PgSessionInfo>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            sessions.Add(ReadInfo(reader));
        }

        return sessions;
    }

    /// <inheritdoc />
    public async ValueTask<bool> RevokeAsync(string tenantId, Guid sessionId, CancellationToken cancellationToken)
    {
        var revoked = await ExecuteAsync(_sql.Revoke, p =>
        {
            p.Add(Text(tenantId));
            p.Add(new NpgsqlParameter<Guid> { TypedValue = sessionId, NpgsqlDbType = NpgsqlDbType.Uuid });
        }, cancellationToken).ConfigureAwait(false) > 0;

        // Revoked by id, not by key: every later load of this instance waits for the replicas to have replayed it.
        _replicas?.WroteAny();
        return revoked;
    }

    /// <inheritdoc />
    public async ValueTask<int> RevokeAllAsync(string tenantId, string userId, Guid? exceptSessionId, CancellationToken cancellationToken)
    {
        var revoked = await ExecuteAsync(_sql.RevokeAll, p =>
        {
            p.Add(Text(tenantId));
            p.Add(Text(userId));
            p.Add(new NpgsqlParameter { Value = exceptSessionId is { } id ? id : DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        }, cancellationToken).ConfigureAwait(false);
        _replicas?.WroteAny();
        return revoked;
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<PgSessionTenantStats>> GetStatsAsync(string? tenantId, DateTimeOffset now, CancellationToken cancellationToken) =>
        await RunAsync(
            $"""
            SELECT tenant_id,
                   count(*) FILTER (WHERE expires_at > $2),
                   count(*) FILTER (WHERE expires_at <= $2),
                   count(*) FILTER (WHERE expires_at > $2 AND user_id IS NOT NULL),
                   count(DISTINCT user_id) FILTER (WHERE expires_at > $2),
                   COALESCE(sum(octet_length(data)), 0)::bigint
            FROM {PgSqlIdentifier.Quote(_schemaName)}.session
            WHERE $1::text IS NULL OR tenant_id = $1
            GROUP BY tenant_id
            ORDER BY 2 DESC, 1
            """,
            p =>
            {
                p.Add(Text(tenantId));
                p.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = now, NpgsqlDbType = NpgsqlDbType.TimestampTz });
            },
            async (command, ct) =>
            {
                var stats = new List<PgSessionTenantStats>();
                var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
                await using var readerScope = reader.ConfigureAwait(false);
                while (await reader.ReadAsync(ct).ConfigureAwait(false))
                {
                    stats.Add(new PgSessionTenantStats(reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4), reader.GetInt64(5)));
                }

                return (IReadOnlyList<PgSessionTenantStats>)stats;
            },
            cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    public async ValueTask PingAsync(CancellationToken cancellationToken) =>
        await ExecuteAsync(_sql.Ping, static _ => { }, cancellationToken).ConfigureAwait(false);

    private static string ReplicaKey(byte[] keyHash) => Convert.ToBase64String(keyHash);

    // The session when the standby has it with no touch due; null when the primary must load it (a miss, a due
    // touch, or a standby that failed or conflicted with recovery).
#pragma warning disable VSTHRD103 // One path for both: with async false it does synchronous I/O only.
    private async ValueTask<PgSessionRecord?> ReplicaLoadAsync(NpgsqlDataSource replica, PgSessionLoadRequest request, bool async, CancellationToken cancellationToken)
    {
        try
        {
            var connection = async ? await replica.OpenConnectionAsync(cancellationToken).ConfigureAwait(false) : replica.OpenConnection();
            await using var connectionScope = connection.ConfigureAwait(false);
            var command = LoadCommand(connection, request, _sql.ReplicaLoad);
            await using var commandScope = command.ConfigureAwait(false);
            var reader = async ? await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false) : command.ExecuteReader();
            await using var readerScope = reader.ConfigureAwait(false);
            return (async ? await reader.ReadAsync(cancellationToken).ConfigureAwait(false) : reader.Read()) && !reader.GetBoolean(12)
                ? ReadRecord(reader)
                : null;
        }
        catch (NpgsqlException) when (!cancellationToken.IsCancellationRequested)
        {
            return null;
        }
    }
#pragma warning restore VSTHRD103

    private NpgsqlCommand LoadCommand(NpgsqlConnection connection, PgSessionLoadRequest request, string? sql = null)
    {
        var command = new NpgsqlCommand(sql ?? _sql.Load, connection);
        command.Parameters.Add(Bytes(request.KeyHash));
        command.Parameters.Add(Text(request.TenantId));
        command.Parameters.Add(Time(request.Now));
        command.Parameters.Add(Interval(request.TouchInterval));
        return command;
    }

    private static PgSessionInfo ReadInfo(NpgsqlDataReader reader) => new(
        reader.GetGuid(0),
        reader.GetString(1),
        reader.GetFieldValue<DateTimeOffset>(2),
        reader.GetFieldValue<DateTimeOffset>(3),
        reader.GetFieldValue<DateTimeOffset>(4),
        reader.GetFieldValue<DateTimeOffset>(5),
        reader.IsDBNull(6) ? null : reader.GetString(6),
        reader.IsDBNull(7) ? null : reader.GetString(7));

    // The session's columns (PgSessionsSql.Columns) from ordinal `first` on.
    private static PgSessionRecord ReadRecord(NpgsqlDataReader reader, int first = 0) => new()
    {
        KeyHash = reader.GetFieldValue<byte[]>(first),
        SessionId = reader.GetGuid(first + 1),
        TenantId = reader.GetString(first + 2),
        UserId = reader.IsDBNull(first + 3) ? null : reader.GetString(first + 3),
        CreatedAt = reader.GetFieldValue<DateTimeOffset>(first + 4),
        LastSeenAt = reader.GetFieldValue<DateTimeOffset>(first + 5),
        IdleTimeout = reader.GetFieldValue<TimeSpan>(first + 6),
        AbsoluteExpiresAt = reader.GetFieldValue<DateTimeOffset>(first + 7),
        Version = reader.GetInt64(first + 8),
        Data = reader.GetFieldValue<byte[]>(first + 9),
        ClientIp = reader.IsDBNull(first + 10) ? null : reader.GetString(first + 10),
        UserAgent = reader.IsDBNull(first + 11) ? null : reader.GetString(first + 11),
    };

    private ValueTask<int> ExecuteAsync(string sql, Action<NpgsqlParameterCollection> bind, CancellationToken cancellationToken) =>
        RunAsync(sql, bind, (command, ct) => command.ExecuteNonQueryAsync(ct), cancellationToken);

    // One prepared statement on a pooled connection; a missing schema becomes an error naming the script.
    private async ValueTask<T> RunAsync<T>(string sql, Action<NpgsqlParameterCollection> bind, Func<NpgsqlCommand, CancellationToken, Task<T>> execute, CancellationToken cancellationToken)
    {
        try
        {
            var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using var connectionScope = connection.ConfigureAwait(false);
            var command = new NpgsqlCommand(sql, connection);
            await using var commandScope = command.ConfigureAwait(false);
            bind(command.Parameters);
            if (PgPooler.PreparesStatements(_pooler))
            {
                await command.PrepareAsync(cancellationToken).ConfigureAwait(false);
            }

            return await execute(command, cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException ex) when (Translate(ex) is { } schemaError)
        {
            throw schemaError;
        }
    }

    private Exception? Translate(PostgresException ex) =>
        (Exception?)PgPooler.TryTranslate(ex, _pooler, _schemaName) ?? PgSchemaErrors.TryTranslate(ex, SchemaModule, _schemaName);

    // $1–$10 of both writes: the session as this request would store it.
    private static void BindUpdate(NpgsqlParameterCollection p, PgSessionUpdate update)
    {
        p.Add(Bytes(update.KeyHash));
        p.Add(Bytes(update.NewKeyHash));
        p.Add(Text(update.TenantId));
        p.Add(new NpgsqlParameter<long> { TypedValue = update.ExpectedVersion, NpgsqlDbType = NpgsqlDbType.Bigint });
        p.Add(Bytes(update.Data));
        p.Add(Text(update.UserId));
        p.Add(Interval(update.IdleTimeout));
        p.Add(Time(update.AbsoluteExpiresAt));
        p.Add(Time(update.Now));
        p.Add(Interval(update.TouchInterval));
    }

    private static NpgsqlParameter<byte[]> Bytes(byte[] value) => new() { TypedValue = value, NpgsqlDbType = NpgsqlDbType.Bytea };

    private static NpgsqlParameter Text(string? value) => new() { Value = (object?)value ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text };

    private static NpgsqlParameter<DateTimeOffset> Time(DateTimeOffset value) => new() { TypedValue = value, NpgsqlDbType = NpgsqlDbType.TimestampTz };

    private static NpgsqlParameter<TimeSpan> Interval(TimeSpan value) => new() { TypedValue = value, NpgsqlDbType = NpgsqlDbType.Interval };

    private static NpgsqlParameter OptionalInterval(TimeSpan? value) => new() { Value = value is { } span ? span : DBNull.Value, NpgsqlDbType = NpgsqlDbType.Interval };

    private static NpgsqlParameter<bool> Bool(bool value) => new() { TypedValue = value, NpgsqlDbType = NpgsqlDbType.Boolean };
}
