using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using PgFirst.Testing;

namespace PgQueue.Tests;

// A real PostgreSQL crash and restart under a running worker process (tests/PgQueue.CrashWorker). The shared server
// serves the other test classes in parallel and must stay up, so CrashSafetyTests imitates a restart by cutting
// connections at a proxy; this class gets a throwaway cluster of its own (PrivatePostgres) and crashes it for real,
// which covers what a proxy cannot: the server kills its own backends, refuses connections while it replays the WAL,
// and forgets the commits it had not yet written.
public sealed class PostgresRestartTests : IAsyncLifetime
{
    private const int JobCount = 300;

    // Effects the worker commits before the crash; far fewer than it could do before finishing the queue.
    private const int EffectsBeforeCrash = 40;

    // How long the server stays down: every connection attempt meanwhile is refused.
    private static readonly TimeSpan Outage = TimeSpan.FromSeconds(2);

    // The worker's lease, as in CrashSafetyTests: jobs it held but could not finish during the outage come back after it.
    private static readonly TimeSpan LeaseDuration = TimeSpan.FromSeconds(4);

    private static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(60);
    private readonly string _schemaName = PostgresServer.NewSchemaName();
    private PrivatePostgres? _postgres;
    private NpgsqlDataSource? _dataSource;
    private CrashWorkerProcess? _worker;

    private static CancellationToken CancellationToken => TestContext.Current.CancellationToken;

    private string Schema => $"\"{_schemaName}\"";

    private PrivatePostgres Postgres => _postgres ?? throw new InvalidOperationException("The private cluster was not created.");

    private NpgsqlDataSource DataSource => _dataSource ?? throw new InvalidOperationException("The private cluster was not created.");

