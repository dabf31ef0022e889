using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using PgCache.Internal;

namespace PgCache;

/// <summary>
/// The near cache of one <see cref="PgDistributedCache"/> (<see cref="PgCacheOptions.NearCache"/>): a size-bounded
/// in-process copy of what this instance read, dropped when any instance changes the entry. Exposed for health checks,
/// dashboards and tests; the cache uses it by itself.
/// </summary>
/// <remarks>
/// <para>
/// Every write through any instance publishes an invalidation in its own transaction: the keys it changed, the tag it
/// removed, or the tenant. Every instance listens on one connection and drops what a message names. A heartbeat the
/// instance sends itself through the store every quarter of <see cref="PgNearCacheOptions.MaxStaleness"/> proves the
/// listener is current: the store delivers messages in commit order, so once the heartbeat sent at time T is back,
/// every invalidation committed before T has been applied. A near hit is served only while the last heartbeat back
/// was sent within <see cref="PgNearCacheOptions.MaxStaleness"/>; when the listener is lost, or the heartbeat is
/// late, the near cache is flushed and every read goes to the store until the listener has caught up.
/// </para>
/// <para>
/// A read that raced an invalidation (it started before the invalidation arrived and returned after) never fills the
/// near cache: each read takes a stamp before it goes to the store and keeps its result only if no invalidation of
/// its key, and no flush, arrived since.
/// </para>
/// </remarks>
public sealed partial class PgNearCache : IPgCacheInvalidationSink, IAsyncDisposable
{
    private const int StripeCount = 4096;

    private readonly ConcurrentDictionary<NearKey, NearEntry> _entries = new();
    private readonly long[] _stripes = new long[StripeCount];
    private readonly PgNearCacheOptions _options;
    private readonly PgCacheMetrics _metrics;
    private readonly ILogger _logger;
    private readonly IPgCacheInvalidationBus _bus;
    private readonly long _bound;
    private readonly string _ownPrefix;
    private readonly string _pingSource;
    private readonly TimeSpan _heartbeat;
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _wake = new(0, int.MaxValue);
    private readonly object _stateGate = new();
    private TaskCompletionSource _servingChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _heartbeatLoop;
    private long _sequence;
    private long _floor;
    private long _count;
    private long _bytes;
    private long _lastAck = long.MinValue / 2;
    private long _epoch;
    private long _received;
    private long _flushes;
    private string? _lastFlush;
    private int _started;
    private int _trimming;
    private volatile bool _listening;
    private volatile bool _serving;
    private volatile bool _disposed;

    internal PgNearCache(IPgCacheBackend backend, PgNearCacheOptions options, PgCacheMetrics metrics, ILogger logger)
    {
        _options = options;
        _metrics = metrics;
        _logger = logger;
        _bound = (long)(options.MaxStaleness.TotalSeconds * Stopwatch.Frequency);
        _heartbeat = options.MaxStaleness / 4;
        InstanceId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
        _ownPrefix = "{\"s\":\"" + InstanceId + "\"";
        _pingSource = InstanceId + "!";
        _bus = backend.CreateInvalidationBus(this);
        metrics.ObserveNearCache(this);
    }

    /// <summary>Gets this instance's id in the messages it sends (random per cache).</summary>
    public string InstanceId { get; }

    /// <summary>Gets the channel invalidations travel on.</summary>
    public string Channel => _bus.Channel;

    /// <summary>Gets a value indicating whether the listener is subscribed.</summary>
    public bool IsListening => _listening;

    /// <summary>Gets a value indicating whether near hits are served now (listening, and the last heartbeat back within the bound).</summary>
    public bool IsServing => CanServe(Stopwatch.GetTimestamp());

    /// <summary>Gets how many entries are in memory.</summary>
    public long Count => Interlocked.Read(ref _count);

    /// <summary>Gets how many invalidations from other instances this one has applied.</summary>
    public long InvalidationsReceived => Interlocked.Read(ref _received);

    /// <summary>Gets how many times the near cache was flushed whole (listener lost or resubscribed, heartbeat late, serving resumed, cleared).</summary>
    public long FlushCount => Interlocked.Read(ref _flushes);

    /// <summary>Gets why the near cache was last flushed whole, or <see langword="null"/>.</summary>
    public string? LastFlushReason => Volatile.Read(ref _lastFlush);

    /// <summary>Gets how many value bytes are in memory.</summary>
    public long Bytes => Interlocked.Read(ref _bytes);

