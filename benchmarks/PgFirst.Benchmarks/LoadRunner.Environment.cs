using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using Npgsql;
using StackExchange.Redis;

namespace PgFirst.Benchmarks;

// What the report discloses: the machine, the versions, and every setting that moves the figures.
internal static partial class LoadRunner
{
    private static async Task<IReadOnlyList<KeyValuePair<string, string>>> MachineAsync()
    {
        var machine = new List<KeyValuePair<string, string>>
        {
            new("CPU", CpuModel()),
            new("logical cores", Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture)),
            new("memory", MemoryTotal()),
            new("OS", RuntimeInformation.OSDescription),
            new(".NET", RuntimeInformation.FrameworkDescription),
            new("Npgsql", PackageVersion(typeof(NpgsqlDataSource))),
            new("StackExchange.Redis", PackageVersion(typeof(ConnectionMultiplexer))),
            new("Hangfire.Core", PackageVersion(typeof(Hangfire.BackgroundJobServer))),
            new("Hangfire.PostgreSql", PackageVersion(typeof(Hangfire.PostgreSql.PostgreSqlStorage))),
        };
        await using var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        await using (var version = dataSource.CreateCommand("SELECT version()"))
        {
            machine.Add(new("PostgreSQL", ((string)(await version.ExecuteScalarAsync())!).Split(" on ")[0]));
        }

