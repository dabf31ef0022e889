using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;
using PgFirst.Core;
using PgQueue;
using StackExchange.Redis;

namespace PgFirst.Benchmarks;

// Queue scenarios. A drain or a bulk enqueue is one batch of work, not an operation repeated for a fixed time, so these
// are batch scenarios: each runs once per round, on its own data source(s), and reports jobs/s as ops/s and its workers
// as callers. PgQueue runs as an app gets it: AddPgFirst + AddPgQueue (+ AddRedis for the Redis twin) in a generic host.
internal static partial class LoadRunner
{
    private const int DrainWorkers = 8;
    private const int RawDrainBatch = 100;
    private const int WarmUpJobs = 100;
    private const string LatencyGroup = "queue enqueue→start latency, light load";
    private static int Jobs = 20_000;

    // Enough jobs that the fastest drain (raw, about 100 k jobs/s here) lasts about a second, not a fifth of one.
    private static int DrainJobs = 100_000;

    private static string BulkEnqueueGroup => string.Create(CultureInfo.InvariantCulture, $"queue bulk enqueue {Jobs:N0}");

    // A minimal queue table: what a hand-written queue needs and nothing more (no priority, run-at, lease or index but the key).
    private static string RawQueueTable => $"\"{Schema}\".queue_raw_job";

