using System.Buffers;
using System.Data;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using NpgsqlTypes;
using PgCache.Internal;
using PgFirst.Core;

namespace PgCache;

// IDistributedCache has synchronous members by contract. Like Npgsql, one code path serves both: with async: false it
// does synchronous I/O only and its ValueTask is already complete when GetAwaiter().GetResult() reads it. In the async
// path, GetFieldValue reads a row that ReadAsync has already buffered.
#pragma warning disable VSTHRD002, VSTHRD103, CA2012

/// <summary>
/// The PostgreSQL <see cref="IDistributedCache"/> and <see cref="IBufferDistributedCache"/> of PgFirst, with tenants,
/// batches and tags (<see cref="IPgDistributedCache"/>) and typed JSON (<see cref="PgCacheJsonExtensions"/>).
/// </summary>
/// <remarks>
/// <para>
/// Every read is one round trip of one prepared statement. An entry without sliding expiration is never written on
/// read; a sliding one is extended in the same statement, at most once per refresh step (see
/// <see cref="PgCacheOptions.SlidingRefreshGranularity"/>) and never beyond its absolute expiration. Every write is
/// one upsert. Expiry is computed from the injected <see cref="TimeProvider"/> only.
/// </para>
/// <para>
/// Failure policy: store errors throw <see cref="PgCacheException"/> naming the operation and the reason (a missing
/// table throws <see cref="PgFirstSchemaException"/> naming the script to apply), unless
/// <see cref="PgCacheOptions.FailSafe"/> turns transient errors on reads into misses. The constructor does no I/O.
/// </para>
/// </remarks>
public sealed partial class PgDistributedCache : IPgDistributedCache, IDisposable
{
    private readonly Shared _shared;
    private readonly string? _tenantId;

    /// <summary>
    /// Initializes a new instance of the <see cref="PgDistributedCache"/> class. Usually resolved from DI after
    /// <c>services.AddPgCache()</c>.
    /// </summary>
    /// <param name="dataSource">The data source; not disposed by the cache.</param>
    /// <param name="pgFirstOptions">The shared options (schema, pooler mode).</param>
    /// <param name="options">The cache options.</param>
    /// <param name="tenantContext">The ambient tenant.</param>
    /// <param name="timeProvider">The single clock of every expiry.</param>
    /// <param name="meterFactory">The meter factory, or <see langword="null"/>.</param>
    /// <param name="logger">The logger, or <see langword="null"/>.</param>
    /// <param name="replicas">
    /// The read replicas gets may use under <see cref="PgCacheOptions.ReadConsistency"/>, or <see langword="null"/>
    /// (every read goes to <paramref name="dataSource"/>).
    /// </param>
    /// <exception cref="ArgumentException">Replica reads were asked for on an UNLOGGED table.</exception>
    public PgDistributedCache(
        NpgsqlDataSource dataSource,
        PgFirstOptions pgFirstOptions,
        PgCacheOptions options,
        ITenantContext tenantContext,
        TimeProvider timeProvider,
        IMeterFactory? meterFactory = null,
        ILogger<PgDistributedCache>? logger = null,
        PgReplicaRouter? replicas = null)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(pgFirstOptions);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(tenantContext);
        ArgumentNullException.ThrowIfNull(timeProvider);
        PgPooler.EnsureCompatible(dataSource, pgFirstOptions.Pooler);
        if (options.ReadConsistency != PgReadConsistency.Strong && options.Durability != PgCacheDurability.Logged)
        {
            throw new ArgumentException("Replica reads need PgCache:Durability Logged: an UNLOGGED table cannot be read on a standby.", nameof(options));
        }

