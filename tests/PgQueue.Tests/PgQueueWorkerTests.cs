using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using PgFirst.Testing;

namespace PgQueue.Tests;

// The queue end to end on PostgreSQL: a real host, real workers, real handlers.
public sealed class PgQueueWorkerTests(PostgresServer server) : IAsyncLifetime
{
    private readonly PostgresSchema _schema = new(server);
    private readonly List<IHost> _hosts = [];

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync() => await _schema.ApplyAsync([PostgresJobQueueBackend.SchemaModule], Ct);

    public async ValueTask DisposeAsync()
    {
        foreach (var host in _hosts)
        {
            await host.StopAsync(CancellationToken.None);
            host.Dispose();
        }

        await _schema.DisposeAsync();
    }

    [Fact]
    public async Task Enqueue_ManyJobs_EachHandledExactlyOnceAndKeptAsSucceeded()
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
        await QueueTestHost.WaitUntilAsync(() => journal.Count >= 200, "200 jobs are handled");
        await QueueTestHost.WaitUntilAsync(async () => await ScalarAsync("SELECT count(*) FROM {0}.job_finished WHERE state = 3") == 200, "all 200 are recorded as succeeded");
        Assert.Equal(ids.Order(), journal.Handled.Select(h => h.Id).Order());
        Assert.All(journal.Handled, h => Assert.Equal(1, h.Attempt));
        Assert.Equal(0, await ScalarAsync("SELECT count(*) FROM {0}.job"));
    }

    [Fact]
    public async Task EnqueueMany_BulkOf5000_AllHandled()
    {
        var host = await StartAsync(handlers: q => q.AddHandler<Work, RecordingHandler>());
        var queue = host.Services.GetRequiredService<IJobQueue>();
        var result = await queue.EnqueueManyAsync(Enumerable.Range(0, 5000).Select(i => new Work("b" + i)), cancellationToken: Ct);
        Assert.Equal(new JobBatchEnqueueResult(5000, 0), result);
        var journal = host.Services.GetRequiredService<Journal>();
        await QueueTestHost.WaitUntilAsync(() => journal.Count >= 5000, "5000 bulk jobs are handled", 60);
        Assert.Equal(5000, journal.Handled.Select(h => h.Value).Distinct().Count());
    }

    [Fact]
    public async Task TransactionalEnqueue_RolledBack_NoJob_Committed_Handled()
    {
        var host = await StartAsync(handlers: q => q.AddHandler<Work, RecordingHandler>());
        var queue = host.Services.GetRequiredService<IJobQueue>();
        await using (var connection = await _schema.DataSource.OpenConnectionAsync(Ct))
        {
            await using var transaction = await connection.BeginTransactionAsync(Ct);
            var result = await queue.EnqueueAsync(transaction, new Work("rolled-back"), cancellationToken: Ct);
            Assert.NotNull(result.Id);
            await queue.EnqueueManyAsync(transaction, [new Work("rolled-back-bulk")], cancellationToken: Ct);
            await transaction.RollbackAsync(Ct);
        }

        await using (var connection = await _schema.DataSource.OpenConnectionAsync(Ct))
        {
            await using var transaction = await connection.BeginTransactionAsync(Ct);
            await queue.EnqueueAsync(transaction, new Work("committed"), cancellationToken: Ct);
            await transaction.CommitAsync(Ct);
        }

        var journal = host.Services.GetRequiredService<Journal>();
        await QueueTestHost.WaitUntilAsync(() => journal.Count >= 1, "the committed job is handled");
        await Task.Delay(500, Ct);
        Assert.Equal(["committed"], journal.Handled.Select(h => h.Value));
        Assert.Equal(0, await ScalarAsync("SELECT count(*) FROM {0}.job"));
        Assert.Equal(1, await ScalarAsync("SELECT count(*) FROM {0}.job_finished"));
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
        var queue = host.Services.GetRequiredService<IJobQueue>();
        var manager = host.Services.GetRequiredService<JobQueueManager>();
        var kind = typeof(Work).FullName!;

        // Written by a non-.NET producer through the SQL function: not a Work object.
        var poison = await ScalarAsync($"SELECT {{0}}.enqueue('default', '{kind}', '[1, 2, 3]'::jsonb)");
        var nullPayload = await ScalarAsync($"SELECT {{0}}.enqueue('default', '{kind}', 'null'::jsonb)");
        await queue.EnqueueAsync(new Work("fine"), cancellationToken: Ct);

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
        var results = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => Task.Run(async () => await queue.EnqueueAsync(new Work("u" + i), new JobOptions { UniqueKey = "report:42" }, Ct), Ct)));

        var winner = Assert.Single(results, r => !r.Duplicate);
        Assert.All(results.Where(r => r.Duplicate), r => Assert.Equal(winner.Id, r.Id));
        Assert.Equal(1, await ScalarAsync("SELECT count(*) FROM {0}.job WHERE unique_key = 'report:42'"));

        // Once the holder finishes, the key is free again.
        var worker = await StartAsync(handlers: q => q.AddHandler<Work, RecordingHandler>());
        await QueueTestHost.WaitUntilAsync(() => worker.Services.GetRequiredService<Journal>().Count >= 1, "the unique job is handled");
        await QueueTestHost.WaitUntilAsync(async () => await ScalarAsync("SELECT count(*) FROM {0}.job") == 0, "it is finished");
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
        Assert.Equal(2, journal.Failures["snooze"] + 1);
        Assert.All(journal.Handled.Where(h => h.Value == "snooze"), h => Assert.Equal(1, h.Attempt));
        await QueueTestHost.WaitUntilAsync(async () => (await manager.GetJobAsync(cancelled.Id!.Value, Ct))?.State == JobState.Cancelled, "the cancelled job is cancelled");
        Assert.Equal("not wanted", (await manager.GetJobAsync(cancelled.Id!.Value, Ct))!.Errors.Single().Message);
    }

    [Fact]
    public async Task CompleteInTransaction_EffectAndCompletionCommitTogether_StaleLeaseRefused()
    {
        await ExecuteAsync("CREATE TABLE {0}.effect (job_id bigint NOT NULL)");
        var host = await StartAsync(handlers: q => q.AddHandler<Work, TransactionalHandler>());
        var queue = host.Services.GetRequiredService<IJobQueue>();
        var journal = host.Services.GetRequiredService<Journal>();
        var commit = await queue.EnqueueAsync(new Work("commit"), cancellationToken: Ct);
        var rollback = await queue.EnqueueAsync(new Work("rollback"), new JobOptions { MaxAttempts = 1 }, Ct);

        await QueueTestHost.WaitUntilAsync(async () => await ScalarAsync("SELECT count(*) FROM {0}.job_finished") == 2, "both jobs finish");
        Assert.Equal(1, await ScalarAsync($"SELECT count(*) FROM {{0}}.effect WHERE job_id = {commit.Id}"));
        Assert.Equal(0, await ScalarAsync($"SELECT count(*) FROM {{0}}.effect WHERE job_id = {rollback.Id}"));
        var manager = host.Services.GetRequiredService<JobQueueManager>();
        Assert.Equal(JobState.Succeeded, (await manager.GetJobAsync(commit.Id!.Value, Ct))!.State);
        Assert.Equal(JobState.Dead, (await manager.GetJobAsync(rollback.Id!.Value, Ct))!.State);

        // A completion with a stale token throws, so the handler's transaction rolls back.
        var backend = new PostgresJobQueueBackend(_schema.DataSource, _schema.Name);
        await using var connection = await _schema.DataSource.OpenConnectionAsync(Ct);
        await using var transaction = await connection.BeginTransactionAsync(Ct);
        await Assert.ThrowsAsync<JobLeaseLostException>(async () => await backend.CompleteAsync(transaction, new JobToken(commit.Id!.Value, 1), DateTimeOffset.UtcNow, DateTimeOffset.UtcNow, Ct));
        Assert.Equal(["commit"], journal.Handled.Select(h => h.Value));
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
        var backend = new PostgresJobQueueBackend(_schema.DataSource, _schema.Name);
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
        var host = await StartAsync(o => { o.DefaultConcurrency = 1; o.DefaultPrefetch = 10; }, q => q.AddHandler<Work, GatedHandler>());
        var queue = host.Services.GetRequiredService<IJobQueue>();
        var journal = host.Services.GetRequiredService<Journal>();
        await queue.EnqueueManyAsync(Enumerable.Range(0, 5).Select(i => new Work("g" + i)), cancellationToken: Ct);
        await QueueTestHost.WaitUntilAsync(() => Volatile.Read(ref journal.Started) == 1, "the first job starts");
        await QueueTestHost.WaitUntilAsync(async () => await ScalarAsync("SELECT count(*) FROM {0}.job WHERE state = 1") == 5, "all five are claimed (one running, four prefetched)");

        var stopping = host.StopAsync(CancellationToken.None);
        await Task.Delay(200, Ct);
        Assert.False(stopping.IsCompleted, "shutdown waits for the running handler");
        journal.Gate.SetResult();
        await stopping;
        _hosts.Remove(host);
        host.Dispose();

        Assert.Single(journal.Handled);
        Assert.Equal(1, await ScalarAsync("SELECT count(*) FROM {0}.job_finished WHERE state = 3"));
        Assert.Equal(4, await ScalarAsync("SELECT count(*) FROM {0}.job WHERE state = 0 AND attempt = 0"));
    }

    [Fact]
    public async Task Notifications_WakeAWorkerInAnotherProcess_WithoutPolling()
    {
        // Workers poll once a minute here: only the producer's NOTIFY can start the job quickly.
        var worker = await StartAsync(o => o.PollInterval = TimeSpan.FromMinutes(1), q => q.AddHandler<Work, RecordingHandler>());
        var producer = await StartAsync(o => o.RunWorkers = false);
        var journal = worker.Services.GetRequiredService<Journal>();
        await Task.Delay(300, Ct);

        await producer.Services.GetRequiredService<IJobQueue>().EnqueueAsync(new Work("ping"), cancellationToken: Ct);
        await QueueTestHost.WaitUntilAsync(() => journal.Count >= 1, "the notified worker handles the job", 15);
    }

    [Fact]
    public async Task PollOnlyMode_HandlesJobsWithoutListenNotify()
    {
        var worker = await StartAsync(o => o.UseNotifications = false, q => q.AddHandler<Work, RecordingHandler>());
        var producer = await StartAsync(o => { o.RunWorkers = false; o.UseNotifications = false; });
        await producer.Services.GetRequiredService<IJobQueue>().EnqueueAsync(new Work("polled"), cancellationToken: Ct);
        var journal = worker.Services.GetRequiredService<Journal>();
        await QueueTestHost.WaitUntilAsync(() => journal.Count >= 1, "the polling worker handles the job");
        Assert.Equal(0, await ScalarAsync("SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%' AND query LIKE '%' || '{0}' || '%'"));
    }

    [Fact]
    public async Task RecurringJob_FiresOncePerOccurrence_AcrossTwoInstances()
    {
        Action<IPgQueueBuilder> handlers = q => q.AddHandler<Work, RecordingHandler>().AddRecurring("tick", "* * * * * *", new Work("tick"));
        var first = await StartAsync(handlers: handlers);
        var second = await StartAsync(handlers: handlers);

        await QueueTestHost.WaitUntilAsync(async () => await ScalarAsync("SELECT count(*) FROM {0}.job_finished") >= 3, "three occurrences ran", 20);
        var occurrences = await ScalarAsync("SELECT count(*) FROM {0}.job_finished");
        var distinctSeconds = await ScalarAsync("SELECT count(DISTINCT date_trunc('second', enqueued_at)) FROM {0}.job_finished");
        Assert.Equal(occurrences, distinctSeconds);
        Assert.Equal(1, await ScalarAsync("SELECT count(*) FROM {0}.recurring_job"));
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
    public async Task DatabaseDown_WorkersKeepRunning_AndDrainWhenItComesBack()
    {
        await using var proxy = new TcpProxy(server.Endpoint.Host, server.Endpoint.Port);
        var dataSource = _schema.Track(server.CreateDataSourceThrough(proxy));
        var host = await StartAsync(handlers: q => q.AddHandler<Work, RecordingHandler>(), dataSource: dataSource);
        var queue = host.Services.GetRequiredService<IJobQueue>();
        var journal = host.Services.GetRequiredService<Journal>();
        await queue.EnqueueAsync(new Work("before"), cancellationToken: Ct);
        await QueueTestHost.WaitUntilAsync(() => journal.Count >= 1, "the first job is handled");

        proxy.GoDown();
        await Assert.ThrowsAnyAsync<Exception>(async () => await queue.EnqueueAsync(new Work("while-down"), cancellationToken: Ct));
        await Task.Delay(1000, Ct);
        proxy.ComeBack();

        // Enqueued by another process while this one's connections were cut.
        var direct = new PostgresJobQueueBackend(_schema.DataSource, _schema.Name);
        var producer = await StartAsync(o => o.RunWorkers = false);
        await producer.Services.GetRequiredService<IJobQueue>().EnqueueManyAsync(Enumerable.Range(0, 20).Select(i => new Work("after" + i)), cancellationToken: Ct);
        await QueueTestHost.WaitUntilAsync(() => journal.Count >= 21, "the worker reconnects and drains", 30);
        Assert.DoesNotContain(journal.Handled, h => h.Value == "while-down");
        Assert.Equal(0, (await direct.GetStatsAsync(["default"], 100, Ct))[0].Available);
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
        Assert.Equal(0, await ScalarAsync("SELECT count(*) FROM {0}.job"));
    }

    [Fact]
    public async Task MissingSchema_ErrorNamesTheScript()
    {
        var host = await StartAsync(o => o.RunWorkers = false);
        await ExecuteAsync("DROP TABLE {0}.job CASCADE");
        var error = await Assert.ThrowsAsync<PgFirst.Core.PgFirstSchemaException>(async () => await host.Services.GetRequiredService<IJobQueue>().EnqueueAsync(new Work("x"), cancellationToken: Ct));
        Assert.Contains("001_job.sql", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BadOptions_FailAtStartup()
    {
        using var host = QueueTestHost.Build(_schema, o => { o.HeartbeatInterval = TimeSpan.FromMinutes(5); o.DefaultQueue = "bad queue"; });
        var error = Assert.Throws<Microsoft.Extensions.Options.OptionsValidationException>(() => host.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<PgQueueOptions>>().Value);
        Assert.Contains("HeartbeatInterval", error.Message, StringComparison.Ordinal);
        Assert.Contains("DefaultQueue", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BadRegistrations_ThrowAtRegistration()
    {
        var services = new ServiceCollection();
        var builder = services.AddPgQueue();
        Assert.Throws<ArgumentException>(() => builder.AddRecurring("r", "not cron", new Work("x")));
        Assert.Throws<ArgumentException>(() => builder.AddRecurring("r", "* * * * *", new Work("x"), o => o.TimeZone = "Mars/Olympus"));
        Assert.Throws<ArgumentException>(() => builder.AddHandler<Work, RecordingHandler>(o => o.Queue = "bad queue"));
        Assert.Throws<ArgumentException>(() => builder.AddHandler<Work, RecordingHandler>(o => o.MaxAttempts = 0));
    }

    private async Task<IHost> StartAsync(Action<PgQueueOptions>? configure = null, Action<IPgQueueBuilder>? handlers = null, NpgsqlDataSource? dataSource = null)
    {
        var host = QueueTestHost.Build(_schema, configure, handlers, dataSource: dataSource);
        _hosts.Add(host);
        await host.StartAsync(Ct);
        return host;
    }

    private async Task<long> ScalarAsync(string sql)
    {
        await using var command = _schema.DataSource.CreateCommand(string.Format(System.Globalization.CultureInfo.InvariantCulture, sql, "\"" + _schema.Name + "\""));
        return Convert.ToInt64(await command.ExecuteScalarAsync(Ct), System.Globalization.CultureInfo.InvariantCulture);
    }

    private async Task ExecuteAsync(string sql)
    {
        await using var command = _schema.DataSource.CreateCommand(string.Format(System.Globalization.CultureInfo.InvariantCulture, sql, "\"" + _schema.Name + "\""));
        await command.ExecuteNonQueryAsync(Ct);
    }
}

// Snoozes the first run of "snooze"; cancels "cancel".
internal sealed class SnoozingHandler(Journal journal) : IJobHandler<Work>
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

// Writes an effect row and completes the job in the same transaction; "rollback" throws after completing.
internal sealed class TransactionalHandler(Journal journal, NpgsqlDataSource dataSource, Microsoft.Extensions.Options.IOptions<PgFirst.Core.PgFirstOptions> first) : IJobHandler<Work>
{
    public async Task HandleAsync(Work payload, JobContext context, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var insert = new NpgsqlCommand($"INSERT INTO \"{first.Value.SchemaName}\".effect (job_id) VALUES ($1)", connection, transaction))
        {
            insert.Parameters.Add(new NpgsqlParameter<long> { TypedValue = context.Id });
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }

        await context.CompleteAsync(transaction, cancellationToken);
        if (payload.Value == "rollback")
        {
            throw new InvalidOperationException("The handler fails after completing; its transaction rolls back.");
        }

        await transaction.CommitAsync(cancellationToken);
        journal.Handled.Enqueue((context.Id, context.Attempt, payload.Value));
    }
}
