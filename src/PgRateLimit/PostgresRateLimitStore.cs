using Npgsql;
using NpgsqlTypes;
using PgFirst.Core;

namespace PgRateLimit;

/// <summary>
/// The PostgreSQL store of PgRateLimit: each decision is one prepared call of <c>{schema}.ratelimit_acquire</c>, one
/// atomic <c>INSERT … ON CONFLICT DO UPDATE</c> on the database clock.
/// </summary>
public sealed class PostgresRateLimitStore : IPgRateLimitStore
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly string _schemaName;
    private readonly string _sql;
    private readonly string _pingSql;
    private readonly string _batchSql;
    private readonly PgPoolerMode _pooler;

    /// <summary>
    /// Initializes a new instance of the <see cref="PostgresRateLimitStore"/> class for a direct connection
    /// (<see cref="PgPoolerMode.None"/>). Does no I/O.
    /// </summary>
    /// <param name="dataSource">The data source; not disposed by the store.</param>
    /// <param name="schemaName">The PgFirst schema.</param>
    public PostgresRateLimitStore(NpgsqlDataSource dataSource, string schemaName)
        : this(dataSource, new PgFirstOptions { SchemaName = schemaName })
    {
    }

    /// <summary>
    /// Initializes a new instance of the <see cref="PostgresRateLimitStore"/> class with the schema and pooler mode of
    /// <paramref name="options"/>. Does no I/O.
    /// </summary>
    /// <param name="dataSource">The data source; not disposed by the store.</param>
    /// <param name="options">The shared options: <see cref="PgFirstOptions.SchemaName"/> and <see cref="PgFirstOptions.Pooler"/>.</param>
    /// <exception cref="PgFirstPoolerException">The data source auto-prepares statements behind a transaction pooler.</exception>
    public PostgresRateLimitStore(NpgsqlDataSource dataSource, PgFirstOptions options)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(options);
        var schemaName = options.SchemaName;
        ArgumentException.ThrowIfNullOrEmpty(schemaName);
        PgPooler.EnsureCompatible(dataSource, options.Pooler);
        _dataSource = dataSource;
        _schemaName = schemaName;
        _pooler = options.Pooler;
        var schema = PgSqlIdentifier.Quote(schemaName);
        _sql = $"SELECT acquired, hits, retry_after FROM {schema}.ratelimit_acquire($1, $2, $3, $4, $5, $6)";
        _pingSql = $"SELECT NULL::integer FROM {schema}.rate_limit_counter LIMIT 0";
        _batchSql = $"SELECT acquired, hits, retry_after FROM {schema}.ratelimit_acquire_batch($1, $2, $3, $4, $5, $6)";
    }

    /// <summary>Gets the schema module (<c>sql/pgratelimit</c>) with an UNLOGGED table.</summary>
    public static PgSchemaModule SchemaModule { get; } = SchemaModuleFor(PgRateLimitDurability.Unlogged);

    /// <summary>Gets the maintenance task that deletes counters of ended windows.</summary>
    public static PgMaintenanceTask CleanupTask { get; } = new(SchemaModule, "ratelimit_delete_expired");

    /// <summary>
    /// Returns the schema module with the table durability rendered as chosen.
    /// </summary>
    /// <param name="durability">The durability of the counter table.</param>
    /// <returns>The module.</returns>
    public static PgSchemaModule SchemaModuleFor(PgRateLimitDurability durability) =>
        PgSchemaModule.FromAssembly("pgratelimit", typeof(PostgresRateLimitStore).Assembly).WithTokens(new Dictionary<string, string>
        {
            ["{ratelimit_persistence}"] = durability switch
            {
                PgRateLimitDurability.Unlogged => "UNLOGGED",
                PgRateLimitDurability.Logged => "",
                _ => throw new ArgumentOutOfRangeException(nameof(durability), durability, "Unknown durability."),
            },
        });

    /// <inheritdoc />
    public ValueTask<PgRateLimitDecision> AcquireAsync(PgRateLimitRequest request, CancellationToken cancellationToken) =>
        AcquireAsync(request, null, cancellationToken);

    /// <inheritdoc />
    /// <remarks><paramref name="connected"/> is called once the pooled connection is open, before the statement.</remarks>
    public ValueTask<PgRateLimitDecision> AcquireAsync(PgRateLimitRequest request, Action? connected, CancellationToken cancellationToken) =>
        DecideAsync(
            _sql,
            "ratelimit_acquire",
            connected,
            request,
            static (p, request) =>
            {
                p.Add(new NpgsqlParameter<string> { TypedValue = request.LimiterId, NpgsqlDbType = NpgsqlDbType.Text });
                p.Add(new NpgsqlParameter<string> { TypedValue = request.PartitionKey, NpgsqlDbType = NpgsqlDbType.Text });
                p.Add(new NpgsqlParameter<int> { TypedValue = request.Permits, NpgsqlDbType = NpgsqlDbType.Integer });
                p.Add(new NpgsqlParameter<int> { TypedValue = request.PermitLimit, NpgsqlDbType = NpgsqlDbType.Integer });
                p.Add(new NpgsqlParameter<TimeSpan> { TypedValue = request.Window, NpgsqlDbType = NpgsqlDbType.Interval });
                p.Add(new NpgsqlParameter<bool> { TypedValue = request.CountRejected, NpgsqlDbType = NpgsqlDbType.Boolean });
            },
            static async (reader, ct) =>
            {
                var count = await reader.IsDBNullAsync(1, ct).ConfigureAwait(false) ? 0 : reader.GetInt64(1);
                var remaining = await reader.GetFieldValueAsync<TimeSpan>(2, ct).ConfigureAwait(false);
                return new PgRateLimitDecision(reader.GetBoolean(0), count, remaining);
            },
            cancellationToken);

    /// <inheritdoc />
    /// <remarks>One prepared call of <c>{schema}.ratelimit_acquire_batch</c> (<c>sql/pgratelimit/002_ratelimit_acquire_batch.sql</c>).</remarks>
    public ValueTask<PgRateLimitBatchDecision> AcquireBatchAsync(PgRateLimitBatchRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request.Permits, nameof(request));
        var permits = new int[request.Permits.Count];
        for (var i = 0; i < permits.Length; i++)
        {
            permits[i] = request.Permits[i];
        }

        return DecideAsync(
            _batchSql,
            "ratelimit_acquire_batch",
            null,
            (request, permits),
            static (p, state) =>
            {
                var (request, permits) = state;
                p.Add(new NpgsqlParameter<string> { TypedValue = request.LimiterId, NpgsqlDbType = NpgsqlDbType.Text });
                p.Add(new NpgsqlParameter<string> { TypedValue = request.PartitionKey, NpgsqlDbType = NpgsqlDbType.Text });
                p.Add(new NpgsqlParameter<int[]> { TypedValue = permits, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Integer });
                p.Add(new NpgsqlParameter<int> { TypedValue = request.PermitLimit, NpgsqlDbType = NpgsqlDbType.Integer });
                p.Add(new NpgsqlParameter<TimeSpan> { TypedValue = request.Window, NpgsqlDbType = NpgsqlDbType.Interval });
                p.Add(new NpgsqlParameter<bool> { TypedValue = request.CountRejected, NpgsqlDbType = NpgsqlDbType.Boolean });
            },
            static async (reader, ct) =>
            {
                var acquired = await reader.GetFieldValueAsync<bool[]>(0, ct).ConfigureAwait(false);
                var remaining = await reader.GetFieldValueAsync<TimeSpan>(2, ct).ConfigureAwait(false);
                return new PgRateLimitBatchDecision(acquired, reader.GetInt64(1), remaining);
            },
            cancellationToken);
    }

    // One decision statement on a pooled connection, prepared unless behind a transaction pooler; one row read.
    private async ValueTask<T> DecideAsync<TState, T>(
        string sql,
        string function,
        Action? connected,
        TState state,
        Action<NpgsqlParameterCollection, TState> bind,
        Func<NpgsqlDataReader, CancellationToken, Task<T>> read,
        CancellationToken cancellationToken)
    {
        try
        {
            var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using var connectionScope = connection.ConfigureAwait(false);
            connected?.Invoke();
            var command = new NpgsqlCommand(sql, connection);
            await using var commandScope = command.ConfigureAwait(false);
            bind(command.Parameters, state);
            if (PgPooler.PreparesStatements(_pooler))
            {
                await command.PrepareAsync(cancellationToken).ConfigureAwait(false);
            }

            // No CommandBehavior.SingleRow: Npgsql sends it as a row-limited Execute, which costs more than it saves.
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using var readerScope = reader.ConfigureAwait(false);
            if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                throw new InvalidOperationException($"{function} returned no row.");
            }

            return await read(reader, cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException ex) when (Translate(ex) is { } error)
        {
            throw error;
        }
    }

    /// <inheritdoc />
    public async ValueTask<PgRateLimitCounter?> InspectAsync(string limiterId, string partitionKey, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(limiterId);
        ArgumentNullException.ThrowIfNull(partitionKey);
        var stored = PgRateLimitPartition.Normalize(partitionKey);
        try
        {
            var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using var connectionScope = connection.ConfigureAwait(false);
            var command = new NpgsqlCommand(
                $"""
                SELECT window_start, hits, expires_at, expires_at > clock_timestamp()
                FROM {PgSqlIdentifier.Quote(_schemaName)}.rate_limit_counter
                WHERE limiter_id = $1 AND partition_key = $2
                """,
                connection);
            await using var commandScope = command.ConfigureAwait(false);
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = limiterId, NpgsqlDbType = NpgsqlDbType.Text });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = stored, NpgsqlDbType = NpgsqlDbType.Text });
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using var readerScope = reader.ConfigureAwait(false);
            if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                return null;
            }

            return new PgRateLimitCounter(
                limiterId,
                partitionKey,
                await reader.GetFieldValueAsync<DateTimeOffset>(0, cancellationToken).ConfigureAwait(false),
                reader.GetInt64(1),
                await reader.GetFieldValueAsync<DateTimeOffset>(2, cancellationToken).ConfigureAwait(false),
                reader.GetBoolean(3));
        }
        catch (PostgresException ex) when (Translate(ex) is { } error)
        {
            throw error;
        }
    }

    /// <inheritdoc />
    public async ValueTask PingAsync(CancellationToken cancellationToken)
    {
        try
        {
            var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using var connectionScope = connection.ConfigureAwait(false);
            var command = new NpgsqlCommand(_pingSql, connection);
            await using var commandScope = command.ConfigureAwait(false);
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException ex) when (Translate(ex) is { } error)
        {
            throw error;
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Opens at most the data source's <c>Max Pool Size</c> connections, all at once (so they are distinct physical
    /// connections), runs the ping on each and, unless behind a transaction pooler, prepares the decision's statement
    /// there; then returns them to the pool, idle and ready.
    /// </remarks>
    public async ValueTask WarmUpAsync(int connections, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(connections);
        var count = Math.Min(connections, new NpgsqlConnectionStringBuilder(_dataSource.ConnectionString).MaxPoolSize);
        var opened = new List<NpgsqlConnection>(count);
        try
        {
            var opening = Enumerable.Range(0, Math.Max(1, count)).Select(_ => _dataSource.OpenConnectionAsync(cancellationToken).AsTask()).ToArray();
            try
            {
                await Task.WhenAll(opening).ConfigureAwait(false);
            }
            finally
            {
                foreach (var task in opening)
                {
                    if (task.IsCompletedSuccessfully)
                    {
                        opened.Add(await task.ConfigureAwait(false));
                    }
                }
            }

            foreach (var connection in opened)
            {
                var ping = new NpgsqlCommand(_pingSql, connection);
                await using (ping.ConfigureAwait(false))
                {
                    await ping.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                }

                if (PgPooler.PreparesStatements(_pooler))
                {
                    var acquire = new NpgsqlCommand(_sql, connection);
                    await using (acquire.ConfigureAwait(false))
                    {
                        acquire.Parameters.Add(new NpgsqlParameter<string> { TypedValue = string.Empty, NpgsqlDbType = NpgsqlDbType.Text });
                        acquire.Parameters.Add(new NpgsqlParameter<string> { TypedValue = string.Empty, NpgsqlDbType = NpgsqlDbType.Text });
                        acquire.Parameters.Add(new NpgsqlParameter<int> { TypedValue = 0, NpgsqlDbType = NpgsqlDbType.Integer });
                        acquire.Parameters.Add(new NpgsqlParameter<int> { TypedValue = 0, NpgsqlDbType = NpgsqlDbType.Integer });
                        acquire.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = TimeSpan.Zero, NpgsqlDbType = NpgsqlDbType.Interval });
                        acquire.Parameters.Add(new NpgsqlParameter<bool> { TypedValue = false, NpgsqlDbType = NpgsqlDbType.Boolean });
                        await acquire.PrepareAsync(cancellationToken).ConfigureAwait(false);
                    }
                }
            }
        }
        catch (PostgresException ex) when (Translate(ex) is { } error)
        {
            throw error;
        }
        finally
        {
            foreach (var connection in opened)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private Exception? Translate(PostgresException ex) =>
        (Exception?)PgPooler.TryTranslate(ex, _pooler, _schemaName) ?? PgSchemaErrors.TryTranslate(ex, SchemaModule, _schemaName);
}
