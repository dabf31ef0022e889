using System.Diagnostics;
using Npgsql;
using PgCache;
using PgFirst.Core;

namespace PgFirst.Benchmarks;

// Cost as the work grows (issue 18): the same get against tables of different sizes, and the expiry cleanup of a
// large number of expired rows with gets running beside it.
internal static partial class LoadRunner
{
    internal const string SizeGroup = "cache get 1 KiB, by entries in the table";
    private static int[] Sizes = [10_000, 1_000_000];
    private static int ExpiredRows = 1_000_000;
    private static readonly HashSet<int> SizesLoaded = [];
    private const int CleanupBatch = 5_000;

    private static string CleanupGroup => Format($"cache expiry cleanup, {ExpiredRows:N0} expired rows beside 10,000 live ones");

    private static IEnumerable<Scenario> SizeScenarios() =>
    [
        .. Sizes.Select(n => Load(Format($"{SizeGroup}: PgCache, {n:N0} entries"), () => Step.SizedGetAsync(n))),
        Batch($"{CleanupGroup}: cache_delete_expired({CleanupBatch:N0}) until none is left", CleanupAsync),
    ];

    private static string SizedSchema(int entries) => Format($"{Schema}_size_{entries}");

    // Keys spread over the whole table (a multiplicative hash of the step's counter), so a big table is read across all
    // its pages, as an app's gets would be, rather than through a hot prefix that stays in shared buffers.
    private static string SizedKey(long i, int entries) => "product:" + ((ulong)i * 11_400_714_819_323_198_485UL % (ulong)entries).ToString(System.Globalization.CultureInfo.InvariantCulture);

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

    // The tables of the size scenarios are big (about 1.1 GB per million entries): gone at the end of the run.
    private static async Task DropSizedSchemasAsync()
    {
        await using var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        foreach (var entries in SizesLoaded)
        {
            await using var drop = dataSource.CreateCommand($"DROP SCHEMA IF EXISTS \"{SizedSchema(entries)}\" CASCADE");
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
                    $"ops/s of the largest table ÷ the smallest: {string.Join(", ", parts)}. {shape}, and why: a get is one B-tree descent on (tenant_id, key_hash), one level deeper per ~300 × the rows, then one heap page; what grows is where the pages are. The small table stays in shared_buffers; the large one does not (about 1.1 GB per million entries against shared_buffers in the settings above), so most gets copy a page from the OS page cache, which still holds it on this machine. A table larger than the machine's memory would read from disk and cost more."));
            }
        }

        if (results.FirstOrDefault(r => r.Group == CleanupGroup) is { } cleanup)
        {
            growth.Add(new(
                Format($"expiry cleanup, {ExpiredRows:N0} expired rows"),
                Format($"{cleanup.OpsPerSecond:N0} rows deleted a second in batches of {CleanupBatch:N0} (each batch walks the expires_at index from its oldest end and deletes by primary key), so the cost grows with the number of expired rows and not with the live ones; what it does to concurrent gets is in “Correctness measured in this run”.")));
        }

        return growth;
    }

    private sealed partial class Step
    {
        public static async Task<Step> SizedGetAsync(int entries)
        {
            await EnsureSizeLoadedAsync(entries);
            var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
            var cache = new PgDistributedCache(dataSource, new PgFirstOptions { SchemaName = SizedSchema(entries) }, new PgCacheOptions(), new PgTenantContext("default"), TimeProvider.System);
            if (await cache.GetAsync(SizedKey(entries - 1, entries)) is null)
            {
                throw new InvalidOperationException(Format($"The {entries:N0}-entry table is missing its keys."));
            }

            return new Step(i => cache.GetAsync(SizedKey(i, entries)), async () =>
            {
                cache.Dispose();
                await dataSource.DisposeAsync();
            });
        }
    }
}
