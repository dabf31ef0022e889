using System.Buffers;
using System.Text;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Time.Testing;
using PgCache;
using PgFirst.Core;
using Xunit;

namespace PgFirst.Testing;

public sealed record CachedProduct(int Id, string Name, decimal Price);

[JsonSerializable(typeof(CachedProduct))]
public sealed partial class CacheTestJsonContext : JsonSerializerContext;

/// <summary>
/// The behaviour every <see cref="IPgDistributedCache"/> backend must have, run against PostgreSQL and Redis alike.
/// Time is a <see cref="FakeTimeProvider"/>; both backends expire entries by it.
/// </summary>
public abstract class DistributedCacheConformanceTests : IAsyncLifetime
{
    protected FakeTimeProvider Time { get; } = new(new DateTimeOffset(2026, 11, 23, 12, 0, 0, TimeSpan.Zero));

    protected static CancellationToken CancellationToken => TestContext.Current.CancellationToken;

    /// <summary>Gets the cache under test: isolated (own schema or key prefix), on <see cref="Time"/>, ambient tenant default.</summary>
    protected IPgDistributedCache Cache { get; private set; } = null!;

    public virtual async ValueTask InitializeAsync() => Cache = await CreateCacheAsync(new PgTenantContext("default"));

    public virtual ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        return ValueTask.CompletedTask;
    }

    /// <summary>Creates a cache on this test's isolated store, with <see cref="Time"/> and the given tenant context.</summary>
    protected abstract Task<IPgDistributedCache> CreateCacheAsync(ITenantContext tenantContext);

    /// <summary>Creates a cache that reaches its (real) server through <paramref name="proxy"/>.</summary>
    protected abstract Task<IPgDistributedCache> CreateCacheThroughAsync(TcpProxy proxy, bool failSafe);

    /// <summary>Gets the real server's host and port, for <see cref="TcpProxy"/>.</summary>
    protected abstract (string Host, int Port) ServerEndpoint { get; }

    private static DistributedCacheEntryOptions InMinutes(double minutes) => new() { AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(minutes) };

    private static byte[] Bytes(int length, int seed = 1)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    [Fact]
    public async Task Get_MissingKey_ReturnsNull()
    {
        Assert.Null(await Cache.GetAsync("missing", CancellationToken));
        Assert.Null(Cache.Get("missing"));
    }

    [Fact]
    public async Task SetAsync_ThenGetAsync_ReturnsTheSameBytes()
    {
        var value = Bytes(1024);

        await Cache.SetAsync("k", value, InMinutes(10), CancellationToken);

        Assert.Equal(value, await Cache.GetAsync("k", CancellationToken));
    }

    [Fact]
    public async Task SetAsync_ExistingKey_Overwrites()
    {
        await Cache.SetAsync("k", [1], InMinutes(10), CancellationToken);
        await Cache.SetAsync("k", [2, 3], InMinutes(10), CancellationToken);

        Assert.Equal([2, 3], await Cache.GetAsync("k", CancellationToken));
    }

    [Fact]
    public async Task RemoveAsync_ThenGet_ReturnsNull_AndMissingKeyIsFine()
    {
        await Cache.SetAsync("k", [1], InMinutes(10), CancellationToken);

        await Cache.RemoveAsync("k", CancellationToken);
        await Cache.RemoveAsync("never-there", CancellationToken);

        Assert.Null(await Cache.GetAsync("k", CancellationToken));
    }

    [Fact]
    public void SyncApi_SetGetRefreshRemove_Work()
    {
        Cache.Set("k", [9], new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(5) });
        Assert.Equal([9], Cache.Get("k"));

        Time.Advance(TimeSpan.FromMinutes(4));
        Cache.Refresh("k");
        Time.Advance(TimeSpan.FromMinutes(4));
        Assert.Equal([9], Cache.Get("k"));

        Cache.Remove("k");
        Assert.Null(Cache.Get("k"));
    }

    [Fact]
    public async Task EmptyValue_RoundTripsAsEmptyNotNull()
    {
        await Cache.SetAsync("empty", [], InMinutes(10), CancellationToken);

        var value = await Cache.GetAsync("empty", CancellationToken);

        Assert.NotNull(value);
        Assert.Empty(value);
    }

    [Fact]
    public async Task Keys_LongUnicodeCaseAndTrailingSpaces_AreDistinctAndExact()
    {
        var keys = new[]
        {
            new string('x', 5000),
            new string('x', 4999) + "y",
            "clé-🔑-鍵-ключ",
            "Key",
            "key",
            "key ",
            " key",
        };

        for (var i = 0; i < keys.Length; i++)
        {
            await Cache.SetAsync(keys[i], [(byte)i], InMinutes(10), CancellationToken);
        }

        for (var i = 0; i < keys.Length; i++)
        {
            Assert.Equal([(byte)i], (await Cache.GetAsync(keys[i], CancellationToken))!);
        }
    }

    [Fact]
    public async Task AbsoluteExpiration_WithNonUtcOffset_ExpiresAtThatInstant()
    {
        var india = TimeSpan.FromHours(5.5);
        var at = Time.GetUtcNow().ToOffset(india).AddMinutes(10);
        await Cache.SetAsync("k", [1], new DistributedCacheEntryOptions { AbsoluteExpiration = at }, CancellationToken);

        Time.Advance(TimeSpan.FromMinutes(9));
        Assert.NotNull(await Cache.GetAsync("k", CancellationToken));

        Time.Advance(TimeSpan.FromMinutes(1));
        Assert.Null(await Cache.GetAsync("k", CancellationToken));
    }

    [Fact]
    public async Task RelativeExpiration_LongerThanAMinute_ExpiresAfterIt()
    {
        await Cache.SetAsync("k", [1], new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromSeconds(150) }, CancellationToken);

        Time.Advance(TimeSpan.FromSeconds(149));
        Assert.NotNull(await Cache.GetAsync("k", CancellationToken));

        Time.Advance(TimeSpan.FromSeconds(2));
        Assert.Null(await Cache.GetAsync("k", CancellationToken));
    }

    [Fact]
    public async Task SlidingExpiration_ReadsKeepItAlive_IdleLetsItExpire()
    {
        await Cache.SetAsync("k", [1], new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(5) }, CancellationToken);

        for (var i = 0; i < 4; i++)
        {
            Time.Advance(TimeSpan.FromMinutes(4));
            Assert.NotNull(await Cache.GetAsync("k", CancellationToken));
        }

        Time.Advance(TimeSpan.FromMinutes(5));
        Assert.Null(await Cache.GetAsync("k", CancellationToken));
    }

    [Fact]
    public async Task GetManyAsync_SlidesEachSlidingHit_NeverPastItsAbsoluteExpiration()
    {
        var sliding = new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(5) };
        await Cache.SetAsync("a", [1], sliding, CancellationToken);
        await Cache.SetAsync("b", [2], sliding, CancellationToken);
        await Cache.SetAsync("capped", [3], new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(5), AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(7) }, CancellationToken);
        await Cache.SetAsync("fixed", [4], new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(9) }, CancellationToken);

        // Read every 4 minutes by GetMany only: without a slide each sliding entry would be gone after 5.
        for (var i = 0; i < 2; i++)
        {
            Time.Advance(TimeSpan.FromMinutes(4));
            var found = await Cache.GetManyAsync(["a", "b", "capped", "fixed"], CancellationToken);
            Assert.Equal(i == 0 ? ["a", "b", "capped", "fixed"] : ["a", "b", "fixed"], found.Keys.Order(StringComparer.Ordinal));
            Assert.Equal([1], found["a"]);
        }

        Time.Advance(TimeSpan.FromMinutes(4));
        Assert.Equal(["a", "b"], (await Cache.GetManyAsync(["a", "b", "capped", "fixed"], CancellationToken)).Keys.Order(StringComparer.Ordinal));
        Time.Advance(TimeSpan.FromMinutes(5));
        Assert.Empty(await Cache.GetManyAsync(["a", "b"], CancellationToken));
    }

    [Fact]
    public async Task SlidingExpiration_NeverOutlivesTheAbsoluteExpiration()
    {
        await Cache.SetAsync(
            "k",
            [1],
            new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(5), AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(7) },
            CancellationToken);

        Time.Advance(TimeSpan.FromMinutes(4));
        Assert.NotNull(await Cache.GetAsync("k", CancellationToken));
        Time.Advance(TimeSpan.FromMinutes(2.5));
        Assert.NotNull(await Cache.GetAsync("k", CancellationToken));
        Time.Advance(TimeSpan.FromMinutes(1));
        Assert.Null(await Cache.GetAsync("k", CancellationToken));
    }

    [Fact]
    public async Task RefreshAsync_ExtendsASlidingEntryWithoutReadingIt()
    {
        await Cache.SetAsync("k", [1], new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(5) }, CancellationToken);

        Time.Advance(TimeSpan.FromMinutes(4));
        await Cache.RefreshAsync("k", CancellationToken);
        Time.Advance(TimeSpan.FromMinutes(4));

        Assert.NotNull(await Cache.GetAsync("k", CancellationToken));
    }

    [Fact]
    public async Task NoExpiration_StaysForever()
    {
        await Cache.SetAsync("k", [1], new DistributedCacheEntryOptions(), CancellationToken);

        Time.Advance(TimeSpan.FromDays(3650));

        Assert.NotNull(await Cache.GetAsync("k", CancellationToken));
    }

    [Fact]
    public async Task SetAsync_AbsoluteExpirationInThePast_ThrowsAndWritesNothing()
    {
        var options = new DistributedCacheEntryOptions { AbsoluteExpiration = Time.GetUtcNow().AddSeconds(-1) };

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Cache.SetAsync("k", [1], options, CancellationToken));

        Assert.Null(await Cache.GetAsync("k", CancellationToken));
    }

    [Fact]
    public void EntryOptions_ZeroOrNegativeDurations_AreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.Zero });
        Assert.Throws<ArgumentOutOfRangeException>(() => new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromSeconds(-1) });
        Assert.Throws<ArgumentOutOfRangeException>(() => new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.Zero });
        Assert.Throws<ArgumentOutOfRangeException>(() => new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromSeconds(-5) });
    }

    [Fact]
    public async Task BadArguments_ThrowArgumentExceptionsAndWriteNothing()
    {
        await Assert.ThrowsAsync<ArgumentNullException>(() => Cache.SetAsync("k", null!, InMinutes(1), CancellationToken));
        await Assert.ThrowsAsync<ArgumentNullException>(() => Cache.SetAsync("k", [1], null!, CancellationToken));
        await Assert.ThrowsAsync<ArgumentNullException>(() => Cache.SetAsync(null!, [1], InMinutes(1), CancellationToken));
        await Assert.ThrowsAsync<ArgumentException>(() => Cache.SetAsync(string.Empty, [1], InMinutes(1), CancellationToken));
        await Assert.ThrowsAsync<ArgumentException>(() => Cache.SetAsync("a\0b", [1], InMinutes(1), CancellationToken));
        await Assert.ThrowsAsync<ArgumentException>(() => Cache.SetAsync("bad\ud800", [1], InMinutes(1), CancellationToken));
        await Assert.ThrowsAsync<ArgumentException>(() => Cache.SetAsync(new string('k', PgCacheOptions.MaxKeyLength + 1), [1], InMinutes(1), CancellationToken));
        await Assert.ThrowsAsync<ArgumentException>(() => Cache.GetAsync(string.Empty, CancellationToken));
        await Assert.ThrowsAsync<ArgumentException>(
            () => Cache.SetAsync("k", [1], new PgCacheEntryOptions { Tags = ["ok", string.Empty] }, CancellationToken));
        await Assert.ThrowsAsync<ArgumentException>(
            () => Cache.SetManyAsync([new("good", [1]), new(string.Empty, [2])], InMinutes(1), CancellationToken));
        await Assert.ThrowsAsync<ArgumentNullException>(
            () => Cache.SetManyAsync([new("good", [1]), new("other", null!)], InMinutes(1), CancellationToken));

        Assert.Null(await Cache.GetAsync("k", CancellationToken));
        Assert.Null(await Cache.GetAsync("good", CancellationToken));
    }

    [Fact]
    public async Task Tenants_AreIsolated_WhateverTheKeyText()
    {
        var a = Cache.ForTenant("a");
        var ab = Cache.ForTenant("a:b");
        await a.SetAsync("b:k", [1], InMinutes(10), CancellationToken);
        await ab.SetAsync("k", [2], InMinutes(10), CancellationToken);
        await a.SetAsync("shared", [3], InMinutes(10), CancellationToken);

        Assert.Equal([1], await a.GetAsync("b:k", CancellationToken));
        Assert.Equal([2], await ab.GetAsync("k", CancellationToken));
        Assert.Null(await ab.GetAsync("shared", CancellationToken));
        Assert.Null(await Cache.GetAsync("shared", CancellationToken));

        await ab.RemoveAsync("b:k", CancellationToken);
        Assert.Equal([1], await a.GetAsync("b:k", CancellationToken));
    }

    [Fact]
    public async Task AmbientTenant_FromTheTenantContext_SelectsTheEntries()
    {
        using (PgTenantContext.BeginScope("t1"))
        {
            Assert.Equal("t1", Cache.TenantId);
            await Cache.SetAsync("k", [1], InMinutes(10), CancellationToken);
        }

        using (PgTenantContext.BeginScope("t2"))
        {
            Assert.Null(await Cache.GetAsync("k", CancellationToken));
        }

        Assert.Equal([1], await Cache.ForTenant("t1").GetAsync("k", CancellationToken));
        Assert.Throws<ArgumentException>(() => Cache.ForTenant("not valid"));
    }

    [Fact]
    public async Task RemoveTenantAsync_ClearsOnlyThatTenant()
    {
        await Cache.ForTenant("x").SetManyAsync([new("1", [1]), new("2", [2])], InMinutes(10), CancellationToken);
        await Cache.ForTenant("y").SetAsync("1", [9], InMinutes(10), CancellationToken);

        Assert.Equal(2, await Cache.ForTenant("x").RemoveTenantAsync(CancellationToken));

        Assert.Empty(await Cache.ForTenant("x").GetManyAsync(["1", "2"], CancellationToken));
        Assert.Equal([9], await Cache.ForTenant("y").GetAsync("1", CancellationToken));
    }

    [Fact]
    public async Task GetManyAsync_DuplicatesAndMisses_ReturnsEachFoundKeyOnce()
    {
        await Cache.SetManyAsync([new("a", [1]), new("b", [2]), new("c", [])], InMinutes(10), CancellationToken);

        var found = await Cache.GetManyAsync(["a", "missing", "a", "c", "b"], CancellationToken);

        Assert.Equal(3, found.Count);
        Assert.Equal([1], found["a"]);
        Assert.Equal([2], found["b"]);
        Assert.Empty(found["c"]);
        Assert.False(found.ContainsKey("missing"));
        Assert.Empty(await Cache.GetManyAsync([], CancellationToken));
    }

    [Fact]
    public async Task GetManyAsync_SkipsExpiredEntries()
    {
        await Cache.SetAsync("short", [1], InMinutes(1), CancellationToken);
        await Cache.SetAsync("long", [2], InMinutes(10), CancellationToken);

        Time.Advance(TimeSpan.FromMinutes(2));

        Assert.Equal(["long"], (await Cache.GetManyAsync(["short", "long"], CancellationToken)).Keys);
    }

    [Fact]
    public async Task SetManyAsync_DuplicateKeys_LastValueWins()
    {
        await Cache.SetManyAsync([new("k", [1]), new("other", [5]), new("k", [2])], InMinutes(10), CancellationToken);

        Assert.Equal([2], await Cache.GetAsync("k", CancellationToken));
        Assert.Equal([5], await Cache.GetAsync("other", CancellationToken));
    }

    [Fact]
    public async Task SetManyAsync_ThousandEntries_AllReadable()
    {
        var entries = Enumerable.Range(0, 1000).Select(i => new KeyValuePair<string, byte[]>($"k{i}", BitConverter.GetBytes(i))).ToList();

        await Cache.SetManyAsync(entries, InMinutes(10), CancellationToken);
        var found = await Cache.GetManyAsync(entries.Select(e => e.Key), CancellationToken);

        Assert.Equal(1000, found.Count);
        Assert.All(entries, e => Assert.Equal(e.Value, found[e.Key]));
    }

    [Fact]
    public async Task RemoveManyAsync_CountsOnlyExistingEntries()
    {
        await Cache.SetManyAsync([new("a", [1]), new("b", [2]), new("c", [3])], InMinutes(10), CancellationToken);

        var removed = await Cache.RemoveManyAsync(["a", "b", "a", "missing"], CancellationToken);

        Assert.Equal(2, removed);
        Assert.Equal(["c"], (await Cache.GetManyAsync(["a", "b", "c"], CancellationToken)).Keys);
        Assert.Equal(0, await Cache.RemoveManyAsync([], CancellationToken));
    }

    [Fact]
    public async Task Json_RoundTripsWithSourceGeneratedTypeInfo()
    {
        var product = new CachedProduct(7, "Tea", 3.5m);

        await Cache.SetJsonAsync("p7", product, InMinutes(10), CacheTestJsonContext.Default.CachedProduct, CancellationToken);

        Assert.Equal(product, await Cache.GetJsonAsync("p7", CacheTestJsonContext.Default.CachedProduct, CancellationToken));
        Assert.Null(await Cache.GetJsonAsync("nothing", CacheTestJsonContext.Default.CachedProduct, CancellationToken));
        Assert.Contains("\"Tea\"", Encoding.UTF8.GetString((await Cache.GetAsync("p7", CancellationToken))!), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Json_CorruptEntry_ThrowsNamingTheType()
    {
        await Cache.SetAsync("p", "{\"Id\": 1, \"Name\": "u8.ToArray(), InMinutes(10), CancellationToken);

        var error = await Assert.ThrowsAsync<PgCacheJsonException>(
            () => Cache.GetJsonAsync("p", CacheTestJsonContext.Default.CachedProduct, CancellationToken));

        Assert.Contains(typeof(CachedProduct).FullName!, error.Message, StringComparison.Ordinal);
        Assert.Equal(typeof(CachedProduct), error.TargetType);
        Assert.Equal("p", error.Key);
        await Assert.ThrowsAsync<PgCacheJsonException>(() => Cache.GetOrSetJsonAsync(
            "p", _ => Task.FromResult(new CachedProduct(1, "x", 1)), InMinutes(1), CacheTestJsonContext.Default.CachedProduct, CancellationToken));
    }

    [Fact]
    public async Task GetOrSetJsonAsync_ConcurrentCallers_RunTheFactoryOnce()
    {
        var runs = 0;
        using var gate = new SemaphoreSlim(0);

        async Task<CachedProduct> Factory(CancellationToken ct)
        {
            Interlocked.Increment(ref runs);
            await gate.WaitAsync(ct);
            return new CachedProduct(1, "Coffee", 2m);
        }

        var callers = Enumerable.Range(0, 16)
            .Select(_ => Cache.GetOrSetJsonAsync("coffee", Factory, InMinutes(10), CacheTestJsonContext.Default.CachedProduct, CancellationToken))
            .ToList();
        await Task.Delay(200, CancellationToken);
        gate.Release(16);
        var results = await Task.WhenAll(callers);

        Assert.Equal(1, runs);
        Assert.All(results, r => Assert.Equal("Coffee", r.Name));
        var again = await Cache.GetOrSetJsonAsync(
            "coffee", _ => throw new InvalidOperationException("must not run"), InMinutes(10), CacheTestJsonContext.Default.CachedProduct, CancellationToken);
        Assert.Equal("Coffee", again.Name);
    }

    [Fact]
    public async Task RemoveByTagAsync_RemovesTaggedEntriesOfThisTenantOnly()
    {
        var tagged = new PgCacheEntryOptions { Tags = ["catalog", "product:1"], AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(10) };
        await Cache.SetAsync("p1", [1], tagged, CancellationToken);
        await Cache.SetManyAsync([new("p2", [2]), new("p3", [3])], new PgCacheEntryOptions { Tags = ["catalog"] }, CancellationToken);
        await Cache.SetAsync("untagged", [4], InMinutes(10), CancellationToken);
        await Cache.ForTenant("other").SetAsync("p1", [5], tagged, CancellationToken);

        Assert.Equal(1, await Cache.RemoveByTagAsync("product:1", CancellationToken));
        Assert.Equal(2, await Cache.RemoveByTagAsync("catalog", CancellationToken));

        Assert.Empty(await Cache.GetManyAsync(["p1", "p2", "p3"], CancellationToken));
        Assert.Equal([4], await Cache.GetAsync("untagged", CancellationToken));
        Assert.Equal([5], await Cache.ForTenant("other").GetAsync("p1", CancellationToken));
        Assert.Equal(0, await Cache.RemoveByTagAsync("nothing-has-this", CancellationToken));
    }

    [Fact]
    public async Task SetAsync_WithoutTags_DropsTheEntrysOldTags()
    {
        await Cache.SetAsync("k", [1], new PgCacheEntryOptions { Tags = ["t"] }, CancellationToken);
        await Cache.SetAsync("k", [2], InMinutes(10), CancellationToken);

        Assert.Equal(0, await Cache.RemoveByTagAsync("t", CancellationToken));
        Assert.Equal([2], await Cache.GetAsync("k", CancellationToken));
    }

    [Theory]
    [InlineData(0, false)]
    [InlineData(1024, false)]
    [InlineData(1024 * 1024, false)]
    [InlineData(0, true)]
    [InlineData(1024, true)]
    [InlineData(1024 * 1024, true)]
    public async Task BufferCache_SingleAndMultiSegmentValues_RoundTrip(int size, bool multiSegment)
    {
        var value = Bytes(size, seed: size);
        var sequence = multiSegment ? Segmented(value, 3) : new ReadOnlySequence<byte>(value);

        await Cache.SetAsync("buffer", sequence, InMinutes(10), CancellationToken);
        var writer = new ArrayBufferWriter<byte>();
        var found = await Cache.TryGetAsync("buffer", writer, CancellationToken);

        Assert.True(found);
        Assert.Equal(value, writer.WrittenSpan.ToArray());
        var syncWriter = new ArrayBufferWriter<byte>();
        Assert.True(Cache.TryGet("buffer", syncWriter));
        Assert.Equal(size, syncWriter.WrittenCount);
        Assert.False(await Cache.TryGetAsync("no-such-buffer", new ArrayBufferWriter<byte>(), CancellationToken));
    }

    [Fact]
    public async Task StoreDown_CacheStillResolves_ThenErrorsClearly_ThenRecovers()
    {
        var (host, port) = ServerEndpoint;
        await using var proxy = new TcpProxy(host, port);
        proxy.GoDown();

        // Constructing does no I/O, so it succeeds while the store is unreachable.
        var cache = await CreateCacheThroughAsync(proxy, failSafe: false);
        var error = await Assert.ThrowsAsync<PgCacheException>(() => cache.GetAsync("k", CancellationToken));
        Assert.Equal("get", error.Operation);
        await Assert.ThrowsAsync<PgCacheException>(() => cache.SetAsync("k", [1], InMinutes(10), CancellationToken));

        proxy.ComeBack();
        await WaitUntilAsync(async () =>
        {
            try
            {
                await cache.SetAsync("k", [1], InMinutes(10), CancellationToken);
                return true;
            }
            catch (PgCacheException)
            {
                return false;
            }
        });
        Assert.Equal([1], await cache.GetAsync("k", CancellationToken));
    }

    [Fact]
    public async Task FailSafe_StoreDown_ReadsAreMissesWritesStillThrow()
    {
        var (host, port) = ServerEndpoint;
        await using var proxy = new TcpProxy(host, port);
        proxy.GoDown();
        var cache = await CreateCacheThroughAsync(proxy, failSafe: true);

        Assert.Null(await cache.GetAsync("k", CancellationToken));
        Assert.Empty(await cache.GetManyAsync(["k"], CancellationToken));
        Assert.False(await cache.TryGetAsync("k", new ArrayBufferWriter<byte>(), CancellationToken));
        await Assert.ThrowsAsync<PgCacheException>(() => cache.SetAsync("k", [1], InMinutes(1), CancellationToken));
    }

    protected static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "The store did not come back within 30 s.");
            await Task.Delay(200, CancellationToken);
        }
    }

    private static ReadOnlySequence<byte> Segmented(byte[] value, int parts)
    {
        if (value.Length < parts)
        {
            return new ReadOnlySequence<byte>(value);
        }

        var size = value.Length / parts;
        Segment? first = null;
        Segment? last = null;
        for (var offset = 0; offset < value.Length; offset += size)
        {
            var chunk = value.AsMemory(offset, Math.Min(size, value.Length - offset));
            if (first is null)
            {
                first = last = new Segment(chunk, 0);
            }
            else
            {
                last = last!.Append(chunk);
            }
        }

        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