    public async ValueTask InitializeAsync()
    {
        _postgres = await PrivatePostgres.CreateAsync(CancellationToken);
        _dataSource = NpgsqlDataSource.Create(_postgres.ConnectionString);
        await new PgSchemaInstaller(_dataSource, _schemaName, [PostgresJobQueueBackend.SchemaModule]).ApplyAsync(CancellationToken);

        // No unique constraint on the effect: a duplicate must be counted, not refused.
        await ExecuteAsync($"""
            CREATE TABLE {Schema}.crash_attempt (job_id bigint NOT NULL, attempt integer NOT NULL, worker_pid integer NOT NULL);
            CREATE TABLE {Schema}.crash_effect (job_id bigint NOT NULL, attempt integer NOT NULL, worker_pid integer NOT NULL)
            """);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            _worker?.Dispose();
        }
        finally
        {
            try
            {
                if (_dataSource is not null)
                {
                    await _dataSource.DisposeAsync();
                }
            }
            finally
            {
                if (_postgres is not null)
                {
                    await _postgres.DisposeAsync();
                }
            }
        }
    }

    [Fact]
    public async Task CompleteAsync_ServerCrashedAndRestartedMidRun_SameWorkerFinishesEveryJobWithItsEffectExactlyOnce()
    {
        await EnqueueAsync();
        var worker = _worker = CrashWorkerProcess.Start("restart", Postgres.ConnectionString, _schemaName, "transactional", LeaseDuration);
        await WaitUntilAsync(
            $"the worker to commit {EffectsBeforeCrash} effects",
            async () => await CountAsync($"SELECT count(*) FROM {Schema}.crash_effect") >= EffectsBeforeCrash);

        // An immediate stop is a crash: no shutdown checkpoint, and the next start replays the WAL. It also loses the
        // commits made with synchronous_commit = off whose WAL was still in the server's buffers, and PgQueue commits
        // its claims (and batched acknowledgements) that way: a forgotten claim puts the job back as it was, so a job
        // this worker believes it holds may be claimed and run again. The transactional handler must tolerate that,
        // and the assertion of exactly one effect per job still holds, because an effect commits durably in the same
        // transaction as its job's completion, which presents the claim's lease token: the completion of a forgotten
        // claim, or of a second run of a job already completed, finds no row and rolls the effect back.
        await Postgres.CrashAsync(CancellationToken);
        var crashedAt = TimeProvider.System.GetUtcNow();
        await Task.Delay(Outage, CancellationToken);
        Assert.False(worker.HasExited, $"The worker died while the server was down. {Report()}");
        await Postgres.StartAsync(CancellationToken);

        // The test's own pooled connections died with the server.
        DataSource.Clear();
        Assert.True(
            Postgres.ReadServerLog().Contains("automatic recovery in progress", StringComparison.Ordinal),
            $"The server did not recover from the WAL after the immediate stop, so it did not crash. {Report()}");
        await WaitForDrainAsync();

        Assert.False(worker.HasExited, $"The worker exited. {Report()}");
        var jobs = await ReadFinishedJobsAsync();
        Assert.True(jobs.Count == JobCount, $"{jobs.Count} finished jobs, expected {JobCount}. {Report()}");
        AssertWhere(jobs, j => j.State != 3, "must have succeeded (state 3)");
        AssertWhere(jobs, j => j.Effects != 1, "must have exactly one effect");
        var stray = await CountAsync($"SELECT count(*) FROM {Schema}.crash_effect AS e WHERE NOT EXISTS (SELECT 1 FROM {Schema}.job_finished AS f WHERE f.id = e.job_id)");
        Assert.True(stray == 0, $"{stray} effects belong to no finished job. {Report()}");
        var byOthers = await CountAsync($"SELECT count(*) FROM {Schema}.crash_attempt WHERE worker_pid <> $1", worker.Id);
        Assert.True(byOthers == 0, $"{byOthers} attempts ran in a process other than the worker (pid {worker.Id}). {Report()}");

        // The crash landed mid-run: a completion commits only while the server is up, so a job finished after the
        // crash was finished after the restart.
        var afterRestart = jobs.Count(j => j.FinishedAt > crashedAt);
        Assert.True(
            afterRestart is > 0 and <= JobCount - EffectsBeforeCrash,
            $"{afterRestart} jobs finished after the restart; the crash was meant to land mid-run. {Report()}");

        // The worker saw the crash: its notification listener lost its connection (and came back, or polling did).
        Assert.True(
            worker.Output.Contains($"[{PgQueueEventIds.ListenerError}]", StringComparison.Ordinal),
            $"The worker never logged losing its listener connection (event {PgQueueEventIds.ListenerError}). {Report()}");
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{afterRestart} of {JobCount} jobs finished after the restart; {jobs.Count(j => j.Attempt > 1)} took more than one attempt " +
            $"({string.Join(", ", jobs.SelectMany(j => j.ErrorTypes).CountBy(t => t).Select(e => $"{e.Value} × {e.Key}"))}).");
    }

    private async Task EnqueueAsync()
    {
        var services = new ServiceCollection();
        services.AddSingleton(DataSource);
        services.AddPgFirst(o => o.SchemaName = _schemaName);
        services.AddPgQueue(o => o.RunWorkers = false).AddJob<CrashJob>(o => o.Kind = CrashJob.Kind);
        await using var provider = services.BuildServiceProvider();
        await provider.GetRequiredService<IJobQueue>().EnqueueManyAsync(
            Enumerable.Range(1, JobCount).Select(n => new CrashJob(n, Hang: false)),
            cancellationToken: CancellationToken);
        Assert.Equal(JobCount, await CountAsync($"SELECT count(*) FROM {Schema}.job"));
    }

    private Task WaitForDrainAsync() => WaitUntilAsync(
        $"all {JobCount} jobs to finish after the restart",
        async () => await CountAsync($"SELECT count(*) FROM {Schema}.job") == 0
                    && await CountAsync($"SELECT count(*) FROM {Schema}.job_finished") == JobCount);

    // Polls the condition until it holds, failing after WaitLimit or as soon as the worker exits.
    private async Task WaitUntilAsync(string what, Func<Task<bool>> condition)
    {
        var elapsed = Stopwatch.StartNew();
        while (!await condition())
        {
            if (_worker is { HasExited: true } exited)
            {
                Assert.Fail($"The worker exited on its own (code {exited.ExitCode}) while waiting for {what}. {await DescribeAsync()} {Report()}");
            }

            if (elapsed.Elapsed > WaitLimit)
            {
                Assert.Fail($"Timed out after {WaitLimit.TotalSeconds:0} s waiting for {what}. {await DescribeAsync()} {Report()}");
            }

            await Task.Delay(50, CancellationToken);
        }
    }

    private async Task<List<FinishedJob>> ReadFinishedJobsAsync()
    {
        await using var command = DataSource.CreateCommand($"""
            SELECT f.id,
                   f.state,
                   f.attempt,
                   f.finished_at,
                   (SELECT count(*) FROM {Schema}.crash_effect AS e WHERE e.job_id = f.id),
                   ARRAY(SELECT x->>'type' FROM jsonb_array_elements(coalesce(f.errors, '[]')) AS x)
            FROM {Schema}.job_finished AS f
            ORDER BY f.id
            """);
        var jobs = new List<FinishedJob>();
        await using var reader = await command.ExecuteReaderAsync(CancellationToken);
        while (await reader.ReadAsync(CancellationToken))
        {
            jobs.Add(new FinishedJob(
                reader.GetInt64(0),
                reader.GetInt16(1),
                reader.GetInt32(2),
                reader.GetFieldValue<DateTimeOffset>(3),
                reader.GetInt64(4),
                reader.GetFieldValue<string[]>(5)));
        }

        return jobs;
    }

    private void AssertWhere(IEnumerable<FinishedJob> jobs, Func<FinishedJob, bool> wrong, string rule)
    {
        var offenders = jobs.Where(wrong).ToList();
        if (offenders.Count > 0)
        {
            Assert.Fail($"{offenders.Count} jobs break the rule: every job {rule}. First ones: {string.Join("; ", offenders.Take(10))}. {Report()}");
        }
    }

    private async Task<string> DescribeAsync()
    {
        try
        {
            await using var command = DataSource.CreateCommand($"""
                SELECT (SELECT count(*) FROM {Schema}.job WHERE state = 0),
                       (SELECT count(*) FROM {Schema}.job WHERE state = 1),
                       (SELECT count(*) FROM {Schema}.job WHERE state = 2),
                       (SELECT count(*) FROM {Schema}.job_finished WHERE state = 3),
                       (SELECT count(*) FROM {Schema}.job_finished WHERE state <> 3),
                       (SELECT count(*) FROM {Schema}.crash_effect)
                """);
            await using var reader = await command.ExecuteReaderAsync(CancellationToken);
            await reader.ReadAsync(CancellationToken);
            return $"Jobs: {reader.GetInt64(0)} available, {reader.GetInt64(1)} running, {reader.GetInt64(2)} scheduled, " +
                   $"{reader.GetInt64(3)} succeeded, {reader.GetInt64(4)} cancelled or dead; {reader.GetInt64(5)} effects.";
        }
        catch (NpgsqlException ex)
        {
            return $"The jobs could not be counted: {ex.Message}";
        }
    }

    private string Report() =>
        $"\n{_worker?.Describe(lines: 30) ?? "--- no worker started"}\n--- server log, last 20 lines:\n{_postgres?.ReadServerLog(lines: 20)}";

    private async Task ExecuteAsync(string sql)
    {
        await using var command = DataSource.CreateCommand(sql);
        await command.ExecuteNonQueryAsync(CancellationToken);
    }

    private async Task<long> CountAsync(string sql, params object[] parameters)
    {
        await using var command = DataSource.CreateCommand(sql);
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = parameter });
        }

        return (long)(await command.ExecuteScalarAsync(CancellationToken))!;
    }

    // The worker's payload contract: JSON {"number": …, "hang": …} of this kind (tests/PgQueue.CrashWorker/CrashJob.cs).
    private sealed record CrashJob(int Number, bool Hang)
    {
        public const string Kind = "crash-job";
    }

    private sealed record FinishedJob(long Id, short State, int Attempt, DateTimeOffset FinishedAt, long Effects, string[] ErrorTypes)
    {
        public override string ToString() =>
            $"job {Id}: state {State}, attempt {Attempt}, finished at {FinishedAt:HH:mm:ss.fff}, {Effects} effects, errors [{string.Join(", ", ErrorTypes)}]";
    }
}
