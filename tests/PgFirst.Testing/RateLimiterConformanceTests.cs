using System.Net;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using PgRateLimit;
using Xunit;

namespace PgFirst.Testing;

/// <summary>
/// The behaviour of <see cref="PgFixedWindowRateLimiter"/> on every store, run against PostgreSQL and Redis alike. Windows
/// run on the store's clock, so short real windows are used where a window must end.
/// </summary>
public abstract class RateLimiterConformanceTests : IAsyncLifetime
{
    protected static CancellationToken CancellationToken => TestContext.Current.CancellationToken;

    /// <summary>A fresh store on this test's isolated place; each call is another "app server" with its own connections.</summary>
    protected abstract IPgRateLimitStore CreateStore();

    /// <summary>A store that reaches its (real) server through <paramref name="proxy"/>.</summary>
    protected abstract IPgRateLimitStore CreateStoreThrough(TcpProxy proxy);

    /// <summary>The real server, for <see cref="TcpProxy"/>.</summary>
    protected abstract (string Host, int Port) ServerEndpoint { get; }

    /// <summary>The store's clock.</summary>
    protected abstract Task<DateTimeOffset> StoreNowAsync();

    public virtual ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public virtual ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        return ValueTask.CompletedTask;
    }

    private static PgFixedWindowRateLimiterOptions Policy(int limit, TimeSpan window, Action<PgFixedWindowRateLimiterOptions>? configure = null)
    {
        var options = new PgFixedWindowRateLimiterOptions { PermitLimit = limit, Window = window, Timeout = TimeSpan.FromSeconds(5) };
        configure?.Invoke(options);
        return options;
    }

    // An app on the test server with PgRateLimit registered and the store under test in place of the configured one;
    // the cleanup runner is not part of these tests.
    private WebApplicationBuilder CreateAppBuilder(IPgRateLimitStore? store = null)
    {
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseTestServer();
        builder.Services.AddPgFirst(o => o.Maintenance.Enabled = false);
        builder.Services.AddPgRateLimiting();
        builder.Services.Replace(ServiceDescriptor.Singleton(store ?? CreateStore()));
        return builder;
    }

    [Fact]
    public async Task WarmUp_AtStartUp_ReadiesTheStore_AndTheReadinessCheckIsHealthy()
    {
        var store = new CountingStore(CreateStore());
        var builder = CreateAppBuilder(store);
        builder.Services.AddHealthChecks().AddPgRateLimit();
        await using var app = builder.Build();

        await app.StartAsync(CancellationToken);

        Assert.Equal(1, store.WarmUps);
        Assert.Equal(0, store.Calls);
        Assert.Equal(HealthStatus.Healthy, (await app.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(CancellationToken)).Status);
        await app.StopAsync(CancellationToken);
    }

    [Fact]
    public async Task StoreDownAtStartUp_AppStartsAfterTheWarmUpTimeout_AndIsNotReadyUntilTheStoreAnswers()
    {
        var (host, port) = ServerEndpoint;
        await using var proxy = new TcpProxy(host, port);
        proxy.GoDown();
        var builder = CreateAppBuilder(CreateStoreThrough(proxy));
        builder.Services.Configure<PgRateLimitOptions>(o => o.WarmUpTimeout = TimeSpan.FromSeconds(1));
        builder.Services.AddHealthChecks().AddPgRateLimit();
        await using var app = builder.Build();
        var health = app.Services.GetRequiredService<HealthCheckService>();

        await app.StartAsync(CancellationToken);
        var warming = (await health.CheckHealthAsync(CancellationToken)).Entries["pgratelimit"];
        Assert.Equal(HealthStatus.Unhealthy, warming.Status);
        Assert.Contains("warming up", warming.Description, StringComparison.Ordinal);

        proxy.ComeBack();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((await health.CheckHealthAsync(CancellationToken)).Status != HealthStatus.Healthy)
        {
            Assert.True(DateTime.UtcNow < deadline, "Not ready 30 s after the store came back.");
            await Task.Delay(200, CancellationToken);
        }

        await app.StopAsync(CancellationToken);
    }

    [Theory]
    [InlineData(-1, 10)]
    [InlineData(1_001, 10)]
    [InlineData(16, 0)]
    public async Task InvalidWarmUpOptions_FailAtStartUp_NamingTheSetting(int connections, int timeoutSeconds)
    {
        var builder = CreateAppBuilder();
        builder.Services.Configure<PgRateLimitOptions>(o =>
        {
            o.WarmUpConnections = connections;
            o.WarmUpTimeout = TimeSpan.FromSeconds(timeoutSeconds);
        });
        await using var app = builder.Build();

        var error = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() => app.StartAsync(CancellationToken));

        Assert.Contains("PgRateLimit:WarmUp", error.Message, StringComparison.Ordinal);
    }

    // A day-long window: a burst of a few seconds crosses its (UTC midnight) boundary about once in 20,000 runs.
    private static readonly TimeSpan Day = TimeSpan.FromDays(1);

    [Fact]
    public async Task FourInstancesThirtyTwoCallers_AdmitExactlyThePermitLimit()
    {
        var policy = Policy(50, Day);
        var limiters = Enumerable.Range(0, 4).Select(_ => new PgFixedWindowRateLimiter(CreateStore(), "api", "user:hot", policy)).ToList();
        var admitted = 0;
        var rejected = 0;

        await Task.WhenAll(Enumerable.Range(0, 32).Select(caller => Task.Run(
            async () =>
            {
                var limiter = limiters[caller % limiters.Count];
                for (var i = 0; i < 10; i++)
                {
                    using var lease = await limiter.AcquireAsync(1, CancellationToken);
                    Interlocked.Increment(ref lease.IsAcquired ? ref admitted : ref rejected);
                }
            },
            CancellationToken)));

        Assert.Equal(50, admitted);
        Assert.Equal(270, rejected);
    }

    // Short real windows: start right after a boundary so a burst of a few calls cannot straddle two windows.
    private async Task AtStartOfWindowAsync(TimeSpan window)
    {
        var windowMs = (long)window.TotalMilliseconds;
        var intoWindow = (await StoreNowAsync()).ToUnixTimeMilliseconds() % windowMs;
        if (intoWindow > windowMs / 5)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(windowMs - intoWindow + 20), CancellationToken);
        }
    }

    [Fact]
    public async Task NextWindow_AdmitsAgain()
    {
        await AtStartOfWindowAsync(TimeSpan.FromSeconds(1));
        using var limiter = new PgFixedWindowRateLimiter(CreateStore(), "api", "k", Policy(2, TimeSpan.FromSeconds(1)));
        using var first = await limiter.AcquireAsync(1, CancellationToken);
        using var second = await limiter.AcquireAsync(1, CancellationToken);
        using var third = await limiter.AcquireAsync(1, CancellationToken);
        Assert.True(first.IsAcquired && second.IsAcquired);
        Assert.False(third.IsAcquired);

        Assert.True(third.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter));
        await Task.Delay(retryAfter + TimeSpan.FromMilliseconds(50), CancellationToken);

        using var next = await limiter.AcquireAsync(1, CancellationToken);
        Assert.True(next.IsAcquired);
    }

    [Fact]
    public async Task TwoPolicies_OnTheSameKey_NeverShareACounter()
    {
        var store = CreateStore();
        using var a = new PgFixedWindowRateLimiter(store, "login", "ip:10.0.0.1", Policy(1, Day));
        using var b = new PgFixedWindowRateLimiter(store, "api", "ip:10.0.0.1", Policy(1, Day));

        Assert.True((await a.AcquireAsync(1, CancellationToken)).IsAcquired);
        Assert.True((await b.AcquireAsync(1, CancellationToken)).IsAcquired);
        Assert.False((await a.AcquireAsync(1, CancellationToken)).IsAcquired);
        Assert.False((await b.AcquireAsync(1, CancellationToken)).IsAcquired);
    }

    [Fact]
    public async Task WeightedPermits_CountByWeight_AndARejectedWeightLeavesRoomForSmallerOnes()
    {
        using var limiter = new PgFixedWindowRateLimiter(CreateStore(), "api", "k", Policy(10, Day));

        Assert.True((await limiter.AcquireAsync(4, CancellationToken)).IsAcquired);
        Assert.True((await limiter.AcquireAsync(4, CancellationToken)).IsAcquired);
        Assert.False((await limiter.AcquireAsync(4, CancellationToken)).IsAcquired);
        Assert.True((await limiter.AcquireAsync(2, CancellationToken)).IsAcquired);
        Assert.False((await limiter.AcquireAsync(1, CancellationToken)).IsAcquired);
        Assert.Equal(0, limiter.GetStatistics()!.CurrentAvailablePermits);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await limiter.AcquireAsync(11, CancellationToken));
    }

    [Fact]
    public async Task CountRejectedRequests_MakesRejectionsCount()
    {
        var store = CreateStore();
        using var counting = new PgFixedWindowRateLimiter(store, "strict", "k", Policy(3, Day, o => o.CountRejectedRequests = true));
        using var other = new PgFixedWindowRateLimiter(store, "strict", "k", Policy(3, Day, o => o.CountRejectedRequests = true));

        Assert.True((await counting.AcquireAsync(2, CancellationToken)).IsAcquired);
        Assert.False((await counting.AcquireAsync(2, CancellationToken)).IsAcquired);

        // The rejected 2 counted: another instance finds 4 of 3 used, so even 1 permit is refused.
        Assert.False((await other.AcquireAsync(1, CancellationToken)).IsAcquired);
    }

    [Fact]
    public async Task RetryAfter_IsTheTimeToTheWindowsEndOnTheStoreClock()
    {
        var window = TimeSpan.FromSeconds(2);
        await AtStartOfWindowAsync(window);
        using var limiter = new PgFixedWindowRateLimiter(CreateStore(), "api", "k", Policy(1, window));

        // The first call fills the window; the second is answered locally from what the first learned.
        var before = await StoreNowAsync();
        await limiter.AcquireAsync(1, CancellationToken);
        using var rejected = await limiter.AcquireAsync(1, CancellationToken);
        var after = await StoreNowAsync();

        Assert.False(rejected.IsAcquired);
        Assert.True(rejected.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter));
        var windowMs = (long)window.TotalMilliseconds;
        var end = DateTimeOffset.FromUnixTimeMilliseconds(((before.ToUnixTimeMilliseconds() / windowMs) + 1) * windowMs);
        var tolerance = TimeSpan.FromMilliseconds(10);
        Assert.InRange(retryAfter, end - after - tolerance, end - before + tolerance);
    }

    [Fact]
    public async Task ExhaustedWindow_RejectsWithoutAnyRoundTrip()
    {
        var store = new CountingStore(CreateStore());
        using var limiter = new PgFixedWindowRateLimiter(store, "api", "k", Policy(3, Day));
        for (var i = 0; i < 4; i++)
        {
            await limiter.AcquireAsync(1, CancellationToken);
        }

        var calls = store.Calls;
        for (var i = 0; i < 100; i++)
        {
            using var attempt = limiter.AttemptAcquire(1);
            using var lease = await limiter.AcquireAsync(1, CancellationToken);
            Assert.False(attempt.IsAcquired);
            Assert.False(lease.IsAcquired);
            Assert.True(lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) && retryAfter > TimeSpan.Zero);
        }

        Assert.Equal(calls, store.Calls);
        Assert.True(calls <= 4, $"{calls} round trips for 4 requests");
    }

    [Fact]
    public async Task AttemptAcquireAndStatistics_NeverTouchTheStore()
    {
        var store = new CountingStore(CreateStore());
        using var limiter = new PgFixedWindowRateLimiter(store, "api", "k", Policy(5, Day));

        using var attempt = limiter.AttemptAcquire(1);
        var statistics = limiter.GetStatistics()!;

        Assert.False(attempt.IsAcquired);
        Assert.Equal(0, store.Calls);
        Assert.Equal(5, statistics.CurrentAvailablePermits);
        Assert.Equal(0, statistics.CurrentQueuedCount);

        await limiter.AcquireAsync(2, CancellationToken);
        await limiter.AcquireAsync(3, CancellationToken);
        await limiter.AcquireAsync(1, CancellationToken);
        statistics = limiter.GetStatistics()!;
        Assert.Equal(2, store.Calls);
        Assert.Equal(0, statistics.CurrentAvailablePermits);
        Assert.Equal(2, statistics.TotalSuccessfulLeases);
        Assert.Equal(1, statistics.TotalFailedLeases);
    }

    [Fact]
    public async Task IdleDuration_GrowsWhileUnused()
    {
        using var limiter = new PgFixedWindowRateLimiter(CreateStore(), "api", "k", Policy(5, Day));
        await limiter.AcquireAsync(1, CancellationToken);

        var first = limiter.IdleDuration;
        await Task.Delay(50, CancellationToken);
        var later = limiter.IdleDuration;

        Assert.NotNull(first);
        Assert.NotNull(later);
        Assert.True(later > first);
    }

    [Fact]
    public async Task StoreDown_FailOpenAdmits_FailClosedRejects()
    {
        var (host, port) = ServerEndpoint;
        await using var proxy = new TcpProxy(host, port);
        proxy.GoDown();
        var store = CreateStoreThrough(proxy);
        using var open = new PgFixedWindowRateLimiter(store, "open", "k", Policy(1, Day, o =>
        {
            o.Timeout = TimeSpan.FromMilliseconds(300);
            o.FailureMode = PgRateLimitFailureMode.FailOpen;
        }));
        using var closed = new PgFixedWindowRateLimiter(store, "closed", "k", Policy(1, Day, o =>
        {
            o.Timeout = TimeSpan.FromMilliseconds(300);
            o.FailureMode = PgRateLimitFailureMode.FailClosed;
        }));

        using var admitted = await open.AcquireAsync(1, CancellationToken);
        using var refused = await closed.AcquireAsync(1, CancellationToken);

        Assert.True(admitted.IsAcquired);
        Assert.False(refused.IsAcquired);
        Assert.True(refused.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) && retryAfter > TimeSpan.Zero);
    }

    [Theory]
    [InlineData(false, new[] { 2, 2, 2, 1, 3 }, new[] { true, true, false, true, false }, 5)]
    [InlineData(true, new[] { 3, 3, 1 }, new[] { true, false, false }, 7)]
    [InlineData(false, new[] { 5, 1 }, new[] { true, false }, 5)]
    public async Task AcquireBatch_DecidesInArrivalOrder_ExactlyAsOneCallAfterAnother(bool countRejected, int[] permits, bool[] expected, long count)
    {
        var store = CreateStore();

        var batch = await store.AcquireBatchAsync(new PgRateLimitBatchRequest("batch", "together", permits, 5, Day, countRejected), CancellationToken);

        Assert.Equal(expected, batch.Acquired);
        Assert.Equal(count, batch.Count);
        Assert.InRange(batch.WindowRemaining, TimeSpan.Zero, Day);
        var alone = new List<bool>();
        foreach (var p in permits)
        {
            alone.Add((await store.AcquireAsync(new PgRateLimitRequest("batch", "alone", p, 5, Day, countRejected), CancellationToken)).Acquired);
        }

        Assert.Equal(alone, batch.Acquired);
        var after = await store.AcquireBatchAsync(new PgRateLimitBatchRequest("batch", "together", [1], 5, Day, countRejected), CancellationToken);
        Assert.Equal([false], after.Acquired);
    }

    [Fact]
    public async Task HotPartition_128Callers_AdmitExactlyTheLimit_InFewerRoundTripsThanRequests()
    {
        var store = new CountingStore(CreateStore());
        using var limiter = new PgFixedWindowRateLimiter(store, "hot", "user:hot", Policy(300, Day));
        var admitted = 0;

        await Task.WhenAll(Enumerable.Range(0, 128).Select(caller => Task.Run(
            async () =>
            {
                for (var i = 0; i < 4; i++)
                {
                    using var lease = await limiter.AcquireAsync(1, CancellationToken);
                    if (lease.IsAcquired)
                    {
                        Interlocked.Increment(ref admitted);
                    }
                }
            },
            CancellationToken)));

        Assert.Equal(300, admitted);
        Assert.True(store.Calls < 512, $"{store.Calls} store calls for 512 decisions: nothing was coalesced.");

        var uncoalesced = new CountingStore(CreateStore());
        using var single = new PgFixedWindowRateLimiter(uncoalesced, "hot-single", "user:hot", Policy(300, Day, o => o.CoalesceDecisions = false));
        await Task.WhenAll(Enumerable.Range(0, 32).Select(_ => Task.Run(async () => (await single.AcquireAsync(1, CancellationToken)).Dispose(), CancellationToken)));
        Assert.Equal(32, uncoalesced.Calls);
    }

    // A decision that has to wait for a new connection (cold pool, scale-out) is not a store timeout while the store is
    // healthy: the statement gets the whole Timeout once connected.
    [Fact]
    public async Task NewConnectionSlowerThanTheTimeout_IsNotAStoreTimeout_WhileTheStoreIsHealthy()
    {
        // The inner store is warmed first so that its statement, not a second connection open, is what follows the
        // slow "connect" (a CI run failed when the real first open landed inside the 100 ms statement budget). The
        // connect (800 ms) is twice the Timeout (400 ms) and well inside ConnectTimeout (5 s).
        var inner = CreateStore();
        await inner.PingAsync(CancellationToken);
        var store = new SlowToConnectStore(inner, TimeSpan.FromMilliseconds(800));
        using var limiter = new PgFixedWindowRateLimiter(store, "connect", "k", Policy(10, Day, o =>
        {
            o.Timeout = TimeSpan.FromMilliseconds(400);
            o.ConnectTimeout = TimeSpan.FromSeconds(5);
            o.FailureMode = PgRateLimitFailureMode.FailClosed;
        }));

        using var lease = await limiter.AcquireAsync(1, CancellationToken);

        Assert.True(lease.IsAcquired);
        Assert.True(lease.TryGetMetadata(PgRateLimitMetadata.Policy, out _), "The store made the decision.");
    }

    [Fact]
    public async Task NewConnectionTime_CountsAgainstTheTimeout_AfterAFailure_UntilACallSucceeds_AndWithConnectTimeoutZero()
    {
        var (host, port) = ServerEndpoint;
        await using var proxy = new TcpProxy(host, port);
        proxy.GoDown();
        var store = new SlowToConnectStore(CreateStoreThrough(proxy), TimeSpan.FromMilliseconds(300));
        using var limiter = new PgFixedWindowRateLimiter(store, "connect-failing", "k", Policy(1_000, Day, o =>
        {
            o.Timeout = TimeSpan.FromMilliseconds(150);
            o.ConnectTimeout = TimeSpan.FromSeconds(5);
            o.FailureMode = PgRateLimitFailureMode.FailClosed;
        }));
        using (var down = await limiter.AcquireAsync(1, CancellationToken))
        {
            Assert.False(down.IsAcquired);
        }

        // The store failed: a slow connection now counts, so this decision times out (fail-closed) although the
        // store is back; its call still ends well and clears the failure.
        proxy.ComeBack();
        using (var counted = await limiter.AcquireAsync(1, CancellationToken))
        {
            Assert.False(counted.IsAcquired);
            Assert.True(counted.TryGetMetadata(MetadataName.ReasonPhrase, out var reason));
            Assert.Contains("unavailable", reason, StringComparison.Ordinal);
        }

        // Once a (late) call has succeeded, the grace is back: the store decides (fail-closed admits only through the
        // store, and the limit of 1,000 is far off), although its connection again takes longer than the timeout.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        RateLimitLease recovered;
        while (!(recovered = await limiter.AcquireAsync(1, CancellationToken)).IsAcquired)
        {
            recovered.Dispose();
            Assert.True(DateTime.UtcNow < deadline, "No decision made by the store 30 s after it came back.");
            await Task.Delay(100, CancellationToken);
        }

        recovered.Dispose();

        using var strict = new PgFixedWindowRateLimiter(new SlowToConnectStore(CreateStore(), TimeSpan.FromMilliseconds(300)), "connect-strict", "k", Policy(10, Day, o =>
        {
            o.Timeout = TimeSpan.FromMilliseconds(100);
            o.ConnectTimeout = TimeSpan.Zero;
            o.FailureMode = PgRateLimitFailureMode.FailClosed;
        }));
        using var timedOut = await strict.AcquireAsync(1, CancellationToken);
        Assert.False(timedOut.IsAcquired);
    }

    // The scenario: four instances start cold (their own data sources, no connection open yet) and 32 callers
    // each hit one partition at once, with the default Timeout (250 ms) and FailOpen. Before, decisions that waited for
    // new connections timed out and were admitted without limit (3,864 of a limit of 100 in one run). Now an instance
    // admits at most its share (PermitLimit / ExpectedInstances) beyond what the store counted.
    [Fact]
    public async Task ColdInstances_BurstWithDefaultOptions_AdmitAtMostTheLimitPlusEachInstancesLocalShare()
    {
        var policy = new PgFixedWindowRateLimiterOptions { PermitLimit = 100, Window = Day };
        var limiters = Enumerable.Range(0, 4).Select(_ => new PgFixedWindowRateLimiter(CreateStore(), "cold", "user:hot", policy)).ToList();
        var admitted = 0;
        var attempts = 0;

        await Task.WhenAll(Enumerable.Range(0, 4 * 32).Select(caller => Task.Run(
            async () =>
            {
                var limiter = limiters[caller % limiters.Count];
                for (var i = 0; i < 20; i++)
                {
                    using var lease = await limiter.AcquireAsync(1, CancellationToken);
                    Interlocked.Increment(ref attempts);
                    if (lease.IsAcquired)
                    {
                        Interlocked.Increment(ref admitted);
                    }
                }
            },
            CancellationToken)));

        TestContext.Current.TestOutputHelper?.WriteLine($"cold burst: {admitted} of {attempts} admitted (limit 100, bound {100 + (4 * policy.DegradedPermitLimit)})");
        Assert.Equal(4 * 32 * 20, attempts);
        Assert.Equal(25, policy.DegradedPermitLimit);
        Assert.InRange(admitted, 1, 100 + (4 * policy.DegradedPermitLimit));
        foreach (var limiter in limiters)
        {
            limiter.Dispose();
        }
    }

    [Fact]
    public async Task StoreDown_FailOpen_AdmitsOnlyThisInstancesShareOfTheWindow_ThenRejectsWithRetryAfter()
    {
        var (host, port) = ServerEndpoint;
        await using var proxy = new TcpProxy(host, port);
        proxy.GoDown();
        using var limiter = new PgFixedWindowRateLimiter(CreateStoreThrough(proxy), "down", "k", Policy(8, Day, o =>
        {
            o.Timeout = TimeSpan.FromMilliseconds(200);
            o.ExpectedInstances = 2;
        }));

        var leases = new List<RateLimitLease>();
        for (var i = 0; i < 7; i++)
        {
            leases.Add(await limiter.AcquireAsync(1, CancellationToken));
        }

        Assert.Equal(4, leases.Count(l => l.IsAcquired));
        var refused = leases.Last();
        Assert.False(refused.IsAcquired);
        Assert.True(refused.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) && retryAfter > TimeSpan.FromHours(1));
        Assert.True(refused.TryGetMetadata(MetadataName.ReasonPhrase, out var reason));
        Assert.Contains("share", reason, StringComparison.Ordinal);
        leases.ForEach(l => l.Dispose());
    }

    // A store slower than the timeout for several windows (every call outlives it): per window of its own, the
    // instance admits its share and no more.
    [Fact]
    public async Task StoreSlowerThanTheTimeoutForSeveralWindows_AdmitsTheLocalSharePerWindow()
    {
        var store = new GatedStore(CreateStore());
        using var limiter = new PgFixedWindowRateLimiter(store, "slow", "k", Policy(6, TimeSpan.FromSeconds(1), o =>
        {
            o.Timeout = TimeSpan.FromMilliseconds(20);
            o.ExpectedInstances = 3;
        }));
        var admittedAt = new List<int>();
        var clock = System.Diagnostics.Stopwatch.StartNew();

        for (var attempt = 0; clock.Elapsed < TimeSpan.FromSeconds(3.5); attempt++)
        {
            using var lease = await limiter.AcquireAsync(1, CancellationToken);
            if (lease.IsAcquired)
            {
                admittedAt.Add(attempt);
            }
        }

        store.Open();
        await store.WhenIdleAsync(CancellationToken);

        // Local windows of 1 s from the first degraded decision: the 3.5 s touch at most 4 of them, each filled to the
        // share of 2 and no more (unlimited, as before, would be hundreds); the first 3 are surely filled.
        Assert.InRange(admittedAt.Count, 2 * 3, 2 * 4);
        // The share is available at once, not spread over the window: the first two attempts are the first two
        // admitted. (Counted in attempts, not time: a loaded machine can stall between two attempts for half a window.)
        Assert.Equal([0, 1], admittedAt.Take(2));
    }

    [Fact]
    public async Task StoreSlowerThanTheTimeout_GetsNoMoreThanMaxOverdueStoreCallsBeyondItsRequests()
    {
        var store = new GatedStore(CreateStore());
        var options = Policy(1_000, Day, o =>
        {
            o.Timeout = TimeSpan.FromMilliseconds(50);
            o.MaxOverdueStoreCalls = 2;
        });
        var limiters = Enumerable.Range(0, 3).Select(i => new PgFixedWindowRateLimiter(store, "overdue", $"k{i}", options)).ToList();
        var other = new PgFixedWindowRateLimiter(store, "other-policy", "k", options);

        // The store stalls: two decisions time out (fail open) and their calls stay on the store.
        using (var first = await limiters[0].AcquireAsync(1, CancellationToken))
        using (var second = await limiters[1].AcquireAsync(1, CancellationToken))
        {
            Assert.True(first.IsAcquired && second.IsAcquired);
        }

        Assert.Equal(2, store.Calls);

        // With two overdue, later decisions of any partition and any policy on this store do not call it.
        for (var i = 0; i < 5; i++)
        {
            using var shed = await limiters[i % 3].AcquireAsync(1, CancellationToken);
            Assert.True(shed.IsAcquired);
        }

        using (var shedOther = await other.AcquireAsync(1, CancellationToken))
        {
            Assert.True(shedOther.IsAcquired);
        }

        Assert.Equal(2, store.Calls);

        // Once the store answers again and the overdue calls end, decisions go to the store and are counted there.
        // The counted decision is made by a limiter of the same policy and partition with a timeout a loaded machine
        // cannot exceed: with 50 ms it could time out (fail open) here, and its call would still count later.
        store.Open();
        await store.WhenIdleAsync(CancellationToken);
        using var patient = new PgFixedWindowRateLimiter(store, "overdue", "k2", Policy(1_000, Day, o =>
        {
            o.Timeout = TimeSpan.FromSeconds(10);
            o.MaxOverdueStoreCalls = 2;
        }));
        using var counted = await patient.AcquireAsync(1, CancellationToken);
        Assert.Equal(3, store.Calls);
        Assert.True(counted.IsAcquired);
        // The shed decisions of this partition counted nothing: the store's count is this one decision.
        Assert.Equal(999, patient.GetStatistics()!.CurrentAvailablePermits);
        Assert.Throws<ArgumentException>(() => new PgFixedWindowRateLimiter(store, "bad", "k", Policy(1, Day, o => o.MaxOverdueStoreCalls = 0)));
        foreach (var limiter in limiters.Append(other))
        {
            limiter.Dispose();
        }
    }

    [Fact]
    public async Task HealthCheck_HealthyOnALiveStore_CountsNothing_AndUnhealthyWhenTheStoreIsDown()
    {
        var builder = CreateAppBuilder();
        builder.Services.AddHealthChecks().AddPgRateLimit(tags: ["ready"]);
        await using var app = builder.Build();
        var health = app.Services.GetRequiredService<HealthCheckService>();

        var reports = new List<HealthReport>();
        for (var i = 0; i < 3; i++)
        {
            reports.Add(await health.CheckHealthAsync(CancellationToken));
        }

        Assert.All(reports, r => Assert.Equal(HealthStatus.Healthy, r.Entries["pgratelimit"].Status));
        Assert.Equal(["ready"], reports[0].Entries["pgratelimit"].Tags);
        // A partition with one permit still has it: the checks counted nothing.
        using var limiter = new PgFixedWindowRateLimiter(app.Services.GetRequiredService<IPgRateLimitStore>(), "health", "k", Policy(1, Day));
        using var lease = await limiter.AcquireAsync(1, CancellationToken);
        Assert.True(lease.IsAcquired);

        var (host, port) = ServerEndpoint;
        await using var proxy = new TcpProxy(host, port);
        proxy.GoDown();
        var down = new PgRateLimitHealthCheck(CreateStoreThrough(proxy));
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(CancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(20));
        var registration = new HealthCheckRegistration("pgratelimit", down, HealthStatus.Degraded, null);

        var result = await down.CheckHealthAsync(new HealthCheckContext { Registration = registration }, timeout.Token);

        Assert.Equal(HealthStatus.Degraded, result.Status);
        Assert.NotNull(result.Exception);
        Assert.Contains("rate-limit store", result.Description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StoreDown_ManyDegradedDecisions_LogOncePerSecondPerStore_AndCountEveryOne()
    {
        var (host, port) = ServerEndpoint;
        await using var proxy = new TcpProxy(host, port);
        proxy.GoDown();
        var store = CreateStoreThrough(proxy);
        using var logs = new CapturingLoggerProvider();
        using var loggerFactory = LoggerFactory.Create(b => b.AddProvider(logs));
        var limiters = Enumerable.Range(0, 2).Select(i => new PgFixedWindowRateLimiter(store, $"p{i}", "k", Policy(100, Day, o => o.Timeout = TimeSpan.FromMilliseconds(300)), loggerFactory.CreateLogger<PgFixedWindowRateLimiter>())).ToList();

        for (var i = 0; i < 10; i++)
        {
            using var lease = await limiters[i % 2].AcquireAsync(1, CancellationToken);
            Assert.True(lease.IsAcquired);
        }

        var degraded = logs.Entries.Where(e => e.EventId.Id == 3001).ToList();
        Assert.InRange(degraded.Count, 1, 9);
        Assert.Contains("more degraded decisions on this store", degraded[0].Message, StringComparison.Ordinal);
        Assert.Equal(10, limiters.Sum(l => l.GetStatistics()!.TotalSuccessfulLeases));
        foreach (var limiter in limiters)
        {
            limiter.Dispose();
        }
    }

    [Fact]
    public async Task Middleware_OverTheLimit_Answers429WithRetryAfterAndRateLimitHeaders()
    {
        var builder = CreateAppBuilder();
        builder.Services.AddRateLimiter(o => o.UsePgRejectionResponse().AddPgFixedWindowLimiter("api", p =>
        {
            p.PermitLimit = 2;
            p.Window = TimeSpan.FromHours(1);
            p.PartitionKey = PgRateLimitPartition.ByHeader("X-Api-Key");
        }));
        await using var app = builder.Build();
        app.UseRateLimiter();
        app.MapGet("/api", () => "ok").RequireRateLimiting("api");
        await app.StartAsync(CancellationToken);
        var client = app.GetTestClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", "conformance");

        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? last = null;
        for (var i = 0; i < 3; i++)
        {
            last = await client.GetAsync("/api", CancellationToken);
            statuses.Add(last.StatusCode);
        }

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], statuses);
        Assert.NotEmpty(last!.Headers.GetValues("Retry-After").Single());
        Assert.Equal("\"api\";q=2;w=3600", last.Headers.GetValues("RateLimit-Policy").Single());
        Assert.StartsWith("\"api\";r=0;t=", last.Headers.GetValues("RateLimit").Single(), StringComparison.Ordinal);
        await app.StopAsync(CancellationToken);
    }

    [Theory]
    [InlineData(0, 60, "api", "PermitLimit")]
    [InlineData(-1, 60, "api", "PermitLimit")]
    [InlineData(10, 0, "api", "Window")]
    [InlineData(10, -5, "api", "Window")]
    [InlineData(10, 60, "", "policy name")]
    public void InvalidOptions_AreRejectedWithAClearMessage(int limit, int windowSeconds, string policy, string expected)
    {
        var error = Assert.Throws<ArgumentException>(() =>
            new PgFixedWindowRateLimiter(CreateStore(), policy, "k", new PgFixedWindowRateLimiterOptions { PermitLimit = limit, Window = TimeSpan.FromSeconds(windowSeconds) }));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    /// <summary>A real store behind a gate that holds every call until opened (a decorator, not a mock).</summary>
    private sealed class GatedStore(IPgRateLimitStore inner) : IPgRateLimitStore
    {
        private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _calls;
        private int _running;

        public int Calls => Volatile.Read(ref _calls);

        public void Open() => _gate.TrySetResult();

        public async Task WhenIdleAsync(CancellationToken cancellationToken)
        {
            while (Volatile.Read(ref _running) > 0)
            {
                await Task.Delay(10, cancellationToken);
            }
        }

        public async ValueTask<PgRateLimitDecision> AcquireAsync(PgRateLimitRequest request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _calls);
            Interlocked.Increment(ref _running);
            try
            {
                await _gate.Task.WaitAsync(cancellationToken);
                return await inner.AcquireAsync(request, cancellationToken);
            }
            finally
            {
                Interlocked.Decrement(ref _running);
            }
        }

        public ValueTask PingAsync(CancellationToken cancellationToken) => inner.PingAsync(cancellationToken);

        public ValueTask WarmUpAsync(int connections, CancellationToken cancellationToken) => inner.WarmUpAsync(connections, cancellationToken);

        public async ValueTask<PgRateLimitBatchDecision> AcquireBatchAsync(PgRateLimitBatchRequest request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _calls);
            Interlocked.Increment(ref _running);
            try
            {
                await _gate.Task.WaitAsync(cancellationToken);
                return await inner.AcquireBatchAsync(request, cancellationToken);
            }
            finally
            {
                Interlocked.Decrement(ref _running);
            }
        }
    }

    /// <summary>A real store whose connections take <paramref name="delay"/> to open (a decorator, not a mock).</summary>
    private sealed class SlowToConnectStore(IPgRateLimitStore inner, TimeSpan delay) : IPgRateLimitStore
    {
        public ValueTask<PgRateLimitDecision> AcquireAsync(PgRateLimitRequest request, CancellationToken cancellationToken) =>
            AcquireAsync(request, null, cancellationToken);

        public async ValueTask<PgRateLimitDecision> AcquireAsync(PgRateLimitRequest request, Action? connected, CancellationToken cancellationToken)
        {
            await Task.Delay(delay, cancellationToken);
            connected?.Invoke();
            return await inner.AcquireAsync(request, cancellationToken);
        }

        public async ValueTask<PgRateLimitBatchDecision> AcquireBatchAsync(PgRateLimitBatchRequest request, CancellationToken cancellationToken)
        {
            await Task.Delay(delay, cancellationToken);
            return await inner.AcquireBatchAsync(request, cancellationToken);
        }

        public ValueTask PingAsync(CancellationToken cancellationToken) => inner.PingAsync(cancellationToken);
    }

    /// <summary>Counts the calls that reach a real store (a decorator, not a mock).</summary>
    protected sealed class CountingStore(IPgRateLimitStore inner) : IPgRateLimitStore
    {
        private int _calls;

        private int _warmUps;

        public int Calls => Volatile.Read(ref _calls);

        public int WarmUps => Volatile.Read(ref _warmUps);

        public ValueTask<PgRateLimitDecision> AcquireAsync(PgRateLimitRequest request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _calls);
            return inner.AcquireAsync(request, cancellationToken);
        }

        public ValueTask PingAsync(CancellationToken cancellationToken) => inner.PingAsync(cancellationToken);

        public ValueTask WarmUpAsync(int connections, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _warmUps);
            return inner.WarmUpAsync(connections, cancellationToken);
        }

        public ValueTask<PgRateLimitBatchDecision> AcquireBatchAsync(PgRateLimitBatchRequest request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _calls);
            return inner.AcquireBatchAsync(request, cancellationToken);
        }
    }
}