    // jobs/s = jobs ÷ elapsed from the first statement until the table is empty.
    private static async Task<Measurement> RawDrainAsync()
    {
        await using var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        await CreateRawQueueTableAsync(dataSource);
        await RawInsertAsync(dataSource, DrainJobs);
        var sql = $"""
            DELETE FROM {RawQueueTable}
            WHERE id = ANY(ARRAY(
                SELECT id
                FROM {RawQueueTable}
                ORDER BY id
                LIMIT $1
                FOR UPDATE SKIP LOCKED))
            RETURNING id, payload::text
            """;

        // A worker stops at its first empty claim: the rest are gone, or locked by the worker that deletes them.
        async Task<int> WorkerAsync()
        {
            var done = 0;
            while (true)
            {
                await using var connection = await dataSource.OpenConnectionAsync();
                await using var command = new NpgsqlCommand(sql, connection);
                command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = RawDrainBatch, NpgsqlDbType = NpgsqlDbType.Integer });
                await command.PrepareAsync();
                var rows = 0;
                await using (var reader = await command.ExecuteReaderAsync())
                {
                    while (await reader.ReadAsync())
                    {
                        _ = reader.GetInt64(0);
                        _ = reader.GetString(1);
                        rows++;
                    }
                }

                if (rows == 0)
                {
                    return done;
                }

                done += rows;
            }
        }

        var started = Stopwatch.GetTimestamp();
        var drained = (await Task.WhenAll(Enumerable.Range(0, DrainWorkers).Select(_ => Task.Run(WorkerAsync)))).Sum();
        var elapsed = Stopwatch.GetElapsedTime(started);
        Require(drained == DrainJobs, $"The raw drain deleted {drained} of {DrainJobs} jobs.");
        return new(DrainWorkers, DrainJobs / elapsed.TotalSeconds, 0, 0, 0);
    }

    // The SQL PgQueue runs, without PgQueue: the upper bound of its drain. The same job table and EnqueueManyAsync rows;
    // DrainWorkers tasks each loop one batch per round trip, as PgQueue's claim loops do: asynchronous commit for the
    // transaction, the acknowledgement (DELETE by id and lease) of the jobs the previous claim took, and the next lease
    // claim (the UPDATE … SKIP LOCKED … RETURNING of PgQueueSql.Claim, every column read). No handler, scope or
    // deserialization runs: what PgQueue does beyond this is its own cost, and what this costs beyond the raw SKIP
    // LOCKED delete is the price of a lease (a job claimed is not lost when its worker dies).
    private static async Task<Measurement> RawLeaseDrainAsync()
    {
        await ResetQueueAsync(redis: false);
        await using var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        await EnqueueDrainJobsAsync(dataSource);
        var claimSql = LeaseClaimSql(Schema);
        var ackSql = LeaseAckSql(Schema);

        async Task<int> WorkerAsync()
        {
            var done = 0;
            var ids = new List<long>(RawDrainBatch);
            var leases = new List<long>(RawDrainBatch);
            while (true)
            {
                await using var connection = await dataSource.OpenConnectionAsync();
                await using var batch = new NpgsqlBatch(connection);
                batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT set_config('synchronous_commit', 'off', true)"));
                if (ids.Count > 0)
                {
                    var ack = new NpgsqlBatchCommand(ackSql);
                    ack.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = [.. ids], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
                    ack.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = [.. leases], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
                    batch.BatchCommands.Add(ack);
                }

                var now = DateTimeOffset.UtcNow;
                var claim = new NpgsqlBatchCommand(claimSql);
                claim.Parameters.Add(new NpgsqlParameter<string> { TypedValue = "default", NpgsqlDbType = NpgsqlDbType.Text });
                claim.Parameters.Add(new NpgsqlParameter<int> { TypedValue = RawDrainBatch, NpgsqlDbType = NpgsqlDbType.Integer });
                claim.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = now, NpgsqlDbType = NpgsqlDbType.TimestampTz });
                claim.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = now.AddSeconds(30), NpgsqlDbType = NpgsqlDbType.TimestampTz });
                claim.Parameters.Add(new NpgsqlParameter<string> { TypedValue = "raw", NpgsqlDbType = NpgsqlDbType.Text });
                batch.BatchCommands.Add(claim);
                await batch.PrepareAsync();
                done += ids.Count;
                ids.Clear();
                leases.Clear();
                await using (var reader = await batch.ExecuteReaderAsync())
                {
                    do
                    {
                        while (reader.FieldCount == 10 && await reader.ReadAsync())
                        {
                            ids.Add(reader.GetInt64(0));
                            leases.Add(reader.GetInt64(1));
                            for (var column = 2; column < reader.FieldCount; column++)
                            {
                                _ = reader.IsDBNull(column) ? null : reader.GetValue(column);
                            }
                        }
                    }
                    while (await reader.NextResultAsync());
                }

                if (ids.Count == 0)
                {
                    return done;
                }
            }
        }

        var started = Stopwatch.GetTimestamp();
        var drained = (await Task.WhenAll(Enumerable.Range(0, DrainWorkers).Select(_ => Task.Run(WorkerAsync)))).Sum();
        var elapsed = Stopwatch.GetElapsedTime(started);
        Require(drained == DrainJobs, $"The raw lease drain acknowledged {drained} of {DrainJobs} jobs.");
        await using (var left = dataSource.CreateCommand($"SELECT count(*) FROM \"{Schema}\".job"))
        {
            Require((long)(await left.ExecuteScalarAsync())! == 0, "The raw lease drain left jobs in the table.");
        }

        return new(DrainWorkers, DrainJobs / elapsed.TotalSeconds, 0, 0, 0);
    }

    // PgQueue's own claim and acknowledgement statements (PgQueueSql, shared through InternalsVisibleTo), so the raw
    // lease baseline can never drift from what PgQueue runs: claim $1 queue, $2 batch size, $3 now, $4 lease expiry,
    // $5 worker; acknowledgement $1 ids, $2 leases.
    private static string LeaseClaimSql(string schemaName) => new PgQueue.Internal.PgQueueSql(schemaName).Claim;

    private static string LeaseAckSql(string schemaName) => new PgQueue.Internal.PgQueueSql(schemaName).CompleteDelete;

    // The drains' jobs, enqueued as an app would (one EnqueueManyAsync) by a host without workers.
    private static async Task EnqueueDrainJobsAsync(NpgsqlDataSource dataSource)
    {
        using var host = QueueHost(redis: false, RedisPrefix, dataSource, o => o.RunWorkers = false, queue => queue.AddJob<NoOpJob>());
        var enqueued = await host.Services.GetRequiredService<IJobQueue>().EnqueueManyAsync(Enumerable.Range(0, DrainJobs).Select(i => new NoOpJob(i)));
        Require(enqueued.Enqueued == DrainJobs, $"EnqueueManyAsync enqueued {enqueued.Enqueued} of {DrainJobs} jobs.");
    }

    // Pre-enqueued (not timed), then timed from the first handled job until every handler ran and every job left the queue.
    private static async Task<Measurement> DrainAsync(bool redis, bool keepHistory)
    {
        var prefix = await ResetQueueAsync(redis);
        await using var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        using var host = QueueHost(redis, prefix, dataSource, o =>
        {
            if (keepHistory)
            {
                o.SucceededRetention = TimeSpan.FromHours(1);
            }
        }, queue => queue.AddHandler<NoOpJob, NoOpJobHandler>());
        var counter = host.Services.GetRequiredService<JobCounter>();
        var queue = host.Services.GetRequiredService<IJobQueue>();
        var enqueued = await queue.EnqueueManyAsync(Enumerable.Range(0, DrainJobs).Select(i => new NoOpJob(i)));
        Require(enqueued.Enqueued == DrainJobs, $"EnqueueManyAsync enqueued {enqueued.Enqueued} of {DrainJobs} jobs.");

        var timeout = DrainTimeout(DrainJobs, jobsPerSecond: 100);
        await host.StartAsync();
        await counter.WaitForAsync(DrainJobs, timeout, "PgQueue drain");

        // From the first handled job, not the host's start: starting the host (workers, listen connection, first
        // claim's preparation) took 18-112 ms here, a tenth of a 100 k drain, and is no part of the drain rate.
        var started = counter.FirstAt;
        await WaitForEmptyQueueAsync(host.Services.GetRequiredService<JobQueueManager>(), timeout);
        var elapsed = Stopwatch.GetElapsedTime(started);
        await host.StopAsync();
        await DeleteRedisKeysAsync(redis, prefix);
        return new(DrainWorkers, DrainJobs / elapsed.TotalSeconds, 0, 0, 0);
    }

    // Both sides get a warm-up batch first (connection, JIT, type loading), then one timed call for the whole batch.
    private static async Task<Measurement> RawBulkEnqueueAsync()
    {
        await using var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        await CreateRawQueueTableAsync(dataSource);
        await RawInsertAsync(dataSource, WarmUpJobs);
        var started = Stopwatch.GetTimestamp();
        await RawInsertAsync(dataSource, Jobs);
        var elapsed = Stopwatch.GetElapsedTime(started);
        return new(1, Jobs / elapsed.TotalSeconds, 0, 0, 0);
    }

    private static async Task<Measurement> BulkEnqueueAsync(bool redis)
    {
        var prefix = await ResetQueueAsync(redis);
        await using var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        using var host = QueueHost(redis, prefix, dataSource, o => o.RunWorkers = false, queue => queue.AddJob<NoOpJob>());
        await host.StartAsync();
        var queue = host.Services.GetRequiredService<IJobQueue>();
        await queue.EnqueueManyAsync(Enumerable.Range(0, WarmUpJobs).Select(i => new NoOpJob(i)));
        var payloads = Enumerable.Range(0, Jobs).Select(i => new NoOpJob(i)).ToList();
        var started = Stopwatch.GetTimestamp();
        var enqueued = await queue.EnqueueManyAsync(payloads);
        var elapsed = Stopwatch.GetElapsedTime(started);
        Require(enqueued.Enqueued == Jobs, $"EnqueueManyAsync enqueued {enqueued.Enqueued} of {Jobs} jobs.");
        await host.StopAsync();
        await DeleteRedisKeysAsync(redis, prefix);
        return new(1, Jobs / elapsed.TotalSeconds, 0, 0, 0);
    }

    // A producer host without workers and a worker host, as two app instances would be: the producer's in-process wake-up
    // cannot reach the workers, so each job's wake-up travels through NOTIFY (Redis: pub/sub). One job every 10–20 ms
    // (uniformly at random, fixed seed) for the warm-up and then the step's duration; latency = the handler's start minus
    // the moment the producer called EnqueueAsync (Stopwatch timestamps in the payload, same process), for the jobs
    // enqueued after the warm-up.
    private static async Task<Measurement> EnqueueToStartAsync(bool redis)
    {
        var prefix = await ResetQueueAsync(redis);
        await using var producerSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        await using var workerSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        using var producer = QueueHost(redis, prefix, producerSource, o => o.RunWorkers = false, queue => queue.AddJob<TimedJob>());
        using var worker = QueueHost(redis, prefix, workerSource, _ => { }, queue => queue.AddHandler<TimedJob, TimedJobHandler>());
        var recorder = worker.Services.GetRequiredService<LatencyRecorder>();
        await worker.StartAsync();
        await producer.StartAsync();
        var queue = producer.Services.GetRequiredService<IJobQueue>();

        var random = new Random(20_240_601);
        var from = Stopwatch.GetTimestamp() + (long)(StepWarmUp.TotalSeconds * Stopwatch.Frequency);
        var to = from + (long)(StepDuration.TotalSeconds * Stopwatch.Frequency);
        recorder.Measure(from, to);
        var enqueued = 0;

        // Paced by a schedule, not by sleeping after each enqueue, so the rate does not depend on the enqueue's own time.
        var next = Stopwatch.GetTimestamp();
        while (next < to)
        {
            await queue.EnqueueAsync(new TimedJob(Stopwatch.GetTimestamp()));
            enqueued++;
            next += (long)((10 + (random.NextDouble() * 10)) / 1000 * Stopwatch.Frequency);
            var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), next);
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait);
            }
        }

        await recorder.Counter.WaitForAsync(enqueued, TimeSpan.FromSeconds(30), "enqueue→start latency");
        await producer.StopAsync();
        await worker.StopAsync();
        await DeleteRedisKeysAsync(redis, prefix);
        var latencies = recorder.Latencies();
        return new(DrainWorkers, latencies.Length / StepDuration.TotalSeconds, Percentile(latencies, 0.50), Percentile(latencies, 0.95), Percentile(latencies, 0.99));
    }

    private static IHost QueueHost(bool redis, string redisPrefix, NpgsqlDataSource dataSource, Action<PgQueueOptions> configure, Action<IPgQueueBuilder> register)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Logging.SetMinimumLevel(LogLevel.Warning).AddProvider(new StandardErrorLoggerProvider());
        builder.Services.AddSingleton(dataSource);
        builder.Services.AddSingleton<JobCounter>();
        builder.Services.AddSingleton<LatencyRecorder>();
        var first = builder.Services.AddPgFirst(o =>
        {
            o.SchemaName = Schema;
            o.QueueBackend = redis ? PgFirstBackend.Redis : PgFirstBackend.PostgreSql;
            o.Maintenance.Enabled = false;
        });
        if (redis)
        {
            first.AddRedis(o =>
            {
                o.Configuration = BenchmarkServers.Redis;
                o.KeyPrefix = redisPrefix;
            });
        }

        register(builder.Services.AddPgQueue(configure));
        return builder.Build();
    }

    // PostgreSQL: empty job tables. Redis: a key prefix of the step's own, deleted after it.
    private static async Task<string> ResetQueueAsync(bool redis)
    {
        if (redis)
        {
            return RedisPrefix + "queue:" + Guid.NewGuid().ToString("N") + ":";
        }

        await using var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        await using var truncate = dataSource.CreateCommand($"TRUNCATE \"{Schema}\".job, \"{Schema}\".job_finished");
        await truncate.ExecuteNonQueryAsync();
        return RedisPrefix;
    }

    private static async Task DeleteRedisKeysAsync(bool redis, string prefix)
    {
        if (!redis)
        {
            return;
        }

        await using var connection = await ConnectionMultiplexer.ConnectAsync(BenchmarkServers.Redis);
        var server = connection.GetServer(connection.GetEndPoints()[0]);
        var database = connection.GetDatabase();
        var pattern = new System.Text.StringBuilder();
        foreach (var c in prefix)
        {
            pattern.Append(c is '*' or '?' or '[' or ']' or '\\' ? "\\" + c : c.ToString());
        }

        var batch = new List<RedisKey>();
        await foreach (var key in server.KeysAsync(pattern: pattern.Append('*').ToString(), pageSize: 1000))
        {
            batch.Add(key);
            if (batch.Count == 1000)
            {
                await database.KeyDeleteAsync([.. batch]);
                batch.Clear();
            }
        }

        if (batch.Count > 0)
        {
            await database.KeyDeleteAsync([.. batch]);
        }
    }

    private static async Task WaitForEmptyQueueAsync(JobQueueManager manager, TimeSpan timeout)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            var stats = (await manager.GetStatsAsync(["default"], cap: 1))[0];
            if (stats is { Available: 0, Running: 0, Scheduled: 0 })
            {
                return;
            }

            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"The queue still holds jobs after every handler ran: {stats}.");
            }

            await Task.Delay(1);
        }
    }

    private static async Task CreateRawQueueTableAsync(NpgsqlDataSource dataSource)
    {
        await using var create = dataSource.CreateCommand($"""
            DROP TABLE IF EXISTS {RawQueueTable};
            CREATE TABLE {RawQueueTable} (
                id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                queue       text        NOT NULL,
                payload     jsonb       NOT NULL,
                enqueued_at timestamptz NOT NULL DEFAULT now()
            )
            """);
        await create.ExecuteNonQueryAsync();
    }

    // One INSERT of every row, the payloads an array parameter: the same JSON PgQueue stores for a NoOpJob.
    private static async Task RawInsertAsync(NpgsqlDataSource dataSource, int count)
    {
        var payloads = new string[count];
        for (var i = 0; i < count; i++)
        {
            payloads[i] = string.Create(CultureInfo.InvariantCulture, $"{{\"n\":{i}}}");
        }

        await using var insert = dataSource.CreateCommand($"""
            INSERT INTO {RawQueueTable} (queue, payload)
            SELECT $1, p
            FROM unnest($2::jsonb[]) AS p
            """);
        insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = "default", NpgsqlDbType = NpgsqlDbType.Text });
        insert.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = payloads, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Jsonb });
        Require(await insert.ExecuteNonQueryAsync() == count, "The raw INSERT did not insert every row.");
    }

    // Generous: a drain this slow is a finding, not a hang.
    private static TimeSpan DrainTimeout(int jobs, double jobsPerSecond) => TimeSpan.FromSeconds(30 + (jobs / jobsPerSecond));

    private static void Require(bool condition, string message)
    {
        if (!condition)
        {
            throw new InvalidOperationException(message);
        }
    }

    /// <summary>The no-op job of the drains and bulk enqueues.</summary>
    internal sealed record NoOpJob(int N);

    /// <summary>A job that carries the Stopwatch timestamp of its enqueue.</summary>
    internal sealed record TimedJob(long EnqueuedAt);

    internal sealed class NoOpJobHandler(JobCounter counter) : IJobHandler<NoOpJob>
    {
        public Task HandleAsync(NoOpJob payload, JobContext context, CancellationToken cancellationToken)
        {
            counter.Increment();
            return Task.CompletedTask;
        }
    }

    internal sealed class TimedJobHandler(LatencyRecorder recorder) : IJobHandler<TimedJob>
    {
        public Task HandleAsync(TimedJob payload, JobContext context, CancellationToken cancellationToken)
        {
            recorder.Started(payload.EnqueuedAt, Stopwatch.GetTimestamp());
            return Task.CompletedTask;
        }
    }

    /// <summary>Counts handled jobs and lets the step wait for a number of them.</summary>
    internal sealed class JobCounter
    {
        private long _count;
        private long _firstAt;

        public long Count => Interlocked.Read(ref _count);

        /// <summary>Gets the Stopwatch timestamp of the first handled job, or 0 before it.</summary>
        public long FirstAt => Interlocked.Read(ref _firstAt);

        private long _reachedAt;

        /// <summary>Gets or sets a count whose moment <see cref="ReachedAt"/> records; 0 for none.</summary>
        public long Target { get; set; }

        /// <summary>Gets the Stopwatch timestamp of the handled job that made the count <see cref="Target"/>, or 0 before it.</summary>
        public long ReachedAt => Interlocked.Read(ref _reachedAt);

        public void Increment()
        {
            var count = Interlocked.Increment(ref _count);
            if (count == 1)
            {
                Interlocked.Exchange(ref _firstAt, Stopwatch.GetTimestamp());
            }

            if (count == Target)
            {
                Interlocked.Exchange(ref _reachedAt, Stopwatch.GetTimestamp());
            }
        }

        public async Task WaitForAsync(long target, TimeSpan timeout, string what)
        {
            var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
            while (Count < target)
            {
                if (Stopwatch.GetTimestamp() > deadline)
                {
                    throw new TimeoutException(string.Create(CultureInfo.InvariantCulture, $"{what}: {Count:N0} of {target:N0} jobs handled after {timeout.TotalSeconds:N0} s."));
                }

                await Task.Delay(1);
            }
        }
    }

    /// <summary>Collects the enqueue-to-start latencies of the jobs enqueued inside the measured window.</summary>
    internal sealed class LatencyRecorder
    {
        private readonly Lock _lock = new();
        private readonly List<long> _latencies = [];
        private long _from = long.MaxValue;
        private long _to = long.MaxValue;

        public JobCounter Counter { get; } = new();

        public void Measure(long from, long to)
        {
            Volatile.Write(ref _from, from);
            Volatile.Write(ref _to, to);
        }

        public void Started(long enqueuedAt, long now)
        {
            if (enqueuedAt >= Volatile.Read(ref _from) && enqueuedAt < Volatile.Read(ref _to))
            {
                lock (_lock)
                {
                    _latencies.Add(now - enqueuedAt);
                }
            }

            Counter.Increment();
        }

        public long[] Latencies()
        {
            lock (_lock)
            {
                return [.. _latencies.Order()];
            }
        }
    }

    /// <summary>Warnings and errors of the hosts on standard error, so a failing worker shows instead of a silent timeout.</summary>
    private sealed class StandardErrorLoggerProvider : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger(categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (IsEnabled(logLevel))
                {
                    Console.Error.WriteLine($"{logLevel}: {category}[{eventId.Id}]: {formatter(state, exception)}{(exception is null ? "" : Environment.NewLine + exception)}");
                }
            }
        }
    }
}
