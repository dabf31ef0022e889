using System.Buffers;
using PgCache;

namespace PgFirst.Testing;

/// <summary>
/// A real store with two hooks: the next near-cache read (<see cref="IPgCacheBackend.GetEntryAsync"/>) can be held
/// after the store answered and before the cache sees the answer, to put an invalidation in between; and the messages
/// the listener receives can be held back and delivered later in order, as by a listener that fell behind.
/// </summary>
public sealed class PausingCacheBackend(IPgCacheBackend inner) : IPgCacheBackend
{
    private readonly object _gate = new();
    private readonly Queue<string> _held = new();
    private Pause? _next;
    private Pause? _nextSet;
    private IPgCacheInvalidationSink? _sink;
    private bool _holding;

    /// <summary>From now on, messages the listener receives are held back.</summary>
    public void HoldMessages()
    {
        lock (_gate)
        {
            _holding = true;
        }
    }

    /// <summary>Delivers the held messages in order, and the next ones at once.</summary>
    public void DeliverMessages()
    {
        lock (_gate)
        {
            while (_held.TryDequeue(out var payload))
            {
                _sink!.OnMessage(payload);
            }

            _holding = false;
        }
    }

    public string Name => inner.Name;

    public Pause PauseNextEntryRead() => _next = new Pause();

    /// <summary>Holds the next set after the store wrote it, before the cache hears it returned.</summary>
    public Pause PauseNextSet() => _nextSet = new Pause();

    public async ValueTask<PgCacheEntry?> GetEntryAsync(PgCacheRead read, string key, bool async, CancellationToken cancellationToken)
    {
        var entry = await inner.GetEntryAsync(read, key, async, cancellationToken);
        if (Interlocked.Exchange(ref _next, null) is { } pause)
        {
            pause.Reach();
            await pause.Released.WaitAsync(cancellationToken);
        }

        return entry;
    }

    public ValueTask<byte[]?> GetAsync(PgCacheRead read, string key, bool async, CancellationToken cancellationToken) => inner.GetAsync(read, key, async, cancellationToken);

    public ValueTask<int?> GetIntoAsync(PgCacheRead read, string key, IBufferWriter<byte> destination, bool async, CancellationToken cancellationToken) => inner.GetIntoAsync(read, key, destination, async, cancellationToken);

    public ValueTask<IReadOnlyDictionary<string, byte[]>> GetManyAsync(PgCacheRead read, string[] keys, CancellationToken cancellationToken) => inner.GetManyAsync(read, keys, cancellationToken);

    public async ValueTask SetAsync(PgCacheWrite write, string key, ReadOnlySequence<byte> value, bool async, CancellationToken cancellationToken)
    {
        await inner.SetAsync(write, key, value, async, cancellationToken);
        if (Interlocked.Exchange(ref _nextSet, null) is { } pause)
        {
            pause.Reach();
            await pause.Released.WaitAsync(cancellationToken);
        }
    }

    public ValueTask SetManyAsync(PgCacheWrite write, string[] keys, byte[][] values, CancellationToken cancellationToken) => inner.SetManyAsync(write, keys, values, cancellationToken);

    public ValueTask RefreshAsync(string tenantId, string key, DateTimeOffset now, bool async, CancellationToken cancellationToken) => inner.RefreshAsync(tenantId, key, now, async, cancellationToken);

    public ValueTask<long> RemoveAsync(string tenantId, string[] keys, string? invalidation, bool async, CancellationToken cancellationToken) => inner.RemoveAsync(tenantId, keys, invalidation, async, cancellationToken);

    public ValueTask<long> RemoveByTagAsync(string tenantId, string tag, string? invalidation, CancellationToken cancellationToken) => inner.RemoveByTagAsync(tenantId, tag, invalidation, cancellationToken);

    public ValueTask<long> RemoveTenantAsync(string tenantId, string? invalidation, CancellationToken cancellationToken) => inner.RemoveTenantAsync(tenantId, invalidation, cancellationToken);

    public PgCacheFailure? Classify(Exception exception) => inner.Classify(exception);

    public IPgCacheInvalidationBus CreateInvalidationBus(IPgCacheInvalidationSink sink)
    {
        _sink = sink;
        return inner.CreateInvalidationBus(new HoldingSink(this));
    }

    private sealed class HoldingSink(PausingCacheBackend owner) : IPgCacheInvalidationSink
    {
        public void OnSubscribed() => owner._sink!.OnSubscribed();

        public void OnLost(Exception? exception) => owner._sink!.OnLost(exception);

        public void OnMessage(string payload)
        {
            lock (owner._gate)
            {
                if (owner._holding)
                {
                    owner._held.Enqueue(payload);
                    return;
                }

                owner._sink!.OnMessage(payload);
            }
        }
    }

    public sealed class Pause
    {
        private readonly TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Reached => _reached.Task;

        internal Task Released => _released.Task;

        public void Release() => _released.TrySetResult();

        internal void Reach() => _reached.TrySetResult();
    }
}
