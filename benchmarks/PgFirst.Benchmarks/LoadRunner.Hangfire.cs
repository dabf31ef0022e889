using System.Diagnostics;
using System.Globalization;
using Hangfire;
using Hangfire.Logging;
using Hangfire.PostgreSql;
using Npgsql;

namespace PgFirst.Benchmarks;

// Hangfire on PostgreSQL, the peer PgQueue is measured against, with the fastest settings its documentation and issue
// tracker recommend (see HangfireSettings). It is about two orders of magnitude slower than the others here, so its
// batches are smaller (--hangfire-jobs); jobs/s is a rate, so the figures still compare.
internal static partial class LoadRunner
{
    private static int HangfireJobCount = 1_000;
    private static bool _hangfireConfigured;

    private static string HangfireSchema => Schema + "_hangfire";

    private static string HangfireEnqueueVariant => string.Create(CultureInfo.InvariantCulture, $"Hangfire.PostgreSql, {HangfireJobCount:N0} one by one");

    private static string HangfireSettings => string.Create(
        CultureInfo.InvariantCulture,
        $"Hangfire.Core and Hangfire.PostgreSql on this run's Npgsql; {HangfireJobCount:N0} jobs per batch; a public static no-op method enqueued with BackgroundJobClient.Enqueue (what BackgroundJob.Enqueue does); " +
        $"global configuration SetDataCompatibilityLevel(Version_180), UseSimpleAssemblyNameTypeSerializer, UseRecommendedSerializerSettings; " +
        $"storage UsePostgreSqlStorage(UseNpgsqlConnection(the same connection string)) with QueuePollInterval {HangfireQueuePoll.TotalMilliseconds:0} ms, " +
        $"EnableLongPolling (LISTEN/NOTIFY), UseNativeDatabaseTransactions, PrepareSchemaIfNecessary on a schema of its own, dropped and recreated every step; " +
        $"the connection string the others use, so no Npgsql auto-prepare (Hangfire's statements go through Dapper; Max Auto Prepare showed no clear gain in a trial here); " +
        $"server WorkerCount {DrainWorkers}, queue \"default\"; drain timed from the server's construction until every job ran and is in the Succeeded state");

    private static readonly TimeSpan HangfireQueuePoll = TimeSpan.FromMilliseconds(50);

    private static async Task<Measurement> HangfireDrainAsync()
    {
        var storage = await HangfireStorageAsync();
        try
        {
            // Not timed, so in parallel: one by one, Hangfire enqueues slower than it drains.
            var client = new BackgroundJobClient(storage);
            await Task.Run(() => Parallel.For(0, HangfireJobCount, new ParallelOptions { MaxDegreeOfParallelism = DrainWorkers }, _ => client.Enqueue(() => HangfireJobs.NoOp())));

            HangfireJobs.Reset();
            var monitoring = storage.GetMonitoringApi();
            var timeout = DrainTimeout(HangfireJobCount, jobsPerSecond: 20);
            var started = Stopwatch.GetTimestamp();
            var server = await Task.Run(() => new BackgroundJobServer(
                new BackgroundJobServerOptions { WorkerCount = DrainWorkers, Queues = ["default"], ShutdownTimeout = TimeSpan.FromSeconds(5) },
                storage));
            try
            {
                var deadline = started + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
                while (HangfireJobs.Performed < HangfireJobCount || monitoring.SucceededListCount() < HangfireJobCount)
                {
                    if (Stopwatch.GetTimestamp() > deadline)
                    {
                        throw new TimeoutException(string.Create(
                            CultureInfo.InvariantCulture,
                            $"Hangfire drain: {HangfireJobs.Performed:N0} of {HangfireJobCount:N0} jobs performed, {monitoring.SucceededListCount():N0} succeeded, {monitoring.FailedCount():N0} failed after {timeout.TotalSeconds:N0} s."));
                    }

                    await Task.Delay(1);
                }

                var elapsed = Stopwatch.GetElapsedTime(started);
                return new(DrainWorkers, HangfireJobCount / elapsed.TotalSeconds, 0, 0, 0);
            }
            finally
            {
                await Task.Run(server.Dispose);
            }
        }
        finally
        {
            await DropHangfireSchemaAsync();
        }
    }

