using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using PgFirst.Testing;
using PgQueue;
using StackExchange.Redis;

namespace PgFirst.Redis.Tests;

// Redis-only behaviour of the job store: the key layout and its hash tag, the script cache fallback, chunked bulk
// enqueues, the JSON the scripts write, the listener on a failed connection, and the wiring.
[Collection(FlushesScriptCache.Name)]
public class RedisJobQueueBackendTests(RedisServer server) : IAsyncLifetime
{
    private static readonly DateTimeOffset Start = new(2026, 11, 23, 12, 0, 0, TimeSpan.Zero);

    private readonly RedisKeyspace _keyspace = new(server);

    private static CancellationToken CancellationToken => TestContext.Current.CancellationToken;

    private string Root => $"{_keyspace.Prefix}q{{{_keyspace.Prefix}}}:";

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public async ValueTask DisposeAsync() => await _keyspace.DisposeAsync();

    private RedisJobQueueBackend Create(IConnectionMultiplexer? connection = null) =>
        new(connection ?? server.Connection, new PgFirstRedisOptions { KeyPrefix = _keyspace.Prefix });

    private static JobEnqueueRequest Job(string queue = "default", string? uniqueKey = null, DateTimeOffset? runAt = null) => new()
    {
        Queue = queue,
        Kind = "test.job",
        Payload = """{"n":1}""",
        RunAt = runAt ?? Start,
        MaxAttempts = 3,
        UniqueKey = uniqueKey,
        EnqueuedAt = Start,
    };

    private static JobClaimRequest Claim(DateTimeOffset now, string worker = "worker", string queue = "default", int count = 1) => new()
    {
        Queue = queue,
        Count = count,
        Worker = worker,
        Now = now,
        LeaseExpiresAt = now.AddSeconds(30),
    };

    private async Task<List<RedisKey>> KeysAsync()
    {
        var keys = new List<RedisKey>();
        foreach (var endpoint in server.Connection.GetEndPoints())
        {
            await foreach (var key in server.Connection.GetServer(endpoint).KeysAsync(pattern: _keyspace.Prefix + "*"))
            {
                keys.Add(key);
            }
        }

        return keys;
    }

    [Fact]
    public async Task EveryKey_SitsUnderThePrefixAndShareOneHashSlot()
    {
        var backend = Create();
        await backend.EnqueueAsync(Job(uniqueKey: "u"), CancellationToken);
        await backend.EnqueueAsync(Job(runAt: Start.AddHours(1)), CancellationToken);
        await backend.EnqueueAsync(Job(queue: "other"), CancellationToken);
        var job = Assert.Single(await backend.ClaimAsync(Claim(Start, queue: "other"), CancellationToken));
        Assert.True(await backend.FinishAsync(job.Token, JobState.Dead, new JobError(1, Start, "E", "m"), Start, Start.AddDays(1), CancellationToken));
        await backend.UpsertRecurringAsync(
            new RecurringJobDefinition { Name = "r", Cron = "* * * * *", TimeZone = "UTC", Queue = "default", Kind = "k", Payload = "{}", MaxAttempts = 1 },
            Start,
            CancellationToken);
        Assert.Single(await backend.RunDueRecurringAsync(Start, (_, after) => after.AddMinutes(1), CancellationToken));

        var keys = await KeysAsync();

        Assert.True(keys.Count >= 12, $"Only {keys.Count} keys.");
        Assert.All(keys, k => Assert.StartsWith(Root, (string)k!, StringComparison.Ordinal));
        Assert.Single(keys.Select(k => server.Connection.HashSlot(k)).Distinct());
        Assert.Contains(Root + "u:u", keys.Select(k => (string)k!));
        Assert.Equal(_keyspace.Prefix + "q:wake", backend.Channel);
        Assert.Equal("redis", backend.Name);
    }