    /// <summary>Gets how long ago the last heartbeat that came back was sent, or <see langword="null"/> before the first.</summary>
    public TimeSpan? HeartbeatAge
    {
        get
        {
            var ack = Interlocked.Read(ref _lastAck);
            return ack < 0 ? null : Stopwatch.GetElapsedTime(ack);
        }
    }

    /// <summary>Starts the listener (done by the first operation of the cache), then waits until near hits are served.</summary>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes when serving.</returns>
    public async Task WaitUntilServingAsync(CancellationToken cancellationToken = default)
    {
        EnsureStarted();
        while (!IsServing)
        {
            Task changed;
            lock (_stateGate)
            {
                changed = _servingChanged.Task;
            }

            if (IsServing)
            {
                return;
            }

#pragma warning disable VSTHRD003 // The task is completed by the listener on the thread pool, never on this context.
            await Task.WhenAny(changed, Task.Delay(50, cancellationToken)).ConfigureAwait(false);
#pragma warning restore VSTHRD003
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    /// <summary>Gets a value indicating whether a copy of the entry is in memory (it may still be past its local expiry).</summary>
    /// <param name="tenantId">The tenant.</param>
    /// <param name="key">The key.</param>
    /// <returns>Whether a copy is held.</returns>
    public bool Contains(string tenantId, string key) => _entries.ContainsKey(new NearKey(tenantId, key));

    /// <summary>Drops every entry (the next reads go to the store).</summary>
    public void Clear() => Flush("cleared");

    /// <summary>Stops the listener and the heartbeat.</summary>
    /// <returns>A task that completes when stopped.</returns>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _serving = false;
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_heartbeatLoop is not null)
        {
            try
            {
#pragma warning disable VSTHRD003 // Started by this instance, on the thread pool.
                await _heartbeatLoop.ConfigureAwait(false);
#pragma warning restore VSTHRD003
            }
            catch (OperationCanceledException)
            {
            }
        }

        await _bus.DisposeAsync().ConfigureAwait(false);
        _stopping.Dispose();
        _wake.Dispose();
    }

    void IPgCacheInvalidationSink.OnSubscribed()
    {
        Interlocked.Increment(ref _epoch);
        _listening = true;
        Flush("resubscribed");
        LogSubscribed(_logger, _bus.Channel);
        Wake();
    }

    void IPgCacheInvalidationSink.OnLost(Exception? exception)
    {
        Interlocked.Increment(ref _epoch);
        _listening = false;
        StopServing("listener_lost");
        LogListenerLost(_logger, exception, _bus.Channel);
    }

    void IPgCacheInvalidationSink.OnMessage(string payload)
    {
        // This instance's own invalidations come back too; it applied them when its writes returned. They are
        // recognised by their first bytes, without parsing: at thousands of writes a second that is client CPU saved.
        if (payload.StartsWith(_ownPrefix, StringComparison.Ordinal))
        {
            return;
        }

        if (!NearCacheMessage.TryParse(payload, out var message))
        {
            LogUndecodable(_logger, _bus.Channel);
            return;
        }

        if (message.Kind == NearCacheMessageKind.Ping)
        {
            if (string.Equals(message.Source, _pingSource, StringComparison.Ordinal) && message.Epoch == Interlocked.Read(ref _epoch) && _listening)
            {
                Acknowledged(message.Timestamp);
            }

            return;
        }

        _metrics.NearInvalidationReceived(message.SentUtcTicks);
        try
        {
            Apply(message);
        }
        finally
        {
            Interlocked.Increment(ref _received);
        }
    }

    private void Apply(NearCacheMessage message)
    {
        switch (message.Kind)
        {
            case NearCacheMessageKind.Keys:
                foreach (var key in message.Keys!)
                {
                    Invalidate(message.Tenant!, key, "invalidated");
                }

                break;
            case NearCacheMessageKind.Tag:
                InvalidateTag(message.Tenant!, message.Tag!);
                break;
            default:
                InvalidateTenant(message.Tenant!);
                break;
        }
    }

    internal void EnsureStarted()
    {
        if (Volatile.Read(ref _started) != 0 || Interlocked.Exchange(ref _started, 1) != 0 || _disposed)
        {
            return;
        }

        _bus.Start();
        _heartbeatLoop = Task.Run(() => HeartbeatLoopAsync(_stopping.Token));
    }

