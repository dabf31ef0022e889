using PgFirst.Testing;
using PgQueue;

namespace PgFirst.Admin.Tests;

[Trait("Category", "Pooler")]
public sealed class JobCommandTests(PostgresServer server) : AdminTest(server)
{
    private PostgresJobQueueBackend _backend = null!;

    public override async ValueTask InitializeAsync()
    {
        await base.InitializeAsync();
        _backend = new PostgresJobQueueBackend(DataSource, Options);
    }

    [Fact]
    public async Task Stats_ShowsEachQueuesStates_OldestWaiting_AndWhatDiedInTheWindow()
    {
        var now = DateTimeOffset.UtcNow;
        await EnqueueAsync("email", now.AddMinutes(-3));
        await EnqueueAsync("email", now.AddMinutes(-1));
        await EnqueueAsync("email", now.AddHours(1));
        await KillAsync(await EnqueueAsync("reports", now), "reports");

        var run = await AdminAsync("jobs", "stats");

        AssertExit(AdminExitCode.Ok, run);
        Assert.Matches(@"email\s+│\s+2\s+│\s+1\s+│\s+0\s+│\s+0\s+│\s+\dm \d\ds\s+│", run.Output);
        Assert.Matches(@"reports\s+│\s+0\s+│\s+0\s+│\s+0\s+│\s+1\s+│\s+-\s+│\s+0\s+│\s+1\s+│", run.Output);

        var json = (await AdminAsync("jobs", "stats", "--json", "--window", "1h")).Json.EnumerateArray().ToList();
        Assert.Equal(["email", "reports"], json.Select(q => q.GetProperty("queue").GetString()));
        Assert.Equal(2, json[0].GetProperty("available").GetInt64());
        Assert.Equal(1, json[0].GetProperty("scheduled").GetInt64());
        Assert.InRange(json[0].GetProperty("oldestWaitingSeconds").GetDouble(), 170, 400);
        Assert.Equal(1, json[1].GetProperty("died").GetInt64());
        Assert.Equal(60, json[1].GetProperty("windowMinutes").GetDouble());

        var one = (await AdminAsync("jobs", "stats", "--queue", "reports", "--json")).Json;
        Assert.Equal(1, one.GetArrayLength());
    }

    [Fact]
    public async Task ListAndShow_ShowDeadJobsWithTheirErrors_AndAnUnknownIdExits4()
    {
        var id = await EnqueueAsync("reports", DateTimeOffset.UtcNow);
        await KillAsync(id, "reports");

        var list = await AdminAsync("jobs", "list", "--state", "dead", "--queue", "reports");
        AssertExit(AdminExitCode.Ok, list);
        Assert.Matches($@"{id}\s+│\s+reports\s+│\s+report\s+│\s+1/1\s+│.*│\s+InvalidOperationException: the printer is on fire", list.Output);

        var listed = (await AdminAsync("jobs", "list", "--queue", "reports", "--json")).Json;
        Assert.Equal(id, Assert.Single(listed.EnumerateArray()).GetProperty("id").GetInt64());
        Assert.Equal(0, (await AdminAsync("jobs", "list", "--queue", "email", "--json")).Json.GetArrayLength());

        var show = await AdminAsync("jobs", "show", id.ToString(System.Globalization.CultureInfo.InvariantCulture), "--json");
        AssertExit(AdminExitCode.Ok, show);
        Assert.Equal("dead", show.Json.GetProperty("state").GetString());
        Assert.Equal("{\"n\": 1}", show.Json.GetProperty("payload").GetString());
        Assert.Equal("the printer is on fire", show.Json.GetProperty("errors")[0].GetProperty("message").GetString());

        var missing = await AdminAsync("jobs", "show", "999999999");
        AssertExit(AdminExitCode.NotFound, missing);
        AssertOneErrorLine(missing, "no job 999999999");

        var badState = await AdminAsync("jobs", "list", "--state", "running");
        AssertExit(AdminExitCode.Usage, badState);
    }