        _shared = new Shared(dataSource, pgFirstOptions.SchemaName, pgFirstOptions.Pooler, options, tenantContext, timeProvider, meterFactory, logger)
        {
            Replicas = PgReplicaReads.For(replicas, ModuleName, options.ReadConsistency, options.MaxReplicaLag),
        };
    }

    private PgDistributedCache(Shared shared, string tenantId)
    {
        _shared = shared;
        _tenantId = tenantId;
    }

    /// <summary>
    /// Gets the schema module of the cache (<c>sql/pgcache</c>) with an UNLOGGED table, for the installer and the
    /// maintenance runner. See <see cref="SchemaModuleFor(PgCacheDurability)"/>.
    /// </summary>
    public static PgSchemaModule SchemaModule { get; } = SchemaModuleFor(PgCacheDurability.Unlogged);

    /// <summary>Gets the maintenance task that deletes expired entries (<c>{schema}.cache_delete_expired</c>).</summary>
    public static PgMaintenanceTask CleanupTask { get; } = new(SchemaModule, "cache_delete_expired");

    /// <summary>
    /// Returns the schema module of the cache with the table durability rendered as chosen.
    /// </summary>
    /// <param name="durability">The durability of the cache table.</param>
    /// <returns>The module.</returns>
    public static PgSchemaModule SchemaModuleFor(PgCacheDurability durability) =>
        PgSchemaModule.FromAssembly("pgcache", typeof(PgDistributedCache).Assembly).WithTokens(new Dictionary<string, string>
        {
            ["{cache_persistence}"] = durability switch
            {
                PgCacheDurability.Unlogged => "UNLOGGED",
                PgCacheDurability.Logged => "",
                _ => throw new ArgumentOutOfRangeException(nameof(durability), durability, "Unknown durability."),
            },
        });

    /// <inheritdoc />
    public string TenantId => _tenantId ?? _shared.AmbientTenant();

    /// <inheritdoc />
    public IPgDistributedCache ForTenant(string tenantId)
    {
        PgTenantId.Validate(tenantId, nameof(tenantId));
        return new PgDistributedCache(_shared, tenantId);
    }

    /// <inheritdoc />
    public byte[]? Get(string key)
    {
        CacheArguments.ValidateKey(key);
        return GetCoreAsync(key, async: false, CancellationToken.None).GetAwaiter().GetResult();
    }

    /// <inheritdoc />
    public Task<byte[]?> GetAsync(string key, CancellationToken token = default)
    {
        CacheArguments.ValidateKey(key);
        return GetCoreAsync(key, async: true, token).AsTask();
    }

    /// <inheritdoc />
    public bool TryGet(string key, IBufferWriter<byte> destination)
    {
        CacheArguments.ValidateKey(key);
        ArgumentNullException.ThrowIfNull(destination);
        return TryGetCoreAsync(key, destination, async: false, CancellationToken.None).GetAwaiter().GetResult();
    }

    /// <inheritdoc />
    public ValueTask<bool> TryGetAsync(string key, IBufferWriter<byte> destination, CancellationToken token = default)
    {
        CacheArguments.ValidateKey(key);
        ArgumentNullException.ThrowIfNull(destination);
        return TryGetCoreAsync(key, destination, async: true, token);
    }

    /// <inheritdoc />
    public void Set(string key, byte[] value, DistributedCacheEntryOptions options)
    {
        CacheArguments.ValidateValue(value);
        SetCoreAsync(key, new ReadOnlySequence<byte>(value), options, async: false, CancellationToken.None).GetAwaiter().GetResult();
    }

    /// <inheritdoc />
    public Task SetAsync(string key, byte[] value, DistributedCacheEntryOptions options, CancellationToken token = default)
    {
        CacheArguments.ValidateValue(value);
        return SetCoreAsync(key, new ReadOnlySequence<byte>(value), options, async: true, token).AsTask();
    }

    /// <inheritdoc />
    public void Set(string key, ReadOnlySequence<byte> value, DistributedCacheEntryOptions options) =>
        SetCoreAsync(key, value, options, async: false, CancellationToken.None).GetAwaiter().GetResult();

    /// <inheritdoc />
    public ValueTask SetAsync(string key, ReadOnlySequence<byte> value, DistributedCacheEntryOptions options, CancellationToken token = default) =>
        SetCoreAsync(key, value, options, async: true, token);

    /// <inheritdoc />
    public void Refresh(string key)
    {
        CacheArguments.ValidateKey(key);
        ExecuteAsync("refresh", false, RefreshBody, key, async: false, CancellationToken.None).GetAwaiter().GetResult();
        Wrote(key);
    }

    /// <inheritdoc />
    public Task RefreshAsync(string key, CancellationToken token = default)
    {
        CacheArguments.ValidateKey(key);
        return WriteThenRecordAsync(ExecuteAsync("refresh", false, RefreshBody, key, async: true, token), key);
    }

    /// <inheritdoc />
    public void Remove(string key)
    {
        CacheArguments.ValidateKey(key);
        ExecuteAsync("remove", false, RemoveBody, key, async: false, CancellationToken.None).GetAwaiter().GetResult();
        Wrote(key);
    }

    /// <inheritdoc />
    public Task RemoveAsync(string key, CancellationToken token = default)
    {
        CacheArguments.ValidateKey(key);
        return WriteThenRecordAsync(ExecuteAsync("remove", false, RemoveBody, key, async: true, token), key);
    }

    /// <inheritdoc />
    public async Task<IReadOnlyDictionary<string, byte[]>> GetManyAsync(IEnumerable<string> keys, CancellationToken cancellationToken = default)
    {
        var unique = CacheArguments.ValidateKeys(keys);
        if (unique.Length == 0)
        {
            return new Dictionary<string, byte[]>(StringComparer.Ordinal);
        }

        if (ChooseReplica(unique.Length == 1 ? unique[0] : null) is { } replica
            && await ReplicaGetManyAsync(replica, unique, cancellationToken).ConfigureAwait(false) is { } fromReplica)
        {
            return fromReplica;
        }

        var found = await ExecuteAsync("get_many", true, GetManyBody, unique, async: true, cancellationToken).ConfigureAwait(false);
        _shared.Replicas?.Answered(null);
        if (found is not null)
        {
            SlidOnThePrimary(found.Keys);
        }

        return found ?? new Dictionary<string, byte[]>(StringComparer.Ordinal);
    }

    /// <inheritdoc />
    public async Task SetManyAsync(IEnumerable<KeyValuePair<string, byte[]>> entries, DistributedCacheEntryOptions options, CancellationToken cancellationToken = default)
    {
        var (keys, values) = CacheArguments.ValidateEntries(entries);
        ArgumentNullException.ThrowIfNull(options);
        var tags = CacheArguments.ValidateTags(options);
        var expiry = CacheExpiry.Compute(options, _shared.Time.GetUtcNow());
        if (keys.Length == 0)
        {
            return;
        }

        await ExecuteAsync("set_many", false, SetManyBody, new SetManyArgs(keys, values, expiry, tags), async: true, cancellationToken).ConfigureAwait(false);
        Wrote(keys);
        _shared.Metrics.Written(values.Sum(v => (long)v.Length));
    }

    /// <inheritdoc />
    public async Task<long> RemoveManyAsync(IEnumerable<string> keys, CancellationToken cancellationToken = default)
    {
        var unique = CacheArguments.ValidateKeys(keys);
        if (unique.Length == 0)
        {
            return 0;
        }

        var removed = await ExecuteAsync("remove_many", false, RemoveManyBody, unique, async: true, cancellationToken).ConfigureAwait(false);
        Wrote(unique);
        return removed;
    }

    /// <inheritdoc />
    public async Task<long> RemoveByTagAsync(string tag, CancellationToken cancellationToken = default)
    {
        CacheArguments.ValidateTag(tag);
        var removed = await ExecuteAsync("remove_by_tag", false, RemoveByTagBody, tag, async: true, cancellationToken).ConfigureAwait(false);
        _shared.Replicas?.WroteAny();
        return removed;
    }

    /// <inheritdoc />
    public async Task<long> RemoveTenantAsync(CancellationToken cancellationToken = default)
    {
        var removed = await ExecuteAsync("remove_tenant", false, RemoveTenantBody, 0, async: true, cancellationToken).ConfigureAwait(false);
        _shared.Replicas?.WroteAny();
        return removed;
    }

    /// <summary>Releases the cache's own meter when it was created without a meter factory.</summary>
    public void Dispose()
    {
        if (_tenantId is null)
        {
            _shared.Metrics.Dispose();
        }
    }

    private async ValueTask<byte[]?> GetCoreAsync(string key, bool async, CancellationToken cancellationToken)
    {
        if (ChooseReplica(key) is { } replica)
        {
            var (answered, hit) = await ReplicaGetAsync(replica, key, async, cancellationToken).ConfigureAwait(false);
            if (answered)
            {
                return hit;
            }
        }

        var value = await ExecuteAsync("get", true, GetBody, key, async, cancellationToken).ConfigureAwait(false);
        _shared.Replicas?.Answered(null);
        if (value is not null)
        {
            SlidOnThePrimary(key);
            _shared.Metrics.Read(value.Length);
        }

        return value;
    }

    private async ValueTask<bool> TryGetCoreAsync(string key, IBufferWriter<byte> destination, bool async, CancellationToken cancellationToken)
    {
        // A replica read copies through a byte[]: the allocation-free path is the primary's.
        if (ChooseReplica(key) is { } replica)
        {
            var (answered, hit) = await ReplicaGetAsync(replica, key, async, cancellationToken).ConfigureAwait(false);
            if (answered)
            {
                if (hit is not null)
                {
                    destination.Write(hit);
                }

                return hit is not null;
            }
        }

        var length = await ExecuteAsync("get", true, (c, k, a, ct) => TryGetBody(c, k, destination, a, ct), key, async, cancellationToken).ConfigureAwait(false);
        _shared.Replicas?.Answered(null);
        if (length is not { } read)
        {
            return false;
        }

        SlidOnThePrimary(key);
        _shared.Metrics.Read(read);
        return true;
    }

    private async ValueTask SetCoreAsync(string key, ReadOnlySequence<byte> value, DistributedCacheEntryOptions options, bool async, CancellationToken cancellationToken)
    {
        CacheArguments.ValidateKey(key);
        ArgumentNullException.ThrowIfNull(options);
        var tags = CacheArguments.ValidateTags(options);
        var expiry = CacheExpiry.Compute(options, _shared.Time.GetUtcNow());

        byte[]? rented = null;
        ReadOnlyMemory<byte> memory;
        if (value.IsSingleSegment)
        {
            memory = value.First;
        }
        else
        {
            var length = checked((int)value.Length);
            rented = ArrayPool<byte>.Shared.Rent(length);
            value.CopyTo(rented);
            memory = rented.AsMemory(0, length);
        }

        try
        {
            await ExecuteAsync("set", false, SetBody, new SetArgs(key, memory, expiry, tags), async, cancellationToken).ConfigureAwait(false);
            Wrote(key);
            _shared.Metrics.Written(memory.Length);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    // Runs one operation on a pooled connection, with the timeout, metrics, schema-error translation and fail-safe
    // policy in one place. Synchronous callers pass async: false and get an already completed task.
    private async ValueTask<TResult?> ExecuteAsync<TArg, TResult>(
        string operation,
        bool isRead,
        Func<NpgsqlConnection, TArg, bool, CancellationToken, ValueTask<TResult>> body,
        TArg argument,
        bool async,
        CancellationToken cancellationToken)
    {
        var started = PgCacheMetrics.Start();
        try
        {
            var connection = async
                ? await _shared.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false)
                : _shared.DataSource.OpenConnection();
            await using var connectionScope = connection.ConfigureAwait(false);
            var result = await body(connection, argument, async, cancellationToken).ConfigureAwait(false);
            _shared.Metrics.Record(operation, ResultName(isRead, result), started);
            return result;
        }
        catch (PostgresException ex) when (PgPooler.TryTranslate(ex, _shared.Pooler, _shared.SchemaName) is { } poolerError)
        {
            _shared.Metrics.Record(operation, "error", started);
            LogOperationFailed(_shared.Logger, poolerError, operation, poolerError.Message);
            throw poolerError;
        }
        catch (PostgresException ex) when (PgSchemaErrors.TryTranslate(ex, SchemaModule, _shared.SchemaName) is { } schemaError)
        {
            _shared.Metrics.Record(operation, "error", started);
            LogOperationFailed(_shared.Logger, schemaError, operation, schemaError.Message);
            throw schemaError;
        }
        catch (NpgsqlException ex) when (!cancellationToken.IsCancellationRequested)
        {
            if (isRead && _shared.Options.FailSafe && ex.IsTransient)
            {
                _shared.Metrics.Record(operation, "failsafe_miss", started);
                LogFailSafeMiss(_shared.Logger, ex, operation, ex.Message);
                return default;
            }

            _shared.Metrics.Record(operation, "error", started);
            var reason = ex is PostgresException pg ? $"{pg.SqlState}: {pg.MessageText}" : ex.Message;
            var error = new PgCacheException($"PgCache {operation} failed: {reason}", ex) { Operation = operation };
            LogOperationFailed(_shared.Logger, ex, operation, reason);
            throw error;
        }
    }

    private static string ResultName<TResult>(bool isRead, TResult result) => !isRead
        ? "ok"
        : result switch
        {
            null => "miss",
            IReadOnlyDictionary<string, byte[]> many when many.Count == 0 => "miss",
            _ => "hit",
        };

    private NpgsqlCommand Command(NpgsqlConnection connection, string sql, string tenantId)
    {
        var command = new NpgsqlCommand(sql, connection) { CommandTimeout = _shared.CommandTimeoutSeconds };
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = tenantId, NpgsqlDbType = NpgsqlDbType.Text });
        return command;
    }

    private void AddReadParameters(NpgsqlCommand command)
    {
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = _shared.Time.GetUtcNow().ToUniversalTime(), NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = _shared.Options.SlidingRefreshGranularity, NpgsqlDbType = NpgsqlDbType.Interval });
    }

    private static void AddWriteParameters(NpgsqlCommand command, CacheExpiry expiry, string[]? tags)
    {
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)expiry.ExpiresAt ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter { Value = expiry.Sliding is { } s ? s : DBNull.Value, NpgsqlDbType = NpgsqlDbType.Interval });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)expiry.Absolute ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)tags ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
    }

    private async ValueTask PrepareAsync(NpgsqlCommand command, bool async, CancellationToken cancellationToken)
    {
        // Prepared once per physical connection; later calls with the same SQL reuse it without a round trip. Behind a
        // transaction pooler a name would outlive the server connection it was prepared on, so nothing is prepared.
        if (!_shared.Prepares)
        {
            return;
        }

        if (async)
        {
            await command.PrepareAsync(cancellationToken).ConfigureAwait(false);
        }
        else
        {
            command.Prepare();
        }
    }

    private async ValueTask<int> NonQueryAsync(NpgsqlCommand command, bool async, CancellationToken cancellationToken)
    {
        await PrepareAsync(command, async, cancellationToken).ConfigureAwait(false);
        return async ? await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) : command.ExecuteNonQuery();
    }

    private async ValueTask<byte[]?> GetBody(NpgsqlConnection connection, string key, bool async, CancellationToken cancellationToken)
    {
        var command = Command(connection, _shared.Sql.Get, TenantId);
        await using var commandScope = command.ConfigureAwait(false);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key, NpgsqlDbType = NpgsqlDbType.Text });
        AddReadParameters(command);
        await PrepareAsync(command, async, cancellationToken).ConfigureAwait(false);

        // No CommandBehavior.SingleRow: Npgsql sends it as a row-limited Execute, measured ~10 % slower per get here,
        // and cache_get returns one row anyway.
        var reader = async
            ? await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false)
            : command.ExecuteReader();
        await using var readerScope = reader.ConfigureAwait(false);
        var found = async ? await reader.ReadAsync(cancellationToken).ConfigureAwait(false) : reader.Read();
        return found && !reader.IsDBNull(0) ? reader.GetFieldValue<byte[]>(0) : null;
    }

    // Streams the value straight into the caller's buffer: no intermediate byte[]. Returns the length, or null on a miss.
    private async ValueTask<int?> TryGetBody(NpgsqlConnection connection, string key, IBufferWriter<byte> destination, bool async, CancellationToken cancellationToken)
    {
        var command = Command(connection, _shared.Sql.Get, TenantId);
        await using var commandScope = command.ConfigureAwait(false);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key, NpgsqlDbType = NpgsqlDbType.Text });
        AddReadParameters(command);
        await PrepareAsync(command, async, cancellationToken).ConfigureAwait(false);
        var behavior = CommandBehavior.SequentialAccess;
        var reader = async
            ? await command.ExecuteReaderAsync(behavior, cancellationToken).ConfigureAwait(false)
            : command.ExecuteReader(behavior);
        await using var readerScope = reader.ConfigureAwait(false);
        if (!(async ? await reader.ReadAsync(cancellationToken).ConfigureAwait(false) : reader.Read())
            || (async ? await reader.IsDBNullAsync(0, cancellationToken).ConfigureAwait(false) : reader.IsDBNull(0)))
        {
            return null;
        }

        var stream = async ? await reader.GetStreamAsync(0, cancellationToken).ConfigureAwait(false) : reader.GetStream(0);
        await using var streamScope = stream.ConfigureAwait(false);
        var total = checked((int)stream.Length);
        var remaining = total;
        while (remaining > 0)
        {
            var memory = destination.GetMemory(remaining);
            var target = memory.Length > remaining ? memory[..remaining] : memory;
            int read;
            try
            {
                read = async ? await stream.ReadAsync(target, cancellationToken).ConfigureAwait(false) : stream.Read(target.Span);
            }
            catch (NpgsqlException ex) when (remaining < total)
            {
                // Part of the value is already in the caller's buffer, which cannot be taken back: never a fail-safe miss.
                throw new PgCacheException($"PgCache get failed after part of the value was written to the buffer: {ex.Message}", ex) { Operation = "get" };
            }

            if (read == 0)
            {
                throw new EndOfStreamException("The cache value ended before its announced length.");
            }

            destination.Advance(read);
            remaining -= read;
        }

        return total;
    }

    private async ValueTask<int> SetBody(NpgsqlConnection connection, SetArgs args, bool async, CancellationToken cancellationToken)
    {
        var command = Command(connection, _shared.Sql.Set, TenantId);
        await using var commandScope = command.ConfigureAwait(false);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = args.Key, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter<ReadOnlyMemory<byte>> { TypedValue = args.Value, NpgsqlDbType = NpgsqlDbType.Bytea });
        AddWriteParameters(command, args.Expiry, args.Tags);
        return await NonQueryAsync(command, async, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask<int> SetManyBody(NpgsqlConnection connection, SetManyArgs args, bool async, CancellationToken cancellationToken)
    {
        var command = Command(connection, _shared.Sql.SetMany, TenantId);
        await using var commandScope = command.ConfigureAwait(false);
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = args.Keys, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter<byte[][]> { TypedValue = args.Values, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea });
        AddWriteParameters(command, args.Expiry, args.Tags);
        return await NonQueryAsync(command, async, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask<IReadOnlyDictionary<string, byte[]>> GetManyBody(NpgsqlConnection connection, string[] keys, bool async, CancellationToken cancellationToken)
    {
        var command = Command(connection, _shared.Sql.GetMany, TenantId);
        await using var commandScope = command.ConfigureAwait(false);
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = keys, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        AddReadParameters(command);
        await PrepareAsync(command, async, cancellationToken).ConfigureAwait(false);
        var reader = async ? await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false) : command.ExecuteReader();
        await using var readerScope = reader.ConfigureAwait(false);
        var found = new Dictionary<string, byte[]>(keys.Length, StringComparer.Ordinal);
        long bytes = 0;
        while (async ? await reader.ReadAsync(cancellationToken).ConfigureAwait(false) : reader.Read())
        {
            var value = reader.GetFieldValue<byte[]>(1);
            bytes += value.Length;
            found[reader.GetString(0)] = value;
        }

        _shared.Metrics.Read(bytes);
        return found;
    }

    private async ValueTask<int> RefreshBody(NpgsqlConnection connection, string key, bool async, CancellationToken cancellationToken)
    {
        var command = Command(connection, _shared.Sql.Refresh, TenantId);
        await using var commandScope = command.ConfigureAwait(false);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = _shared.Time.GetUtcNow().ToUniversalTime(), NpgsqlDbType = NpgsqlDbType.TimestampTz });
        return await NonQueryAsync(command, async, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask<int> RemoveBody(NpgsqlConnection connection, string key, bool async, CancellationToken cancellationToken)
    {
        var command = Command(connection, _shared.Sql.Remove, TenantId);
        await using var commandScope = command.ConfigureAwait(false);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key, NpgsqlDbType = NpgsqlDbType.Text });
        return await NonQueryAsync(command, async, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask<long> RemoveManyBody(NpgsqlConnection connection, string[] keys, bool async, CancellationToken cancellationToken)
    {
        var command = Command(connection, _shared.Sql.RemoveMany, TenantId);
        await using var commandScope = command.ConfigureAwait(false);
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = keys, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        return await NonQueryAsync(command, async, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask<long> RemoveByTagBody(NpgsqlConnection connection, string tag, bool async, CancellationToken cancellationToken)
    {
        var command = Command(connection, _shared.Sql.RemoveByTag, TenantId);
        await using var commandScope = command.ConfigureAwait(false);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = tag, NpgsqlDbType = NpgsqlDbType.Text });
        return await NonQueryAsync(command, async, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask<long> RemoveTenantBody(NpgsqlConnection connection, int unused, bool async, CancellationToken cancellationToken)
    {
        var command = Command(connection, _shared.Sql.RemoveTenant, TenantId);
        await using var commandScope = command.ConfigureAwait(false);
        return await NonQueryAsync(command, async, cancellationToken).ConfigureAwait(false);
    }

    private readonly record struct SetArgs(string Key, ReadOnlyMemory<byte> Value, CacheExpiry Expiry, string[]? Tags);

    private readonly record struct SetManyArgs(string[] Keys, byte[][] Values, CacheExpiry Expiry, string[]? Tags);

    // What every tenant view of one cache shares.
    private sealed class Shared(
        NpgsqlDataSource dataSource,
        string schemaName,
        PgPoolerMode pooler,
        PgCacheOptions options,
        ITenantContext tenantContext,
        TimeProvider timeProvider,
        IMeterFactory? meterFactory,
        ILogger? logger)
    {
        public NpgsqlDataSource DataSource { get; } = dataSource;

        public string SchemaName { get; } = schemaName;

        public PgPoolerMode Pooler { get; } = pooler;

        public PgReplicaReads? Replicas { get; init; }

        public bool ReplicaTableUnreadable { get; set; }

        public bool Prepares { get; } = PgPooler.PreparesStatements(pooler);

        public PgCacheOptions Options { get; } = options;

        public PgCacheSql Sql { get; } = new(PgSqlIdentifier.Quote(schemaName));

        public TimeProvider Time { get; } = timeProvider;

        public PgCacheMetrics Metrics { get; } = new(meterFactory, "postgresql");

        public ILogger Logger { get; } = logger ?? NullLogger.Instance;

        public int CommandTimeoutSeconds { get; } = Math.Max(1, (int)Math.Ceiling(options.OperationTimeout.TotalSeconds));

        public string AmbientTenant()
        {
            var tenant = tenantContext.TenantId;
            return PgTenantId.IsValid(tenant)
                ? tenant
                : throw new InvalidOperationException($"The registered {nameof(ITenantContext)} returned an invalid tenant id: {PgTenantId.Rule}");
        }
    }
}
