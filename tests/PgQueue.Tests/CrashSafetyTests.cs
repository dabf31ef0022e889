using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using PgFirst.Testing;

namespace PgQueue.Tests;

// Crash safety with real processes. The workers are separate OS processes (tests/PgQueue.CrashWorker) killed with
// SIGKILL, so nothing in them gets to clean up: prefetched jobs are not released, pending acknowledgements are not
// flushed, open transactions end when the kernel closes their sockets. What must hold afterwards is visible in the
// database alone: every job succeeded, and each job's effect exists exactly once (handlers that complete inside their
// own transaction) or twice only for a job the dead worker held (plain, at-least-once handlers).
public sealed class CrashSafetyTests(PostgresServer server) : IAsyncLifetime
{
    private const int JobCount = 300;

    // Jobs whose first attempt blocks after recording its effect, so the kill is sure to land in the middle of a job
    // (enqueued with a higher priority, so the first worker claims them first).
    private const int HangingJobCount = 4;

    // Effects worker A commits before it is killed; far fewer than it could do before finishing the queue.
    private const int EffectsBeforeKill = 40;

    // The workers' lease: a killed worker's jobs come back after it. Long enough that the survivors, starved of CPU on
    // a busy 2-core machine, still renew theirs (they heartbeat at an eighth of it).
    private static readonly TimeSpan LeaseDuration = TimeSpan.FromSeconds(4);

    private static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(60);
    private readonly PostgresServer _server = server;
    private readonly PostgresSchema _schema = new(server);
    private readonly List<CrashWorkerProcess> _workers = [];

    private static CancellationToken CancellationToken => TestContext.Current.CancellationToken;

    private string Schema => $"\"{_schema.Name}\"";

