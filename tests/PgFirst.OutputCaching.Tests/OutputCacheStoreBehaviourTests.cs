using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.OutputCaching;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using PgCache;
using PgFirst.OutputCaching;
using PgFirst.Redis;
using PgFirst.Testing;

namespace PgFirst.OutputCaching.Tests;

// One behavioural suite, run against our store (on PostgreSQL and on the Redis backend) and against Microsoft's Redis
// output cache store, so a difference from the peer shows as a row: where the behaviours differ on purpose, the
// expectation says so per store.
public abstract class OutputCacheStoreBehaviourTests : IAsyncLifetime
{
    private static readonly string[] OneTag = ["t"];

    protected static CancellationToken Ct => TestContext.Current.CancellationToken;

    protected IOutputCacheStore Store { get; private set; } = null!;

    // Whether evicting a tag an entry carried before it was overwritten (without that tag) still removes it.
    protected abstract bool StaleTagsEvict { get; }

    public async ValueTask InitializeAsync() => Store = await CreateStoreAsync();

    public async ValueTask DisposeAsync()
    {
        await CleanUpAsync();
        GC.SuppressFinalize(this);
    }

    protected abstract ValueTask CleanUpAsync();

    protected abstract Task<IOutputCacheStore> CreateStoreAsync();

    protected abstract Task AdvanceAsync(TimeSpan time);

    [Fact]
    public async Task SetThenGet_ReturnsTheBytes_AndAMissIsNull()
    {
        await Store.SetAsync("page:/", [1, 2, 3], ["catalog"], TimeSpan.FromMinutes(1), Ct);

        Assert.Equal([1, 2, 3], await Store.GetAsync("page:/", Ct));
        Assert.Null(await Store.GetAsync("page:/missing", Ct));
    }

    [Fact]
    public async Task EvictByTag_RemovesEveryEntryWithTheTag_AndOnlyThose()
    {
        await Store.SetAsync("a", [1], ["product:1"], TimeSpan.FromMinutes(1), Ct);
        await Store.SetAsync("b", [2], ["product:1", "catalog"], TimeSpan.FromMinutes(1), Ct);
        await Store.SetAsync("c", [3], ["catalog"], TimeSpan.FromMinutes(1), Ct);
        await Store.SetAsync("d", [4], null, TimeSpan.FromMinutes(1), Ct);

        await Store.EvictByTagAsync("product:1", Ct);

        Assert.Null(await Store.GetAsync("a", Ct));
        Assert.Null(await Store.GetAsync("b", Ct));
        Assert.Equal([3], await Store.GetAsync("c", Ct));
        Assert.Equal([4], await Store.GetAsync("d", Ct));
        await Store.EvictByTagAsync("no-such-tag", Ct);
        Assert.Equal([3], await Store.GetAsync("c", Ct));
    }

    [Fact]
    public async Task AnOverwrittenEntry_KeepsOnlyItsNewTags()
    {
        await Store.SetAsync("k", [1], ["old"], TimeSpan.FromMinutes(1), Ct);
        await Store.SetAsync("k", [2], ["new"], TimeSpan.FromMinutes(1), Ct);

        await Store.EvictByTagAsync("old", Ct);

        // Microsoft's Redis store keeps the key in the old tag's set: evicting "old" removes the new response too.
        Assert.Equal(StaleTagsEvict ? null : [2], await Store.GetAsync("k", Ct));
    }

    [Fact]
    public async Task AnEntry_ExpiresAfterItsValidFor()
    {
        await Store.SetAsync("short", [1], null, TimeSpan.FromSeconds(1), Ct);
        await Store.SetAsync("long", [2], null, TimeSpan.FromMinutes(10), Ct);

        await AdvanceAsync(TimeSpan.FromSeconds(2.5));

        Assert.Null(await Store.GetAsync("short", Ct));
        Assert.Equal([2], await Store.GetAsync("long", Ct));
    }

    [Fact]
    public async Task BufferPath_WritesAMultiSegmentBody_AndReadsItIntoAPipe()
    {
        if (Store is not IOutputCacheBufferStore buffers)
        {
            Assert.Fail($"{Store.GetType().Name} is not an IOutputCacheBufferStore.");
            return;
        }

        var body = Enumerable.Range(0, 70_000).Select(i => (byte)(i * 7)).ToArray();
        var first = new Segment(body.AsMemory(0, 30_000));
        var last = first.Append(body.AsMemory(30_000));
        await buffers.SetAsync("big", new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length), OneTag, TimeSpan.FromMinutes(1), Ct);

