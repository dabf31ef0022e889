using System.Diagnostics;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Time.Testing;
using PgCache;
using PgFirst.Core;
using Xunit;

#pragma warning disable CA1861 // Scenario data inline, for reading.

namespace PgFirst.Testing;

/// <summary>
/// The near cache's rules on several instances of one store, each with its own connections (another app server):
/// what one instance changes, the others stop serving from memory; what nobody changed, they keep serving without a
/// round trip. Run against PostgreSQL (LISTEN/NOTIFY) and Redis (pub/sub) alike.
/// </summary>
public abstract class NearCacheConformanceTests : IAsyncLifetime
{
    /// <summary>The bound the instances run with: short, so the failure tests finish quickly.</summary>
    protected static readonly TimeSpan Bound = TimeSpan.FromSeconds(1);

    private readonly List<PgDistributedCache> _instances = [];

    protected static CancellationToken CancellationToken => TestContext.Current.CancellationToken;

    public virtual ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public virtual async ValueTask DisposeAsync()
    {
        foreach (var instance in _instances)
        {
            await instance.DisposeAsync();
        }

        GC.SuppressFinalize(this);
    }

    /// <summary>Creates the store of one instance on the shared store, with its own connections.</summary>
    protected abstract IPgCacheBackend CreateBackend(PgCacheOptions options);

    private PgDistributedCache CreateInstance(PgCacheOptions options, TimeProvider time, Func<IPgCacheBackend, IPgCacheBackend>? wrap = null)
    {
        var backend = CreateBackend(options);
        return new PgDistributedCache(wrap?.Invoke(backend) ?? backend, options, new PgTenantContext("default"), time);
    }

    /// <summary>Kills the instance's listener connection on the server, as a network fault or an operator would.</summary>
    protected abstract Task KillListenerAsync(PgDistributedCache instance);

    /// <summary>Deletes an entry in the store directly, publishing nothing: only a copy in memory can still answer.</summary>
    protected abstract Task DeleteBehindTheCacheAsync(string tenantId, string key);

    /// <summary>Reads the entry's effective expiry straight from the store.</summary>
    protected abstract Task<DateTimeOffset?> StoreExpiryAsync(string tenantId, string key);

    protected async Task<PgDistributedCache> StartAsync(Action<PgCacheOptions>? configure = null, TimeProvider? time = null, Func<IPgCacheBackend, IPgCacheBackend>? wrap = null)
    {
        var options = new PgCacheOptions();
        options.NearCache.Enabled = true;
        options.NearCache.MaxStaleness = Bound;
        configure?.Invoke(options);
        var instance = CreateInstance(options, time ?? TimeProvider.System, wrap);
        _instances.Add(instance);
        await instance.NearCache!.WaitUntilServingAsync(CancellationToken).WaitAsync(TimeSpan.FromSeconds(20), CancellationToken);
        return instance;
    }

    protected static string Describe(IPgDistributedCache cache, params string[] keys)
    {
        var instance = (PgDistributedCache)cache;
        var near = instance.NearCache!;
        return $"count {near.Count}, serving {near.IsServing}, listening {near.IsListening}, heartbeat age {near.HeartbeatAge}, received {near.InvalidationsReceived}, flushes {near.FlushCount} (last: {near.LastFlushReason}), held: "
            + string.Join(", ", keys.Where(k => near.Contains(instance.TenantId, k)));
    }

    protected static async Task EventuallyAsync(Func<Task<bool>> condition, string what, TimeSpan? within = null, Func<string>? describe = null)
    {
        var deadline = Stopwatch.StartNew();
        while (!await condition())
        {
            if (deadline.Elapsed > (within ?? TimeSpan.FromSeconds(15)))
            {
                Assert.Fail($"Not within {within ?? TimeSpan.FromSeconds(15)}: {what} ({describe?.Invoke()})");
            }

            await Task.Delay(10, CancellationToken);
        }
    }

    // A whole flush (the listener lost, or its heartbeat late on a loaded machine) is always allowed: it only sends
    // reads to the store. A scenario that asserts a copy was kept runs again when a flush took it, at most twice.
    protected async Task UnlessFlushedAsync(Func<Task> scenario)
    {
        for (var attempt = 1; ; attempt++)
        {
            var before = _instances.Sum(i => i.NearCache!.FlushCount);
            var started = _instances.Count;
            try
            {
                await scenario();
                return;
            }
            catch (Xunit.Sdk.XunitException) when (attempt < 3 && Flushed(before, started))
            {
            }
        }
    }

