using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using PgQueue;
using Xunit;

namespace PgFirst.Testing;

/// <summary>
/// The queue end to end — real hosts, real workers, real handlers — run against every job store (PostgreSQL and
/// Redis). Everything is observed through the public API (<see cref="IJobQueue"/>, <see cref="JobQueueManager"/>) or
/// the store seam, never through a store's tables or keys.
/// </summary>
public abstract class QueueWorkerConformanceTests : IAsyncLifetime
{
    private readonly List<IHost> _hosts = [];

    protected static CancellationToken Ct => TestContext.Current.CancellationToken;

    public virtual ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public virtual async ValueTask DisposeAsync()
    {
        foreach (var host in _hosts)
        {
            await host.StopAsync(CancellationToken.None);
            host.Dispose();
        }

        GC.SuppressFinalize(this);
    }

    /// <summary>Registers this test class's isolated store (data source and schema, or Redis and key prefix) and <c>AddPgFirst</c>.</summary>
    protected abstract void ConfigureStore(IServiceCollection services);

    /// <summary>Creates the store seam on the same isolated store, to play a crashed worker or a foreign producer.</summary>
    protected abstract IJobQueueBackend CreateBackend();

    [Fact]
    public async Task Enqueue_ManyJobs_EachHandledExactlyOnce()
    {
        var host = await StartAsync(handlers: q => q.AddHandler<Work, RecordingHandler>());
        var queue = host.Services.GetRequiredService<IJobQueue>();
        var ids = new List<long>();
        for (var i = 0; i < 200; i++)
        {
            var result = await queue.EnqueueAsync(new Work("w" + i), cancellationToken: Ct);
            Assert.False(result.Duplicate);
            ids.Add(result.Id!.Value);
        }

        var journal = host.Services.GetRequiredService<Journal>();
        var manager = host.Services.GetRequiredService<JobQueueManager>();
        await QueueTestHost.WaitUntilAsync(() => journal.Count >= 200, "200 jobs are handled");
        await QueueTestHost.WaitUntilAsync(async () => (await manager.ListAsync(null, JobState.Succeeded, 1000, Ct)).Count == 200, "all 200 are recorded as succeeded");
        Assert.Equal(ids.Order(), journal.Handled.Select(h => h.Id).Order());
        Assert.All(journal.Handled, h => Assert.Equal(1, h.Attempt));
        Assert.Equal(new QueueStats("default", 0, 0, 0, 0, 100), Assert.Single(await manager.GetStatsAsync(["default"], 100, Ct)));
    }

    [Fact]
    public async Task EnqueueMany_BulkOf5000_AllHandled()
    {
        var host = await StartAsync(handlers: q => q.AddHandler<Work, RecordingHandler>());
        var result = await host.Services.GetRequiredService<IJobQueue>().EnqueueManyAsync(Enumerable.Range(0, 5000).Select(i => new Work("b" + i)), cancellationToken: Ct);
        Assert.Equal(new JobBatchEnqueueResult(5000, 0), result);
        var journal = host.Services.GetRequiredService<Journal>();
        await QueueTestHost.WaitUntilAsync(() => journal.Count >= 5000, "5000 bulk jobs are handled", 60);
        Assert.Equal(5000, journal.Handled.Select(h => h.Value).Distinct().Count());
    }