    // The entry to serve, or null: a miss, an expired copy, a sliding entry whose store refresh is due (the read that
    // slides it goes to the store), or a near cache that is not serving.
    internal NearEntry? Find(string tenantId, string key, DateTimeOffset now, TimeSpan step)
    {
        EnsureStarted();
        if (!CanServe(Stopwatch.GetTimestamp()))
        {
            return null;
        }

        var nearKey = new NearKey(tenantId, key);
        if (!_entries.TryGetValue(nearKey, out var entry))
        {
            return null;
        }

        if (now >= entry.LocalExpiresAt)
        {
            Remove(nearKey, entry, "expired");
            return null;
        }

        if (entry.RefreshDue(now, step))
        {
            return null;
        }

        if (!entry.Used)
        {
            entry.Used = true;
        }

        return entry;
    }

    // Taken before a read goes to the store; see Offer.
    internal long Stamp() => Interlocked.Read(ref _sequence);

    // Keeps what a store read returned, unless an invalidation of its key (or a flush) arrived after the read took its
    // stamp: the value may then be older than the write that invalidated it.
    internal void Offer(string tenantId, string key, PgCacheEntry entry, long stamp, DateTimeOffset now)
    {
        if (entry.Value.Length > _options.MaxValueBytes || !CanServe(Stopwatch.GetTimestamp()))
        {
            return;
        }

        var nearKey = new NearKey(tenantId, key);
        var stripe = StripeOf(nearKey);
        if (Stale(stripe, stamp))
        {
            return;
        }

        var local = now + _options.MaxLocalLifetime;
        var storeExpiry = entry.Expiry.ExpiresAt ?? DateTimeOffset.MaxValue;
        var fresh = new NearEntry(tenantId, entry.Value.AsSpan().ToArray(), entry.Tags, storeExpiry, storeExpiry < local ? storeExpiry : local, entry.Expiry.Sliding, entry.Expiry.Absolute);
        if (_entries.TryGetValue(nearKey, out var old))
        {
            if (!_entries.TryUpdate(nearKey, fresh, old))
            {
                return;
            }

            Account(-1, -old.Value.Length);
        }
        else if (!_entries.TryAdd(nearKey, fresh))
        {
            return;
        }

        Account(1, fresh.Value.Length);

        // An invalidation that arrived between the check above and the insert: it may have missed the new copy.
        if (Stale(stripe, stamp))
        {
            Remove(nearKey, fresh, "invalidated");
            return;
        }

        if (Interlocked.Read(ref _count) > _options.MaxEntries || Interlocked.Read(ref _bytes) > _options.MaxBytes)
        {
            Trim(now);
        }
    }

    // This instance wrote the entry (write-through): it keeps the value it wrote, unless another instance's invalidation
    // of the key arrived while the write was on its way (stamp taken before it: that write may be the newer one).
    // Claiming the key's stripe with a compare-and-swap also keeps any read of this instance that left before the
    // write from filling the copy with the older value afterwards.
    internal void OfferOwnWrite(string tenantId, string key, ReadOnlySequence<byte> value, PgCacheExpiry expiry, string[]? tags, long stamp, DateTimeOffset now)
    {
        var nearKey = new NearKey(tenantId, key);
        var stripe = StripeOf(nearKey);
        var observed = Volatile.Read(ref _stripes[stripe]);
        var claim = Interlocked.Increment(ref _sequence);
        if (value.Length > _options.MaxValueBytes || !CanServe(Stopwatch.GetTimestamp()) || observed > stamp || Interlocked.Read(ref _floor) > stamp
            || Interlocked.CompareExchange(ref _stripes[stripe], claim, observed) != observed)
        {
            Invalidate(tenantId, key, "invalidated");
            return;
        }

        var local = now + _options.MaxLocalLifetime;
        var storeExpiry = expiry.ExpiresAt ?? DateTimeOffset.MaxValue;
        var fresh = new NearEntry(tenantId, value.ToArray(), tags, storeExpiry, storeExpiry < local ? storeExpiry : local, expiry.Sliding, expiry.Absolute);
        var old = default(NearEntry);
        _entries.AddOrUpdate(nearKey, fresh, (_, existing) =>
        {
            old = existing;
            return fresh;
        });
        if (old is not null)
        {
            Account(-1, -old.Value.Length);
        }

        Account(1, fresh.Value.Length);
        if (Volatile.Read(ref _stripes[stripe]) != claim || Interlocked.Read(ref _floor) > stamp)
        {
            Remove(nearKey, fresh, "invalidated");
            return;
        }

        if (Interlocked.Read(ref _count) > _options.MaxEntries || Interlocked.Read(ref _bytes) > _options.MaxBytes)
        {
            Trim(now);
        }
    }