    [Fact]
    public async Task Requeue_OneJob_AndAllDeadOfAQueue_OnlyWithYes_LeavesOtherQueuesAlone()
    {
        var now = DateTimeOffset.UtcNow;
        var first = await EnqueueAsync("reports", now);
        await KillAsync(first, "reports");
        for (var i = 0; i < 3; i++)
        {
            await KillAsync(await EnqueueAsync("reports", now), "reports");
        }

        await KillAsync(await EnqueueAsync("email", now), "email");

        var unconfirmed = await AdminAsync("jobs", "requeue", first.ToString(System.Globalization.CultureInfo.InvariantCulture));
        AssertExit(AdminExitCode.NotConfirmed, unconfirmed);
        Assert.Equal(JobState.Dead, (await _backend.GetJobAsync(first, CancellationToken))!.State);

        var single = await AdminAsync("jobs", "requeue", first.ToString(System.Globalization.CultureInfo.InvariantCulture), "--yes");
        AssertExit(AdminExitCode.Ok, single);
        Assert.Equal(JobState.Available, (await _backend.GetJobAsync(first, CancellationToken))!.State);

        var again = await AdminAsync("jobs", "requeue", first.ToString(System.Globalization.CultureInfo.InvariantCulture), "--yes");
        AssertExit(AdminExitCode.Failed, again);
        AssertOneErrorLine(again, "is available: only dead or cancelled jobs are requeued");

        var dry = await AdminAsync("jobs", "requeue", "--all-dead", "--queue", "reports");
        AssertExit(AdminExitCode.NotConfirmed, dry);
        Assert.Contains("Would requeue the 3 dead job(s) of queue 'reports'", dry.Output, StringComparison.Ordinal);
        Assert.Equal(3, await DeadAsync("reports"));

        var all = await AdminAsync("jobs", "requeue", "--all-dead", "--queue", "reports", "--yes", "--json");
        AssertExit(AdminExitCode.Ok, all);
        Assert.Equal(3, all.Json.GetProperty("requeued").GetInt32());
        Assert.Equal(0, await DeadAsync("reports"));
        Assert.Equal(1, await DeadAsync("email"));

        AssertExit(AdminExitCode.Usage, await AdminAsync("jobs", "requeue", "--all-dead", "--yes"));
        AssertExit(AdminExitCode.Usage, await AdminAsync("jobs", "requeue", "--yes"));
    }

    [Fact]
    public async Task Cancel_ARunningJob_FailsEvenAsADryRun()
    {
        var id = await EnqueueAsync("email", DateTimeOffset.UtcNow);
        await _backend.ClaimAsync(new JobClaimRequest { Queue = "email", Count = 1, Worker = "test", Now = DateTimeOffset.UtcNow, LeaseExpiresAt = DateTimeOffset.UtcNow.AddMinutes(5) }, CancellationToken);

        var run = await AdminAsync("jobs", "cancel", id.ToString(System.Globalization.CultureInfo.InvariantCulture));

        AssertExit(AdminExitCode.Failed, run);
        AssertOneErrorLine(run, "is running: only available or scheduled jobs are cancelled");
    }

    [Fact]
    public async Task ABulkCommand_Interrupted_Exits130()
    {
        await KillAsync(await EnqueueAsync("reports", DateTimeOffset.UtcNow), "reports", DateTimeOffset.UtcNow.AddDays(-9));
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        var run = await AdminRun.RunAsync(Server.ConnectionString, null, cancelled.Token, "jobs", "purge", "--finished-before", "7d", "--yes", "--schema", Schema);

        AssertExit(AdminExitCode.Interrupted, run);
        AssertOneErrorLine(run, "interrupted");
    }