    [Fact]
    public async Task FailingHandler_RetriesWithBackOff_ThenDead_WithErrorHistory_ThenRequeued()
    {
        var host = await StartAsync(handlers: q => q.AddHandler<Work, FlakyHandler>(t => t.MaxAttempts = 3));
        var queue = host.Services.GetRequiredService<IJobQueue>();
        var manager = host.Services.GetRequiredService<JobQueueManager>();
        var journal = host.Services.GetRequiredService<Journal>();
        var flaky = await queue.EnqueueAsync(new Work("fail:2"), cancellationToken: Ct);
        var dead = await queue.EnqueueAsync(new Work("always"), cancellationToken: Ct);

        await QueueTestHost.WaitUntilAsync(() => journal.Handled.Any(h => h.Value == "fail:2"), "the flaky job succeeds on its third attempt");
        Assert.Equal(3, journal.Handled.Single(h => h.Value == "fail:2").Attempt);
        await QueueTestHost.WaitUntilAsync(async () => (await manager.GetJobAsync(dead.Id!.Value, Ct))?.State == JobState.Dead, "the always-failing job is dead");

        var info = await manager.GetJobAsync(dead.Id!.Value, Ct);
        Assert.NotNull(info);
        Assert.Equal(3, info.Attempt);
        Assert.Equal([1, 2, 3], info.Errors.Select(e => e.Attempt));
        Assert.All(info.Errors, e => Assert.Contains("boom", e.Message, StringComparison.Ordinal));
        Assert.Equal(typeof(InvalidOperationException).FullName, info.Errors[0].Type);
        Assert.Contains(await manager.ListDeadAsync(cancellationToken: Ct), j => j.Id == dead.Id);
        Assert.Equal(3, journal.Failures["always"]);

        // Requeued, it gets fresh attempts (and fails again here), keeping its history.
        Assert.True(await manager.RequeueAsync(dead.Id!.Value, Ct));
        Assert.False(await manager.RequeueAsync(flaky.Id!.Value, Ct));
        await QueueTestHost.WaitUntilAsync(() => journal.Failures["always"] >= 6, "the requeued job runs its three attempts again");
        await QueueTestHost.WaitUntilAsync(async () => (await manager.GetJobAsync(dead.Id!.Value, Ct))?.State == JobState.Dead, "it is dead again");
        Assert.Equal(6, (await manager.GetJobAsync(dead.Id!.Value, Ct))!.Errors.Count);
    }

