using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Npgsql;
using PgFirst.Core;

namespace PgSessions.Internal;

/// <summary>
/// The session near cache (<see cref="PgSessionNearCacheOptions"/>): a decorator over the store that serves a load from
/// memory while the copy is younger than <see cref="PgSessionNearCacheOptions.MaxStaleness"/>, the listen connection is
/// up, and neither expiry nor a touch is due; every write and revocation drops the copies it may change, here at once
/// and on the other instances through NOTIFY.
/// </summary>
/// <remarks>
/// A load that raced with an invalidation of its key (or with a revocation, which may name any key) is returned but
/// not kept: stripes of generations, one per key-hash stripe plus one for revocations, tell whether one happened
/// while the load was on its way. The notifications go out from the listen connection after the write returned, so a
/// write never waits for them; if one is lost (a crash after the commit, the connection down) the copies elsewhere
/// end by their lifetime, which is the documented bound.
/// </remarks>
internal sealed partial class NearCachedSessionBackend : IPgSessionBackend, IPgNotificationHandler, IAsyncDisposable
{
    private const int StripeCount = 1024;

    // Longer user ids (in UTF-8) do not fit in one notification (8,000 bytes with the rest): such a revocation drops
    // every copy on every instance instead.
    private const int MaxNotifiedUserIdBytes = 4000;

    private readonly IPgSessionBackend _inner;
    private readonly PgSessionNearCacheOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly PgNotificationListener _listener;
    private readonly string _instance = Guid.NewGuid().ToString("N");
    private readonly ConcurrentDictionary<NearKey, NearEntry> _entries = new(NearKeyComparer.Instance);
    private readonly long[] _stripes = new long[StripeCount];
    private long _revocations;
    private int _count;
    private volatile bool _listening;
    private int _started;

    public NearCachedSessionBackend(
        IPgSessionBackend inner,
        PgSessionNearCacheOptions options,
        NpgsqlDataSource dataSource,
        PgFirstOptions first,
        TimeProvider timeProvider,
        ILogger logger)
    {
        _inner = inner;
        _options = options;
        _time = timeProvider;
        _logger = logger;
        var channel = ChannelFor(first.SchemaName);
        _listener = new PgNotificationListener(
            dataSource,
            first.ListenConnectionString,
            first.Pooler,
            channel,
            "pgsessions-near " + channel,
            this,
            TimeSpan.FromMilliseconds(250),
            TimeSpan.FromSeconds(10),
            TimeSpan.FromSeconds(10));
    }

    /// <summary>Gets a value indicating whether copies are served: the listen connection is up.</summary>
    public bool IsServing => _listening;

    /// <summary>Gets the backend pid of the listen connection, or 0 while not listening.</summary>
    public int ListenerProcessId => _listener.ProcessId;

    /// <summary>Gets how many sessions are held.</summary>
    public int Count => _entries.Count;