    [Fact]
    public async Task Cancel_OnlyWithYes_AndOnlyAJobThatHasNotStarted()
    {
        var waiting = await EnqueueAsync("email", DateTimeOffset.UtcNow.AddHours(1));
        var text = waiting.ToString(System.Globalization.CultureInfo.InvariantCulture);

        AssertExit(AdminExitCode.NotConfirmed, await AdminAsync("jobs", "cancel", text));
        Assert.Equal(JobState.Scheduled, (await _backend.GetJobAsync(waiting, CancellationToken))!.State);

        AssertExit(AdminExitCode.Ok, await AdminAsync("jobs", "cancel", text, "--yes"));
        Assert.Equal(JobState.Cancelled, (await _backend.GetJobAsync(waiting, CancellationToken))!.State);

        var twice = await AdminAsync("jobs", "cancel", text, "--yes");
        AssertExit(AdminExitCode.Failed, twice);
        AssertOneErrorLine(twice, "only available or scheduled jobs are cancelled");
    }

    [Fact]
    public async Task Purge_DeletesFinishedJobsBeforeTheCutoff_InTheQueue_OnlyWithYes()
    {
        var now = DateTimeOffset.UtcNow;
        await KillAsync(await EnqueueAsync("reports", now), "reports", now.AddDays(-10));
        await KillAsync(await EnqueueAsync("reports", now), "reports", now.AddDays(-8));
        var recent = await EnqueueAsync("reports", now);
        await KillAsync(recent, "reports", now.AddDays(-1));
        await KillAsync(await EnqueueAsync("email", now), "email", now.AddDays(-10));

        var dry = await AdminAsync("jobs", "purge", "--finished-before", "7d", "--queue", "reports");
        AssertExit(AdminExitCode.NotConfirmed, dry);
        Assert.Contains("Would delete 2 finished job(s)", dry.Output, StringComparison.Ordinal);

        var purge = await AdminAsync("jobs", "purge", "--finished-before", "7d", "--queue", "reports", "--yes", "--json");
        AssertExit(AdminExitCode.Ok, purge);
        Assert.Equal(2, purge.Json.GetProperty("deleted").GetInt64());
        Assert.NotNull(await _backend.GetJobAsync(recent, CancellationToken));
        Assert.Equal(1, await DeadAsync("email"));

        var bad = await AdminAsync("jobs", "purge", "--finished-before", "last tuesday", "--yes");
        AssertExit(AdminExitCode.Usage, bad);
        AssertOneErrorLine(bad, "is neither a time");
        Assert.Equal(1, await DeadAsync("email"));
    }

    private async Task<long> EnqueueAsync(string queue, DateTimeOffset runAt)
    {
        var result = await _backend.EnqueueAsync(
            new JobEnqueueRequest { Queue = queue, Kind = "report", Payload = "{\"n\": 1}", RunAt = runAt, MaxAttempts = 1, EnqueuedAt = runAt < DateTimeOffset.UtcNow ? runAt : DateTimeOffset.UtcNow },
            CancellationToken);
        return result.Id!.Value;
    }

    // Claims the job (the only available one of its queue) and finishes it dead, as a worker does after its last attempt.
    private async Task KillAsync(long id, string queue, DateTimeOffset? at = null)
    {
        var now = at ?? DateTimeOffset.UtcNow;
        var claimed = await _backend.ClaimAsync(
            new JobClaimRequest { Queue = queue, Count = 100, Worker = "test", Now = DateTimeOffset.UtcNow, LeaseExpiresAt = DateTimeOffset.UtcNow.AddMinutes(5) },
            CancellationToken);
        var job = Assert.Single(claimed, j => j.Id == id);
        foreach (var other in claimed.Where(j => j.Id != id))
        {
            await _backend.ReleaseAsync([new JobToken(other.Id, other.Lease)], DateTimeOffset.UtcNow, CancellationToken);
        }

        Assert.True(await _backend.FinishAsync(new JobToken(job.Id, job.Lease), JobState.Dead, new JobError(1, now, "InvalidOperationException", "the printer is on fire"), now, now.AddDays(30), CancellationToken));
    }

    private async Task<long> DeadAsync(string queue) => (await new JobQueueManager(_backend, new PgQueueOptions(), TimeProvider.System).GetStatsAsync([queue], cancellationToken: CancellationToken))[0].Dead;
}