    [Fact]
    public async Task PoisonPayload_GoesDeadAtOnceWithTheError_OthersKeepFlowing()
    {
        var host = await StartAsync(handlers: q => q.AddHandler<Work, RecordingHandler>());
        var manager = host.Services.GetRequiredService<JobQueueManager>();

        // Written by a foreign producer: not a Work object, and a JSON null.
        var backend = CreateBackend();
        var poison = await ForeignEnqueueAsync(backend, "[1, 2, 3]");
        var nullPayload = await ForeignEnqueueAsync(backend, "null");
        await host.Services.GetRequiredService<IJobQueue>().EnqueueAsync(new Work("fine"), cancellationToken: Ct);

        var journal = host.Services.GetRequiredService<Journal>();
        await QueueTestHost.WaitUntilAsync(() => journal.Count >= 1, "the good job is handled");
        await QueueTestHost.WaitUntilAsync(async () => (await manager.GetJobAsync(poison, Ct))?.State == JobState.Dead && (await manager.GetJobAsync(nullPayload, Ct))?.State == JobState.Dead, "both poison jobs are dead");
        var dead = await manager.GetJobAsync(poison, Ct);
        Assert.Equal(1, dead!.Attempt);
        Assert.Equal("PayloadUnreadable", Assert.Single(dead.Errors).Type);
        Assert.Contains(typeof(Work).FullName!, dead.Errors[0].Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DelayedJob_WaitsForItsTime()
    {
        var host = await StartAsync(handlers: q => q.AddHandler<Work, RecordingHandler>());
        var queue = host.Services.GetRequiredService<IJobQueue>();
        var journal = host.Services.GetRequiredService<Journal>();
        var result = await queue.EnqueueAsync(new Work("later"), new JobOptions { Delay = TimeSpan.FromSeconds(1.5) }, Ct);
        await queue.EnqueueAsync(new Work("now"), cancellationToken: Ct);

        await QueueTestHost.WaitUntilAsync(() => journal.Count >= 1, "the immediate job is handled");
        var manager = host.Services.GetRequiredService<JobQueueManager>();
        Assert.Equal(JobState.Scheduled, (await manager.GetJobAsync(result.Id!.Value, Ct))!.State);
        Assert.Equal(["now"], journal.Handled.Select(h => h.Value));

        await QueueTestHost.WaitUntilAsync(() => journal.Count >= 2, "the delayed job is handled once due");
        Assert.Equal("later", journal.Handled.Last().Value);
    }

    [Fact]
    public async Task Priorities_HigherRunsFirst()
    {
        var producer = await StartAsync(o => o.RunWorkers = false);
        var queue = producer.Services.GetRequiredService<IJobQueue>();
        await queue.EnqueueAsync(new Work("low"), new JobOptions { Priority = -5 }, Ct);
        await queue.EnqueueAsync(new Work("normal"), cancellationToken: Ct);
        await queue.EnqueueAsync(new Work("high"), new JobOptions { Priority = 10 }, Ct);
        await queue.EnqueueAsync(new Work("normal2"), cancellationToken: Ct);

        var worker = await StartAsync(o => { o.DefaultConcurrency = 1; o.DefaultPrefetch = 0; }, q => q.AddHandler<Work, RecordingHandler>());
        var journal = worker.Services.GetRequiredService<Journal>();
        await QueueTestHost.WaitUntilAsync(() => journal.Count >= 4, "all four are handled");
        Assert.Equal(["high", "normal", "normal2", "low"], journal.Handled.Select(h => h.Value));
    }

    [Fact]
    public async Task UniqueKey_ConcurrentEnqueues_ExactlyOneJob_FreedAfterCompletion()
    {
        var host = await StartAsync(o => o.RunWorkers = false);
        var queue = host.Services.GetRequiredService<IJobQueue>();
        var manager = host.Services.GetRequiredService<JobQueueManager>();
        var results = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => Task.Run(async () => await queue.EnqueueAsync(new Work("u" + i), new JobOptions { UniqueKey = "report:42" }, Ct), Ct)));

        var winner = Assert.Single(results, r => !r.Duplicate);
        Assert.All(results.Where(r => r.Duplicate), r => Assert.Equal(winner.Id, r.Id));
        Assert.Equal(1, (await manager.GetStatsAsync(["default"], 100, Ct))[0].Available);

        // Once the holder finishes, the key is free again.
        var worker = await StartAsync(handlers: q => q.AddHandler<Work, RecordingHandler>());
        await QueueTestHost.WaitUntilAsync(() => worker.Services.GetRequiredService<Journal>().Count >= 1, "the unique job is handled");
        await QueueTestHost.WaitUntilAsync(async () => (await manager.GetJobAsync(winner.Id!.Value, Ct))?.State == JobState.Succeeded, "it is finished");
        Assert.False((await queue.EnqueueAsync(new Work("again"), new JobOptions { UniqueKey = "report:42" }, Ct)).Duplicate);
    }

    [Fact]
    public async Task Snooze_RunsAgainWithoutSpendingAnAttempt_CancelEndsCancelled()
    {
        var host = await StartAsync(handlers: q => q.AddHandler<Work, SnoozingHandler>(t => t.MaxAttempts = 1));
        var queue = host.Services.GetRequiredService<IJobQueue>();
        var manager = host.Services.GetRequiredService<JobQueueManager>();
        var journal = host.Services.GetRequiredService<Journal>();
        await queue.EnqueueAsync(new Work("snooze"), cancellationToken: Ct);
        var cancelled = await queue.EnqueueAsync(new Work("cancel"), cancellationToken: Ct);

        await QueueTestHost.WaitUntilAsync(() => journal.Handled.Any(h => h.Value == "snooze"), "the snoozed job runs to completion");
        Assert.Equal(1, journal.Failures["snooze"]);
        Assert.All(journal.Handled.Where(h => h.Value == "snooze"), h => Assert.Equal(1, h.Attempt));
        await QueueTestHost.WaitUntilAsync(async () => (await manager.GetJobAsync(cancelled.Id!.Value, Ct))?.State == JobState.Cancelled, "the cancelled job is cancelled");
        Assert.Equal("not wanted", (await manager.GetJobAsync(cancelled.Id!.Value, Ct))!.Errors.Single().Message);
    }