    // One caller enqueuing one job at a time, as an app does with BackgroundJob.Enqueue; latency per call.
    private static async Task<Measurement> HangfireEnqueueAsync()
    {
        var storage = await HangfireStorageAsync();
        try
        {
            return await Task.Run(() =>
            {
                var client = new BackgroundJobClient(storage);
                for (var i = 0; i < 10; i++)
                {
                    client.Enqueue(() => HangfireJobs.NoOp());
                }

                var latencies = new long[HangfireJobCount];
                var started = Stopwatch.GetTimestamp();
                for (var i = 0; i < latencies.Length; i++)
                {
                    var call = Stopwatch.GetTimestamp();
                    client.Enqueue(() => HangfireJobs.NoOp());
                    latencies[i] = Stopwatch.GetTimestamp() - call;
                }

                var elapsed = Stopwatch.GetElapsedTime(started);
                Array.Sort(latencies);
                return new Measurement(1, HangfireJobCount / elapsed.TotalSeconds, Percentile(latencies, 0.50), Percentile(latencies, 0.95), Percentile(latencies, 0.99));
            });
        }
        finally
        {
            await DropHangfireSchemaAsync();
        }
    }

    private static async Task<PostgreSqlStorage> HangfireStorageAsync()
    {
        if (!_hangfireConfigured)
        {
            _hangfireConfigured = true;
            GlobalConfiguration.Configuration
                .SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
                .UseSimpleAssemblyNameTypeSerializer()
                .UseRecommendedSerializerSettings()
                .UseLogProvider(new StandardErrorLogProvider());
        }

        await DropHangfireSchemaAsync();
        var options = new PostgreSqlStorageOptions
        {
            SchemaName = HangfireSchema,
            PrepareSchemaIfNecessary = true,
            QueuePollInterval = HangfireQueuePoll,
            EnableLongPolling = true,
            UseNativeDatabaseTransactions = true,
        };

        // The storage installs its schema as it is made, synchronously. UseNpgsqlConnection: a new NpgsqlConnection per
        // database action, from Npgsql's pool for the connection string (the data source settings of the others).
        return await Task.Run(() => GlobalConfiguration.Configuration
            .UsePostgreSqlStorage(bootstrap => bootstrap.UseNpgsqlConnection(BenchmarkServers.Postgres), options)
            .Entry);
    }

    private static async Task DropHangfireSchemaAsync()
    {
        await using var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        await using var drop = dataSource.CreateCommand($"DROP SCHEMA IF EXISTS \"{HangfireSchema}\" CASCADE");
        await drop.ExecuteNonQueryAsync();
    }

    // Hangfire's warnings (a failing job, a lost connection) on standard error, as the hosts' are.
    private sealed class StandardErrorLogProvider : ILogProvider
    {
        public ILog GetLogger(string name) => new Logger(name);

        private sealed class Logger(string name) : ILog
        {
            public bool Log(LogLevel logLevel, Func<string>? messageFunc, Exception? exception = null)
            {
                if (logLevel < LogLevel.Warn)
                {
                    return false;
                }

                if (messageFunc is not null)
                {
                    Console.Error.WriteLine($"Hangfire {logLevel}: {name}: {messageFunc()}{(exception is null ? "" : Environment.NewLine + exception)}");
                }

                return true;
            }
        }
    }
}

/// <summary>The job Hangfire runs: public, as Hangfire requires of the methods it invokes.</summary>
public static class HangfireJobs
{
    private static int _performed;

    internal static int Performed => Volatile.Read(ref _performed);

    /// <summary>Does nothing but count.</summary>
    public static void NoOp() => Interlocked.Increment(ref _performed);

    internal static void Reset() => Interlocked.Exchange(ref _performed, 0);
}
