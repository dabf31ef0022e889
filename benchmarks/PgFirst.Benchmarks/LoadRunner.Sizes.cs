using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Session;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using NpgsqlTypes;
using PgCache;
using PgFirst.Core;
using PgQueue;
using PgSessions;

namespace PgFirst.Benchmarks;

// Cost as the work grows (issue 18): the same get and get-many against cache tables of different sizes, the expiry
// cleanup of a large number of expired rows with gets running beside it, the queue's claim and drain behind backlogs
// of different depths, and the session request against session tables of different sizes.
internal static partial class LoadRunner
{
    internal const string SizeGroup = "cache get 1 KiB, by entries in the table";
    internal const string GetManySizeGroup = "cache get-many 100 × 1 KiB, by entries in the table";
    internal const string SessionSizeGroup = "session read-only request, by sessions in the table";
    internal const string BacklogGroup = "queue claim latency and drain, by jobs waiting";
    private static int[] Sizes = [10_000, 1_000_000];
    private static int[] SessionSizes = [10_000, 1_000_000];
    private static int[] Backlogs = [10_000, 100_000, 1_000_000];
    private static int ExpiredRows = 1_000_000;
    private static readonly HashSet<int> SizesLoaded = [];
    private static readonly HashSet<int> SessionSizesLoaded = [];
    private const int CleanupBatch = 5_000;

    private static string CleanupGroup => Format($"cache expiry cleanup, {ExpiredRows:N0} expired rows beside 10,000 live ones");

    private static IEnumerable<Scenario> SizeScenarios() =>
    [
        .. Sizes.Select(n => Load(Format($"{SizeGroup}: PgCache, {n:N0} entries"), () => Step.SizedGetAsync(n))),
        .. Sizes.Select(n => Load(Format($"{GetManySizeGroup}: PgCache, {n:N0} entries"), () => Step.SizedGetManyAsync(n))),
        Batch($"{CleanupGroup}: cache_delete_expired({CleanupBatch:N0}) until none is left", CleanupAsync),
        .. Backlogs.Select(n => Batch(Format($"{BacklogGroup}: PgQueue, {n:N0} jobs waiting"), () => BacklogAsync(n))),
        .. SessionSizes.Select(n => Load(Format($"{SessionSizeGroup}: PgSessions, {n:N0} sessions"), () => Step.SizedSessionAsync(n))),
    ];

    private static string SizedSchema(int entries) => Format($"{Schema}_size_{entries}");

    // Keys spread over the whole table, so a big table is read across all its pages, as an app's gets would be, rather
    // than through a hot prefix that stays in shared buffers. Multiplying by a prime modulo the table size is a
    // permutation of the table, so any run of consecutive counters (the 100 keys of one get-many) names distinct rows:
    // a hash that let two of them collide made a small table's get-many fetch fewer rows than a big one's.
    private const ulong KeySpread = 2_654_435_761UL;

    private static string SizedKey(long i, int entries) => "product:" + ((ulong)i % (ulong)entries * KeySpread % (ulong)entries).ToString(System.Globalization.CultureInfo.InvariantCulture);

    // Loaded once per run by one server-side INSERT … SELECT (a client-side load of a million 1 KiB values takes minutes),
    // then settled like the other tables.
    private static async Task EnsureSizeLoadedAsync(int entries)
    {
        if (!SizesLoaded.Add(entries))
        {
            return;
        }

        Progress($"loading {entries:N0} cache entries of 1 KiB into {SizedSchema(entries)}");
        await using var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        await FreshCacheSchemaAsync(dataSource, SizedSchema(entries));
        await FillAsync(dataSource, SizedSchema(entries), "product:", entries, expired: false);
        await SettleAsync(SizedSchema(entries));
    }