    [Fact]
    public async Task CrashedWorkersJobs_AreRescuedAfterTheLeaseExpires_WithTheAttemptCounted()
    {
        var producer = await StartAsync(o => o.RunWorkers = false);
        var queue = producer.Services.GetRequiredService<IJobQueue>();
        var ids = new List<long>();
        for (var i = 0; i < 3; i++)
        {
            ids.Add((await queue.EnqueueAsync(new Work("orphan" + i), cancellationToken: Ct)).Id!.Value);
        }

        // A worker claims them and dies: no heartbeat, no completion.
        var backend = CreateBackend();
        var now = DateTimeOffset.UtcNow;
        var claimed = await backend.ClaimAsync(new JobClaimRequest { Queue = "default", Count = 10, Worker = "dead-worker", Now = now, LeaseExpiresAt = now.AddSeconds(1) }, Ct);
        Assert.Equal(3, claimed.Count);

        var worker = await StartAsync(handlers: q => q.AddHandler<Work, RecordingHandler>());
        var journal = worker.Services.GetRequiredService<Journal>();
        await QueueTestHost.WaitUntilAsync(() => journal.Count >= 3, "the orphaned jobs are rescued and handled", 20);
        Assert.All(journal.Handled, h => Assert.Equal(2, h.Attempt));
        var manager = worker.Services.GetRequiredService<JobQueueManager>();
        await QueueTestHost.WaitUntilAsync(async () => (await manager.GetJobAsync(ids[0], Ct))?.State == JobState.Succeeded, "the rescued job is finished");
        Assert.Equal("LeaseExpired", Assert.Single((await manager.GetJobAsync(ids[0], Ct))!.Errors).Type);

        // The dead worker's late completion is refused: its token is stale.
        Assert.Equal(0, await backend.CompleteAsync([.. claimed.Select(c => c.Token)], now, now.AddHours(1), Ct));
    }

    [Fact]
    public async Task GracefulShutdown_RunningHandlerFinishes_PrefetchedJobsReturnUnspent()
    {
        var host = await StartAsync(o => { o.DefaultConcurrency = 1; o.DefaultPrefetch = 10; o.RunWorkers = false; });
        var queue = host.Services.GetRequiredService<IJobQueue>();
        var ids = new List<long>();
        for (var i = 0; i < 5; i++)
        {
            ids.Add((await queue.EnqueueAsync(new Work("g" + i), cancellationToken: Ct)).Id!.Value);
        }

        var worker = await StartAsync(o => { o.DefaultConcurrency = 1; o.DefaultPrefetch = 10; }, q => q.AddHandler<Work, GatedHandler>());
        var journal = worker.Services.GetRequiredService<Journal>();
        var manager = host.Services.GetRequiredService<JobQueueManager>();
        await QueueTestHost.WaitUntilAsync(() => journal.Started == 1, "the first job starts");
        await QueueTestHost.WaitUntilAsync(async () => (await manager.GetStatsAsync(["default"], 100, Ct))[0].Running == 5, "all five are claimed (one running, four prefetched)");

        var stopping = worker.StopAsync(CancellationToken.None);
        await Task.Delay(200, Ct);
        Assert.False(stopping.IsCompleted, "shutdown waits for the running handler");
        journal.Gate.SetResult();
        await stopping;

        var handled = Assert.Single(journal.Handled);
        var jobs = await Task.WhenAll(ids.Select(async id => (await manager.GetJobAsync(id, Ct))!));
        Assert.Equal(JobState.Succeeded, jobs.Single(j => j.Id == handled.Id).State);
        Assert.All(jobs.Where(j => j.Id != handled.Id), j => Assert.Equal((JobState.Available, 0), (j.State, j.Attempt)));
    }