    private bool Flushed(long before, int started) =>
        _instances.Take(started).Sum(i => i.NearCache!.FlushCount) != before
        || _instances.Skip(started).Any(i => i.NearCache!.FlushCount > 1);

    // A read that raced an invalidation (here: of the write that created the entry, still on its way) does not fill
    // the near cache, by design; read until a copy is held.
    protected static async Task<byte[]?> WarmAsync(IPgDistributedCache cache, string key)
    {
        var near = ((PgDistributedCache)cache).NearCache!;
        byte[]? value = null;
        await EventuallyAsync(
            async () =>
            {
                value = await cache.GetAsync(key, CancellationToken);
                return near.Contains(cache.TenantId, key);
            },
            $"a copy of {key} in memory");
        return value;
    }

    // Reads the key for twice the bound after a write that replaced old: old may be served only within the bound.
    private static async Task AssertNotServedPastTheBoundAsync(PgDistributedCache instance, string key, byte[] old)
    {
        var written = Stopwatch.StartNew();
        TimeSpan? lastOld = null;
        while (written.Elapsed < Bound * 2)
        {
            if ((await instance.GetAsync(key, CancellationToken))!.SequenceEqual(old))
            {
                lastOld = written.Elapsed;
            }

            await Task.Delay(5, CancellationToken);
        }

        Assert.True(lastOld is null || lastOld <= Bound, $"The old value was served {lastOld} after the write, past the bound of {Bound}.");
    }