    // NOTIFY channels are per database: the schema is in the name, so stores on other schemas never hear these.
    internal static string ChannelFor(string schemaName) =>
        "pgsessions_" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(schemaName)))[..16];

    /// <summary>Starts listening (its DI registration calls it); a second call does nothing. Until it listens, every load goes to the store.</summary>
    public void Start()
    {
        if (Interlocked.Exchange(ref _started, 1) == 0)
        {
            _listener.Start();
        }
    }

    public async ValueTask<PgSessionRecord?> LoadAsync(PgSessionLoadRequest request, CancellationToken cancellationToken)
    {
        if (Find(request) is { } hit)
        {
            return hit;
        }

        var (stripe, revocations, loadedAt) = Before(request);
        var record = await _inner.LoadAsync(request, cancellationToken).ConfigureAwait(false);
        Offer(request, record, stripe, revocations, loadedAt);
        return record;
    }

    public PgSessionRecord? Load(PgSessionLoadRequest request)
    {
        if (Find(request) is { } hit)
        {
            return hit;
        }

        var (stripe, revocations, loadedAt) = Before(request);
        var record = _inner.Load(request);
        Offer(request, record, stripe, revocations, loadedAt);
        return record;
    }

    public ValueTask<bool> InsertAsync(PgSessionRecord record, CancellationToken cancellationToken)
    {
        // A new key: no instance can hold a copy of it, so there is nobody to tell.
        return _inner.InsertAsync(record, cancellationToken);
    }

    public async ValueTask<long?> UpdateAsync(PgSessionUpdate update, CancellationToken cancellationToken)
    {
        try
        {
            return await _inner.UpdateAsync(update, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            // Also after an error: the write may have committed.
            KeysWritten(update);
        }
    }

    public async ValueTask<PgSessionCommitResult> CommitAsync(PgSessionUpdate update, PgSessionChanges changes, CancellationToken cancellationToken)
    {
        try
        {
            return await _inner.CommitAsync(update, changes, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            KeysWritten(update);
        }
    }

    public ValueTask<IReadOnlyList<PgSessionInfo>> ListAsync(string tenantId, string userId, DateTimeOffset now, CancellationToken cancellationToken) =>
        _inner.ListAsync(tenantId, userId, now, cancellationToken);

    public async ValueTask<bool> RevokeAsync(string tenantId, Guid sessionId, CancellationToken cancellationToken)
    {
        try
        {
            return await _inner.RevokeAsync(tenantId, sessionId, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            DropSession(tenantId, sessionId);
            Notify($"s|{tenantId}|{sessionId:N}");
        }
    }

    public async ValueTask<int> RevokeAllAsync(string tenantId, string userId, Guid? exceptSessionId, CancellationToken cancellationToken)
    {
        try
        {
            return await _inner.RevokeAllAsync(tenantId, userId, exceptSessionId, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            // The kept session is dropped too: one more load, and one rule for every revocation.
            DropUser(tenantId, userId);
            Notify(System.Text.Encoding.UTF8.GetByteCount(userId) <= MaxNotifiedUserIdBytes ? $"u|{tenantId}|{userId}" : "*");
        }
    }

    public ValueTask<IReadOnlyList<PgSessionTenantStats>> GetStatsAsync(string? tenantId, DateTimeOffset now, CancellationToken cancellationToken) =>
        _inner.GetStatsAsync(tenantId, now, cancellationToken);

    public ValueTask PingAsync(CancellationToken cancellationToken) => _inner.PingAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        _listening = false;
        Clear();
        await _listener.DisposeAsync().ConfigureAwait(false);
    }

    void IPgNotificationHandler.OnListening(int processId, bool reconnection)
    {
        // Whatever was written while nobody listened was not heard: start empty.
        Clear();
        _listening = true;
    }

    void IPgNotificationHandler.OnLost(Exception exception, TimeSpan retryIn)
    {
        _listening = false;
        Clear();
        LogListenerLost(exception, retryIn);
    }

    void IPgNotificationHandler.OnNotification(string payload)
    {
        // "{instance}|k|{tenant}|{key hash hex}", "…|s|{tenant}|{session id}", "…|u|{tenant}|{user id}" or "…|*".
        var bar = payload.IndexOf('|', StringComparison.Ordinal);
        if (bar <= 0 || payload.AsSpan(0, bar).SequenceEqual(_instance))
        {
            return;
        }

        var rest = payload[(bar + 1)..];
        var parts = rest.Split('|', 3);
        switch (parts)
        {
            case ["k", var tenant, var hex]:
                Drop(new NearKey(tenant, Convert.FromHexString(hex)));
                break;
            case ["s", var tenant, var id] when Guid.TryParseExact(id, "N", out var sessionId):
                DropSession(tenant, sessionId);
                break;
            case ["u", var tenant, var user]:
                DropUser(tenant, user);
                break;
            default:
                Clear();
                break;
        }
    }

    private PgSessionRecord? Find(PgSessionLoadRequest request)
    {
        if (!_listening || !_entries.TryGetValue(new NearKey(request.TenantId, request.KeyHash), out var entry))
        {
            return null;
        }

        var record = entry.Record;
        var now = request.Now;
        if (now - entry.LoadedAt >= _options.MaxStaleness || now >= record.ExpiresAt || now - record.LastSeenAt >= request.TouchInterval)
        {
            // Too old to trust, expired, or due for a touch (which the store must make): the store answers.
            Remove(new KeyValuePair<NearKey, NearEntry>(entry.Key, entry));
            return null;
        }

        return record;
    }

    private (long Stripe, long Revocations, DateTimeOffset LoadedAt) Before(PgSessionLoadRequest request) =>
        (Volatile.Read(ref _stripes[StripeOf(request.KeyHash)]), Volatile.Read(ref _revocations), _time.GetUtcNow());

    private void Offer(PgSessionLoadRequest request, PgSessionRecord? record, long stripe, long revocations, DateTimeOffset loadedAt)
    {
        if (record is null || !_listening || Raced(record.KeyHash, stripe, revocations))
        {
            return;
        }

        if (Volatile.Read(ref _count) >= _options.MaxEntries && !Sweep(loadedAt))
        {
            return;
        }

        var key = new NearKey(request.TenantId, record.KeyHash);
        var entry = new NearEntry(key, record, loadedAt);
        if (_entries.TryAdd(key, entry))
        {
            Interlocked.Increment(ref _count);
        }
        else
        {
            _entries[key] = entry;
        }

        // An invalidation that raced with this load may have run its removal before the copy went in: check again,
        // after a full fence (the removal side reads the dictionary without a lock), and take the copy out.
        Interlocked.MemoryBarrier();
        if (Raced(record.KeyHash, stripe, revocations))
        {
            Remove(key);
        }
    }

    private bool Raced(byte[] keyHash, long stripe, long revocations) =>
        Volatile.Read(ref _stripes[StripeOf(keyHash)]) != stripe || Volatile.Read(ref _revocations) != revocations;

    // Full: drop every copy too old to be served, and count again. Returns whether there is room now.
    private bool Sweep(DateTimeOffset now)
    {
        foreach (var entry in _entries)
        {
            if (now - entry.Value.LoadedAt >= _options.MaxStaleness)
            {
                _entries.TryRemove(entry);
            }
        }

        var count = _entries.Count;
        Volatile.Write(ref _count, count);
        return count < _options.MaxEntries;
    }

    private void Remove(NearKey key)
    {
        if (_entries.TryRemove(key, out _))
        {
            Interlocked.Decrement(ref _count);
        }
    }

    private void Remove(KeyValuePair<NearKey, NearEntry> entry)
    {
        if (_entries.TryRemove(entry))
        {
            Interlocked.Decrement(ref _count);
        }
    }

    private void Clear()
    {
        Interlocked.Increment(ref _revocations);
        _entries.Clear();
        Volatile.Write(ref _count, 0);
    }

    private void KeysWritten(PgSessionUpdate update)
    {
        Drop(new NearKey(update.TenantId, update.KeyHash));
        Notify($"k|{update.TenantId}|{Convert.ToHexString(update.KeyHash)}");
        if (!update.NewKeyHash.AsSpan().SequenceEqual(update.KeyHash))
        {
            Drop(new NearKey(update.TenantId, update.NewKeyHash));
            Notify($"k|{update.TenantId}|{Convert.ToHexString(update.NewKeyHash)}");
        }
    }

    private void Drop(NearKey key)
    {
        Interlocked.Increment(ref _stripes[StripeOf(key.KeyHash)]);
        Remove(key);
    }

    private void DropSession(string tenantId, Guid sessionId)
    {
        Interlocked.Increment(ref _revocations);
        foreach (var entry in _entries)
        {
            if (entry.Value.Record.SessionId == sessionId && string.Equals(entry.Key.TenantId, tenantId, StringComparison.Ordinal))
            {
                Remove(entry);
            }
        }
    }

    private void DropUser(string tenantId, string userId)
    {
        Interlocked.Increment(ref _revocations);
        foreach (var entry in _entries)
        {
            if (string.Equals(entry.Value.Record.UserId, userId, StringComparison.Ordinal) && string.Equals(entry.Key.TenantId, tenantId, StringComparison.Ordinal))
            {
                Remove(entry);
            }
        }
    }

    // From the listen connection, between its waits: the write that caused it never waits for it.
    private void Notify(string message)
    {
        Task sent;
        try
        {
            sent = _listener.NotifyOnListenConnectionAsync(_instance + "|" + message);
        }
        catch (InvalidOperationException ex)
        {
            LogNotifyFailed(ex);
            return;
        }

        _ = sent.ContinueWith(
            static (task, state) => ((NearCachedSessionBackend)state!).LogNotifyFailed(task.Exception!.GetBaseException()),
            this,
            CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    private static int StripeOf(byte[] keyHash) =>
        keyHash.Length >= 4 ? (int)(BinaryPrimitives.ReadUInt32LittleEndian(keyHash) % StripeCount) : 0;

    [LoggerMessage(PgSessionsEventIds.NearCacheListenerLost, LogLevel.Warning, "The session near cache lost its listen connection; sessions are loaded from the store until it listens again (retry in {RetryIn}).")]
    private partial void LogListenerLost(Exception exception, TimeSpan retryIn);

    [LoggerMessage(PgSessionsEventIds.NearCacheNotifyFailed, LogLevel.Warning, "The session near cache could not tell the other instances of a write; their copies end within PgSessions:NearCache:MaxStaleness.")]
    private partial void LogNotifyFailed(Exception exception);

    private readonly record struct NearKey(string TenantId, byte[] KeyHash);

    private sealed record NearEntry(NearKey Key, PgSessionRecord Record, DateTimeOffset LoadedAt);

    private sealed class NearKeyComparer : IEqualityComparer<NearKey>
    {
        public static readonly NearKeyComparer Instance = new();

        public bool Equals(NearKey x, NearKey y) =>
            x.KeyHash.AsSpan().SequenceEqual(y.KeyHash) && string.Equals(x.TenantId, y.TenantId, StringComparison.Ordinal);

        // Key hashes are SHA-256: any 4 of their bytes are uniform.
        public int GetHashCode(NearKey key) =>
            HashCode.Combine(key.KeyHash.Length >= 4 ? BinaryPrimitives.ReadInt32LittleEndian(key.KeyHash) : key.KeyHash.Length, StringComparer.Ordinal.GetHashCode(key.TenantId));
    }
}
