using PgFirst.Testing;

namespace PgQueue.Tests;

// The operator's bulk operations (pgfirst-admin jobs requeue --all-dead, jobs purge) on PostgreSQL.
[Trait("Category", "Pooler")]
public sealed class JobQueueManagerTests(PostgresServer server) : IAsyncLifetime
{
    private readonly PostgresSchema _schema = new(server);
    private PostgresJobQueueBackend _backend = null!;
    private JobQueueManager _manager = null!;

    private static CancellationToken CancellationToken => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        await _schema.ApplyAsync([PostgresJobQueueBackend.SchemaModule], CancellationToken);
        _backend = new PostgresJobQueueBackend(_schema.DataSource, _schema.Options);
        _manager = new JobQueueManager(_backend, new PgQueueOptions(), TimeProvider.System);
    }

    public ValueTask DisposeAsync() => _schema.DisposeAsync();

    // Dead jobs that cannot go back (another job holds their unique key) must not stop the walk: before keyset paging,
    // a page full of them ended it and every older dead job stayed dead.
    [Fact]
    public async Task RequeueDeadAsync_PagesPastJobsThatStayDead_AndLeavesOtherQueuesAlone()
    {
        var now = DateTimeOffset.UtcNow;
        var older = new List<long>();
        for (var i = 0; i < 5; i++)
        {
            older.Add(await DeadAsync("reports", now.AddMinutes(-30 + i)));
        }

        for (var i = 0; i < 3; i++)
        {
            await DeadAsync("reports", now.AddMinutes(-5 + i), uniqueKey: $"invoice:{i}");
        }

        var otherQueue = await DeadAsync("email", now.AddMinutes(-1));

        // The newest three cannot go back: live jobs hold their keys again.
        for (var i = 0; i < 3; i++)
        {
            await EnqueueAsync("reports", uniqueKey: $"invoice:{i}");
        }

        var (requeued, skipped) = await _manager.RequeueDeadAsync("reports", batchSize: 2, CancellationToken);

        Assert.Equal((5, 3), (requeued, skipped));
        foreach (var id in older)
        {
            Assert.Equal(JobState.Available, (await _backend.GetJobAsync(id, CancellationToken))!.State);
        }

        Assert.Equal(JobState.Dead, (await _backend.GetJobAsync(otherQueue, CancellationToken))!.State);
        Assert.Equal(3, (await _manager.GetStatsAsync(["reports"], cancellationToken: CancellationToken))[0].Dead);
    }

    [Fact]
    public async Task RequeueDeadAsync_LeavesJobsThatDieAfterItBegan()
    {
        var before = await DeadAsync("reports", DateTimeOffset.UtcNow.AddMinutes(-1));
        var after = await DeadAsync("reports", DateTimeOffset.UtcNow.AddHours(1));

        Assert.Equal((1, 0), await _manager.RequeueDeadAsync("reports", cancellationToken: CancellationToken));
        Assert.Equal(JobState.Available, (await _backend.GetJobAsync(before, CancellationToken))!.State);
        Assert.Equal(JobState.Dead, (await _backend.GetJobAsync(after, CancellationToken))!.State);
    }

    // The purge walks id ranges of 100 across gaps (jobs still queued between finished ones) and deletes exactly the
    // finished jobs of the queue that finished before the cut-off, whatever their state or retention.
    [Fact]
    public async Task PurgeFinishedAsync_InIdRanges_DeletesExactlyWhatCountFinishedBeforeCounts()
    {
        var now = DateTimeOffset.UtcNow;
        var old = await SucceedAsync("reports", 150, now.AddDays(-10));
        await EnqueueManyAsync("reports", 120);
        var recent = await SucceedAsync("reports", 100, now.AddDays(-1));
        var otherQueue = await SucceedAsync("email", 30, now.AddDays(-10));
        var cutoff = now.AddDays(-7);

        Assert.Equal(150, await _manager.CountFinishedBeforeAsync(cutoff, "reports", CancellationToken));

        var deleted = await _manager.PurgeFinishedAsync(cutoff, "reports", batchSize: 100, CancellationToken);

        Assert.Equal(150, deleted);
        Assert.Null(await _backend.GetJobAsync(old[0], CancellationToken));
        Assert.Null(await _backend.GetJobAsync(old[^1], CancellationToken));
        Assert.All(recent, id => Assert.NotNull(_backend.GetJobAsync(id, CancellationToken).AsTask().Result));
        Assert.Equal(JobState.Succeeded, (await _backend.GetJobAsync(otherQueue[0], CancellationToken))!.State);
        Assert.Equal(0, await _manager.CountFinishedBeforeAsync(cutoff, "reports", CancellationToken));
        Assert.Equal(30, await _manager.CountFinishedBeforeAsync(cutoff, null, CancellationToken));
        Assert.Equal(120, (await _manager.GetStatsAsync(["reports"], cancellationToken: CancellationToken))[0].Available);
    }

    private async Task<long> EnqueueAsync(string queue, string? uniqueKey = null)
    {
        var result = await _backend.EnqueueAsync(Job(queue, uniqueKey), CancellationToken);
        return result.Id!.Value;
    }

    private async Task EnqueueManyAsync(string queue, int count) =>
        await _backend.EnqueueManyAsync([.. Enumerable.Range(0, count).Select(_ => Job(queue, null))], CancellationToken);

    private async Task<long> DeadAsync(string queue, DateTimeOffset diedAt, string? uniqueKey = null)
    {
        var id = await EnqueueAsync(queue, uniqueKey);
        var job = Assert.Single(await ClaimAsync(queue, 1));
        Assert.Equal(id, job.Id);
        Assert.True(await _backend.FinishAsync(new JobToken(job.Id, job.Lease), JobState.Dead, new JobError(1, diedAt, "E", "failed"), diedAt, diedAt.AddDays(30), CancellationToken));
        return id;
    }

    private async Task<IReadOnlyList<long>> SucceedAsync(string queue, int count, DateTimeOffset finishedAt)
    {
        await EnqueueManyAsync(queue, count);
        var claimed = await ClaimAsync(queue, count);
        Assert.Equal(count, claimed.Count);
        Assert.Equal(count, await _backend.CompleteAsync([.. claimed.Select(j => new JobToken(j.Id, j.Lease))], finishedAt, finishedAt.AddDays(30), CancellationToken));
        return [.. claimed.Select(j => j.Id).Order()];
    }

    private Task<IReadOnlyList<ClaimedJob>> ClaimAsync(string queue, int count) => _backend.ClaimAsync(
        new JobClaimRequest { Queue = queue, Count = count, Worker = "test", Now = DateTimeOffset.UtcNow, LeaseExpiresAt = DateTimeOffset.UtcNow.AddMinutes(5) }, CancellationToken).AsTask();

    private static JobEnqueueRequest Job(string queue, string? uniqueKey) => new()
    {
        Queue = queue,
        Kind = "test",
        Payload = "{}",
        RunAt = DateTimeOffset.UtcNow.AddMinutes(-1),
        MaxAttempts = 1,
        UniqueKey = uniqueKey,
        EnqueuedAt = DateTimeOffset.UtcNow.AddMinutes(-1),
    };
}
