using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using PgFirst.Testing;

namespace PgQueue.Tests;

// The worker conformance suite on PostgreSQL, plus what only PostgreSQL can do (transactions) and its failure modes.
[Trait("Category", "Conformance")]
public sealed class PgQueueWorkerTests(PostgresServer server) : QueueWorkerConformanceTests
{
    private readonly PostgresSchema _schema = new(server);

    public override async ValueTask InitializeAsync() => await _schema.ApplyAsync([PostgresJobQueueBackend.SchemaModule], Ct);

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        await _schema.DisposeAsync();
    }

    protected override void ConfigureStore(IServiceCollection services)
    {
        services.AddSingleton(_schema.DataSource);
        services.AddPgFirst(_schema.ConfigurePgFirst);
    }

    protected override IJobQueueBackend CreateBackend() => new PostgresJobQueueBackend(_schema.DataSource, _schema.Options);

    [Fact]
    public async Task SucceededJobs_MoveOutOfTheHotTable()
    {
        var host = await StartAsync(handlers: q => q.AddHandler<Work, RecordingHandler>());
        await host.Services.GetRequiredService<IJobQueue>().EnqueueManyAsync(Enumerable.Range(0, 50).Select(i => new Work("h" + i)), cancellationToken: Ct);
        await QueueTestHost.WaitUntilAsync(async () => await ScalarAsync("SELECT count(*) FROM {0}.job_finished WHERE state = 3") == 50, "all 50 are recorded as succeeded");
        Assert.Equal(0, await ScalarAsync("SELECT count(*) FROM {0}.job"));
    }

    // Regression: a job whose lease expired while it sat in this worker's buffer, and that this same worker claimed
    // again, used to run under the stale claim while the new claim was dropped and left to expire.
    [Fact]
    public async Task JobsReclaimedByTheSameWorker_RunUnderTheNewClaim_StaleCopiesAreSkipped()
    {
        var host = await StartAsync(o => { o.DefaultConcurrency = 1; o.DefaultPrefetch = 8; o.LeaseDuration = TimeSpan.FromSeconds(30); o.HeartbeatInterval = TimeSpan.FromSeconds(10); }, q => q.AddHandler<Work, SlowHandler>());
        var journal = host.Services.GetRequiredService<Journal>();
        await host.Services.GetRequiredService<IJobQueue>().EnqueueManyAsync(Enumerable.Range(0, 9).Select(i => new Work("r" + i)), cancellationToken: Ct);
        await QueueTestHost.WaitUntilAsync(() => journal.Started >= 1, "the first job starts");

        // Every lease "expires": the jobs become available and the same worker claims them again.
        await ExecuteAsync("SELECT * FROM {0}.queue_promote(now() + interval '1 hour')");

        await QueueTestHost.WaitUntilAsync(async () => await ScalarAsync("SELECT count(*) FROM {0}.job_finished WHERE state = 3") == 9, "all nine finish without waiting for a lease to expire", 20);
        Assert.Equal(9, journal.Handled.Select(h => h.Value).Distinct().Count());
        Assert.All(journal.Handled, h => Assert.InRange(h.Attempt, 1, 2));
        Assert.Contains(journal.Handled, h => h.Attempt == 2);
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
        var backend = new PostgresJobQueueBackend(_schema.DataSource, _schema.Options);
        await using var connection = await _schema.DataSource.OpenConnectionAsync(Ct);
        await using var transaction = await connection.BeginTransactionAsync(Ct);
        await Assert.ThrowsAsync<JobLeaseLostException>(async () => await backend.CompleteAsync(transaction, new JobToken(commit.Id!.Value, 1), DateTimeOffset.UtcNow, DateTimeOffset.UtcNow, Ct));
        Assert.Equal(["commit"], journal.Handled.Select(h => h.Value));
    }

    // Regression: a job completed inside the handler's transaction always wrote a history row, even with
    // SucceededRetention 0 (10,000 jobs left 4,384 rows in job_finished), while the batched path deleted it.
    [Theory]
    [InlineData(0, 0)]
    [InlineData(1, 20)]
    public async Task CompleteInTransaction_FollowsSucceededRetention_AsTheBatchedPathDoes(int retentionHours, int finishedRows)
    {
        await ExecuteAsync("CREATE TABLE {0}.effect (job_id bigint NOT NULL)");
        var host = await StartAsync(o => o.SucceededRetention = TimeSpan.FromHours(retentionHours), q => q.AddHandler<Work, TransactionalHandler>());
        var journal = host.Services.GetRequiredService<Journal>();
        await host.Services.GetRequiredService<IJobQueue>().EnqueueManyAsync(Enumerable.Range(0, 20).Select(i => new Work("t" + i)), cancellationToken: Ct);

        await QueueTestHost.WaitUntilAsync(() => journal.Count >= 20, "all 20 are handled");
        await QueueTestHost.WaitUntilAsync(async () => await ScalarAsync("SELECT count(*) FROM {0}.job") == 0, "none is left in the job table");

        Assert.Equal(20, await ScalarAsync("SELECT count(*) FROM {0}.effect"));
        Assert.Equal(finishedRows, await ScalarAsync("SELECT count(*) FROM {0}.job_finished"));
        // A kept row follows the batched path's rule too: succeeded, deletable one retention after it finished.
        Assert.Equal(finishedRows, await ScalarAsync($"SELECT count(*) FROM {{0}}.job_finished WHERE state = 3 AND delete_after = finished_at + interval '{retentionHours} hours'"));
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
    public async Task DatabaseDown_WorkersKeepRunning_AndDrainWhenItComesBack()
    {
        await using var proxy = new TcpProxy(server.Endpoint.Host, server.Endpoint.Port);
        var dataSource = _schema.Track(server.CreateDataSourceThrough(proxy));
        var host = await StartAsync(handlers: q => q.AddHandler<Work, RecordingHandler>(), store: s => { s.AddSingleton(dataSource); s.AddPgFirst(_schema.ConfigurePgFirst); });
        var queue = host.Services.GetRequiredService<IJobQueue>();
        var journal = host.Services.GetRequiredService<Journal>();
        await queue.EnqueueAsync(new Work("before"), cancellationToken: Ct);
        await QueueTestHost.WaitUntilAsync(() => journal.Count >= 1, "the first job is handled");

        proxy.GoDown();
        await Assert.ThrowsAnyAsync<Exception>(async () => await queue.EnqueueAsync(new Work("while-down"), cancellationToken: Ct));
        await Task.Delay(1000, Ct);
        proxy.ComeBack();

        // Enqueued by another process while this one's connections were cut.
        var direct = new PostgresJobQueueBackend(_schema.DataSource, _schema.Options);
        var producer = await StartAsync(o => o.RunWorkers = false);
        await producer.Services.GetRequiredService<IJobQueue>().EnqueueManyAsync(Enumerable.Range(0, 20).Select(i => new Work("after" + i)), cancellationToken: Ct);
        await QueueTestHost.WaitUntilAsync(() => journal.Count >= 21, "the worker reconnects and drains", 30);
        Assert.DoesNotContain(journal.Handled, h => h.Value == "while-down");
        Assert.Equal(0, (await direct.GetStatsAsync(["default"], 100, Ct))[0].Available);
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

// Takes 300 ms, honouring cancellation, and records only completed runs.
internal sealed class SlowHandler(Journal journal) : IJobHandler<Work>
{
    public async Task HandleAsync(Work payload, JobContext context, CancellationToken cancellationToken)
    {
        journal.Start();
        await Task.Delay(300, cancellationToken);
        journal.Handled.Enqueue((context.Id, context.Attempt, payload.Value));
    }
}