    // This instance changed the key: drop the copy, and keep any read already on its way from filling it again.
    internal void Invalidate(string tenantId, string key, string cause)
    {
        var nearKey = new NearKey(tenantId, key);
        Volatile.Write(ref _stripes[StripeOf(nearKey)], Interlocked.Increment(ref _sequence));
        if (_entries.TryRemove(nearKey, out var old))
        {
            Account(-1, -old.Value.Length);
            _metrics.NearEvicted(cause);
        }
    }

    internal void InvalidateTag(string tenantId, string tag)
    {
        RaiseFloor();
        foreach (var (nearKey, entry) in _entries)
        {
            if (string.Equals(nearKey.TenantId, tenantId, StringComparison.Ordinal) && entry.Tags is { } tags && Array.IndexOf(tags, tag) >= 0)
            {
                Remove(nearKey, entry, "invalidated");
            }
        }
    }

    internal void InvalidateTenant(string tenantId)
    {
        RaiseFloor();
        foreach (var (nearKey, entry) in _entries)
        {
            if (string.Equals(nearKey.TenantId, tenantId, StringComparison.Ordinal))
            {
                Remove(nearKey, entry, "invalidated");
            }
        }
    }

    internal string KeysMessage(string tenantId, IReadOnlyList<string> keys) => NearCacheMessage.ForKeys(InstanceId, tenantId, keys);

    internal string TagMessage(string tenantId, string tag) => NearCacheMessage.ForTag(InstanceId, tenantId, tag);

    internal string TenantMessage(string tenantId) => NearCacheMessage.ForTenant(InstanceId, tenantId);

    internal void Sent() => _metrics.NearInvalidationSent();

    private static int StripeOf(NearKey key) => (int)((uint)key.GetHashCode() % StripeCount);

    private bool Stale(int stripe, long stamp) => Volatile.Read(ref _stripes[stripe]) > stamp || Interlocked.Read(ref _floor) > stamp;

    private bool CanServe(long timestamp) => _serving && timestamp - Interlocked.Read(ref _lastAck) <= _bound;

    private void RaiseFloor() => Interlocked.Exchange(ref _floor, Interlocked.Increment(ref _sequence));

    private void Flush(string cause)
    {
        RaiseFloor();
        Interlocked.Increment(ref _flushes);
        Volatile.Write(ref _lastFlush, cause);
        foreach (var (nearKey, entry) in _entries)
        {
            Remove(nearKey, entry, cause);
        }
    }

    private void Remove(NearKey nearKey, NearEntry entry, string cause)
    {
        if (_entries.TryRemove(new KeyValuePair<NearKey, NearEntry>(nearKey, entry)))
        {
            Account(-1, -entry.Value.Length);
            _metrics.NearEvicted(cause);
        }
    }

    private void Account(long count, long bytes)
    {
        Interlocked.Add(ref _count, count);
        Interlocked.Add(ref _bytes, bytes);
    }

    // Second chance: expired copies go first, then those not read since the last trim, until 90 % of the limits.
    private void Trim(DateTimeOffset now)
    {
        if (Interlocked.Exchange(ref _trimming, 1) != 0)
        {
            return;
        }

        try
        {
            var entryTarget = _options.MaxEntries * 9L / 10;
            var byteTarget = _options.MaxBytes * 9 / 10;
            for (var pass = 0; pass < 3 && (Interlocked.Read(ref _count) > entryTarget || Interlocked.Read(ref _bytes) > byteTarget); pass++)
            {
                foreach (var (nearKey, entry) in _entries)
                {
                    if (now >= entry.LocalExpiresAt)
                    {
                        Remove(nearKey, entry, "expired");
                    }
                    else if (!entry.Used || pass == 2)
                    {
                        Remove(nearKey, entry, "capacity");
                    }
                    else
                    {
                        entry.Used = false;
                    }

                    if (Interlocked.Read(ref _count) <= entryTarget && Interlocked.Read(ref _bytes) <= byteTarget)
                    {
                        break;
                    }
                }
            }
        }
        finally
        {
            Volatile.Write(ref _trimming, 0);
        }
    }