    [Fact]
    public async Task Notifications_WakeAWorkerInAnotherProcess_WithoutPolling()
    {
        // Workers poll once a minute here: only the producer's notification can start the job quickly.
        var worker = await StartAsync(o => o.PollInterval = TimeSpan.FromMinutes(1), q => q.AddHandler<Work, RecordingHandler>());
        var producer = await StartAsync(o => o.RunWorkers = false);
        var journal = worker.Services.GetRequiredService<Journal>();
        await Task.Delay(500, Ct);

        await producer.Services.GetRequiredService<IJobQueue>().EnqueueAsync(new Work("ping"), cancellationToken: Ct);
        await QueueTestHost.WaitUntilAsync(() => journal.Count >= 1, "the notified worker handles the job", 15);
    }

    [Fact]
    public async Task RecurringJob_FiresOncePerOccurrence_AcrossTwoInstances()
    {
        Action<IPgQueueBuilder> handlers = q => q.AddHandler<Work, RecordingHandler>().AddRecurring("tick", "* * * * * *", new Work("tick"));
        var first = await StartAsync(handlers: handlers);
        var second = await StartAsync(handlers: handlers);
        var manager = first.Services.GetRequiredService<JobQueueManager>();

        await QueueTestHost.WaitUntilAsync(async () => (await manager.ListAsync(null, JobState.Succeeded, 1000, Ct)).Count >= 3, "three occurrences ran", 20);
        var occurrences = await manager.ListAsync(null, JobState.Succeeded, 1000, Ct);
        Assert.Equal(occurrences.Count, occurrences.Select(j => j.EnqueuedAt.ToUnixTimeSeconds()).Distinct().Count());
        var total = first.Services.GetRequiredService<Journal>().Count + second.Services.GetRequiredService<Journal>().Count;
        Assert.True(total >= 3);
    }

    [Fact]
    public async Task TwoPayloadTypes_OnTwoQueues_EachGoesToItsHandler()
    {
        var host = await StartAsync(
            o => o.Queues["mail"] = new PgQueueWorkerOptions { Concurrency = 2, Prefetch = 4 },
            q => q.AddHandler<Work, RecordingHandler>().AddHandler<Other, OtherHandler>(t => { t.Queue = "mail"; t.Kind = "other-v1"; }));
        var queue = host.Services.GetRequiredService<IJobQueue>();
        var other = await queue.EnqueueAsync(new Other(7), cancellationToken: Ct);
        await queue.EnqueueAsync(new Work("w"), cancellationToken: Ct);
        var journal = host.Services.GetRequiredService<Journal>();
        await QueueTestHost.WaitUntilAsync(() => journal.Count >= 2, "both are handled");
        Assert.Contains(journal.Handled, h => h.Value == "other:7");
        var info = await host.Services.GetRequiredService<JobQueueManager>().GetJobAsync(other.Id!.Value, Ct);
        Assert.Equal(("mail", "other-v1"), (info!.Queue, info.Kind));
    }

    [Fact]
    public async Task Stats_CountByStateWithCap()
    {
        var host = await StartAsync(o => o.RunWorkers = false);
        var queue = host.Services.GetRequiredService<IJobQueue>();
        await queue.EnqueueManyAsync(Enumerable.Range(0, 7).Select(i => new Work("s" + i)), cancellationToken: Ct);
        await queue.EnqueueAsync(new Work("later"), new JobOptions { Delay = TimeSpan.FromHours(1) }, Ct);
        var manager = host.Services.GetRequiredService<JobQueueManager>();

        var stats = Assert.Single(await manager.GetStatsAsync(["default"], cancellationToken: Ct));
        Assert.Equal(new QueueStats("default", 7, 1, 0, 0, 10_000), stats);
        var capped = Assert.Single(await manager.GetStatsAsync(["default"], cap: 5, cancellationToken: Ct));
        Assert.Equal(5, capped.Available);
        Assert.True(capped.Capped);
    }