    private static async Task FreshCacheSchemaAsync(NpgsqlDataSource dataSource, string schema)
    {
        await using (var drop = dataSource.CreateCommand($"DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        {
            await drop.ExecuteNonQueryAsync();
        }

        await new PgSchemaInstaller(dataSource, schema, [PgDistributedCache.SchemaModule]).ApplyAsync();
    }

    private static async Task FillAsync(NpgsqlDataSource dataSource, string schema, string prefix, int rows, bool expired)
    {
        var expiry = expired ? "now() - interval '1 minute'" : "now() + interval '2 hours'";
        await using var fill = dataSource.CreateCommand(
            $"""
            INSERT INTO "{schema}".cache_entry (tenant_id, key, value, expires_at, sliding, absolute_expires_at, tags)
            SELECT 'default', $1 || g, convert_to(repeat('x', 1024), 'UTF8'), {expiry}, NULL, {expiry}, NULL
            FROM generate_series(0, $2 - 1) AS g
            """);
        fill.Parameters.Add(new NpgsqlParameter<string> { TypedValue = prefix });
        fill.Parameters.Add(new NpgsqlParameter<int> { TypedValue = rows });
        fill.CommandTimeout = 0;
        await fill.ExecuteNonQueryAsync();
    }

    // The cleanup as the maintenance runner does it (batches of 5,000 until one deletes nothing), timed; one caller
    // reads live entries all along, and its rate before and during the cleanup is reported beside.
    private static async Task<Measurement> CleanupAsync()
    {
        var schema = Schema + "_expiry";
        await using var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        await FreshCacheSchemaAsync(dataSource, schema);
        await FillAsync(dataSource, schema, "live:", 10_000, expired: false);
        await FillAsync(dataSource, schema, "expired:", ExpiredRows, expired: true);
        await SettleAsync(schema);

        await using var readerSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        using var cache = new PgDistributedCache(readerSource, new PgFirstOptions { SchemaName = schema }, new PgCacheOptions(), new PgTenantContext("default"), TimeProvider.System);
        long reads = 0;
        using var stop = new CancellationTokenSource();
        var reader = Task.Run(async () =>
        {
            for (var i = 0L; !stop.IsCancellationRequested; i++)
            {
                if (await cache.GetAsync("live:" + (i % 10_000).ToString(System.Globalization.CultureInfo.InvariantCulture)) is null)
                {
                    throw new InvalidOperationException("A live entry was not found during the expiry cleanup.");
                }

                Interlocked.Increment(ref reads);
            }
        });

        await Task.Delay(StepWarmUp);
        var before = Interlocked.Read(ref reads);
        await Task.Delay(StepWarmUp);
        var readsBefore = (Interlocked.Read(ref reads) - before) / StepWarmUp.TotalSeconds;

        var deleted = 0L;
        var startReads = Interlocked.Read(ref reads);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            await using var delete = dataSource.CreateCommand($"SELECT \"{schema}\".cache_delete_expired($1)");
            delete.Parameters.Add(new NpgsqlParameter<int> { TypedValue = CleanupBatch });
            delete.CommandTimeout = 0;
            var count = (int)(await delete.ExecuteScalarAsync())!;
            if (count == 0)
            {
                break;
            }

            deleted += count;
        }

        var elapsed = clock.Elapsed;
        var readsDuring = (Interlocked.Read(ref reads) - startReads) / elapsed.TotalSeconds;
        await stop.CancelAsync();
        await reader;
        if (deleted != ExpiredRows)
        {
            throw new InvalidOperationException(Format($"The cleanup deleted {deleted:N0} rows, not the {ExpiredRows:N0} expired ones."));
        }

        Findings[$"{CleanupGroup}: cache_delete_expired"] = Format(
            $"{deleted:N0} rows deleted in {elapsed.TotalSeconds:F1} s; gets of live entries at 1 caller: {readsBefore:N0}/s before, {readsDuring:N0}/s during the cleanup ({readsDuring / readsBefore:F2} ×)");
        await using (var drop = dataSource.CreateCommand($"DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        {
            await drop.ExecuteNonQueryAsync();
        }

        return new Measurement(1, deleted / elapsed.TotalSeconds, 0, 0, 0);
    }

    private static string SessionSizedSchema(int sessions) => Format($"{Schema}_sessions_{sessions}");

    // The sized session tables' keys: the format of SessionKey, spread over the table by the same multiplicative hash.
    private static string SizedSessionKey(long i, int sessions) =>
        new Guid((int)((ulong)i * 11_400_714_819_323_198_485UL % (ulong)sessions), 0, 0, new byte[8]).ToString();

    // One session written by the store (its data and columns exactly as PgSessions writes them), then copied server-side
    // under every other key (SHA-256 of the key, as the store hashes it) with a fresh public id. Idle timeout 24 h and
    // touch interval 6 h, so no request of any round writes a touch: the figures are of reads only, as in the other
    // session scenarios.
    private static async Task EnsureSessionsLoadedAsync(int sessions)
    {
        if (!SessionSizesLoaded.Add(sessions))
        {
            return;
        }

        var schema = SessionSizedSchema(sessions);
        Progress($"loading {sessions:N0} sessions of 1 KiB into {schema}");
        await using var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        await using (var drop = dataSource.CreateCommand($"DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        {
            await drop.ExecuteNonQueryAsync();
        }

        await new PgSchemaInstaller(dataSource, schema, [PostgresSessionBackend.SchemaModule]).ApplyAsync();
        var (provider, dispose) = SessionServices(redis: false, schema: schema, touchInterval: TimeSpan.FromHours(6));
        provider.GetRequiredService<IHttpContextAccessor>().HttpContext = new DefaultHttpContext();
        await WriteNewSessionAsync(provider.GetRequiredService<ISessionStore>().Create(SizedSessionKey(0, sessions), TimeSpan.FromHours(24), TimeSpan.FromMinutes(1), () => true, isNewSessionKey: true));
        await dispose();

        await using (var copy = dataSource.CreateCommand(
            $"""
            INSERT INTO "{schema}".session (key_hash, session_id, tenant_id, user_id, created_at, last_seen_at, idle_timeout, absolute_expires_at, expires_at, version, data, client_ip, user_agent)
            SELECT sha256(convert_to(lpad(to_hex(g), 8, '0') || '-0000-0000-0000-000000000000', 'UTF8')), gen_random_uuid(),
                   s.tenant_id, s.user_id, s.created_at, s.last_seen_at, s.idle_timeout, s.absolute_expires_at, s.expires_at, s.version, s.data, s.client_ip, s.user_agent
            FROM "{schema}".session AS s, generate_series(1, $1 - 1) AS g
            """))
        {
            copy.Parameters.Add(new NpgsqlParameter<int> { TypedValue = sessions });
            copy.CommandTimeout = 0;
            Require(await copy.ExecuteNonQueryAsync() == sessions - 1, "The session copy did not insert every row.");
        }

        await SettleAsync(schema);
    }

    // Blocks of a schema's tables and indexes found in shared buffers, and those copied in from outside (the OS page
    // cache or the disk), from pg_statio: what says whether a step ran in shared buffers or out of them.
    private static async Task<(long Hit, long Read)> BlockReadsAsync(string schema)
    {
        await using var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        await using var command = dataSource.CreateCommand(
            """
            SELECT coalesce(sum(heap_blks_hit + coalesce(idx_blks_hit, 0) + coalesce(toast_blks_hit, 0)), 0)::bigint,
                   coalesce(sum(heap_blks_read + coalesce(idx_blks_read, 0) + coalesce(toast_blks_read, 0)), 0)::bigint
            FROM pg_statio_user_tables
            WHERE schemaname = $1
            """);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = schema });
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    // The share of the step's block reads served from shared buffers, as the scenario's finding (the last step's word).
    private static async Task ReportBlockReadsAsync(string scenario, string schema, (long Hit, long Read) before)
    {
        var after = await BlockReadsAsync(schema);
        var hit = after.Hit - before.Hit;
        var read = after.Read - before.Read;
        if (hit + read > 0)
        {
            Findings[scenario] = Format($"{100.0 * hit / (hit + read):F1} % of {hit + read:N0} block reads served from shared buffers, the rest copied in from the OS page cache (the last step measured)");
        }
    }

    // The queue behind a backlog. The jobs: one enqueued by PgQueue (its row exactly as EnqueueManyAsync writes it) and
    // copied server-side, then the table vacuumed and analyzed. Claim latency: single-job lease claims (PgQueue's SQL,
    // prepared) one after another, each timed, at the head of the backlog; they are deleted after. Drain: PgQueue's
    // workers (8) from the first handled job until half the backlog or 10,000 jobs were handled, whichever is fewer, so
    // the backlog stays deep all along. ops/s is that drain rate; p50/p95/p99 are of the single claims.
    private static async Task<Measurement> BacklogAsync(int backlog)
    {
        await ResetQueueAsync(redis: false);
        await using var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        using (var producer = QueueHost(redis: false, RedisPrefix, dataSource, o => o.RunWorkers = false, queue => queue.AddJob<NoOpJob>()))
        {
            var enqueued = await producer.Services.GetRequiredService<IJobQueue>().EnqueueManyAsync([new NoOpJob(0)]);
            Require(enqueued.Enqueued == 1, "The backlog's first job was not enqueued.");
        }

        var schema = $"\"{Schema}\"";
        await using (var copy = dataSource.CreateCommand(
            $"""
            INSERT INTO {schema}.job (queue, priority, state, run_at, attempt, max_attempts, lease, kind, payload, unique_key, enqueued_at, claimed_at, claimed_by, trace_parent, errors)
            SELECT j.queue, j.priority, j.state, j.run_at, j.attempt, j.max_attempts, j.lease, j.kind, j.payload, NULL, j.enqueued_at, NULL, NULL, NULL, NULL
            FROM {schema}.job AS j, generate_series(1, $1 - 1) AS g
            """))
        {
            copy.Parameters.Add(new NpgsqlParameter<int> { TypedValue = backlog });
            copy.CommandTimeout = 0;
            Require(await copy.ExecuteNonQueryAsync() == backlog - 1, "The backlog copy did not insert every job.");
        }

        await using (var vacuum = dataSource.CreateCommand($"VACUUM (ANALYZE) {schema}.job"))
        {
            vacuum.CommandTimeout = 0;
            await vacuum.ExecuteNonQueryAsync();
        }

        await using (var checkpoint = dataSource.CreateCommand("CHECKPOINT"))
        {
            checkpoint.CommandTimeout = 0;
            await checkpoint.ExecuteNonQueryAsync();
        }

        var claims = Math.Min(1_000, backlog / 4);
        var latencies = new long[claims];
        await using (var connection = await dataSource.OpenConnectionAsync())
        {
            await using var claim = new NpgsqlCommand(LeaseClaimSql(Schema), connection);
            claim.Parameters.Add(new NpgsqlParameter<string> { TypedValue = "default", NpgsqlDbType = NpgsqlDbType.Text });
            claim.Parameters.Add(new NpgsqlParameter<int> { TypedValue = 1, NpgsqlDbType = NpgsqlDbType.Integer });
            claim.Parameters.Add(new NpgsqlParameter<DateTime> { NpgsqlDbType = NpgsqlDbType.TimestampTz });
            claim.Parameters.Add(new NpgsqlParameter<DateTime> { NpgsqlDbType = NpgsqlDbType.TimestampTz });
            claim.Parameters.Add(new NpgsqlParameter<string> { TypedValue = "backlog", NpgsqlDbType = NpgsqlDbType.Text });
            await claim.PrepareAsync();

            // As PgQueue commits its claims by default (PgQueueOptions.DurableClaims off: synchronous_commit = off).
            await using (var asynchronous = new NpgsqlCommand("SET synchronous_commit = off", connection))
            {
                await asynchronous.ExecuteNonQueryAsync();
            }

            for (var c = -10; c < claims; c++)
            {
                var now = DateTime.UtcNow;
                ((NpgsqlParameter<DateTime>)claim.Parameters[2]).TypedValue = now;
                ((NpgsqlParameter<DateTime>)claim.Parameters[3]).TypedValue = now.AddHours(1);
                var started = Stopwatch.GetTimestamp();
                var rows = 0;
                await using (var reader = await claim.ExecuteReaderAsync())
                {
                    while (await reader.ReadAsync())
                    {
                        rows++;
                    }
                }

                // The first ten are a warm-up (plan, cache), not measured.
                if (c >= 0)
                {
                    latencies[c] = Stopwatch.GetTimestamp() - started;
                }

                Require(rows == 1, "A single lease claim behind the backlog claimed no job.");
            }

            await using var delete = new NpgsqlCommand($"DELETE FROM {schema}.job WHERE state = 1", connection);
            await delete.ExecuteNonQueryAsync();
        }

        Array.Sort(latencies);
        var target = Math.Min(10_000, backlog / 2);
        using var host = QueueHost(redis: false, RedisPrefix, dataSource, _ => { }, queue => queue.AddHandler<NoOpJob, NoOpJobHandler>());
        var counter = host.Services.GetRequiredService<JobCounter>();
        counter.Target = target;
        await host.StartAsync();
        await counter.WaitForAsync(target, DrainTimeout(target, jobsPerSecond: 100), "PgQueue drain behind a backlog");
        var elapsed = Stopwatch.GetElapsedTime(counter.FirstAt, counter.ReachedAt);
        await host.StopAsync();
        await ResetQueueAsync(redis: false);
        return new(DrainWorkers, target / elapsed.TotalSeconds, Percentile(latencies, 0.50), Percentile(latencies, 0.95), Percentile(latencies, 0.99));
    }

    // The tables of the size scenarios are big (about 1.1 GB per million entries): gone at the end of the run.
    private static async Task DropSizedSchemasAsync()
    {
        await using var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        foreach (var schema in SizesLoaded.Select(SizedSchema).Concat(SessionSizesLoaded.Select(SessionSizedSchema)))
        {
            await using var drop = dataSource.CreateCommand($"DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
            await drop.ExecuteNonQueryAsync();
        }
    }

    // What the size scenarios show, in words: the get from the smallest to the largest table at each concurrency, and
    // the cleanup's rate beside its effect on gets (its finding).
    private static List<KeyValuePair<string, string>> Growth(IReadOnlyList<PgFirst.Benchmarks.Report.LoadResult> results)
    {
        var growth = new List<KeyValuePair<string, string>>();
        var sized = results.Where(r => r.Group == SizeGroup).ToList();
        if (sized.Count > 0)
        {
            var smallest = Format($"PgCache, {Sizes.Min():N0} entries");
            var largest = Format($"PgCache, {Sizes.Max():N0} entries");
            var pairs = sized.Select(r => r.Callers).Distinct().Order()
                .Select(c => (c, sized.FirstOrDefault(r => r.Callers == c && r.Variant == smallest), sized.FirstOrDefault(r => r.Callers == c && r.Variant == largest)))
                .Where(p => p.Item2 is not null && p.Item3 is not null)
                .ToList();
            var shape = pairs.All(p => p.Item3!.OpsPerSecond / p.Item2!.OpsPerSecond >= 0.8) ? "Nearly flat" : "It grows";
            var parts = pairs
                .Select(p => Format($"{p.Item3!.OpsPerSecond / p.Item2!.OpsPerSecond:F2} × at {p.c} (p50 {p.Item2.P50:N0} → {p.Item3.P50:N0} µs)"))
                .ToList();
            if (parts.Count > 0)
            {
                growth.Add(new(
                    Format($"cache get, {Sizes.Min():N0} → {Sizes.Max():N0} entries"),
                    $"ops/s of the largest table ÷ the smallest: {string.Join(", ", parts)}. {shape}, and why: a get is one B-tree descent on (tenant_id, key_hash), one level deeper per ~300 × the rows, then one heap page; what grows is where the pages are. The small table stays in shared_buffers; a large one does not (about 1.1 GB per million entries against shared_buffers in the settings above; the share of block reads served from shared buffers is in “Correctness measured in this run”), so its gets copy pages from the OS page cache, which still holds them on this machine. A table larger than the machine's memory would read from disk and cost more."));
            }
        }

        if (SmallestToLargest(results, GetManySizeGroup, Format($"PgCache, {Sizes.Min():N0} entries"), Format($"PgCache, {Sizes.Max():N0} entries")) is { } many)
        {
            growth.Add(new(
                Format($"cache get-many(100), {Sizes.Min():N0} → {Sizes.Max():N0} entries"),
                $"ops/s of the largest table ÷ the smallest: {many.Text}. {many.Shape}, and why: one statement looks up 100 keys through the same index, so it pays 100 descents and 100 heap pages; in a small table they are the same few hot pages, in a large one 100 different pages, mostly outside shared_buffers (the share served from shared buffers is in “Correctness measured in this run”). The round trip and the plan are paid once either way."));
        }

        var backlog = results.Where(r => r.Group == BacklogGroup).OrderBy(r => r.Variant.Length).ThenBy(r => r.Variant, StringComparer.Ordinal).ToList();
        if (backlog.Count >= 2)
        {
            var first = backlog[0];
            var last = backlog[^1];
            var ratio = last.OpsPerSecond / first.OpsPerSecond;
            growth.Add(new(
                Format($"queue claim and drain, {Backlogs.Min():N0} → {Backlogs.Max():N0} jobs waiting"),
                Format($"single-claim p50 {first.P50:N0} → {last.P50:N0} µs (p99 {first.P99:N0} → {last.P99:N0} µs); drain {first.OpsPerSecond:N0} → {last.OpsPerSecond:N0} jobs/s ({ratio:F2} ×). ") +
                (ratio >= 0.8 && last.P50 <= first.P50 * 1.25 ? "Nearly flat" : "It grows") +
                ", and why: a claim reads the head of the partial claim index (queue, priority, run_at, id) WHERE state = 0, which holds only available jobs in claim order, so it touches the same few pages however deep the backlog is; what can grow is the dead index entries a drain leaves at the head until vacuum (the table's autovacuum starts at 1 % dead) and the depth of the B-tree (one level per ~300 ×)."));
        }

        if (SmallestToLargest(results, SessionSizeGroup, Format($"PgSessions, {SessionSizes.Min():N0} sessions"), Format($"PgSessions, {SessionSizes.Max():N0} sessions")) is { } sessions)
        {
            growth.Add(new(
                Format($"session read-only request, {SessionSizes.Min():N0} → {SessionSizes.Max():N0} sessions"),
                $"ops/s of the largest table ÷ the smallest: {sessions.Text}. {sessions.Shape}, and why: a load is one primary-key descent on key_hash (a SHA-256, so the keys are spread over the whole index, as real cookies are) and one heap page; what grows is where the pages are (the share served from shared buffers is in “Correctness measured in this run”), the same cost the cache get pays."));
        }

        if (results.FirstOrDefault(r => r.Group == CleanupGroup) is { } cleanup)
        {
            growth.Add(new(
                Format($"expiry cleanup, {ExpiredRows:N0} expired rows"),
                Format($"{cleanup.OpsPerSecond:N0} rows deleted a second in batches of {CleanupBatch:N0} (each batch walks the expires_at index from its oldest end and deletes by primary key), so the cost grows with the number of expired rows and not with the live ones; what it does to concurrent gets is in “Correctness measured in this run”.")));
        }

        return growth;
    }

    // A load group's largest variant ÷ its smallest at every concurrency, in words, or null when either is missing.
    private static (string Text, string Shape)? SmallestToLargest(IReadOnlyList<PgFirst.Benchmarks.Report.LoadResult> results, string group, string smallest, string largest)
    {
        var rows = results.Where(r => r.Group == group).ToList();
        var pairs = rows.Select(r => r.Callers).Distinct().Order()
            .Select(c => (c, Small: rows.FirstOrDefault(r => r.Callers == c && r.Variant == smallest), Large: rows.FirstOrDefault(r => r.Callers == c && r.Variant == largest)))
            .Where(p => p.Small is not null && p.Large is not null)
            .ToList();
        if (pairs.Count == 0)
        {
            return null;
        }

        var text = string.Join(", ", pairs.Select(p => Format($"{p.Large!.OpsPerSecond / p.Small!.OpsPerSecond:F2} × at {p.c} (p50 {p.Small.P50:N0} → {p.Large.P50:N0} µs)")));
        return (text, pairs.All(p => p.Large!.OpsPerSecond / p.Small!.OpsPerSecond >= 0.8) ? "Nearly flat" : "It grows");
    }

    private sealed partial class Step
    {
        // get-many of 100 keys spread over the whole table: the same multiplicative hash as the sized get.
        public static async Task<Step> SizedGetManyAsync(int entries)
        {
            await EnsureSizeLoadedAsync(entries);
            var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
            var cache = new PgDistributedCache(dataSource, new PgFirstOptions { SchemaName = SizedSchema(entries) }, new PgCacheOptions(), new PgTenantContext("default"), TimeProvider.System);
            string[] Keys(long i)
            {
                var keys = new string[100];
                for (var k = 0; k < keys.Length; k++)
                {
                    keys[k] = SizedKey((i * 100) + k, entries);
                }

                return keys;
            }

            var found = await cache.GetManyAsync(Keys(0));
            if (found.Count != 100)
            {
                throw new InvalidOperationException(Format($"The {entries:N0}-entry table is missing keys of a get-many."));
            }

            var before = await BlockReadsAsync(SizedSchema(entries));
            return new Step(i => cache.GetManyAsync(Keys(i)), async () =>
            {
                await ReportBlockReadsAsync(Format($"{GetManySizeGroup}: PgCache, {entries:N0} entries"), SizedSchema(entries), before);
                cache.Dispose();
                await dataSource.DisposeAsync();
            });
        }

        // The read-only request of the session scenarios (load, read the cart, commit with nothing changed) on a sized table.
        public static async Task<Step> SizedSessionAsync(int sessions)
        {
            await EnsureSessionsLoadedAsync(sessions);
            var (provider, dispose) = SessionServices(redis: false, schema: SessionSizedSchema(sessions), touchInterval: TimeSpan.FromHours(6));
            var store = provider.GetRequiredService<ISessionStore>();
            await RequestAsync(store, SizedSessionKey(sessions - 1, sessions), modify: false);
            var before = await BlockReadsAsync(SessionSizedSchema(sessions));
            return new Step(i => RequestAsync(store, SizedSessionKey(i, sessions), modify: false), async () =>
            {
                await ReportBlockReadsAsync(Format($"{SessionSizeGroup}: PgSessions, {sessions:N0} sessions"), SessionSizedSchema(sessions), before);
                await dispose();
            });
        }

        public static async Task<Step> SizedGetAsync(int entries)
        {
            await EnsureSizeLoadedAsync(entries);
            var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
            var cache = new PgDistributedCache(dataSource, new PgFirstOptions { SchemaName = SizedSchema(entries) }, new PgCacheOptions(), new PgTenantContext("default"), TimeProvider.System);
            if (await cache.GetAsync(SizedKey(entries - 1, entries)) is null)
            {
                throw new InvalidOperationException(Format($"The {entries:N0}-entry table is missing its keys."));
            }

            var before = await BlockReadsAsync(SizedSchema(entries));
            return new Step(i => cache.GetAsync(SizedKey(i, entries)), async () =>
            {
                await ReportBlockReadsAsync(Format($"{SizeGroup}: PgCache, {entries:N0} entries"), SizedSchema(entries), before);
                cache.Dispose();
                await dataSource.DisposeAsync();
            });
        }
    }
}