    [Fact]
    public async Task ClaimOrder_IsSpelledByTheAvailableSetMembers()
    {
        var backend = Create();
        var low = (await backend.EnqueueAsync(Job(), CancellationToken)).Id!.Value;
        var high = (await backend.EnqueueAsync(Job() with { Priority = 1 }, CancellationToken)).Id!.Value;

        var members = (await server.Connection.GetDatabase().SortedSetRangeByRankAsync(Root + "r:default")).Select(m => (string)m!).ToList();

        Assert.Equal(2, members.Count);
        Assert.All(members, m => Assert.Equal(42, m.Length));
        Assert.EndsWith(high.ToString("D19", System.Globalization.CultureInfo.InvariantCulture), members[0], StringComparison.Ordinal);
        Assert.EndsWith(low.ToString("D19", System.Globalization.CultureInfo.InvariantCulture), members[1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task ScriptCacheFlushed_FallsBackToTheScriptText()
    {
        var backend = Create();
        var id = (await backend.EnqueueAsync(Job(), CancellationToken)).Id!.Value;
        await server.Connection.GetDatabase().ExecuteAsync("SCRIPT", "FLUSH");

        var job = Assert.Single(await backend.ClaimAsync(Claim(Start), CancellationToken));

        Assert.Equal(id, job.Id);
    }

    [Fact]
    public async Task EnqueueManyAsync_MoreThanOneScript_CountsDuplicatesAcrossChunks()
    {
        var backend = Create();
        var requests = Enumerable.Range(0, 2500).Select(i => Job(uniqueKey: i == 1500 ? "k0" : "k" + i)).ToList();

        var result = await backend.EnqueueManyAsync(requests, CancellationToken);

        Assert.Equal(new JobBatchEnqueueResult(2499, 1), result);
        Assert.Equal(2499, (await backend.GetStatsAsync(["default"], 10_000, CancellationToken))[0].Available);
    }

    [Fact]
    public async Task PromoteAsync_WorkerNameNeedingEscapes_WritesValidJsonHistory()
    {
        var backend = Create();
        await backend.EnqueueAsync(Job(), CancellationToken);
        var worker = "host \"a\" \\ b/ü\n";
        var job = Assert.Single(await backend.ClaimAsync(Claim(Start, worker), CancellationToken));
        var failure = new JobError(1, Start.AddSeconds(1), "E", "first \"quoted\"");
        Assert.True(await backend.RetryAsync(job.Token, failure.At, failure, refundAttempt: false, CancellationToken));
        job = Assert.Single(await backend.ClaimAsync(Claim(Start.AddSeconds(1), worker), CancellationToken));

        Assert.Single(await backend.PromoteAsync(Start.AddMinutes(1), CancellationToken));

        var errors = (await backend.GetJobAsync(job.Id, CancellationToken))!.Errors;
        Assert.Equal(2, errors.Count);
        Assert.Equal(failure, errors[0]);
        Assert.Equal(new JobError(2, Start.AddMinutes(1), "LeaseExpired", $"The worker {worker} stopped renewing its lease."), errors[1]);
    }

    [Fact]
    public async Task ListenAsync_ConnectionCut_ThrowsAndListensAgainOnceBack()
    {
        await using var proxy = new TcpProxy(server.Endpoint.Host, server.Endpoint.Port);
        var listener = Create(_keyspace.Connect(server.ThroughProxy(proxy)));
        var connected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var listening = Task.Run(() => listener.ListenAsync(_ => { }, () => connected.TrySetResult(), CancellationToken), CancellationToken);
        await connected.Task.WaitAsync(TimeSpan.FromSeconds(10), CancellationToken);

        proxy.GoDown();

        await Assert.ThrowsAsync<RedisConnectionException>(() => listening.WaitAsync(TimeSpan.FromSeconds(10), CancellationToken));

        proxy.ComeBack();
        var woken = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(CancellationToken);
        var deadline = TimeProvider.System.GetTimestamp();
        Task? again = null;
        while (again is null)
        {
            // Listen again, as the worker's loop does, until a listener both connects and hears a wake-up: while the
            // multiplexer is still reconnecting, a listener can connect and then fail on a late connection event.
            var reconnected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var attempt = listener.ListenAsync(q => woken.TrySetResult(q), () => reconnected.TrySetResult(), stop.Token);
            if (await Task.WhenAny(attempt, reconnected.Task).WaitAsync(TimeSpan.FromSeconds(20), CancellationToken) == reconnected.Task)
            {
                while (!woken.Task.IsCompleted && !attempt.IsCompleted && TimeProvider.System.GetElapsedTime(deadline) < TimeSpan.FromSeconds(30))
                {
                    await Create().NotifyAsync(["back"], CancellationToken);
                    await Task.WhenAny(woken.Task, attempt, Task.Delay(TimeSpan.FromMilliseconds(200), CancellationToken));
                }

                if (woken.Task.IsCompleted)
                {
                    again = attempt;
                    continue;
                }
            }

            // The multiplexer is still reconnecting: the caller's loop would back off and try again.
            await Assert.ThrowsAnyAsync<Exception>(() => attempt.WaitAsync(TimeSpan.FromSeconds(10), CancellationToken));
            Assert.True(TimeProvider.System.GetElapsedTime(deadline) < TimeSpan.FromSeconds(30), "The listener never came back.");
            await Task.Delay(TimeSpan.FromMilliseconds(200), CancellationToken);
        }

        Assert.Equal("back", await woken.Task);
        await stop.CancelAsync();
        await again.WaitAsync(TimeSpan.FromSeconds(10), CancellationToken);
    }

    [Fact]
    public async Task AddRedis_QueueOnRedis_ResolvesTheRedisJobStore()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddPgFirst(o => o.Backend = PgFirstBackend.Redis).AddRedis(o =>
        {
            o.Configuration = server.Configuration;
            o.KeyPrefix = _keyspace.Prefix;
        });
        builder.Services.AddPgQueue();
        using var host = builder.Build();

        var backend = host.Services.GetRequiredService<IJobQueueBackend>();

        Assert.IsType<RedisJobQueueBackend>(backend);
        Assert.Same(backend, host.Services.GetRequiredKeyedService<IJobQueueBackend>(PgFirstBackend.Redis));
        await backend.EnqueueAsync(Job(), CancellationToken);
        Assert.Contains(Root + "seq", (await KeysAsync()).Select(k => (string)k!));
    }
}