    [Fact]
    public async Task Enqueue_BadInput_ThrowsClearly_AndEnqueuesNothing()
    {
        var host = await StartAsync(o => { o.RunWorkers = false; o.MaxPayloadBytes = 1024; });
        var queue = host.Services.GetRequiredService<IJobQueue>();
        await Assert.ThrowsAsync<ArgumentNullException>(async () => await queue.EnqueueAsync<Work>(null!, cancellationToken: Ct));
        await Assert.ThrowsAsync<ArgumentException>(async () => await queue.EnqueueAsync(new Work("x"), new JobOptions { Queue = "no spaces" }, Ct));
        await Assert.ThrowsAsync<ArgumentException>(async () => await queue.EnqueueAsync(new Work("x"), new JobOptions { Queue = "" }, Ct));
        await Assert.ThrowsAnyAsync<ArgumentException>(async () => await queue.EnqueueAsync(new Work("x"), new JobOptions { Delay = TimeSpan.FromSeconds(-1) }, Ct));
        await Assert.ThrowsAsync<ArgumentException>(async () => await queue.EnqueueAsync(new Work("x"), new JobOptions { Delay = TimeSpan.FromSeconds(1), RunAt = DateTimeOffset.UtcNow }, Ct));
        await Assert.ThrowsAnyAsync<ArgumentException>(async () => await queue.EnqueueAsync(new Work("x"), new JobOptions { MaxAttempts = 0 }, Ct));
        await Assert.ThrowsAnyAsync<ArgumentException>(async () => await queue.EnqueueAsync(new Work("x"), new JobOptions { Priority = 40_000 }, Ct));
        await Assert.ThrowsAsync<ArgumentException>(async () => await queue.EnqueueAsync(new Work("x"), new JobOptions { UniqueKey = "" }, Ct));
        await Assert.ThrowsAsync<ArgumentException>(async () => await queue.EnqueueAsync(new Work("x"), new JobOptions { UniqueKey = new string('k', 513) }, Ct));
        var tooBig = await Assert.ThrowsAsync<ArgumentException>(async () => await queue.EnqueueAsync(new Work(new string('é', 600)), cancellationToken: Ct));
        Assert.Contains("MaxPayloadBytes", tooBig.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<ArgumentException>(async () => await queue.EnqueueManyAsync([new Work("x")], new JobOptions { UniqueKey = "k" }, Ct));
        await Assert.ThrowsAsync<ArgumentNullException>(async () => await queue.EnqueueManyAsync(new Work[] { new("ok"), null! }, cancellationToken: Ct));
        var stats = Assert.Single(await host.Services.GetRequiredService<JobQueueManager>().GetStatsAsync(["default"], cancellationToken: Ct));
        Assert.Equal((0, 0), (stats.Available, stats.Scheduled));
    }

    protected async Task<IHost> StartAsync(Action<PgQueueOptions>? configure = null, Action<IPgQueueBuilder>? handlers = null, Action<IServiceCollection>? store = null)
    {
        var host = QueueTestHost.Build(store ?? ConfigureStore, configure, handlers);
        _hosts.Add(host);
        await host.StartAsync(Ct);
        return host;
    }

    protected void Forget(IHost host) => _hosts.Remove(host);

    private static async Task<long> ForeignEnqueueAsync(IJobQueueBackend backend, string payload)
    {
        var now = DateTimeOffset.UtcNow;
        var result = await backend.EnqueueAsync(
            new JobEnqueueRequest { Queue = "default", Kind = typeof(Work).FullName!, Payload = payload, RunAt = now, EnqueuedAt = now, MaxAttempts = 20, Notify = true },
            Ct);
        return result.Id!.Value;
    }
}

// Snoozes the first run of each value; cancels "cancel".
public sealed class SnoozingHandler(Journal journal) : IJobHandler<Work>
{
    public Task HandleAsync(Work payload, JobContext context, CancellationToken cancellationToken)
    {
        if (payload.Value == "cancel")
        {
            context.Cancel("not wanted");
            return Task.CompletedTask;
        }

        if (journal.Failures.TryAdd(payload.Value, 1))
        {
            context.Snooze(TimeSpan.FromMilliseconds(300));
            return Task.CompletedTask;
        }

        journal.Handled.Enqueue((context.Id, context.Attempt, payload.Value));
        return Task.CompletedTask;
    }
}
