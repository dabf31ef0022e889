using System.Buffers;
using System.Data;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using NpgsqlTypes;
using PgCache.Internal;
using PgFirst.Core;

namespace PgCache;

// One code path serves the synchronous and asynchronous members: with async: false it does synchronous I/O only and
// its ValueTask is already complete. In the async path, GetFieldValue reads a row that ReadAsync has already buffered.
#pragma warning disable VSTHRD002, VSTHRD103, CA2012

/// <summary>
/// The PostgreSQL store of the cache: one table (<c>{schema}.cache_entry</c>, <c>sql/pgcache</c>), every read one
/// prepared statement (the sliding refresh, when due, in the same function call), every write one upsert; gets may read
/// from a streaming standby (<see cref="PgCacheOptions.ReadConsistency"/>).
/// </summary>
public sealed partial class PostgresCacheBackend : IPgCacheBackend
{
    private const string ModuleName = "pgcache";

    private readonly NpgsqlDataSource _dataSource;
    private readonly string _schemaName;
    private readonly PgPoolerMode _pooler;
    private readonly bool _prepares;
    private readonly PgCacheSql _sql;
    private readonly int _commandTimeoutSeconds;
    private readonly PgReplicaReads? _replicas;
    private readonly ILogger _logger;
    private readonly string _channel;
    private readonly string? _listenConnectionString;
    private volatile bool _replicaTableUnreadable;

    /// <summary>Initializes a new instance of the <see cref="PostgresCacheBackend"/> class. Does no I/O.</summary>
    /// <param name="dataSource">The data source; not disposed.</param>
    /// <param name="pgFirstOptions">The shared options (schema, pooler mode).</param>
    /// <param name="options">The cache options (operation timeout, durability, read consistency).</param>
    /// <param name="replicas">The read replicas gets may use under <see cref="PgCacheOptions.ReadConsistency"/>, or <see langword="null"/>.</param>
    /// <param name="logger">The logger, or <see langword="null"/>.</param>
    /// <exception cref="ArgumentException">Replica reads were asked for on an UNLOGGED table.</exception>
    /// <exception cref="PgFirstPoolerException">The data source prepares or resets behind a transaction pooler.</exception>
    public PostgresCacheBackend(NpgsqlDataSource dataSource, PgFirstOptions pgFirstOptions, PgCacheOptions options, PgReplicaRouter? replicas = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(pgFirstOptions);
        ArgumentNullException.ThrowIfNull(options);
        PgPooler.EnsureCompatible(dataSource, pgFirstOptions.Pooler);
        if (options.ReadConsistency != PgReadConsistency.Strong && options.Durability != PgCacheDurability.Logged)
        {
            throw new ArgumentException("Replica reads need PgCache:Durability Logged: an UNLOGGED table cannot be read on a standby.", nameof(options));
        }

        _dataSource = dataSource;
        _schemaName = pgFirstOptions.SchemaName;
        _pooler = pgFirstOptions.Pooler;
        _prepares = PgPooler.PreparesStatements(_pooler);
        _sql = new PgCacheSql(PgSqlIdentifier.Quote(_schemaName));
        _commandTimeoutSeconds = Math.Max(1, (int)Math.Ceiling(options.OperationTimeout.TotalSeconds));
        _replicas = PgReplicaReads.For(replicas, ModuleName, options.ReadConsistency, options.MaxReplicaLag);
        _logger = logger ?? NullLogger.Instance;
        _channel = ChannelFor(_schemaName);
        _listenConnectionString = pgFirstOptions.ListenConnectionString;
    }

    /// <inheritdoc />
    public string Name => "postgresql";