    private void Acknowledged(long sentTimestamp)
    {
        long current;
        do
        {
            current = Interlocked.Read(ref _lastAck);
            if (sentTimestamp <= current)
            {
                break;
            }
        }
        while (Interlocked.CompareExchange(ref _lastAck, sentTimestamp, current) != current);

        _metrics.NearHeartbeat(Stopwatch.GetElapsedTime(sentTimestamp));
        if (!_serving && _listening && !_disposed)
        {
            // Whatever was read before now may predate a message that was lost or late: start empty.
            Flush("resumed");
            _serving = true;
            LogServing(_logger, _bus.Channel);
            SignalServingChanged();
        }
    }

    private void StopServing(string cause)
    {
        var was = _serving;
        _serving = false;
        Flush(cause);
        if (was)
        {
            SignalServingChanged();
        }
    }

    private void SignalServingChanged()
    {
        TaskCompletionSource changed;
        lock (_stateGate)
        {
            changed = _servingChanged;
            _servingChanged = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        changed.TrySetResult();
    }

    private void Wake()
    {
        try
        {
            _wake.Release();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private async Task HeartbeatLoopAsync(CancellationToken stopping)
    {
        var failing = false;
        while (!stopping.IsCancellationRequested)
        {
            if (_listening)
            {
                var epoch = Interlocked.Read(ref _epoch);
                try
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping);
                    timeout.CancelAfter(_options.MaxStaleness);
                    await _bus.PublishAsync(NearCacheMessage.ForPing(_pingSource, epoch, Stopwatch.GetTimestamp()), timeout.Token).ConfigureAwait(false);
                    failing = false;
                }
                catch (Exception ex) when (!stopping.IsCancellationRequested)
                {
                    if (!failing)
                    {
                        LogHeartbeatFailed(_logger, ex, _bus.Channel);
                    }

                    failing = true;
                }
            }

            if (_serving && Stopwatch.GetTimestamp() - Interlocked.Read(ref _lastAck) > _bound)
            {
                StopServing("late");
                LogLate(_logger, _bus.Channel, _options.MaxStaleness);
            }

            try
            {
                await _wake.WaitAsync(_heartbeat, stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    [LoggerMessage(PgCacheEventIds.NearCacheSubscribed, LogLevel.Debug, "PgCache near cache subscribed to {Channel}; it serves once its heartbeat is back")]
    private static partial void LogSubscribed(ILogger logger, string channel);

    [LoggerMessage(PgCacheEventIds.NearCacheServing, LogLevel.Information, "PgCache near cache on {Channel} serves near hits")]
    private static partial void LogServing(ILogger logger, string channel);

    [LoggerMessage(PgCacheEventIds.NearCacheListenerLost, LogLevel.Warning, "PgCache near cache lost its listener on {Channel}: flushed, every read goes to the store until it is back")]
    private static partial void LogListenerLost(ILogger logger, Exception? exception, string channel);

    [LoggerMessage(PgCacheEventIds.NearCacheLate, LogLevel.Warning, "PgCache near cache heartbeat on {Channel} is later than {Bound}: flushed, every read goes to the store until it is back")]
    private static partial void LogLate(ILogger logger, string channel, TimeSpan bound);

    [LoggerMessage(PgCacheEventIds.NearCacheHeartbeatFailed, LogLevel.Warning, "PgCache near cache could not send its heartbeat on {Channel}")]
    private static partial void LogHeartbeatFailed(ILogger logger, Exception exception, string channel);

    [LoggerMessage(PgCacheEventIds.NearCacheUndecodable, LogLevel.Warning, "PgCache near cache received a message on {Channel} it cannot read; ignored")]
    private static partial void LogUndecodable(ILogger logger, string channel);
}

internal readonly record struct NearKey(string TenantId, string Key);

internal sealed class NearEntry(string tenantId, byte[] value, string[]? tags, DateTimeOffset storeExpiresAt, DateTimeOffset localExpiresAt, TimeSpan? sliding, DateTimeOffset? absolute)
{
    public string TenantId { get; } = tenantId;

    public byte[] Value { get; } = value;

    public string[]? Tags { get; } = tags;

    public DateTimeOffset LocalExpiresAt { get; } = localExpiresAt;

    public bool Used { get; set; }

    // The store's own rule: a read slides the entry when that moves its expiry by at least min(step, sliding / 10).
    public bool RefreshDue(DateTimeOffset now, TimeSpan step)
    {
        if (sliding is not { } window)
        {
            return false;
        }

        var slid = now + window;
        if (absolute is { } a && a < slid)
        {
            slid = a;
        }

        var threshold = window / 10 < step ? window / 10 : step;
        return slid - storeExpiresAt >= threshold;
    }
}