        // No reader runs while the store writes: without a pause threshold a store that flushes does not wait for one.
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 0));
        Assert.True(await buffers.TryGetAsync("big", pipe.Writer, Ct));
        await pipe.Writer.CompleteAsync();
        var read = await pipe.Reader.ReadAsync(Ct);
        Assert.Equal(body, read.Buffer.ToArray());
        Assert.False(await buffers.TryGetAsync("absent", new Pipe().Writer, Ct));
    }

    [Fact]
    public async Task AnOversizeBody_OfEightMebibytes_RoundTrips()
    {
        var body = new byte[8 * 1024 * 1024];
        Random.Shared.NextBytes(body);

        await Store.SetAsync("huge", body, null, TimeSpan.FromMinutes(1), Ct);

        Assert.Equal(body, await Store.GetAsync("huge", Ct));
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory) => Memory = memory;

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory) { RunningIndex = RunningIndex + Memory.Length };
            Next = next;
            return next;
        }
    }
}

public sealed class PostgresOutputCacheStoreTests(PostgresServer server) : OutputCacheStoreBehaviourTests
{
    private readonly PostgresSchema _schema = new(server);
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);

    protected override bool StaleTagsEvict => false;

    protected override ValueTask CleanUpAsync() => _schema.DisposeAsync();

    protected override async Task<IOutputCacheStore> CreateStoreAsync()
    {
        await _schema.ApplyAsync([PgDistributedCache.SchemaModule], Ct);
        return new PgOutputCacheStore(new PgDistributedCache(_schema.DataSource, _schema.Options, new PgCacheOptions(), new PgTenantContext("default"), _time));
    }

    protected override Task AdvanceAsync(TimeSpan time)
    {
        _time.Advance(time);
        return Task.CompletedTask;
    }

    // The output cache's namespace: an app's own entry and tag of the same names are left alone.
    [Fact]
    public async Task OutputCacheKeysAndTags_NeverTouchTheAppsOwnCacheEntries()
    {
        var cache = new PgDistributedCache(_schema.DataSource, _schema.Options, new PgCacheOptions(), new PgTenantContext("default"), _time);
        await cache.SetAsync("page:/", [9], new PgCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(1), Tags = ["catalog"] }, Ct);
        await Store.SetAsync("page:/", [1], ["catalog"], TimeSpan.FromMinutes(1), Ct);

        await Store.EvictByTagAsync("catalog", Ct);

        Assert.Null(await Store.GetAsync("page:/", Ct));
        Assert.Equal([9], await cache.GetAsync("page:/", Ct));
    }
}

public sealed class RedisBackendOutputCacheStoreTests(RedisServer server) : OutputCacheStoreBehaviourTests
{
    private readonly string _prefix = RedisServer.NewKeyPrefix();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);

    protected override bool StaleTagsEvict => false;

    protected override async ValueTask CleanUpAsync() => await server.DeleteKeysAsync(_prefix);

    protected override Task<IOutputCacheStore> CreateStoreAsync() => Task.FromResult<IOutputCacheStore>(new PgOutputCacheStore(new PgDistributedCache(
        new RedisCacheBackend(server.Connection, new PgFirstRedisOptions { KeyPrefix = _prefix }, new PgCacheOptions()), new PgCacheOptions(), new PgTenantContext("default"), _time)));

    protected override Task AdvanceAsync(TimeSpan time)
    {
        _time.Advance(time);
        return Task.CompletedTask;
    }
}

public sealed class MicrosoftRedisOutputCacheStoreTests(RedisServer server) : OutputCacheStoreBehaviourTests
{
    private readonly string _prefix = RedisServer.NewKeyPrefix();
    private ServiceProvider? _services;

    protected override bool StaleTagsEvict => true;

    protected override async ValueTask CleanUpAsync()
    {
        if (_services is not null)
        {
            await _services.DisposeAsync();
        }

        await server.DeleteKeysAsync(_prefix);
    }

    protected override Task<IOutputCacheStore> CreateStoreAsync()
    {
        _services = new ServiceCollection()
            .AddStackExchangeRedisOutputCache(o =>
            {
                o.Configuration = server.Configuration;
                o.InstanceName = _prefix;
            })
            .BuildServiceProvider();
        return Task.FromResult(_services.GetRequiredService<IOutputCacheStore>());
    }

    // Redis expires the peer's entries on its own clock.
    protected override Task AdvanceAsync(TimeSpan time) => Task.Delay(time, Ct);
}