    /// <inheritdoc />
    public async ValueTask<byte[]?> GetAsync(PgCacheRead read, string key, bool async, CancellationToken cancellationToken)
    {
        if (ChooseReplica(read.TenantId, key) is { } replica)
        {
            var (answered, hit) = await ReplicaGetAsync(replica, read, key, async, cancellationToken).ConfigureAwait(false);
            if (answered)
            {
                return hit;
            }
        }

        var value = await RunAsync(static (b, c, r, k, a, ct) => b.GetBody(c, r, k, a, ct), read, key, async, cancellationToken).ConfigureAwait(false);
        _replicas?.Answered(null);
        if (value is not null)
        {
            SlidOnThePrimary(read.TenantId, key);
        }

        return value;
    }

    /// <inheritdoc />
    public async ValueTask<PgCacheEntry?> GetEntryAsync(PgCacheRead read, string key, bool async, CancellationToken cancellationToken)
    {
        // Always the primary: a lagging standby could hand back a value older than an invalidation already applied.
        var entry = await RunAsync(static (b, c, r, k, a, ct) => b.GetEntryBody(c, r, k, a, ct), read, key, async, cancellationToken).ConfigureAwait(false);
        if (entry is not null)
        {
            SlidOnThePrimary(read.TenantId, key);
        }

        return entry;
    }

    /// <inheritdoc />
    public IPgCacheInvalidationBus CreateInvalidationBus(IPgCacheInvalidationSink sink) =>
        new PostgresCacheInvalidationBus(this, ChannelFor(_schemaName), sink);