        await using var redis = await ConnectionMultiplexer.ConnectAsync(BenchmarkServers.Redis);
        var server = redis.GetServer(redis.GetEndPoints()[0]);
        machine.Add(new("Redis", server.Version.ToString()));
        machine.Add(new("topology", "client, PostgreSQL and Redis on the same machine, over loopback TCP"));
        return machine;
    }

    private static async Task<IReadOnlyList<KeyValuePair<string, string>>> SettingsAsync(bool quick, double seconds, double warmUp, int[] callers, int rounds)
    {
        var settings = new List<KeyValuePair<string, string>>
        {
            new("mode", quick ? "quick (--quick): short steps, 1 and 8 callers, 10,000 keys; for a smoke check, not for citing" : "full"),
            new("per step", string.Create(CultureInfo.InvariantCulture, $"{warmUp:0.#} s warm-up, then {seconds:0.#} s measured; ops/s over the measured time; latency percentiles of every operation in it")),
            new("callers", string.Join(", ", callers) + " concurrent async callers, each awaiting one operation at a time"),
            new("rounds", rounds == 1
                ? "1: every figure is a single measurement"
                : string.Create(CultureInfo.InvariantCulture, $"{rounds}, interleaved (every step once, then again); within a scenario each round runs the variants in its own shuffled order (seeded by round and scenario, so a rerun repeats it); each figure is the round with the median ops/s (median p50 for the enqueue→start latency, whose rate the producer sets), with that round's percentiles, and the lowest–highest ops/s over the rounds beside it")),
            new("cost as the work grows", string.Create(CultureInfo.InvariantCulture, $"cache gets against tables of {string.Join(", ", Sizes.Select(n => n.ToString("N0", CultureInfo.InvariantCulture)))} entries of 1 KiB (about 1.1 GB per million rows with the index: {Sizes.Max() * 1.1 / 1_000_000:0.#} GB for the largest, which this machine's disk and memory hold), each loaded server-side by one INSERT … SELECT, settled, and dropped at the end of the run; keys spread uniformly over the table. Expiry cleanup: {ExpiredRows:N0} expired rows beside 10,000 live ones, deleted as the maintenance runner does, while one caller reads live entries")),
            new("warm-up pass", "before round 1, every load scenario once at 1 caller for the warm-up time, not recorded: the process's code is JIT-compiled and tiered up before any step is measured, so no variant pays for it by running first"),
            new("before the clock", "after loading the cache keys and again after making the sessions: VACUUM (ANALYZE) of every benchmark table, then CHECKPOINT, so no step pays for the hint bits, the visibility map, a stale plan or the dirty pages of the load, and autovacuum has nothing to do during the steps"),
            new("data source", "a fresh NpgsqlDataSource per step, default settings (pool up to 100, reset on close), every statement prepared; raw baselines use the same settings"),
            new("cache", string.Create(CultureInfo.InvariantCulture, $"{Keys:N0} keys of 1 KiB, UNLOGGED table (PgCache default); keys cycle through the key space")),
            new("rate limit", "1,000 partitions, window 1 h, limit never reached (every decision is a round trip); policy Timeout 5 s, so every decision counted is one the store made (one that was not is reported as a warning)"),
            new("sessions", string.Create(CultureInfo.InvariantCulture, $"{Sessions:N0} sessions, each a 1 KiB cart; LOGGED table; touch interval {TouchInterval.TotalMinutes:0} min, sessions created just before the session steps, so no load in them writes a touch")),
            new("Redis", "StackExchange.Redis, one multiplexer per step; server without persistence (--save \"\" --appendonly no) as ./pgfirst starts it"),
            new("queue scenarios", "batch scenarios: each runs once per round instead of once per concurrency; ops/s are jobs/s, callers are workers (the bulk enqueue: 1 caller); “no latency” where a batch is timed as a whole"),
            new("PgQueue", QueueSettings()),
            new("queue drain", string.Create(CultureInfo.InvariantCulture, $"{DrainJobs:N0} no-op jobs enqueued before the clock starts (EnqueueManyAsync; raw SKIP LOCKED: one unnest INSERT), {DrainWorkers} workers; jobs/s = jobs ÷ time from the first handled job (PgQueue; starting its host took 18-112 ms here and is not drain time) or the workers' start (raw, Hangfire) until every job ran and left the queue (PgQueue: handler count reached, then queue depth 0 by JobQueueManager.GetStatsAsync; Hangfire: every job in the Succeeded state). Raw batch SKIP LOCKED: a minimal table (id identity primary key, queue, payload jsonb, enqueued_at), {DrainWorkers} tasks each looping one prepared DELETE … WHERE id = ANY(ARRAY(SELECT id … ORDER BY id LIMIT {RawDrainBatch} FOR UPDATE SKIP LOCKED)) RETURNING id, payload, a connection from the data source per statement, until a claim comes back empty: at-most-once (a worker that dies after the DELETE loses its jobs). Raw lease claim + acknowledgement: PgQueue's own SQL without PgQueue, on its job table and the same EnqueueManyAsync rows; {DrainWorkers} tasks each looping one NpgsqlBatch (set_config synchronous_commit off, the DELETE by id and lease of the previous claim's jobs, the next UPDATE … FOR UPDATE SKIP LOCKED … RETURNING claim of {RawDrainBatch}, every column read), no handler: PgQueue's upper bound, at-least-once as PgQueue is. “1 h history”: SucceededRetention = 1 h (a succeeded job moves to job_finished, kept an hour); the others use the default 0 (a succeeded job is deleted)")),
            new("queue bulk enqueue", string.Create(CultureInfo.InvariantCulture, $"one EnqueueManyAsync of {Jobs:N0} no-op jobs (serialization included), after a warm-up call of {WarmUpJobs} jobs; raw baseline: one INSERT … SELECT FROM unnest($2::jsonb[]) of {Jobs:N0} rows into the minimal table, after the same warm-up; Hangfire: {HangfireJobCount:N0} BackgroundJobClient.Enqueue calls one after another (fewer jobs: it is ≈ 100× slower), latency per call")),
            new("queue enqueue→start latency", string.Create(CultureInfo.InvariantCulture, $"a producer host (RunWorkers = false) and a worker host ({DrainWorkers} workers), each with its own data source, in one process, so the wake-up travels through NOTIFY (Redis twin: pub/sub), not the in-process shortcut; one job every 10–20 ms (uniformly at random) for {StepWarmUp.TotalSeconds:0.#} s of warm-up and then {StepDuration.TotalSeconds:0.#} s; latency = the handler's start − the moment the producer called EnqueueAsync (Stopwatch timestamps in the payload), for the jobs enqueued after the warm-up")),
            new("Hangfire", HangfireSettings),
            new("topology variants", "“through PgBouncer (transaction)”: Debian's PgBouncer (pool_mode = transaction, default_pool_size = 8) on the same machine in front of the same server, PgFirst:Pooler = Transaction, so nothing is prepared, and No Reset On Close=true (PgFirst requires it there); the direct variant beside it keeps Npgsql's defaults; “direct, unprepared” is the transaction-pooler mode without a pooler (No Reset On Close=true, nothing prepared), which splits the pooled cost into not preparing and the pooler's hop. “on the standby”: a streaming standby (asynchronous, pg_basebackup of the same server) on the same machine and cores; writes to the primary, reads under BoundedStaleness 1 s, lag sampled every 100 ms; the step reports how many reads the standby served. On one 2-core machine a standby adds no CPU, so this shows the cost of the routing, not the scale-out of a real replica"),
        };
        await using var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        foreach (var name in new[] { "shared_buffers", "synchronous_commit", "fsync", "wal_level", "max_connections" })
        {
            await using var show = dataSource.CreateCommand($"SHOW {name}");
            settings.Add(new($"PostgreSQL {name}", (string)(await show.ExecuteScalarAsync())!));
        }

        return settings;
    }

    private static string QueueSettings()
    {
        var o = new PgQueue.PgQueueOptions();
        return string.Create(
            CultureInfo.InvariantCulture,
            $"as an app registers it: AddPgFirst (maintenance runner off) + AddPgQueue + AddHandler in a generic host, a fresh data source per host, job tables emptied (Redis twin: a key prefix of its own) before each step; defaults: DefaultConcurrency {o.DefaultConcurrency}, DefaultPrefetch {o.DefaultPrefetch}, MaxClaimBatch {o.MaxClaimBatch}, LeaseDuration {o.LeaseDuration.TotalSeconds:0} s, HeartbeatInterval {o.HeartbeatInterval.TotalSeconds:0} s, PollInterval {o.PollInterval.TotalSeconds:0.###} s, UseNotifications {o.UseNotifications}, NotifyDebounce {o.NotifyDebounce.TotalMilliseconds:0} ms, SucceededRetention {o.SucceededRetention.TotalHours:0} h (succeeded jobs deleted at once); the Redis twin the same options on AddRedis");
    }

    // The informational version is the package version (assembly versions are often pinned, e.g. 2.0.0.0).
    private static string PackageVersion(Type type)
    {
        var version = type.Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
            ?? type.Assembly.GetName().Version?.ToString() ?? "?";
        var plus = version.IndexOf('+', StringComparison.Ordinal);
        return plus < 0 ? version : version[..plus];
    }

    private static string CpuModel()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line is null ? RuntimeInformation.ProcessArchitecture.ToString() : line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
        }
        catch (IOException)
        {
            return RuntimeInformation.ProcessArchitecture.ToString();
        }
    }

    private static string MemoryTotal()
    {
        try
        {
            var line = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal", StringComparison.Ordinal));
            var kib = line is null ? 0 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
            return kib == 0 ? "?" : string.Create(CultureInfo.InvariantCulture, $"{kib / 1024.0 / 1024.0:0.0} GiB");
        }
        catch (IOException)
        {
            return "?";
        }
    }

}