    public async ValueTask InitializeAsync()
    {
        await _schema.ApplyAsync([PostgresJobQueueBackend.SchemaModule], CancellationToken);

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
            foreach (var worker in _workers)
            {
                worker.Dispose();
            }
        }
        finally
        {
            await _schema.DisposeAsync();
        }
    }

    [Fact]
    public async Task CompleteAsync_WorkerProcessKilledMidRun_EveryJobSucceedsWithItsEffectExactlyOnce()
    {
        var hanging = await EnqueueAsync(HangingJobCount);
        var a = StartWorker("A", "transactional");
        await WaitUntilAsync(
            $"worker A to start the {HangingJobCount} hanging jobs and commit {EffectsBeforeKill} effects",
            async () => await StartedByAsync(a, hanging) == HangingJobCount && await EffectsByAsync(a) >= EffectsBeforeKill);

        a.Kill();
        StartWorker("B", "transactional");
        StartWorker("C", "transactional");
        await WaitForDrainAsync();

        var jobs = await ReadFinishedJobsAsync();
        AssertEverySucceeded(jobs);
        AssertWhere(jobs, j => j.EffectPids.Length != 1, "must have exactly one effect");
        await AssertNoStrayEffectsAsync();

        // The kill landed mid-job: each hanging job's first attempt on A had written its effect in the open
        // transaction, which died with A; the job was rescued when A's lease expired and ran once elsewhere.
        AssertWhere(
            jobs.Where(j => hanging.Contains(j.Id)),
            j => !j.RescuedFrom(a) || j.EffectPids.Contains(a.Id),
            $"(hanging) must have been rescued from A (pid {a.Id}) with its effect committed by B or C, not A");
        var byA = jobs.Count(j => j.EffectPids.Contains(a.Id));
        Assert.True(byA is >= EffectsBeforeKill and < JobCount - HangingJobCount, $"A committed {byA} effects; the kill was meant to land mid-run. {Report()}");
    }

    [Fact]
    public async Task HandleAsync_WorkerProcessKilledMidRun_EveryJobSucceedsAndOnlyJobsTheDeadWorkerHeldRanTwice()
    {
        var hanging = await EnqueueAsync(HangingJobCount);
        var a = StartWorker("A", "plain");
        await WaitUntilAsync(
            $"worker A to start the {HangingJobCount} hanging jobs and record {EffectsBeforeKill} effects",
            async () => await StartedByAsync(a, hanging) == HangingJobCount && await EffectsByAsync(a) >= EffectsBeforeKill);

        a.Kill();
        StartWorker("B", "plain");
        StartWorker("C", "plain");
        await WaitForDrainAsync();

        var jobs = await ReadFinishedJobsAsync();
        AssertEverySucceeded(jobs);
        await AssertNoStrayEffectsAsync();

        // At least once: every job ran, at most once on A and at most once on the survivors.
        AssertWhere(
            jobs,
            j => j.EffectPids.Length == 0 || j.EffectPids.Count(p => p == a.Id) > 1 || j.EffectPids.Count(p => p != a.Id) > 1,
            "must have run at least once, and at most once on A and once on B or C");

        // A second run only for a job A held when it died (running, finished but not yet acknowledged, or prefetched):
        // its lease expired, and the rescue recorded that in the job's errors.
        AssertWhere(
            jobs.Where(j => j.EffectPids.Length > 1),
            j => !j.RescuedFrom(a) || !j.EffectPids.Contains(a.Id),
            $"ran twice but was not a job rescued from A (pid {a.Id})");

        // The hanging jobs were mid-handler on A: their effect is there twice, A's and the rescuer's.
        AssertWhere(
            jobs.Where(j => hanging.Contains(j.Id)),
            j => j.EffectPids.Length != 2 || !j.RescuedFrom(a),
            $"(hanging) must have run on A (pid {a.Id}), been rescued, and run once more");
    }

    [Fact]
    public async Task CompleteAsync_WorkerProcessFrozenPastItsLease_ItsJobsRunElsewhereAndItsLateCompletionsAreRefused()
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "Freezing a process uses SIGSTOP and SIGCONT.");
        var hanging = await EnqueueAsync(HangingJobCount);
        var a = StartWorker("A", "transactional");
        await WaitUntilAsync(
            $"worker A to start the {HangingJobCount} hanging jobs and commit {EffectsBeforeKill} effects",
            async () => await StartedByAsync(a, hanging) == HangingJobCount && await EffectsByAsync(a) >= EffectsBeforeKill);

        // A stop-the-world pause, a swapped-out VM, a debugger: A stops renewing its leases but is not dead. Its open
        // transactions stay open on the server, and when it resumes it still believes it holds its jobs.
        a.Freeze();
        var b = StartWorker("B", "transactional");
        await WaitUntilAsync(
            $"worker B to complete the {HangingJobCount} hanging jobs rescued from the frozen A",
            async () => await CountAsync($"SELECT count(*) FROM {Schema}.crash_effect WHERE worker_pid = $1 AND job_id = ANY($2)", b.Id, hanging) == HangingJobCount);
        a.Resume();
        await WaitForDrainAsync();

        Assert.False(a.HasExited, $"Worker A did not survive being resumed. {Report()}");
        var jobs = await ReadFinishedJobsAsync();
        AssertEverySucceeded(jobs);
        AssertWhere(jobs, j => j.EffectPids.Length != 1, "must have exactly one effect");
        await AssertNoStrayEffectsAsync();
        AssertWhere(
            jobs.Where(j => hanging.Contains(j.Id)),
            j => !j.RescuedFrom(a) || j.EffectPids.Single() != b.Id,
            $"(hanging) must have been rescued from A (pid {a.Id}) and completed by B (pid {b.Id})");
    }

    [Fact]
    public async Task CompleteAsync_DatabaseRestartedMidRun_EveryJobSucceedsExactlyOnceWithoutRestartingTheWorker()
    {
        // A real restart of the shared server would disturb the test classes running in parallel. To a client, a
        // restart is every connection cut at once and new ones refused until the server is back, which is what the
        // proxy does: the server aborts each cut connection's open transaction, as it would when shutting down.
        var (host, port) = _server.Endpoint;
        await using var proxy = new TcpProxy(host, port);
        var throughProxy = new NpgsqlConnectionStringBuilder(_server.ConnectionString) { Host = "127.0.0.1", Port = proxy.Port, Timeout = 2 };
        await EnqueueAsync(hangingJobs: 0);
        var worker = StartWorker("W", "transactional", throughProxy.ConnectionString);
        await WaitUntilAsync($"worker W to commit {EffectsBeforeKill} effects", async () => await EffectsByAsync(worker) >= EffectsBeforeKill);

        proxy.GoDown();

        // Longer than the lease, so leases expire while the database is unreachable.
        await Task.Delay(LeaseDuration + TimeSpan.FromSeconds(1), CancellationToken);
        Assert.False(worker.HasExited, $"The worker died during the outage. {Report()}");
        proxy.ComeBack();
        await WaitForDrainAsync();

        Assert.False(worker.HasExited, $"The worker exited. {Report()}");
        Assert.Single(_workers);
        var jobs = await ReadFinishedJobsAsync();
        AssertEverySucceeded(jobs);
        AssertWhere(jobs, j => j.EffectPids.Length != 1, "must have exactly one effect");
        await AssertNoStrayEffectsAsync();

        // The worker saw the outage: its notification listener lost its connection (and came back, or the queue
        // would not have drained).
        Assert.True(
            worker.Output.Contains($"[{PgQueueEventIds.ListenerError}]", StringComparison.Ordinal),
            $"The worker never logged losing its listener connection (event {PgQueueEventIds.ListenerError}). {Report()}");
    }

    // Enqueues JobCount jobs through the public API, the hanging ones first at a higher priority; returns their ids.
    private async Task<long[]> EnqueueAsync(int hangingJobs)
    {
        var services = new ServiceCollection();
        services.AddSingleton(_schema.DataSource);
        services.AddPgFirst(o => o.SchemaName = _schema.Name);
        services.AddPgQueue(o => o.RunWorkers = false).AddJob<CrashJob>(o => o.Kind = CrashJob.Kind);
        await using var provider = services.BuildServiceProvider();
        var queue = provider.GetRequiredService<IJobQueue>();
        if (hangingJobs > 0)
        {
            await queue.EnqueueManyAsync(
                Enumerable.Range(1, hangingJobs).Select(n => new CrashJob(n, Hang: true)),
                new JobOptions { Priority = 10 },
                CancellationToken);
        }

        await queue.EnqueueManyAsync(Enumerable.Range(hangingJobs + 1, JobCount - hangingJobs).Select(n => new CrashJob(n, Hang: false)), cancellationToken: CancellationToken);
        Assert.Equal(JobCount, await CountAsync($"SELECT count(*) FROM {Schema}.job"));

        await using var command = _schema.DataSource.CreateCommand($"SELECT coalesce(array_agg(id ORDER BY id), '{{}}') FROM {Schema}.job WHERE (payload->>'hang')::boolean");
        return (long[])(await command.ExecuteScalarAsync(CancellationToken))!;
    }

    private CrashWorkerProcess StartWorker(string name, string mode, string? connectionString = null)
    {
        var worker = CrashWorkerProcess.Start(name, connectionString ?? _server.ConnectionString, _schema.Name, mode, LeaseDuration);
        _workers.Add(worker);
        return worker;
    }

    private Task<long> StartedByAsync(CrashWorkerProcess worker, long[] jobIds) =>
        CountAsync($"SELECT count(DISTINCT job_id) FROM {Schema}.crash_attempt WHERE worker_pid = $1 AND job_id = ANY($2)", worker.Id, jobIds);

    private Task<long> EffectsByAsync(CrashWorkerProcess worker) =>
        CountAsync($"SELECT count(*) FROM {Schema}.crash_effect WHERE worker_pid = $1", worker.Id);

    private Task WaitForDrainAsync() => WaitUntilAsync(
        $"all {JobCount} jobs to finish",
        async () => await CountAsync($"SELECT count(*) FROM {Schema}.job") == 0
                    && await CountAsync($"SELECT count(*) FROM {Schema}.job_finished") == JobCount);

    // Polls the condition until it holds, failing after WaitLimit or as soon as a worker that was not killed exits.
    private async Task WaitUntilAsync(string what, Func<Task<bool>> condition)
    {
        var elapsed = Stopwatch.StartNew();
        while (!await condition())
        {
            if (_workers.FirstOrDefault(w => w.HasExited && !w.Killed) is { } exited)
            {
                Assert.Fail($"Worker {exited.Name} exited on its own (code {exited.ExitCode}) while waiting for {what}. {await DescribeAsync()} {Report()}");
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
        await using var command = _schema.DataSource.CreateCommand($"""
            SELECT f.id,
                   f.state,
                   f.attempt,
                   ARRAY(SELECT e.worker_pid FROM {Schema}.crash_effect AS e WHERE e.job_id = f.id ORDER BY e.attempt),
                   ARRAY(SELECT x->>'message' FROM jsonb_array_elements(coalesce(f.errors, '[]')) AS x WHERE x->>'type' = 'LeaseExpired')
            FROM {Schema}.job_finished AS f
            ORDER BY f.id
            """);
        var jobs = new List<FinishedJob>();
        await using var reader = await command.ExecuteReaderAsync(CancellationToken);
        while (await reader.ReadAsync(CancellationToken))
        {
            jobs.Add(new FinishedJob(reader.GetInt64(0), reader.GetInt16(1), reader.GetInt32(2), reader.GetFieldValue<int[]>(3), reader.GetFieldValue<string[]>(4)));
        }

        return jobs;
    }

    private void AssertEverySucceeded(List<FinishedJob> jobs)
    {
        Assert.True(jobs.Count == JobCount, $"{jobs.Count} finished jobs, expected {JobCount}. {Report()}");
        AssertWhere(jobs, j => j.State != 3, "must have succeeded (state 3)");
    }

    private void AssertWhere(IEnumerable<FinishedJob> jobs, Func<FinishedJob, bool> wrong, string rule)
    {
        var offenders = jobs.Where(wrong).ToList();
        if (offenders.Count > 0)
        {
            Assert.Fail($"{offenders.Count} jobs break the rule: every job {rule}. First ones: {string.Join("; ", offenders.Take(10))}. {Report()}");
        }
    }

    private async Task AssertNoStrayEffectsAsync()
    {
        var stray = await CountAsync($"SELECT count(*) FROM {Schema}.crash_effect AS e WHERE NOT EXISTS (SELECT 1 FROM {Schema}.job_finished AS f WHERE f.id = e.job_id)");
        Assert.True(stray == 0, $"{stray} effects belong to no finished job. {Report()}");
    }

    private async Task<string> DescribeAsync()
    {
        await using var command = _schema.DataSource.CreateCommand($"""
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

    private string Report()
    {
        var report = new StringBuilder();
        foreach (var worker in _workers)
        {
            report.AppendLine().Append(worker.Describe(lines: 30));
        }

        return report.ToString();
    }

    private async Task ExecuteAsync(string sql)
    {
        await using var command = _schema.DataSource.CreateCommand(sql);
        await command.ExecuteNonQueryAsync(CancellationToken);
    }

    private async Task<long> CountAsync(string sql, params object[] parameters)
    {
        await using var command = _schema.DataSource.CreateCommand(sql);
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

    private sealed record FinishedJob(long Id, short State, int Attempt, int[] EffectPids, string[] LeaseExpiredMessages)
    {
        // The rescue of an expired lease names the worker that stopped renewing it (PgQueue:WorkerName).
        public bool RescuedFrom(CrashWorkerProcess worker) =>
            LeaseExpiredMessages.Any(m => m.Contains($"crash-worker:{worker.Id} ", StringComparison.Ordinal));

        public override string ToString() =>
            $"job {Id}: state {State}, attempt {Attempt}, effects by pids [{string.Join(", ", EffectPids)}], " +
            $"lease expiries [{string.Join(" | ", LeaseExpiredMessages)}]";
    }
}