    /// <inheritdoc />
    public async ValueTask<int?> GetIntoAsync(PgCacheRead read, string key, IBufferWriter<byte> destination, bool async, CancellationToken cancellationToken)
    {
        // A replica read copies through a byte[]: the allocation-free path is the primary's.
        if (ChooseReplica(read.TenantId, key) is { } replica)
        {
            var (answered, hit) = await ReplicaGetAsync(replica, read, key, async, cancellationToken).ConfigureAwait(false);
            if (answered)
            {
                if (hit is null)
                {
                    return null;
                }

                destination.Write(hit);
                return hit.Length;
            }
        }

        var length = await RunAsync(static (b, c, r, a2, ar, ct) => b.GetIntoBody(c, r, a2.Key, a2.Destination, ar, ct), read, (Key: key, Destination: destination), async, cancellationToken).ConfigureAwait(false);
        _replicas?.Answered(null);
        if (length is not null)
        {
            SlidOnThePrimary(read.TenantId, key);
        }

        return length;
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyDictionary<string, byte[]>> GetManyAsync(PgCacheRead read, string[] keys, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(keys);
        if (ChooseReplica(read.TenantId, keys.Length == 1 ? keys[0] : null) is { } replica
            && await ReplicaGetManyAsync(replica, read, keys, cancellationToken).ConfigureAwait(false) is { } fromReplica)
        {
            return fromReplica;
        }

        var found = await RunAsync(static (b, c, r, k, a, ct) => b.GetManyBody(c, r, k, a, ct), read, keys, async: true, cancellationToken).ConfigureAwait(false);
        _replicas?.Answered(null);
        foreach (var key in found.Keys)
        {
            SlidOnThePrimary(read.TenantId, key);
        }

        return found;
    }

    /// <inheritdoc />
    public async ValueTask SetAsync(PgCacheWrite write, string key, ReadOnlySequence<byte> value, bool async, CancellationToken cancellationToken)
    {
        // A multi-segment value goes through a pooled buffer: the statement has sent it when it returns, so the buffer
        // can go back to the pool at once.
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
            // A set that publishes a near-cache invalidation may share its transaction with the others in flight.
            if (write.Invalidation is not null && async)
            {
                await CoalescedSetAsync(write, key, memory, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await RunAsync(static (b, c, w, a, ar, ct) => b.SetBody(c, w, a.Key, a.Value, ar, ct), write, (Key: key, Value: memory), async, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }

        Wrote(write.TenantId, key);
    }

    /// <inheritdoc />
    public async ValueTask SetManyAsync(PgCacheWrite write, string[] keys, byte[][] values, CancellationToken cancellationToken)
    {
        await RunAsync(static (b, c, w, a, ar, ct) => b.SetManyBody(c, w, a.Keys, a.Values, ar, ct), write, (Keys: keys, Values: values), async: true, cancellationToken).ConfigureAwait(false);
        foreach (var key in keys)
        {
            Wrote(write.TenantId, key);
        }
    }

    /// <inheritdoc />
    public async ValueTask RefreshAsync(string tenantId, string key, DateTimeOffset now, bool async, CancellationToken cancellationToken)
    {
        await RunAsync(
            static async (b, c, t, a, ar, ct) =>
            {
                var command = b.Command(c, b._sql.Refresh, t);
                await using var commandScope = command.ConfigureAwait(false);
                command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = a.Key, NpgsqlDbType = NpgsqlDbType.Text });
                command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = a.Now.ToUniversalTime(), NpgsqlDbType = NpgsqlDbType.TimestampTz });
                return await b.NonQueryAsync(command, ar, ct).ConfigureAwait(false);
            },
            tenantId,
            (Key: key, Now: now),
            async,
            cancellationToken).ConfigureAwait(false);
        Wrote(tenantId, key);
    }

    /// <inheritdoc />
    public async ValueTask<long> RemoveAsync(string tenantId, string[] keys, string? invalidation, bool async, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(keys);
        var removed = await RunAsync(
            static (b, c, t, a, ar, ct) => b.WriteAsync(
                c,
                a.Keys.Length == 1 ? b._sql.Remove : b._sql.RemoveMany,
                t,
                a.Keys,
                static (p, k) => p.Add(k.Length == 1
                    ? new NpgsqlParameter<string> { TypedValue = k[0], NpgsqlDbType = NpgsqlDbType.Text }
                    : new NpgsqlParameter<string[]> { TypedValue = k, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text }),
                a.Invalidation,
                ar,
                ct),
            tenantId,
            (Keys: keys, Invalidation: invalidation),
            async,
            cancellationToken).ConfigureAwait(false);
        foreach (var key in keys)
        {
            Wrote(tenantId, key);
        }

        return removed;
    }

    /// <inheritdoc />
    public async ValueTask<long> RemoveByTagAsync(string tenantId, string tag, string? invalidation, CancellationToken cancellationToken)
    {
        var removed = await RunAsync(
            static (b, c, t, a, ar, ct) => b.WriteAsync(
                c,
                b._sql.RemoveByTag,
                t,
                a.Tag,
                static (p, g) => p.Add(new NpgsqlParameter<string> { TypedValue = g, NpgsqlDbType = NpgsqlDbType.Text }),
                a.Invalidation,
                ar,
                ct),
            tenantId,
            (Tag: tag, Invalidation: invalidation),
            async: true,
            cancellationToken).ConfigureAwait(false);
        _replicas?.WroteAny();
        return removed;
    }

    /// <inheritdoc />
    public async ValueTask<long> RemoveTenantAsync(string tenantId, string? invalidation, CancellationToken cancellationToken)
    {
        var removed = await RunAsync(
            static (b, c, t, i, ar, ct) => b.WriteAsync(c, b._sql.RemoveTenant, t, 0, static (_, _) => { }, i, ar, ct),
            tenantId,
            invalidation,
            async: true,
            cancellationToken).ConfigureAwait(false);
        _replicas?.WroteAny();
        return removed;
    }

    /// <inheritdoc />
    public PgCacheFailure? Classify(Exception exception) => exception switch
    {
        PostgresException pg when PgPooler.TryTranslate(pg, _pooler, _schemaName) is { } pooler => new PgCacheFailure(false, pooler.Message, pooler),
        PostgresException pg when PgSchemaErrors.TryTranslate(pg, PgDistributedCache.SchemaModule, _schemaName) is { } schema => new PgCacheFailure(false, schema.Message, schema),
        PostgresException pg => new PgCacheFailure(pg.IsTransient, $"{pg.SqlState}: {pg.MessageText}"),
        NpgsqlException npgsql => new PgCacheFailure(npgsql.IsTransient, npgsql.Message),
        _ => null,
    };

    // NOTIFY channels are per database: the schema is in the name, so caches on other schemas never hear these.
    internal static string ChannelFor(string schemaName) =>
        "pgcache_" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(schemaName)))[..16];

    // The near cache's channel: LISTEN on one connection (the direct one behind a transaction pooler), which also
    // sends the heartbeats.
    private sealed class PostgresCacheInvalidationBus : IPgCacheInvalidationBus, IPgNotificationHandler
    {
        private readonly IPgCacheInvalidationSink _sink;
        private readonly PgNotificationListener _listener;

        public PostgresCacheInvalidationBus(PostgresCacheBackend backend, string channel, IPgCacheInvalidationSink sink)
        {
            _sink = sink;
            _listener = new PgNotificationListener(
                backend._dataSource,
                backend._listenConnectionString,
                backend._pooler,
                channel,
                "pgcache-near " + channel,
                this,
                TimeSpan.FromMilliseconds(250),
                TimeSpan.FromSeconds(10),
                TimeSpan.FromSeconds(10));
        }

        public string Channel => _listener.Channel;

        public void Start() => _listener.Start();

        // Heartbeats go out on the listen connection itself, between its waits: a busy pool cannot make them late.
        public async ValueTask PublishAsync(string payload, CancellationToken cancellationToken) =>
            await _listener.NotifyOnListenConnectionAsync(payload, cancellationToken).ConfigureAwait(false);

        public ValueTask DisposeAsync() => _listener.DisposeAsync();

        public void OnListening(int processId, bool reconnection) => _sink.OnSubscribed();

        public void OnLost(Exception exception, TimeSpan retryIn) => _sink.OnLost(exception);

        public void OnNotification(string payload) => _sink.OnMessage(payload);
    }

    // One operation on a pooled connection of the primary.
    private async ValueTask<TResult> RunAsync<TState, TArg, TResult>(
        Func<PostgresCacheBackend, NpgsqlConnection, TState, TArg, bool, CancellationToken, ValueTask<TResult>> body,
        TState state,
        TArg argument,
        bool async,
        CancellationToken cancellationToken)
    {
        var connection = async ? await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false) : _dataSource.OpenConnection();
        await using var connectionScope = connection.ConfigureAwait(false);
        return await body(this, connection, state, argument, async, cancellationToken).ConfigureAwait(false);
    }

    private NpgsqlCommand Command(NpgsqlConnection connection, string sql, string tenantId)
    {
        var command = new NpgsqlCommand(sql, connection) { CommandTimeout = _commandTimeoutSeconds };
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = tenantId, NpgsqlDbType = NpgsqlDbType.Text });
        return command;
    }

    private static void AddReadParameters(NpgsqlCommand command, PgCacheRead read)
    {
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = read.Now.ToUniversalTime(), NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = read.RefreshGranularity, NpgsqlDbType = NpgsqlDbType.Interval });
    }

    private static void AddWriteParameters(NpgsqlParameterCollection parameters, PgCacheWrite write)
    {
        var expiry = write.Expiry;
        parameters.Add(new NpgsqlParameter { Value = (object?)expiry.ExpiresAt ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        parameters.Add(new NpgsqlParameter { Value = expiry.Sliding is { } s ? s : DBNull.Value, NpgsqlDbType = NpgsqlDbType.Interval });
        parameters.Add(new NpgsqlParameter { Value = (object?)expiry.Absolute ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        parameters.Add(new NpgsqlParameter { Value = (object?)write.Tags ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
    }

    private async ValueTask PrepareAsync(NpgsqlCommand command, bool async, CancellationToken cancellationToken)
    {
        // Prepared once per physical connection; later calls with the same SQL reuse it without a round trip. Behind a
        // transaction pooler a name would outlive the server connection it was prepared on, so nothing is prepared.
        if (!_prepares)
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

    private async ValueTask<byte[]?> GetBody(NpgsqlConnection connection, PgCacheRead read, string key, bool async, CancellationToken cancellationToken)
    {
        var command = Command(connection, _sql.Get, read.TenantId);
        await using var commandScope = command.ConfigureAwait(false);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key, NpgsqlDbType = NpgsqlDbType.Text });
        AddReadParameters(command, read);
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
    private async ValueTask<int?> GetIntoBody(NpgsqlConnection connection, PgCacheRead read, string key, IBufferWriter<byte> destination, bool async, CancellationToken cancellationToken)
    {
        var command = Command(connection, _sql.Get, read.TenantId);
        await using var commandScope = command.ConfigureAwait(false);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key, NpgsqlDbType = NpgsqlDbType.Text });
        AddReadParameters(command, read);
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
            int read2;
            try
            {
                read2 = async ? await stream.ReadAsync(target, cancellationToken).ConfigureAwait(false) : stream.Read(target.Span);
            }
            catch (NpgsqlException ex) when (remaining < total)
            {
                // Part of the value is already in the caller's buffer, which cannot be taken back: never a fail-safe miss.
                throw new PgCacheException($"PgCache get failed after part of the value was written to the buffer: {ex.Message}", ex) { Operation = "get" };
            }

            if (read2 == 0)
            {
                throw new EndOfStreamException("The cache value ended before its announced length.");
            }

            destination.Advance(read2);
            remaining -= read2;
        }

        return total;
    }

    private ValueTask<int> SetBody(NpgsqlConnection connection, PgCacheWrite write, string key, ReadOnlyMemory<byte> value, bool async, CancellationToken cancellationToken) =>
        WriteAsync(
            connection,
            _sql.Set,
            write.TenantId,
            (Write: write, Key: key, Value: value),
            static (p, a) => AddSetParameters(p, a.Write, a.Key, a.Value),
            write.Invalidation,
            async,
            cancellationToken);

    private static void AddSetParameters(NpgsqlParameterCollection parameters, PgCacheWrite write, string key, ReadOnlyMemory<byte> value)
    {
        parameters.Add(new NpgsqlParameter<string> { TypedValue = key, NpgsqlDbType = NpgsqlDbType.Text });
        parameters.Add(new NpgsqlParameter<ReadOnlyMemory<byte>> { TypedValue = value, NpgsqlDbType = NpgsqlDbType.Bytea });
        AddWriteParameters(parameters, write);
    }

    private ValueTask<int> SetManyBody(NpgsqlConnection connection, PgCacheWrite write, string[] keys, byte[][] values, bool async, CancellationToken cancellationToken) =>
        WriteAsync(
            connection,
            _sql.SetMany,
            write.TenantId,
            (Write: write, Keys: keys, Values: values),
            static (p, a) =>
            {
                p.Add(new NpgsqlParameter<string[]> { TypedValue = a.Keys, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
                p.Add(new NpgsqlParameter<byte[][]> { TypedValue = a.Values, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea });
                AddWriteParameters(p, a.Write);
            },
            write.Invalidation,
            async,
            cancellationToken);

    // One write statement; with a near-cache invalidation, the statement and its pg_notify go as one batch, which
    // PostgreSQL runs as one implicit transaction: the message is sent if and only if the write commits, and it costs
    // no extra round trip.
    private async ValueTask<int> WriteAsync<TArg>(
        NpgsqlConnection connection,
        string sql,
        string tenantId,
        TArg argument,
        Action<NpgsqlParameterCollection, TArg> addParameters,
        string? invalidation,
        bool async,
        CancellationToken cancellationToken)
    {
        if (invalidation is null)
        {
            var command = Command(connection, sql, tenantId);
            await using var commandScope = command.ConfigureAwait(false);
            addParameters(command.Parameters, argument);
            return await NonQueryAsync(command, async, cancellationToken).ConfigureAwait(false);
        }

        var batch = new NpgsqlBatch(connection) { Timeout = _commandTimeoutSeconds };
        await using var batchScope = batch.ConfigureAwait(false);
        var write = AddNotifiedWrite(batch, sql, tenantId, argument, addParameters, invalidation);
        if (_prepares)
        {
            if (async)
            {
                await batch.PrepareAsync(cancellationToken).ConfigureAwait(false);
            }
            else
            {
                batch.Prepare();
            }
        }

        if (async)
        {
            await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        else
        {
            batch.ExecuteNonQuery();
        }

        return write.RecordsAffected;
    }

    // Adds a write and, after it, the pg_notify of its near-cache invalidation; returns the write.
    private NpgsqlBatchCommand AddNotifiedWrite<TArg>(NpgsqlBatch batch, string sql, string tenantId, TArg argument, Action<NpgsqlParameterCollection, TArg> addParameters, string invalidation)
    {
        var write = new NpgsqlBatchCommand(sql);
        write.Parameters.Add(new NpgsqlParameter<string> { TypedValue = tenantId, NpgsqlDbType = NpgsqlDbType.Text });
        addParameters(write.Parameters, argument);
        batch.BatchCommands.Add(write);
        var notify = new NpgsqlBatchCommand(_sql.Notify);
        notify.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _channel, NpgsqlDbType = NpgsqlDbType.Text });
        notify.Parameters.Add(new NpgsqlParameter<string> { TypedValue = invalidation, NpgsqlDbType = NpgsqlDbType.Text });
        batch.BatchCommands.Add(notify);
        return write;
    }

    private async ValueTask<PgCacheEntry?> GetEntryBody(NpgsqlConnection connection, PgCacheRead read, string key, bool async, CancellationToken cancellationToken)
    {
        var command = Command(connection, _sql.GetEntry, read.TenantId);
        await using var commandScope = command.ConfigureAwait(false);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key, NpgsqlDbType = NpgsqlDbType.Text });
        AddReadParameters(command, read);
        await PrepareAsync(command, async, cancellationToken).ConfigureAwait(false);
        var reader = async ? await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false) : command.ExecuteReader();
        await using var readerScope = reader.ConfigureAwait(false);
        if (!(async ? await reader.ReadAsync(cancellationToken).ConfigureAwait(false) : reader.Read()))
        {
            return null;
        }

        var expiry = new PgCacheExpiry(
            reader.IsDBNull(1) ? null : reader.GetFieldValue<DateTimeOffset>(1),
            reader.IsDBNull(2) ? null : reader.GetFieldValue<TimeSpan>(2),
            reader.IsDBNull(3) ? null : reader.GetFieldValue<DateTimeOffset>(3));
        return new PgCacheEntry(reader.GetFieldValue<byte[]>(0), expiry, reader.IsDBNull(4) ? null : reader.GetFieldValue<string[]>(4));
    }

    private async ValueTask<IReadOnlyDictionary<string, byte[]>> GetManyBody(NpgsqlConnection connection, PgCacheRead read, string[] keys, bool async, CancellationToken cancellationToken)
    {
        var command = Command(connection, _sql.GetMany, read.TenantId);
        await using var commandScope = command.ConfigureAwait(false);
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = keys, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        AddReadParameters(command, read);
        await PrepareAsync(command, async, cancellationToken).ConfigureAwait(false);
        var reader = async ? await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false) : command.ExecuteReader();
        await using var readerScope = reader.ConfigureAwait(false);
        var found = new Dictionary<string, byte[]>(keys.Length, StringComparer.Ordinal);
        while (async ? await reader.ReadAsync(cancellationToken).ConfigureAwait(false) : reader.Read())
        {
            found[reader.GetString(0)] = reader.GetFieldValue<byte[]>(1);
        }

        return found;
    }
}