    private static PgCacheEntryOptions Minutes(int minutes, params string[] tags) =>
        new PgCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(minutes), Tags = tags };

    private static byte[] V(int n) => [(byte)n, (byte)(n >> 8), 7, 7];

    [Fact]
    public async Task NearHit_IsServedFromMemory_WithoutTheStore()
    {
        await UnlessFlushedAsync(async () =>
        {
            var a = await StartAsync();
            var b = await StartAsync();
            await a.SetAsync("k", V(1), Minutes(10), CancellationToken);
            Assert.Equal(V(1), await WarmAsync(b, "k"));

            await DeleteBehindTheCacheAsync("default", "k");

            Assert.Equal(V(1), await b.GetAsync("k", CancellationToken));
            Assert.Equal(V(1), b.Get("k"));
            Assert.Equal(1, b.NearCache!.Count);
            Assert.Null(await a.ForTenant("other").GetAsync("k", CancellationToken));
        });
    }

    [Fact]
    public async Task NearHit_ReturnsACopy_TheCallerCannotCorruptTheNearCache()
    {
        var a = await StartAsync();
        await a.SetAsync("k", V(1), Minutes(10), CancellationToken);
        var first = await a.GetAsync("k", CancellationToken);
        first![0] = 99;
        var second = await a.GetAsync("k", CancellationToken);
        second![1] = 99;

        Assert.Equal(V(1), await a.GetAsync("k", CancellationToken));
    }

    [Fact]
    public async Task Set_OnOneInstance_TheOthersNeverServeTheOldValueAfterItArrived()
    {
        var a = await StartAsync();
        var b = await StartAsync();
        var c = await StartAsync();
        await a.SetAsync("k", V(1), Minutes(10), CancellationToken);
        Assert.Equal(V(1), await WarmAsync(b, "k"));
        Assert.Equal(V(1), await WarmAsync(c, "k"));

        await a.SetAsync("k", V(2), Minutes(10), CancellationToken);

        Assert.Equal(V(2), await a.GetAsync("k", CancellationToken));
        foreach (var other in new[] { b, c })
        {
            await EventuallyAsync(async () => (await other.GetAsync("k", CancellationToken))!.SequenceEqual(V(2)), "the new value on another instance", Bound);
            for (var i = 0; i < 50; i++)
            {
                Assert.Equal(V(2), await other.GetAsync("k", CancellationToken));
            }
        }
    }

    [Fact]
    public async Task RemoveAndRemoveMany_EvictTheCopiesOnEveryInstance()
    {
        await UnlessFlushedAsync(async () =>
        {
            var a = await StartAsync();
            var b = await StartAsync();
            foreach (var key in new[] { "r1", "r2", "r3", "keep" })
            {
                await a.SetAsync(key, V(1), Minutes(10), CancellationToken);
                Assert.NotNull(await WarmAsync(b, key));
            }

            await a.RemoveAsync("r1", CancellationToken);
            Assert.Equal(2, await a.RemoveManyAsync(["r2", "r3"], CancellationToken));

            await EventuallyAsync(() => Task.FromResult(b.NearCache!.Count == 1), "only 'keep' left in memory", describe: () => Describe(b, "r1", "r2", "r3", "keep"));
            foreach (var key in new[] { "r1", "r2", "r3" })
            {
                Assert.Null(await b.GetAsync(key, CancellationToken));
            }

            await DeleteBehindTheCacheAsync("default", "keep");
            Assert.Equal(V(1), await b.GetAsync("keep", CancellationToken));
        });
    }

    [Fact]
    public async Task RemoveByTag_EvictsExactlyTheTaggedCopies_OnEveryInstance()
    {
        await UnlessFlushedAsync(async () =>
        {
            var a = await StartAsync();
            var b = await StartAsync();
            await a.SetAsync("t1", V(1), Minutes(10, "red"), CancellationToken);
            await a.SetAsync("t2", V(2), Minutes(10, "red", "blue"), CancellationToken);
            await a.SetAsync("u", V(3), Minutes(10, "blue"), CancellationToken);
            await a.ForTenant("other").SetAsync("t1", V(4), Minutes(10, "red"), CancellationToken);
            foreach (var key in new[] { "t1", "t2", "u" })
            {
                Assert.NotNull(await WarmAsync(b, key));
            }

            Assert.NotNull(await WarmAsync(b.ForTenant("other"), "t1"));

            Assert.Equal(2, await a.RemoveByTagAsync("red", CancellationToken));

            await EventuallyAsync(() => Task.FromResult(b.NearCache!.Count == 2), "the two untagged-red copies left in memory", describe: () => Describe(b, "t1", "t2", "u"));
            Assert.Null(await b.GetAsync("t1", CancellationToken));
            Assert.Null(await b.GetAsync("t2", CancellationToken));
            await DeleteBehindTheCacheAsync("default", "u");
            await DeleteBehindTheCacheAsync("other", "t1");
            Assert.Equal(V(3), await b.GetAsync("u", CancellationToken));
            Assert.Equal(V(4), await b.ForTenant("other").GetAsync("t1", CancellationToken));
        });
    }

    [Fact]
    public async Task RemoveTenant_EvictsThatTenantsCopiesOnly_OnEveryInstance()
    {
        await UnlessFlushedAsync(async () =>
        {
            var a = await StartAsync();
            var b = await StartAsync();
            await a.ForTenant("gone").SetAsync("k1", V(1), Minutes(10), CancellationToken);
            await a.ForTenant("gone").SetAsync("k2", V(2), Minutes(10), CancellationToken);
            await a.ForTenant("stays").SetAsync("k1", V(3), Minutes(10), CancellationToken);
            Assert.NotNull(await WarmAsync(b.ForTenant("gone"), "k1"));
            Assert.NotNull(await WarmAsync(b.ForTenant("gone"), "k2"));
            Assert.NotNull(await WarmAsync(b.ForTenant("stays"), "k1"));

            Assert.Equal(2, await a.ForTenant("gone").RemoveTenantAsync(CancellationToken));

            await EventuallyAsync(() => Task.FromResult(b.NearCache!.Count == 1), "only the other tenant's copy left", describe: () => Describe(b.ForTenant("gone"), "k1", "k2") + " / " + Describe(b.ForTenant("stays"), "k1"));
            Assert.Null(await b.ForTenant("gone").GetAsync("k1", CancellationToken));
            await DeleteBehindTheCacheAsync("stays", "k1");
            Assert.Equal(V(3), await b.ForTenant("stays").GetAsync("k1", CancellationToken));
        });
    }

    [Fact]
    public async Task SetMany_EvictsExactlyTheBatchsKeys_AndGetManyServesNearHits()
    {
        await UnlessFlushedAsync(async () =>
        {
            var a = await StartAsync();
            var b = await StartAsync();
            await a.SetManyAsync([new("m1", V(1)), new("m2", V(1)), new("m3", V(1))], Minutes(10), CancellationToken);
            foreach (var key in new[] { "m1", "m2", "m3" })
            {
                Assert.NotNull(await WarmAsync(b, key));
            }

            await a.SetManyAsync([new("m1", V(2)), new("m2", V(2))], Minutes(10), CancellationToken);

            await EventuallyAsync(() => Task.FromResult(b.NearCache!.Count == 1), "m1 and m2 evicted", describe: () => Describe(b, "m1", "m2", "m3"));
            await DeleteBehindTheCacheAsync("default", "m3");
            var many = await b.GetManyAsync(["m1", "m2", "m3", "none"], CancellationToken);
            Assert.Equal(3, many.Count);
            Assert.Equal(V(2), many["m1"]);
            Assert.Equal(V(2), many["m2"]);
            Assert.Equal(V(1), many["m3"]);
        });
    }

    [Fact]
    public async Task AnInvalidationTooBigForOneMessage_FlushesTheTenant_OnOtherInstances()
    {
        await UnlessFlushedAsync(async () =>
        {
            var a = await StartAsync();
            var b = await StartAsync();
            var longKey = new string('x', 7_000) + "é";
            await a.SetAsync(longKey, V(1), Minutes(10), CancellationToken);
            await a.SetAsync("small", V(1), Minutes(10), CancellationToken);
            await a.ForTenant("other").SetAsync("small", V(1), Minutes(10), CancellationToken);
            Assert.NotNull(await WarmAsync(b, longKey));
            Assert.NotNull(await WarmAsync(b, "small"));
            Assert.NotNull(await WarmAsync(b.ForTenant("other"), "small"));

            // Two keys of 7,000 characters cannot be named in one NOTIFY payload: the tenant is flushed instead.
            await a.RemoveManyAsync([longKey, longKey + "2"], CancellationToken);

            await EventuallyAsync(() => Task.FromResult(b.NearCache!.Count == 1), "the tenant's copies flushed, the other tenant's kept", describe: () => Describe(b, "small"));
            Assert.Null(await b.GetAsync(longKey, CancellationToken));
            Assert.Equal(V(1), await b.GetAsync("small", CancellationToken));
        });
    }

    [Fact]
    public async Task ListenerKilled_TheCopyIsNotServedPastTheBound_AndTheNearCacheComesBack()
    {
        var a = await StartAsync();
        var b = await StartAsync();
        await a.SetAsync("k", V(1), Minutes(10), CancellationToken);
        Assert.Equal(V(1), await WarmAsync(b, "k"));

        await KillListenerAsync(b);
        await a.SetAsync("k", V(2), Minutes(10), CancellationToken);

        // The message of that write may be lost with the listener: the copy must still stop being served within the bound.
        await AssertNotServedPastTheBoundAsync(b, "k", V(1));
        Assert.Equal(V(2), await b.GetAsync("k", CancellationToken));

        await b.NearCache!.WaitUntilServingAsync(CancellationToken).WaitAsync(TimeSpan.FromSeconds(30), CancellationToken);
        Assert.Equal(V(2), await WarmAsync(b, "k"));
        await DeleteBehindTheCacheAsync("default", "k");
        Assert.Equal(V(2), await b.GetAsync("k", CancellationToken));
        await a.SetAsync("k", V(3), Minutes(10), CancellationToken);
        await EventuallyAsync(async () => (await b.GetAsync("k", CancellationToken))!.SequenceEqual(V(3)), "invalidations arrive again after the listener came back", Bound);
    }

    [Fact]
    public async Task ListenerFallsBehind_TheCopyIsNotServedPastTheBound_HealthIsDegraded_ThenItCatchesUp()
    {
        var a = await StartAsync();
        PausingCacheBackend? pausing = null;
        var b = await StartAsync(wrap: inner => pausing = new PausingCacheBackend(inner));
        var check = new PgCacheHealthCheck(b);
        var context = new HealthCheckContext { Registration = new HealthCheckRegistration("pgcache", check, HealthStatus.Unhealthy, null) };
        await a.SetAsync("k", V(1), Minutes(10), CancellationToken);
        Assert.Equal(V(1), await WarmAsync(b, "k"));
        Assert.Equal(HealthStatus.Healthy, (await check.CheckHealthAsync(context, CancellationToken)).Status);

        // b's listener still receives, but late: the write's invalidation (and b's heartbeats) wait in line.
        pausing!.HoldMessages();
        await a.SetAsync("k", V(2), Minutes(10), CancellationToken);
        await AssertNotServedPastTheBoundAsync(b, "k", V(1));
        Assert.False(b.NearCache!.IsServing);
        Assert.Equal(HealthStatus.Degraded, (await check.CheckHealthAsync(context, CancellationToken)).Status);

        pausing.DeliverMessages();

        await b.NearCache.WaitUntilServingAsync(CancellationToken).WaitAsync(TimeSpan.FromSeconds(20), CancellationToken);
        Assert.Equal(HealthStatus.Healthy, (await check.CheckHealthAsync(context, CancellationToken)).Status);
        Assert.Equal(V(2), await WarmAsync(b, "k"));
    }

    [Fact]
    public async Task AReadThatRacedAnInvalidation_DoesNotFillTheNearCacheWithTheOldValue()
    {
        var a = await StartAsync();
        PausingCacheBackend? pausing = null;
        var b = await StartAsync(wrap: inner => pausing = new PausingCacheBackend(inner));
        await a.SetAsync("race", V(1), Minutes(10), CancellationToken);
        await EventuallyAsync(() => Task.FromResult(b.NearCache!.InvalidationsReceived >= 1), "the set's invalidation on b");

        // b's read has the old value in hand when the next write's invalidation reaches b; only then does it return.
        var paused = pausing!.PauseNextEntryRead();
        var read = b.GetAsync("race", CancellationToken);
        await paused.Reached.WaitAsync(TimeSpan.FromSeconds(10), CancellationToken);
        await a.SetAsync("race", V(2), Minutes(10), CancellationToken);
        await EventuallyAsync(() => Task.FromResult(b.NearCache!.InvalidationsReceived >= 2), "the second set's invalidation on b");
        paused.Release();

        Assert.Equal(V(1), await read);
        Assert.False(b.NearCache!.Contains("default", "race"));
        Assert.Equal(V(2), await b.GetAsync("race", CancellationToken));
    }

    [Fact]
    public async Task OwnWrite_IsKeptInMemory_SoTheWritersNextReadIsANearHit()
    {
        await UnlessFlushedAsync(async () =>
        {
            var a = await StartAsync();
            await a.SetAsync("own", V(1), Minutes(10, "t"), CancellationToken);
            await a.SetAsync("own", V(2), Minutes(10, "t"), CancellationToken);

            Assert.True(a.NearCache!.Contains("default", "own"));
            await DeleteBehindTheCacheAsync("default", "own");
            Assert.Equal(V(2), await a.GetAsync("own", CancellationToken));
            Assert.Equal(0, await a.RemoveByTagAsync("t", CancellationToken)); // the row went behind the cache; the copy must go too
            Assert.False(a.NearCache.Contains("default", "own"));
        });
    }

    [Fact]
    public async Task AnOwnWriteThatRacedAnotherInstancesWrite_IsNotKept()
    {
        PausingCacheBackend? pausing = null;
        var a = await StartAsync(wrap: inner => pausing = new PausingCacheBackend(inner));
        var b = await StartAsync();

        // a's write is in the store, but a has not heard back when b overwrites it and b's invalidation reaches a.
        var paused = pausing!.PauseNextSet();
        var write = a.SetAsync("both", V(1), Minutes(10), CancellationToken);
        await paused.Reached.WaitAsync(TimeSpan.FromSeconds(10), CancellationToken);
        var received = a.NearCache!.InvalidationsReceived;
        await b.SetAsync("both", V(2), Minutes(10), CancellationToken);
        await EventuallyAsync(() => Task.FromResult(a.NearCache.InvalidationsReceived > received), "b's invalidation on a");
        paused.Release();
        await write;

        Assert.False(a.NearCache.Contains("default", "both"));
        Assert.Equal(V(2), await a.GetAsync("both", CancellationToken));
    }

    [Fact]
    public async Task ManyConcurrentSetsOnOneInstance_AreAllStored_AndEveryOneInvalidatesTheOtherInstance()
    {
        // On PostgreSQL, sets that arrive while one is in flight go together in one transaction: each must still be
        // written and must still evict its key elsewhere.
        var a = await StartAsync();
        var b = await StartAsync();
        var keys = Enumerable.Range(0, 64).Select(i => "many" + i).ToArray();
        await a.SetManyAsync(keys.Select(k => new KeyValuePair<string, byte[]>(k, V(1))), Minutes(10), CancellationToken);
        foreach (var key in keys)
        {
            await WarmAsync(b, key);
        }

        await Task.WhenAll(keys.Select((key, i) => Task.Run(() => a.SetAsync(key, V(1000 + i), Minutes(10), CancellationToken))));

        var store = new PgDistributedCache(CreateBackend(new PgCacheOptions()), new PgCacheOptions(), new PgTenantContext("default"), TimeProvider.System);
        _instances.Add(store);
        for (var i = 0; i < keys.Length; i++)
        {
            Assert.Equal(V(1000 + i), await store.GetAsync(keys[i], CancellationToken));
            var key = keys[i];
            var expected = V(1000 + i);
            await EventuallyAsync(async () => (await b.GetAsync(key, CancellationToken))!.SequenceEqual(expected), $"b serves the new {key}", Bound * 2);
        }
    }

    [Fact]
    public async Task ConcurrentWritersAndReaders_EveryInstanceEndsOnTheStoresValue()
    {
        // Reads race invalidations here all the time: a read that left before a write committed and came back after
        // its invalidation must not keep its old value.
        var instances = new[] { await StartAsync(), await StartAsync(), await StartAsync() };
        var keys = Enumerable.Range(0, 8).Select(i => "c" + i).ToArray();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        var writers = instances.Take(2).Select((cache, w) => Task.Run(async () =>
        {
            var random = new Random(w);
            for (var n = 0; !stop.IsCancellationRequested; n++)
            {
                await cache.SetAsync(keys[random.Next(keys.Length)], V((w * 10_000) + n), Minutes(10), CancellationToken);
            }
        }));
        var readers = instances.SelectMany(cache => Enumerable.Range(0, 2).Select(r => Task.Run(async () =>
        {
            var random = new Random(r + 100);
            while (!stop.IsCancellationRequested)
            {
                await cache.GetAsync(keys[random.Next(keys.Length)], CancellationToken);
            }
        })));
        await Task.WhenAll(writers.Concat(readers));

        var store = new PgDistributedCache(CreateBackend(new PgCacheOptions()), new PgCacheOptions(), new PgTenantContext("default"), TimeProvider.System);
        _instances.Add(store);
        await Task.Delay(Bound, CancellationToken);
        foreach (var key in keys)
        {
            var truth = await store.GetAsync(key, CancellationToken);
            foreach (var instance in instances)
            {
                Assert.Equal(truth, await instance.GetAsync(key, CancellationToken));
            }
        }
    }

    [Fact]
    public async Task SlidingEntry_NearHitsExtendItInTheStore_AtMostOncePerRefreshStep()
    {
        await UnlessFlushedAsync(async () =>
        {
            var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero));
            var a = await StartAsync(time: time);
            var b = await StartAsync(time: time);
            await a.SetAsync("s", V(1), new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(10) }, CancellationToken);
            var written = await StoreExpiryAsync("default", "s");
            Assert.Equal(V(1), await WarmAsync(b, "s"));

            // Within the step (min(1 minute, sliding / 10)): near hits, and the store is not written.
            time.Advance(TimeSpan.FromSeconds(30));
            for (var i = 0; i < 20; i++)
            {
                Assert.Equal(V(1), await b.GetAsync("s", CancellationToken));
            }

            Assert.Equal(written, await StoreExpiryAsync("default", "s"));

            // Past the step: one read goes to the store, which slides the entry; the hits after it are near again.
            time.Advance(TimeSpan.FromSeconds(40));
            for (var i = 0; i < 20; i++)
            {
                Assert.Equal(V(1), await b.GetAsync("s", CancellationToken));
            }

            var slid = await StoreExpiryAsync("default", "s");
            Assert.Equal(time.GetUtcNow() + TimeSpan.FromMinutes(10), slid!.Value, TimeSpan.FromMilliseconds(2));
            await DeleteBehindTheCacheAsync("default", "s");
            Assert.Equal(V(1), await b.GetAsync("s", CancellationToken));

            // The copy never outlives the store's expiry as this instance knows it.
            time.Advance(TimeSpan.FromMinutes(11));
            Assert.Null(await b.GetAsync("s", CancellationToken));
        });
    }

    [Fact]
    public async Task AbsoluteExpiry_TheCopyExpiresWithTheEntry()
    {
        await UnlessFlushedAsync(async () =>
        {
            var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero));
            var a = await StartAsync(time: time);
            await a.SetAsync("e", V(1), new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(2) }, CancellationToken);
            Assert.Equal(V(1), await WarmAsync(a, "e"));

            time.Advance(TimeSpan.FromMinutes(2));

            Assert.Null(await a.GetAsync("e", CancellationToken));
        });
    }

    [Fact]
    public async Task MaxLocalLifetime_ACopyIsReadAgainFromTheStoreAfterIt()
    {
        await UnlessFlushedAsync(async () =>
        {
            var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero));
            var a = await StartAsync(o => o.NearCache.MaxLocalLifetime = TimeSpan.FromMinutes(1), time);
            await a.SetAsync("l", V(1), Minutes(60), CancellationToken);
            Assert.Equal(V(1), await WarmAsync(a, "l"));
            await DeleteBehindTheCacheAsync("default", "l");
            Assert.Equal(V(1), await a.GetAsync("l", CancellationToken));

            time.Advance(TimeSpan.FromSeconds(61));

            Assert.Null(await a.GetAsync("l", CancellationToken));
        });
    }

    [Fact]
    public async Task Capacity_TheNearCacheStaysWithinItsEntryAndByteLimits()
    {
        await UnlessFlushedAsync(async () =>
        {
            var a = await StartAsync(o =>
            {
                o.NearCache.MaxEntries = 10;
                o.NearCache.MaxBytes = 4096;
                o.NearCache.MaxValueBytes = 1024;
            });
            for (var i = 0; i < 40; i++)
            {
                await a.SetAsync("cap" + i, new byte[300], Minutes(10), CancellationToken);
                Assert.NotNull(await a.GetAsync("cap" + i, CancellationToken));
                Assert.InRange(a.NearCache!.Count, 0, 10);
                Assert.InRange(a.NearCache.Bytes, 0, 4096);
            }

            Assert.True(a.NearCache!.Count > 0);
            await a.SetAsync("big", new byte[2000], Minutes(10), CancellationToken);
            Assert.Equal(2000, (await a.GetAsync("big", CancellationToken))!.Length);
            await DeleteBehindTheCacheAsync("default", "big");
            Assert.Null(await a.GetAsync("big", CancellationToken));
        });
    }

    [Fact]
    public async Task NearHit_AllocatesNothingBeyondTheValue()
    {
        await UnlessFlushedAsync(async () =>
        {
            var a = await StartAsync();
            var value = new byte[1024];
            await a.SetAsync("alloc", value, Minutes(10), CancellationToken);
            Assert.NotNull(await WarmAsync(a, "alloc"));
            var buffer = new System.Buffers.ArrayBufferWriter<byte>(4096);
            for (var i = 0; i < 10; i++)
            {
                buffer.ResetWrittenCount();
                Assert.True(a.TryGet("alloc", buffer));
                Assert.NotNull(a.Get("alloc"));
            }

            buffer.ResetWrittenCount();
            var before = GC.GetAllocatedBytesForCurrentThread();
            var hit = a.TryGet("alloc", buffer);
            var intoBuffer = GC.GetAllocatedBytesForCurrentThread() - before;
            before = GC.GetAllocatedBytesForCurrentThread();
            var copy = a.Get("alloc");
            var asArray = GC.GetAllocatedBytesForCurrentThread() - before;

            Assert.True(hit);
            Assert.Equal(1024, buffer.WrittenCount);
            Assert.Equal(0, intoBuffer);
            Assert.Equal(1024, copy!.Length);
            Assert.InRange(asArray, 1024, 1024 + 32);
        });
    }
}
