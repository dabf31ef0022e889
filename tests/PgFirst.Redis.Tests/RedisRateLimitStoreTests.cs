using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using PgFirst.Testing;
using PgRateLimit;
using StackExchange.Redis;

namespace PgFirst.Redis.Tests;

// Redis-only behaviour of the rate-limit store: the key layout, what the script writes, its expiry, the exact decision
// rules of ratelimit_acquire, and the wiring.
[Collection(FlushesScriptCache.Name)]
public class RedisRateLimitStoreTests(RedisServer server) : IAsyncLifetime
{
    private static readonly TimeSpan Day = TimeSpan.FromDays(1);

    private readonly string _prefix = RedisServer.NewKeyPrefix();

    private static CancellationToken CancellationToken => TestContext.Current.CancellationToken;

    private IDatabase Db => server.Connection.GetDatabase();

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public async ValueTask DisposeAsync() => await server.DeleteKeysAsync(_prefix);

    private RedisRateLimitStore Create() => new(server.Connection, new PgFirstRedisOptions { KeyPrefix = _prefix });

    private static PgRateLimitRequest Request(int permits, int limit, bool countRejected = false, string limiterId = "api", string partitionKey = "k", TimeSpan? window = null) =>
        new(limiterId, partitionKey, permits, limit, window ?? Day, countRejected);

    private async Task<DateTimeOffset> RedisNowAsync()
    {
        var time = (RedisResult[])(await Db.ExecuteAsync("TIME"))!;
        return DateTimeOffset.UnixEpoch.AddSeconds((long)time[0]).AddTicks((long)time[1] * TimeSpan.TicksPerMicrosecond);
    }

    [Fact]
    public async Task AcquireAsync_WritesOneHashPerPartition_ThatExpiresAtTheWindowsEndPlusAMargin()
    {
        var window = TimeSpan.FromSeconds(10);
        var before = await RedisNowAsync();
        await Create().AcquireAsync(Request(3, 5, window: window), CancellationToken);

        var key = $"{_prefix}rl:3:api:k";
        var windowStart = before.ToUnixTimeMilliseconds() / 10_000 * 10_000;
        var hash = (await Db.HashGetAllAsync(key)).ToDictionary(e => (string)e.Name!, e => (long)e.Value);
        Assert.Equal(3, hash["n"]);
        Assert.Equal(windowStart * 1000, hash["w"]);
        var expiry = await Db.KeyExpireTimeAsync(key);
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(windowStart + 10_000 + 1_000).UtcDateTime, expiry);
    }

    [Fact]
    public async Task AcquireAsync_LimiterIdsWithColons_NeverShareACounter()
    {
        var store = Create();

        var first = await store.AcquireAsync(Request(1, 1, limiterId: "a", partitionKey: "b:k"), CancellationToken);
        var second = await store.AcquireAsync(Request(1, 1, limiterId: "a:b", partitionKey: "k"), CancellationToken);

        Assert.True(first.Acquired);
        Assert.True(second.Acquired);
        Assert.True(await Db.KeyExistsAsync($"{_prefix}rl:1:a:b:k"));
        Assert.True(await Db.KeyExistsAsync($"{_prefix}rl:3:a:b:k"));
    }

    [Fact]
    public async Task AcquireAsync_CountRejectedFalse_CountsOnlyWhatFits()
    {
        var store = Create();

        Assert.Equal(new(true, 4, default), Strip(await store.AcquireAsync(Request(4, 5), CancellationToken)));
        Assert.Equal(new(false, 4, default), Strip(await store.AcquireAsync(Request(2, 5), CancellationToken)));
        Assert.Equal(new(true, 5, default), Strip(await store.AcquireAsync(Request(1, 5), CancellationToken)));
        Assert.Equal(new(false, 5, default), Strip(await store.AcquireAsync(Request(1, 5), CancellationToken)));
    }

    [Fact]
    public async Task AcquireAsync_CountRejectedTrue_AlwaysCounts()
    {
        var store = Create();

        Assert.Equal(new(true, 4, default), Strip(await store.AcquireAsync(Request(4, 5, countRejected: true), CancellationToken)));
        Assert.Equal(new(false, 6, default), Strip(await store.AcquireAsync(Request(2, 5, countRejected: true), CancellationToken)));
        Assert.Equal(new(false, 7, default), Strip(await store.AcquireAsync(Request(1, 5, countRejected: true), CancellationToken)));
    }

    [Fact]
    public async Task AcquireAsync_CounterOfAnEndedWindow_StartsAgainFromThePermits()
    {
        var store = Create();
        var key = $"{_prefix}rl:3:api:k";
        await store.AcquireAsync(Request(5, 5), CancellationToken);
        await Db.HashSetAsync(key, "w", "1000000");

        var decision = await store.AcquireAsync(Request(2, 5), CancellationToken);

        Assert.Equal(new(true, 2, default), Strip(decision));
        Assert.InRange(decision.WindowRemaining, TimeSpan.Zero, Day);
    }

    [Fact]
    public async Task AcquireAsync_ScriptFlushed_FallsBackToTheScriptsText()
    {
        var store = Create();
        await store.AcquireAsync(Request(1, 5), CancellationToken);
        await Db.ExecuteAsync("SCRIPT", "FLUSH");

        var decision = await store.AcquireAsync(Request(1, 5), CancellationToken);

        Assert.Equal(new(true, 2, default), Strip(decision));
    }

    [Fact]
    public async Task AcquireAsync_Canceled_Throws()
    {
        using var canceled = new CancellationTokenSource();
        await canceled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await Create().AcquireAsync(Request(1, 5), canceled.Token));
        Assert.False(await Db.KeyExistsAsync($"{_prefix}rl:3:api:k"));
    }

    [Fact]
    public async Task AddPgRateLimiting_RateLimitBackendRedis_ResolvesTheRedisStoreWithoutPostgreSql()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddPgFirst(o => o.RateLimitBackend = PgFirstBackend.Redis).AddRedis(o =>
        {
            o.Configuration = server.Configuration;
            o.KeyPrefix = _prefix;
        });
        builder.Services.AddPgRateLimiting();
        builder.Services.AddRateLimiter(o => o.AddPgFixedWindowLimiter("api", p =>
        {
            p.PermitLimit = 1;
            p.Window = TimeSpan.FromMinutes(1);
        }));
        using var host = builder.Build();

        // No NpgsqlDataSource is registered: with the limiter on Redis, nothing at start-up may ask for one.
        await host.StartAsync(CancellationToken);
        var store = host.Services.GetRequiredService<IPgRateLimitStore>();
        var first = await store.AcquireAsync(Request(1, 1), CancellationToken);
        var second = await store.AcquireAsync(Request(1, 1), CancellationToken);

        Assert.IsType<RedisRateLimitStore>(store);
        Assert.True(first.Acquired);
        Assert.False(second.Acquired);
        Assert.Equal(1, (long)await Db.HashGetAsync($"{_prefix}rl:3:api:k", "n"));
        await host.StopAsync(CancellationToken);
    }

    // The time left differs from call to call; the tests that care about it assert it on its own.
    private static PgRateLimitDecision Strip(PgRateLimitDecision decision)
    {
        Assert.InRange(decision.WindowRemaining, TimeSpan.FromTicks(1), Day);
        return decision with { WindowRemaining = default };
    }
}
