using System.Text.Json.Nodes;
using System.Threading.Channels;
using PgQueue;
using Xunit;

namespace PgFirst.Testing;

/// <summary>
/// The behaviour every <see cref="IJobQueueBackend"/> must have, run against PostgreSQL and Redis alike. Time is passed
/// in, never read: due jobs, expired leases and retention are exercised by passing a later <c>now</c>, with no sleeps.
/// Times are whole microseconds, the precision PostgreSQL stores, so they compare exactly.
/// </summary>
public abstract class JobQueueBackendConformanceTests : IAsyncLifetime
{
    protected const string Queue = "default";

    /// <summary>A fixed "now" at the start of every test, with a microsecond part.</summary>
    protected static readonly DateTimeOffset Start = new DateTimeOffset(2026, 11, 23, 12, 0, 0, TimeSpan.Zero).AddMicroseconds(123_456);

    protected static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);

    private const string Payload = """{"n": 1, "text": "héllo"}""";

    private IJobQueueBackend? _backend;

    protected static CancellationToken CancellationToken => TestContext.Current.CancellationToken;

    /// <summary>Gets the backend under test, created on first use by <see cref="CreateBackend"/>.</summary>
    protected IJobQueueBackend Backend => _backend ??= CreateBackend();

    public virtual ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public virtual ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Creates a backend on this test class instance's isolated store (own schema or key prefix). Called after
    /// <see cref="InitializeAsync"/>, once for <see cref="Backend"/> and again by tests that need another "app server"
    /// on the same store.
    /// </summary>
    protected abstract IJobQueueBackend CreateBackend();

    protected static JobEnqueueRequest Job(
        string queue = Queue,
        short priority = 0,
        DateTimeOffset? runAt = null,
        DateTimeOffset? enqueuedAt = null,
        string? uniqueKey = null,
        int maxAttempts = 5,
        string payload = Payload,
        string kind = "test.job",
        string? traceParent = null,
        bool notify = false) => new()
        {
            Queue = queue,
            Kind = kind,
            Payload = payload,
            Priority = priority,
            RunAt = runAt ?? enqueuedAt ?? Start,
            MaxAttempts = maxAttempts,
            UniqueKey = uniqueKey,
            EnqueuedAt = enqueuedAt ?? Start,
            TraceParent = traceParent,
            Notify = notify,
        };

    protected async Task<long> EnqueueAsync(JobEnqueueRequest request)
    {
        var result = await Backend.EnqueueAsync(request, CancellationToken);
        Assert.False(result.Duplicate);
        Assert.NotNull(result.Id);
        return result.Id.Value;
    }

    protected Task<long> EnqueueAsync(string queue = Queue, short priority = 0, DateTimeOffset? runAt = null, string? uniqueKey = null) =>
        EnqueueAsync(Job(queue, priority, runAt, uniqueKey: uniqueKey));

    protected async Task<IReadOnlyList<ClaimedJob>> ClaimAsync(
        string queue = Queue,
        int count = 1,
        DateTimeOffset? now = null,
        string worker = "worker-1",
        IReadOnlyList<JobToken>? succeeded = null,
        DateTimeOffset? succeededDeleteAfter = null,
        IJobQueueBackend? backend = null)
    {
        var at = now ?? Start;
        return await (backend ?? Backend).ClaimAsync(
            new JobClaimRequest
            {
                Queue = queue,
                Count = count,
                Worker = worker,
                Now = at,
                LeaseExpiresAt = at + Lease,
                Succeeded = succeeded ?? [],
                SucceededDeleteAfter = succeededDeleteAfter ?? at + TimeSpan.FromHours(1),
            },
            CancellationToken);
    }

    protected async Task<ClaimedJob> ClaimOneAsync(string queue = Queue, DateTimeOffset? now = null, string worker = "worker-1") =>
        Assert.Single(await ClaimAsync(queue, 1, now, worker));

    protected async Task<JobInfo> GetJobAsync(long id)
    {
        var job = await Backend.GetJobAsync(id, CancellationToken);
        Assert.NotNull(job);
        return job;
    }

    // A dead job with two entries in its history: a failed attempt retried at once, then a second one that gave up.
    protected async Task<(long Id, JobError First, JobError Last)> DeadJobAsync(DateTimeOffset at, string queue = Queue, string? uniqueKey = null)
    {
        var id = await EnqueueAsync(Job(queue, runAt: at, enqueuedAt: at, uniqueKey: uniqueKey));
        var first = await ClaimOneAsync(queue, at);
        var firstError = new JobError(1, at + TimeSpan.FromSeconds(1), "System.InvalidOperationException", "first failure");
        Assert.True(await Backend.RetryAsync(first.Token, firstError.At, firstError, refundAttempt: false, CancellationToken));
        var second = await ClaimOneAsync(queue, at + TimeSpan.FromSeconds(2));
        Assert.Equal(id, second.Id);
        var lastError = new JobError(2, at + TimeSpan.FromSeconds(3), "System.TimeoutException", "gave up");
        Assert.True(await Backend.FinishAsync(second.Token, JobState.Dead, lastError, lastError.At, at + TimeSpan.FromDays(7), CancellationToken));
        return (id, firstError, lastError);
    }

    protected static void AssertJson(string expected, string actual) =>
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(expected), JsonNode.Parse(actual)), $"Expected JSON {expected}, got {actual}.");

    private static RecurringJobDefinition Recurring(string name, string payload = """{"r": 1}""", string cron = "* * * * *", string queue = Queue) => new()
    {
        Name = name,
        Cron = cron,
        TimeZone = "UTC",
        Queue = queue,
        Kind = "test.recurring",
        Payload = payload,
        Priority = 2,
        MaxAttempts = 3,
    };

    // The next occurrence, one minute after the time it is asked from (the cron expression plays no part here).
    private static DateTimeOffset EveryMinute(RecurringJobDefinition definition, DateTimeOffset after) => after.AddMinutes(1);

    [Fact]
    public async Task EnqueueAsync_ThenClaimAndComplete_RoundTripsEveryField()
    {
        var traceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        var id = await EnqueueAsync(Job(priority: 3, runAt: Start - TimeSpan.FromSeconds(5), maxAttempts: 7, traceParent: traceParent, uniqueKey: "order:1"));
        var claimedAt = Start + TimeSpan.FromSeconds(1);

        var job = await ClaimOneAsync(now: claimedAt, worker: "host-a:1");

        Assert.Equal(id, job.Id);
        Assert.Equal(1, job.Lease);
        Assert.Equal(Queue, job.Queue);
        Assert.Equal("test.job", job.Kind);
        AssertJson(Payload, job.Payload);
        Assert.Equal(1, job.Attempt);
        Assert.Equal(7, job.MaxAttempts);
        Assert.Equal(Start, job.EnqueuedAt);
        Assert.Equal(Start - TimeSpan.FromSeconds(5), job.AvailableAt);
        Assert.Equal(traceParent, job.TraceParent);
        Assert.Empty(job.Errors);

        var running = await GetJobAsync(id);
        Assert.Equal(JobState.Running, running.State);
        Assert.Equal(claimedAt + Lease, running.RunAt);
        Assert.Equal(claimedAt, running.ClaimedAt);
        Assert.Equal("host-a:1", running.ClaimedBy);
        Assert.Equal(3, running.Priority);
        Assert.Equal("order:1", running.UniqueKey);
        Assert.Null(running.FinishedAt);

        var finishedAt = Start + TimeSpan.FromSeconds(2);
        Assert.Equal(1, await Backend.CompleteAsync([job.Token], finishedAt, finishedAt + TimeSpan.FromHours(1), CancellationToken));

        var succeeded = await GetJobAsync(id);
        Assert.Equal(JobState.Succeeded, succeeded.State);
        Assert.Equal(finishedAt, succeeded.FinishedAt);
        Assert.Equal(claimedAt, succeeded.ClaimedAt);
        Assert.Null(succeeded.RunAt);
        Assert.Null(succeeded.ClaimedBy);
        Assert.Equal(1, succeeded.Attempt);
        AssertJson(Payload, succeeded.Payload);
        Assert.Empty(await ClaimAsync(now: finishedAt));
        Assert.Equal(0, await Backend.CompleteAsync([job.Token], finishedAt, finishedAt + TimeSpan.FromHours(1), CancellationToken));
    }

    [Fact]
    public async Task EnqueueAsync_Delayed_IsScheduledUntilPromotedAtItsTime()
    {
        var runAt = Start + TimeSpan.FromSeconds(10);
        var id = await EnqueueAsync(runAt: runAt);

        var scheduled = await GetJobAsync(id);
        Assert.Equal(JobState.Scheduled, scheduled.State);
        Assert.Equal(runAt, scheduled.RunAt);
        Assert.Empty(await ClaimAsync(now: runAt));
        Assert.Empty(await Backend.PromoteAsync(runAt - TimeSpan.FromMicroseconds(1), CancellationToken));

        var promoted = await Backend.PromoteAsync(runAt, CancellationToken);

        Assert.Equal([new KeyValuePair<string, int>(Queue, 1)], promoted);
        Assert.Equal(JobState.Available, (await GetJobAsync(id)).State);
        var job = await ClaimOneAsync(now: runAt + TimeSpan.FromSeconds(1));
        Assert.Equal(id, job.Id);
        Assert.Equal(runAt, job.AvailableAt);
        Assert.Equal(1, job.Attempt);
    }

    [Fact]
    public async Task ClaimAsync_OneAtATime_TakesHighestPriorityThenEarliestRunAtThenLowestId()
    {
        var a = await EnqueueAsync(priority: 0, runAt: Start - TimeSpan.FromSeconds(1));
        var b = await EnqueueAsync(priority: 5, runAt: Start);
        var c = await EnqueueAsync(priority: 5, runAt: Start - TimeSpan.FromSeconds(2));
        var d = await EnqueueAsync(priority: 0, runAt: Start - TimeSpan.FromSeconds(1));
        var e = await EnqueueAsync(priority: -3, runAt: Start - TimeSpan.FromSeconds(10));
        var f = await EnqueueAsync(priority: 5, runAt: Start);
        var g = await EnqueueAsync(priority: short.MaxValue, runAt: Start);
        var h = await EnqueueAsync(priority: short.MinValue, runAt: Start - TimeSpan.FromDays(1));

        var order = new List<long>();
        for (var i = 0; i < 8; i++)
        {
            order.Add((await ClaimOneAsync()).Id);
        }

        Assert.Equal([g, c, b, f, a, d, e, h], order);
        Assert.Empty(await ClaimAsync());
    }

    [Fact]
    public async Task ClaimAsync_Count_ClaimsAtMostThatManyOfTheNextJobs()
    {
        var ids = new List<long>();
        for (short priority = 0; priority < 5; priority++)
        {
            ids.Add(await EnqueueAsync(priority: priority));
        }

        var first = await ClaimAsync(count: 3);
        var rest = await ClaimAsync(count: 10);

        Assert.Equal(ids[2..].ToHashSet(), first.Select(j => j.Id).ToHashSet());
        Assert.Equal(ids[..2].ToHashSet(), rest.Select(j => j.Id).ToHashSet());
        Assert.All(first.Concat(rest), j => Assert.Equal(1, j.Attempt));
        Assert.Empty(await ClaimAsync(count: 10));
        Assert.Empty(await ClaimAsync(queue: "other", count: 10));
    }

    [Fact]
    public async Task ClaimAsync_ConcurrentClaimers_NeverGetTheSameJob()
    {
        const int Jobs = 60;
        var requests = Enumerable.Range(0, Jobs).Select(i => Job(priority: (short)(i % 3), payload: $$"""{"i": {{i}}}""")).ToList();
        Assert.Equal(new JobBatchEnqueueResult(Jobs, 0), await Backend.EnqueueManyAsync(requests, CancellationToken));
        IJobQueueBackend[] backends = [Backend, CreateBackend()];

        var claimers = Enumerable.Range(0, 8).Select(n => Task.Run(async () =>
        {
            var mine = new List<long>();
            while (true)
            {
                var jobs = await ClaimAsync(count: 4, worker: $"worker-{n}", backend: backends[n % 2]);
                if (jobs.Count == 0)
                {
                    return mine;
                }

                mine.AddRange(jobs.Select(j => j.Id));
            }
        }));
        var claimed = (await Task.WhenAll(claimers)).SelectMany(ids => ids).ToList();

        Assert.Equal(Jobs, claimed.Count);
        Assert.Equal(Jobs, claimed.Distinct().Count());
    }

    [Fact]
    public async Task ClaimAsync_WithSucceeded_FinishesThemInTheSameCall()
    {
        var a = await EnqueueAsync(priority: 1);
        var b = await EnqueueAsync(priority: 0);
        var first = await ClaimOneAsync();
        var at = Start + TimeSpan.FromSeconds(1);

        var next = await ClaimAsync(count: 1, now: at, succeeded: [first.Token], succeededDeleteAfter: at + TimeSpan.FromHours(1));

        Assert.Equal(a, first.Id);
        Assert.Equal(b, Assert.Single(next).Id);
        var succeeded = await GetJobAsync(a);
        Assert.Equal(JobState.Succeeded, succeeded.State);
        Assert.Equal(at, succeeded.FinishedAt);

        Assert.Empty(await ClaimAsync(count: 0, now: at, succeeded: [next[0].Token]));
        Assert.Equal(JobState.Succeeded, (await GetJobAsync(b)).State);
    }

    [Fact]
    public async Task StaleLeaseToken_IsRefusedByCompleteRetryFinishExtendAndRelease()
    {
        var id = await EnqueueAsync();
        var first = await ClaimOneAsync();
        Assert.Equal(1, await Backend.ReleaseAsync([first.Token], Start + TimeSpan.FromSeconds(1), CancellationToken));
        var second = await ClaimOneAsync(now: Start + TimeSpan.FromSeconds(2), worker: "worker-2");
        var stale = first.Token;
        var at = Start + TimeSpan.FromSeconds(3);

        Assert.Equal(id, second.Id);
        Assert.True(second.Lease > first.Lease);
        Assert.Equal(0, await Backend.CompleteAsync([stale], at, at + TimeSpan.FromHours(1), CancellationToken));
        Assert.False(await Backend.RetryAsync(stale, at + TimeSpan.FromMinutes(1), new JobError(1, at, "E", "m"), refundAttempt: false, CancellationToken));
        Assert.False(await Backend.RetryAsync(stale, at + TimeSpan.FromMinutes(1), null, refundAttempt: true, CancellationToken));
        Assert.False(await Backend.FinishAsync(stale, JobState.Dead, new JobError(1, at, "E", "m"), at, at + TimeSpan.FromDays(1), CancellationToken));
        Assert.False(await Backend.FinishAsync(stale, JobState.Cancelled, new JobError(1, at, "E", "m"), at, at + TimeSpan.FromDays(1), CancellationToken));
        Assert.Equal([stale], await Backend.ExtendLeasesAsync([stale], at + TimeSpan.FromMinutes(5), CancellationToken));
        Assert.Equal(0, await Backend.ReleaseAsync([stale], at, CancellationToken));

        var job = await GetJobAsync(id);
        Assert.Equal(JobState.Running, job.State);
        Assert.Equal(1, job.Attempt);
        Assert.Equal("worker-2", job.ClaimedBy);
        Assert.Equal(Start + TimeSpan.FromSeconds(2) + Lease, job.RunAt);
        Assert.Empty(job.Errors);
        Assert.Empty(await Backend.ExtendLeasesAsync([second.Token], at + TimeSpan.FromMinutes(5), CancellationToken));
        Assert.Equal(1, await Backend.CompleteAsync([second.Token], at, at + TimeSpan.FromHours(1), CancellationToken));
    }

    [Fact]
    public async Task RetryAsync_WithError_SchedulesAndPromoteMakesItAvailableWhenDue()
    {
        var id = await EnqueueAsync();
        var first = await ClaimOneAsync();
        var error = new JobError(1, Start + TimeSpan.FromSeconds(1), "System.InvalidOperationException", "boom \"quoted\" / ü");
        var runAt = Start + TimeSpan.FromMinutes(1);

        Assert.True(await Backend.RetryAsync(first.Token, runAt, error, refundAttempt: false, CancellationToken));

        var scheduled = await GetJobAsync(id);
        Assert.Equal(JobState.Scheduled, scheduled.State);
        Assert.Equal(runAt, scheduled.RunAt);
        Assert.Equal(1, scheduled.Attempt);
        Assert.Null(scheduled.ClaimedBy);
        Assert.Equal([error], scheduled.Errors);
        Assert.Empty(await ClaimAsync(now: runAt));
        Assert.Empty(await Backend.PromoteAsync(runAt - TimeSpan.FromMicroseconds(1), CancellationToken));
        Assert.Equal([new KeyValuePair<string, int>(Queue, 1)], await Backend.PromoteAsync(runAt, CancellationToken));

        var second = await ClaimOneAsync(now: runAt);
        Assert.Equal(id, second.Id);
        Assert.Equal(2, second.Attempt);
        Assert.True(second.Lease > first.Lease);
        Assert.Equal(runAt, second.AvailableAt);
        Assert.Equal([error], second.Errors);
    }

    [Fact]
    public async Task RetryAsync_AlreadyDue_IsAvailableWithoutPromotion()
    {
        var id = await EnqueueAsync();
        var first = await ClaimOneAsync();
        var error = new JobError(1, Start + TimeSpan.FromSeconds(1), "E", "failed");

        Assert.True(await Backend.RetryAsync(first.Token, error.At, error, refundAttempt: false, CancellationToken));

        Assert.Equal(JobState.Available, (await GetJobAsync(id)).State);
        var second = await ClaimOneAsync(now: error.At);
        Assert.Equal(2, second.Attempt);
        Assert.Equal([error], second.Errors);
    }

    [Fact]
    public async Task RetryAsync_Snooze_GivesTheAttemptBackAndWaitsForPromotion()
    {
        var id = await EnqueueAsync();
        var first = await ClaimOneAsync();
        var runAt = Start + TimeSpan.FromMinutes(5);

        Assert.True(await Backend.RetryAsync(first.Token, runAt, null, refundAttempt: true, CancellationToken));

        var snoozed = await GetJobAsync(id);
        Assert.Equal(JobState.Scheduled, snoozed.State);
        Assert.Equal(0, snoozed.Attempt);
        Assert.Empty(snoozed.Errors);
        Assert.Empty(await ClaimAsync(now: runAt));
        Assert.Single(await Backend.PromoteAsync(runAt, CancellationToken));
        var second = await ClaimOneAsync(now: runAt);
        Assert.Equal(1, second.Attempt);
        Assert.Empty(second.Errors);
    }

    [Fact]
    public async Task ReleaseAsync_RunningJobs_GivesTheAttemptBackAndMakesThemAvailable()
    {
        var a = await EnqueueAsync();
        var b = await EnqueueAsync();
        var claimed = await ClaimAsync(count: 2);
        var at = Start + TimeSpan.FromSeconds(1);

        Assert.Equal(2, await Backend.ReleaseAsync([.. claimed.Select(j => j.Token)], at, CancellationToken));

        foreach (var id in new[] { a, b })
        {
            var job = await GetJobAsync(id);
            Assert.Equal(JobState.Available, job.State);
            Assert.Equal(0, job.Attempt);
            Assert.Equal(at, job.RunAt);
            Assert.Null(job.ClaimedBy);
        }

        var again = await ClaimAsync(count: 2, now: at);
        Assert.Equal([a, b], again.Select(j => j.Id).Order());
        Assert.All(again, j => Assert.Equal(1, j.Attempt));
        Assert.All(again, j => Assert.Equal(2, j.Lease));
        Assert.Equal(0, await Backend.ReleaseAsync([.. claimed.Select(j => j.Token)], at, CancellationToken));
    }

    [Fact]
    public async Task PromoteAsync_ExpiredLease_RescuesTheJobWithALeaseExpiredError()
    {
        var id = await EnqueueAsync();
        var first = await ClaimOneAsync(worker: "host-b:7");
        var expiry = Start + Lease;

        Assert.Empty(await Backend.PromoteAsync(expiry - TimeSpan.FromMicroseconds(1), CancellationToken));
        Assert.Equal(JobState.Running, (await GetJobAsync(id)).State);
        Assert.Equal([new KeyValuePair<string, int>(Queue, 1)], await Backend.PromoteAsync(expiry, CancellationToken));

        var rescued = await GetJobAsync(id);
        Assert.Equal(JobState.Available, rescued.State);
        Assert.Equal(1, rescued.Attempt);
        Assert.Null(rescued.ClaimedBy);
        var error = Assert.Single(rescued.Errors);
        Assert.Equal(1, error.Attempt);
        Assert.Equal(expiry, error.At);
        Assert.Equal("LeaseExpired", error.Type);
        Assert.Contains("host-b:7", error.Message, StringComparison.Ordinal);

        var second = await ClaimOneAsync(now: expiry + TimeSpan.FromSeconds(1));
        Assert.Equal(id, second.Id);
        Assert.True(second.Lease > first.Lease);
        Assert.Equal(2, second.Attempt);
        Assert.Equal("LeaseExpired", Assert.Single(second.Errors).Type);
        Assert.Equal(0, await Backend.CompleteAsync([first.Token], expiry, expiry + TimeSpan.FromHours(1), CancellationToken));
        Assert.Empty(await Backend.PromoteAsync(expiry, CancellationToken));
    }

    [Fact]
    public async Task ExtendLeasesAsync_CurrentToken_PushesTheExpiryPastPromotion()
    {
        var id = await EnqueueAsync();
        var job = await ClaimOneAsync();
        var extended = Start + TimeSpan.FromSeconds(90);

        Assert.Empty(await Backend.ExtendLeasesAsync([job.Token], extended, CancellationToken));
        Assert.Equal(extended, (await GetJobAsync(id)).RunAt);
        Assert.Empty(await Backend.PromoteAsync(Start + TimeSpan.FromSeconds(60), CancellationToken));
        Assert.Equal(JobState.Running, (await GetJobAsync(id)).State);

        var unknown = new JobToken(id + 1000, 1);
        Assert.Equal([unknown], await Backend.ExtendLeasesAsync([job.Token, unknown], extended, CancellationToken));
        Assert.Single(await Backend.PromoteAsync(extended, CancellationToken));
    }

    [Fact]
    public async Task FinishAsync_Dead_KeepsTheErrorHistoryAndListsNewestFirst()
    {
        var (a, firstError, lastError) = await DeadJobAsync(Start);
        var (b, _, _) = await DeadJobAsync(Start + TimeSpan.FromMinutes(1), queue: "other");
        var (c, _, _) = await DeadJobAsync(Start + TimeSpan.FromMinutes(2));

        var dead = await GetJobAsync(a);
        Assert.Equal(JobState.Dead, dead.State);
        Assert.Equal(2, dead.Attempt);
        Assert.Equal(lastError.At, dead.FinishedAt);
        Assert.Null(dead.RunAt);
        Assert.Null(dead.ClaimedBy);
        Assert.Equal([firstError, lastError], dead.Errors);

        Assert.Equal([c, a], (await Backend.ListFinishedAsync(Queue, JobState.Dead, 10, CancellationToken)).Select(j => j.Id));
        Assert.Equal([c, b, a], (await Backend.ListFinishedAsync(null, JobState.Dead, 10, CancellationToken)).Select(j => j.Id));
        Assert.Equal([c, b], (await Backend.ListFinishedAsync(null, JobState.Dead, 2, CancellationToken)).Select(j => j.Id));
        Assert.Equal([b], (await Backend.ListFinishedAsync("other", JobState.Dead, 10, CancellationToken)).Select(j => j.Id));
        Assert.Empty(await Backend.ListFinishedAsync(Queue, JobState.Cancelled, 10, CancellationToken));
        Assert.Empty(await Backend.ListFinishedAsync("nowhere", JobState.Dead, 10, CancellationToken));

        var listed = (await Backend.ListFinishedAsync(Queue, JobState.Dead, 10, CancellationToken))[1];
        Assert.Equal([firstError, lastError], listed.Errors);
        Assert.Equal(JobState.Dead, listed.State);
        AssertJson(Payload, listed.Payload);
    }

    [Fact]
    public async Task FinishAsync_SameFinishTime_ListsHigherIdFirst()
    {
        var at = Start + TimeSpan.FromSeconds(5);
        var a = await EnqueueAsync();
        var b = await EnqueueAsync();
        foreach (var job in await ClaimAsync(count: 2))
        {
            Assert.True(await Backend.FinishAsync(job.Token, JobState.Cancelled, new JobError(1, at, "Cancelled", "by handler"), at, at + TimeSpan.FromDays(1), CancellationToken));
        }

        Assert.Equal([b, a], (await Backend.ListFinishedAsync(Queue, JobState.Cancelled, 10, CancellationToken)).Select(j => j.Id));
    }

    [Fact]
    public async Task RequeueAsync_Dead_ResetsAttemptsKeepsHistoryAndContinuesTheLeaseSequence()
    {
        var (id, firstError, lastError) = await DeadJobAsync(Start);
        var at = Start + TimeSpan.FromMinutes(1);

        Assert.True(await Backend.RequeueAsync(id, at, CancellationToken));

        var requeued = await GetJobAsync(id);
        Assert.Equal(JobState.Available, requeued.State);
        Assert.Equal(0, requeued.Attempt);
        Assert.Equal(at, requeued.RunAt);
        Assert.Null(requeued.FinishedAt);
        Assert.Equal([firstError, lastError], requeued.Errors);
        Assert.Empty(await Backend.ListFinishedAsync(null, JobState.Dead, 10, CancellationToken));
        Assert.False(await Backend.RequeueAsync(id, at, CancellationToken));

        var job = await ClaimOneAsync(now: at);
        Assert.Equal(id, job.Id);
        Assert.Equal(1, job.Attempt);
        Assert.Equal(3, job.Lease);
        Assert.Equal(at, job.AvailableAt);
        Assert.False(await Backend.RequeueAsync(id, at, CancellationToken));
        Assert.False(await Backend.RequeueAsync(id + 1000, at, CancellationToken));
    }

    [Fact]
    public async Task RequeueAsync_CancelledOrSucceeded_RequeuesOnlyTheCancelled()
    {
        var cancelled = await EnqueueAsync();
        var succeeded = await EnqueueAsync(priority: 1);
        var job = await ClaimOneAsync();
        Assert.Equal(succeeded, job.Id);
        Assert.Equal(1, await Backend.CompleteAsync([job.Token], Start, Start + TimeSpan.FromHours(1), CancellationToken));
        Assert.True(await Backend.CancelAsync(cancelled, Start, Start + TimeSpan.FromHours(1), CancellationToken));

        Assert.False(await Backend.RequeueAsync(succeeded, Start, CancellationToken));
        Assert.True(await Backend.RequeueAsync(cancelled, Start, CancellationToken));

        Assert.Equal(JobState.Succeeded, (await GetJobAsync(succeeded)).State);
        Assert.Equal(cancelled, (await ClaimOneAsync()).Id);
    }

    [Fact]
    public async Task RequeueAsync_UniqueKeyHeldAgain_IsRefusedUntilItIsFree()
    {
        var (dead, _, _) = await DeadJobAsync(Start, uniqueKey: "invoice:7");
        var holder = await EnqueueAsync(uniqueKey: "invoice:7");
        var at = Start + TimeSpan.FromMinutes(1);

        Assert.False(await Backend.RequeueAsync(dead, at, CancellationToken));
        Assert.Equal(JobState.Dead, (await GetJobAsync(dead)).State);

        var job = await ClaimOneAsync(now: at);
        Assert.Equal(holder, job.Id);
        Assert.False(await Backend.RequeueAsync(dead, at, CancellationToken));
        Assert.Equal(1, await Backend.CompleteAsync([job.Token], at, at + TimeSpan.FromHours(1), CancellationToken));
        Assert.True(await Backend.RequeueAsync(dead, at, CancellationToken));

        var duplicate = await Backend.EnqueueAsync(Job(uniqueKey: "invoice:7"), CancellationToken);
        Assert.True(duplicate.Duplicate);
        Assert.Equal(dead, duplicate.Id);
    }

    [Fact]
    public async Task EnqueueAsync_UniqueKey_DedupesWhilePendingOrRunningAndFreesWhenFinished()
    {
        var first = await EnqueueAsync(uniqueKey: "report:1");

        var whileAvailable = await Backend.EnqueueAsync(Job(uniqueKey: "report:1", payload: """{"other": true}"""), CancellationToken);
        var job = await ClaimOneAsync();
        var whileRunning = await Backend.EnqueueAsync(Job(uniqueKey: "report:1"), CancellationToken);

        Assert.Equal(new JobEnqueueResult(first, true), whileAvailable);
        Assert.Equal(new JobEnqueueResult(first, true), whileRunning);
        Assert.Equal(first, job.Id);
        AssertJson(Payload, job.Payload);

        Assert.Equal(1, await Backend.CompleteAsync([job.Token], Start, Start + TimeSpan.FromHours(1), CancellationToken));
        var second = await EnqueueAsync(Job(uniqueKey: "report:1", runAt: Start + TimeSpan.FromHours(1)));
        Assert.NotEqual(first, second);
        Assert.Equal(new JobEnqueueResult(second, true), await Backend.EnqueueAsync(Job(uniqueKey: "report:1"), CancellationToken));

        Assert.True(await Backend.CancelAsync(second, Start, Start + TimeSpan.FromHours(1), CancellationToken));
        var third = await EnqueueAsync(uniqueKey: "report:1");
        var running = await ClaimOneAsync();
        Assert.Equal(third, running.Id);
        Assert.True(await Backend.FinishAsync(running.Token, JobState.Dead, new JobError(1, Start, "E", "m"), Start, Start + TimeSpan.FromDays(1), CancellationToken));
        var fourth = await EnqueueAsync(uniqueKey: "report:1");
        Assert.True(fourth > third);
    }

    [Fact]
    public async Task EnqueueManyAsync_UniqueKeys_CountsEnqueuedAndDuplicates()
    {
        var held = await EnqueueAsync(uniqueKey: "held");

        var result = await Backend.EnqueueManyAsync(
            [
                Job(uniqueKey: "x"),
                Job(uniqueKey: "x"),
                Job(),
                Job(uniqueKey: "held"),
                Job(queue: "other", runAt: Start + TimeSpan.FromMinutes(1)),
            ],
            CancellationToken);

        Assert.Equal(new JobBatchEnqueueResult(3, 2), result);
        Assert.Equal(new JobBatchEnqueueResult(0, 0), await Backend.EnqueueManyAsync([], CancellationToken));
        var claimed = await ClaimAsync(count: 10);
        Assert.Equal(3, claimed.Count);
        Assert.Contains(held, claimed.Select(j => j.Id));
        Assert.Equal(1, (await Backend.GetStatsAsync(["other"], 100, CancellationToken))[0].Scheduled);
    }

    [Fact]
    public async Task CancelAsync_OnlyAvailableOrScheduledJobs()
    {
        var available = await EnqueueAsync();
        var scheduled = await EnqueueAsync(runAt: Start + TimeSpan.FromMinutes(1));
        var running = await EnqueueAsync(queue: "other");
        var job = await ClaimOneAsync(queue: "other", now: Start + TimeSpan.FromMinutes(1));
        var at = Start + TimeSpan.FromSeconds(1);

        Assert.True(await Backend.CancelAsync(available, at, at + TimeSpan.FromDays(1), CancellationToken));
        Assert.True(await Backend.CancelAsync(scheduled, at, at + TimeSpan.FromDays(1), CancellationToken));
        Assert.False(await Backend.CancelAsync(running, at, at + TimeSpan.FromDays(1), CancellationToken));
        Assert.False(await Backend.CancelAsync(available, at, at + TimeSpan.FromDays(1), CancellationToken));
        Assert.False(await Backend.CancelAsync(running + 1000, at, at + TimeSpan.FromDays(1), CancellationToken));

        var cancelled = await GetJobAsync(available);
        Assert.Equal(JobState.Cancelled, cancelled.State);
        Assert.Equal(at, cancelled.FinishedAt);
        Assert.Null(cancelled.RunAt);
        Assert.Equal("Cancelled", Assert.Single(cancelled.Errors).Type);
        Assert.Equal(at, cancelled.Errors[0].At);
        Assert.Equal(JobState.Cancelled, (await GetJobAsync(scheduled)).State);
        Assert.Equal(JobState.Running, (await GetJobAsync(running)).State);
        Assert.Empty(await ClaimAsync(now: at));
        Assert.Empty(await Backend.PromoteAsync(Start + TimeSpan.FromMinutes(1), CancellationToken));
        Assert.Empty(await ClaimAsync(now: Start + TimeSpan.FromMinutes(1)));
        Assert.Equal([scheduled, available], (await Backend.ListFinishedAsync(Queue, JobState.Cancelled, 10, CancellationToken)).Select(j => j.Id));
        Assert.Equal(1, await Backend.CompleteAsync([job.Token], at, at + TimeSpan.FromHours(1), CancellationToken));
    }

    [Fact]
    public async Task GetStatsAsync_CountsEachStateUpToTheCapInTheOrderAsked()
    {
        for (var i = 0; i < 6; i++)
        {
            await EnqueueAsync("a");
        }

        await EnqueueAsync("a", runAt: Start + TimeSpan.FromMinutes(1));
        await EnqueueAsync("a", runAt: Start + TimeSpan.FromMinutes(2));
        await EnqueueAsync("b");
        var claimed = await ClaimAsync("a", count: 3);
        Assert.True(await Backend.FinishAsync(claimed[0].Token, JobState.Dead, new JobError(1, Start, "E", "m"), Start, Start + TimeSpan.FromDays(1), CancellationToken));
        Assert.Equal(1, await Backend.CompleteAsync([claimed[1].Token], Start, Start + TimeSpan.FromDays(1), CancellationToken));

        var capped = await Backend.GetStatsAsync(["b", "a", "nothing"], 2, CancellationToken);
        var exact = await Backend.GetStatsAsync(["a"], 10, CancellationToken);

        Assert.Equal(
            [new QueueStats("b", 1, 0, 0, 0, 2), new QueueStats("a", 2, 2, 1, 1, 2), new QueueStats("nothing", 0, 0, 0, 0, 2)],
            capped);
        Assert.False(capped[0].Capped);
        Assert.True(capped[1].Capped);
        Assert.Equal([new QueueStats("a", 3, 2, 1, 1, 10)], exact);
        Assert.False(exact[0].Capped);
    }

    [Fact]
    public async Task DeleteFinishedAsync_RemovesOnlyFinishedJobsPastTheirRetention()
    {
        var succeeded = await EnqueueAsync(priority: 2);
        var dead = await EnqueueAsync(priority: 1);
        var cancelled = await EnqueueAsync();
        var pending = await EnqueueAsync(runAt: Start - TimeSpan.FromDays(1));
        var claimed = await ClaimAsync(count: 2);
        Assert.Equal(new HashSet<long> { succeeded, dead }, claimed.Select(j => j.Id).ToHashSet());
        var one = Start + TimeSpan.FromHours(1);
        var two = Start + TimeSpan.FromHours(2);
        Assert.Equal(1, await Backend.CompleteAsync([claimed.Single(j => j.Id == succeeded).Token], Start, one, CancellationToken));
        Assert.True(await Backend.FinishAsync(claimed.Single(j => j.Id == dead).Token, JobState.Dead, new JobError(1, Start, "E", "m"), Start, two, CancellationToken));
        Assert.True(await Backend.CancelAsync(cancelled, Start, one, CancellationToken));

        Assert.Equal(0, await Backend.DeleteFinishedAsync(100, one - TimeSpan.FromMicroseconds(1), CancellationToken));
        Assert.Equal(2, await Backend.DeleteFinishedAsync(100, one, CancellationToken));

        Assert.Null(await Backend.GetJobAsync(succeeded, CancellationToken));
        Assert.Null(await Backend.GetJobAsync(cancelled, CancellationToken));
        Assert.Equal(JobState.Dead, (await GetJobAsync(dead)).State);
        Assert.Equal(JobState.Available, (await GetJobAsync(pending)).State);
        Assert.Empty(await Backend.ListFinishedAsync(null, JobState.Cancelled, 10, CancellationToken));
        Assert.Single(await Backend.ListFinishedAsync(null, JobState.Dead, 10, CancellationToken));

        Assert.Equal(1, await Backend.DeleteFinishedAsync(100, two + TimeSpan.FromDays(365), CancellationToken));
        Assert.Null(await Backend.GetJobAsync(dead, CancellationToken));
        Assert.Empty(await Backend.ListFinishedAsync(null, JobState.Dead, 10, CancellationToken));
        Assert.Equal(0, (await Backend.GetStatsAsync([Queue], 10, CancellationToken))[0].Dead);
        Assert.Equal(JobState.Available, (await GetJobAsync(pending)).State);
    }

    [Fact]
    public async Task DeleteFinishedAsync_BatchSize_DeletesAtMostThatMany()
    {
        for (var i = 0; i < 3; i++)
        {
            Assert.True(await Backend.CancelAsync(await EnqueueAsync(), Start, Start + TimeSpan.FromMinutes(i), CancellationToken));
        }

        Assert.Equal(2, await Backend.DeleteFinishedAsync(2, Start + TimeSpan.FromHours(1), CancellationToken));
        Assert.Equal(1, await Backend.DeleteFinishedAsync(2, Start + TimeSpan.FromHours(1), CancellationToken));
        Assert.Equal(0, await Backend.DeleteFinishedAsync(2, Start + TimeSpan.FromHours(1), CancellationToken));
    }

    [Fact]
    public async Task CompleteAsync_NoRetention_DeletesTheJobAndFreesItsUniqueKey()
    {
        var id = await EnqueueAsync(uniqueKey: "once");
        var job = await ClaimOneAsync();

        Assert.Equal(1, await Backend.CompleteAsync([job.Token], Start, Start, CancellationToken));

        Assert.Null(await Backend.GetJobAsync(id, CancellationToken));
        Assert.Empty(await Backend.ListFinishedAsync(null, JobState.Succeeded, 10, CancellationToken));
        Assert.NotEqual(id, await EnqueueAsync(uniqueKey: "once"));
    }

    [Fact]
    public async Task RunDueRecurringAsync_FiresOncePerOccurrenceAndUpsertKeepsAnUnchangedSchedule()
    {
        await Backend.UpsertRecurringAsync(Recurring("nightly"), Start + TimeSpan.FromMinutes(1), CancellationToken);

        Assert.Empty(await Backend.RunDueRecurringAsync(Start, EveryMinute, CancellationToken));
        Assert.Equal(["nightly"], await Backend.RunDueRecurringAsync(Start + TimeSpan.FromMinutes(1), EveryMinute, CancellationToken));
        Assert.Empty(await Backend.RunDueRecurringAsync(Start + TimeSpan.FromMinutes(1), EveryMinute, CancellationToken));

        var job = await ClaimOneAsync(now: Start + TimeSpan.FromMinutes(1));
        Assert.Equal("test.recurring", job.Kind);
        AssertJson("""{"r": 1}""", job.Payload);
        Assert.Equal(3, job.MaxAttempts);
        Assert.Equal(Start + TimeSpan.FromMinutes(1), job.EnqueuedAt);
        Assert.Equal(2, (await GetJobAsync(job.Id)).Priority);

        // Same cron and time zone: the stored next occurrence (minute 2) stands, the new payload is taken.
        await Backend.UpsertRecurringAsync(Recurring("nightly", payload: """{"r": 2}"""), Start + TimeSpan.FromMinutes(30), CancellationToken);
        Assert.Equal(["nightly"], await Backend.RunDueRecurringAsync(Start + TimeSpan.FromMinutes(2), EveryMinute, CancellationToken));
        AssertJson("""{"r": 2}""", (await ClaimOneAsync(now: Start + TimeSpan.FromMinutes(2))).Payload);

        // A changed cron takes the caller's next occurrence.
        await Backend.UpsertRecurringAsync(Recurring("nightly", cron: "*/5 * * * *"), Start + TimeSpan.FromMinutes(30), CancellationToken);
        Assert.Empty(await Backend.RunDueRecurringAsync(Start + TimeSpan.FromMinutes(29), EveryMinute, CancellationToken));
        Assert.Equal(["nightly"], await Backend.RunDueRecurringAsync(Start + TimeSpan.FromMinutes(30), EveryMinute, CancellationToken));
        Assert.Single(await ClaimAsync(count: 10, now: Start + TimeSpan.FromMinutes(30)));
    }

    [Fact]
    public async Task RunDueRecurringAsync_CalledConcurrently_FiresEachOccurrenceOnce()
    {
        await Backend.UpsertRecurringAsync(Recurring("a"), Start, CancellationToken);
        await Backend.UpsertRecurringAsync(Recurring("b", queue: "other"), Start, CancellationToken);
        IJobQueueBackend[] backends = [Backend, CreateBackend()];

        foreach (var at in new[] { Start, Start + TimeSpan.FromMinutes(1) })
        {
            var runs = Enumerable.Range(0, 8).Select(n => Task.Run(async () =>
                await backends[n % 2].RunDueRecurringAsync(at, EveryMinute, CancellationToken)));
            var fired = (await Task.WhenAll(runs)).SelectMany(names => names).Order().ToList();

            Assert.Equal(["a", "b"], fired);
            Assert.Single(await ClaimAsync(Queue, 10, at));
            Assert.Single(await ClaimAsync("other", 10, at));
        }
    }

    [Fact]
    public async Task NotifyAsync_ListenerOnAnotherBackend_ReceivesTheQueueNames()
    {
        var wakes = Channel.CreateUnbounded<string>();
        var connected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(CancellationToken);
        var listener = CreateBackend();
        var listening = Task.Run(() => listener.ListenAsync(q => wakes.Writer.TryWrite(q), () => connected.TrySetResult(), stop.Token), CancellationToken);
        await connected.Task.WaitAsync(TimeSpan.FromSeconds(10), CancellationToken);

        await Backend.NotifyAsync(["emails"], CancellationToken);
        await WaitForAsync("emails");
        await Backend.EnqueueAsync(Job(queue: "reports", notify: true), CancellationToken);
        await WaitForAsync("reports");

        await stop.CancelAsync();
        await listening.WaitAsync(TimeSpan.FromSeconds(10), CancellationToken);
        Assert.True(listening.IsCompletedSuccessfully);

        async Task WaitForAsync(string queue)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(CancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            while (await wakes.Reader.ReadAsync(timeout.Token) != queue)
            {
            }
        }
    }

    [Fact]
    public async Task GetJobAsync_FindsJobsInEveryState()
    {
        var available = await EnqueueAsync(Job(uniqueKey: "u1", priority: -2, maxAttempts: 9, kind: "k.available"));
        var scheduled = await EnqueueAsync(runAt: Start + TimeSpan.FromHours(1));
        var running = await EnqueueAsync(queue: "r");
        var succeeded = await EnqueueAsync(queue: "s");
        var cancelled = await EnqueueAsync(queue: "c");
        var (dead, _, _) = await DeadJobAsync(Start, queue: "d");
        await ClaimOneAsync("r");
        var done = await ClaimOneAsync("s");
        Assert.Equal(1, await Backend.CompleteAsync([done.Token], Start, Start + TimeSpan.FromHours(1), CancellationToken));
        Assert.True(await Backend.CancelAsync(cancelled, Start, Start + TimeSpan.FromHours(1), CancellationToken));

        var job = await GetJobAsync(available);
        Assert.Equal(available, job.Id);
        Assert.Equal(JobState.Available, job.State);
        Assert.Equal(Queue, job.Queue);
        Assert.Equal("k.available", job.Kind);
        Assert.Equal(-2, job.Priority);
        Assert.Equal(0, job.Attempt);
        Assert.Equal(9, job.MaxAttempts);
        Assert.Equal("u1", job.UniqueKey);
        Assert.Equal(Start, job.EnqueuedAt);
        Assert.Equal(Start, job.RunAt);
        Assert.Null(job.ClaimedAt);
        Assert.Null(job.FinishedAt);
        Assert.Null(job.ClaimedBy);
        Assert.Empty(job.Errors);
        AssertJson(Payload, job.Payload);

        Assert.Equal(JobState.Scheduled, (await GetJobAsync(scheduled)).State);
        Assert.Equal(JobState.Running, (await GetJobAsync(running)).State);
        Assert.Equal(JobState.Succeeded, (await GetJobAsync(succeeded)).State);
        Assert.Equal(JobState.Cancelled, (await GetJobAsync(cancelled)).State);
        Assert.Equal(JobState.Dead, (await GetJobAsync(dead)).State);
        Assert.Equal("d", (await GetJobAsync(dead)).Queue);
        Assert.Null(await Backend.GetJobAsync(dead + 1000, CancellationToken));
    }

    [Fact]
    public async Task PromoteAsync_DueJobsOfSeveralQueues_ReportsEachQueueWithItsCount()
    {
        var due = Start + TimeSpan.FromMinutes(1);
        await EnqueueAsync("a", runAt: due);
        await EnqueueAsync("a", runAt: due - TimeSpan.FromSeconds(1));
        await EnqueueAsync("a", runAt: due + TimeSpan.FromSeconds(1));
        await EnqueueAsync("b", runAt: due);
        await EnqueueAsync("c");
        await ClaimOneAsync("c", due - Lease);

        var promoted = await Backend.PromoteAsync(due, CancellationToken);

        Assert.Equal([new("a", 2), new("b", 1), new("c", 1)], promoted.OrderBy(p => p.Key, StringComparer.Ordinal));
        Assert.Equal([new QueueStats("a", 2, 1, 0, 0, 100)], await Backend.GetStatsAsync(["a"], 100, CancellationToken));
    }

    [Fact]
    public async Task PingAsync_ReachableStore_Completes() => await Backend.PingAsync(CancellationToken);
}
