using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Time.Testing;
using PgFirst.Testing;
using System.Diagnostics.Metrics;

namespace PgCache.Tests;

// PostgreSQL-only behaviour: what the schema and the statements do on the server.
public class PgDistributedCacheTests(PostgresServer server) : PostgresTest(server)
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 23, 12, 0, 0, TimeSpan.Zero));

    private async Task<PgDistributedCache> CreateAsync(PgCacheOptions? options = null, IMeterFactory? meters = null, bool install = true)
    {
        if (install)
        {
            await new PgSchemaInstaller(DataSource, Schema, [PgDistributedCache.SchemaModuleFor(options?.Durability ?? PgCacheDurability.Unlogged)])
                .ApplyAsync(CancellationToken);
        }

        return new PgDistributedCache(DataSource, new PgFirstOptions { SchemaName = Schema }, options ?? new PgCacheOptions(), new PgTenantContext("default"), _time, meters);
    }

    private Task<uint> RowVersionAsync(string key) =>
        ScalarAsync<uint>($"SELECT xmin FROM \"{Schema}\".cache_entry WHERE key = $1", key);

    [Fact]
    public async Task GetAsync_EntryWithoutSlidingExpiration_IsNeverWrittenOnRead()
    {
        var cache = await CreateAsync();
        await cache.SetAsync("k", [1], new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromHours(1) }, CancellationToken);
        var before = await RowVersionAsync("k");

        for (var i = 0; i < 5; i++)
        {
            _time.Advance(TimeSpan.FromMinutes(5));
            Assert.NotNull(await cache.GetAsync("k", CancellationToken));
        }

        Assert.Equal(before, await RowVersionAsync("k"));
    }

    [Fact]
    public async Task GetAsync_SlidingEntry_IsWrittenAtMostOncePerRefreshStep()
    {
        var cache = await CreateAsync(new PgCacheOptions { SlidingRefreshGranularity = TimeSpan.FromMinutes(1) });
        await cache.SetAsync("k", [1], new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(20) }, CancellationToken);
        var first = await RowVersionAsync("k");

        // Many reads within one step: no write.
        for (var i = 0; i < 10; i++)
        {
            _time.Advance(TimeSpan.FromSeconds(5));
            await cache.GetAsync("k", CancellationToken);
        }

        Assert.Equal(first, await RowVersionAsync("k"));

        // Past one step (1 min, the smaller of the granularity and 20 min / 10): one write, then quiet again.
        _time.Advance(TimeSpan.FromSeconds(15));
        await cache.GetAsync("k", CancellationToken);
        var second = await RowVersionAsync("k");
        Assert.NotEqual(first, second);
        await cache.GetAsync("k", CancellationToken);
        Assert.Equal(second, await RowVersionAsync("k"));
        Assert.Equal(
            _time.GetUtcNow() + TimeSpan.FromMinutes(20),
            await ScalarAsync<DateTime>($"SELECT expires_at FROM \"{Schema}\".cache_entry WHERE key = 'k'"));
    }

    [Fact]
    public async Task GetManyAsync_WritesOnlySlidingHitsThatAreDue_OncePerRefreshStep()
    {
        var cache = await CreateAsync(new PgCacheOptions { SlidingRefreshGranularity = TimeSpan.FromMinutes(1) });
        await cache.SetAsync("sliding", [1], new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(20) }, CancellationToken);
        await cache.SetAsync("fixed", [2], new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromHours(1) }, CancellationToken);
        var sliding = await RowVersionAsync("sliding");
        var fixedVersion = await RowVersionAsync("fixed");

        for (var i = 0; i < 10; i++)
        {
            _time.Advance(TimeSpan.FromSeconds(5));
            Assert.Equal(2, (await cache.GetManyAsync(["sliding", "fixed"], CancellationToken)).Count);
        }

        Assert.Equal(sliding, await RowVersionAsync("sliding"));
        _time.Advance(TimeSpan.FromSeconds(15));
        await cache.GetManyAsync(["sliding", "fixed", "missing"], CancellationToken);
        var slid = await RowVersionAsync("sliding");
        Assert.NotEqual(sliding, slid);
        await cache.GetManyAsync(["sliding", "fixed"], CancellationToken);
        Assert.Equal(slid, await RowVersionAsync("sliding"));
        Assert.Equal(fixedVersion, await RowVersionAsync("fixed"));
        Assert.Equal(
            _time.GetUtcNow() + TimeSpan.FromMinutes(20),
            await ScalarAsync<DateTime>($"SELECT expires_at FROM \"{Schema}\".cache_entry WHERE key = 'sliding'"));
    }

    [Fact]
    public async Task Durability_DefaultIsUnlogged_LoggedOnRequest()
    {
        await CreateAsync();
        Assert.Equal('u', await ScalarAsync<char>("SELECT relpersistence FROM pg_class WHERE oid = to_regclass($1)", $"\"{Schema}\".cache_entry"));

        await ExecuteAsync($"DROP SCHEMA \"{Schema}\" CASCADE");
        await CreateAsync(new PgCacheOptions { Durability = PgCacheDurability.Logged });
        Assert.Equal('p', await ScalarAsync<char>("SELECT relpersistence FROM pg_class WHERE oid = to_regclass($1)", $"\"{Schema}\".cache_entry"));
    }

    [Fact]
    public async Task Cleanup_ByTheMaintenanceRunner_RemovesOnlyExpiredEntriesInBoundedBatches()
    {
        var cache = await CreateAsync();
        var expiring = Enumerable.Range(0, 2500).Select(i => new KeyValuePair<string, byte[]>($"old{i}", [1]));
        await cache.SetManyAsync(expiring, new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(1) }, CancellationToken);
        await cache.SetAsync("sliding", [2], new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(30) }, CancellationToken);
        await cache.SetAsync("forever", [3], new DistributedCacheEntryOptions(), CancellationToken);
        _time.Advance(TimeSpan.FromMinutes(2));
        var options = new PgFirstOptions { SchemaName = Schema };
        options.Maintenance.BatchSize = 1000;
        options.Maintenance.MaxBatchesPerRun = 2;
        var runner = new PgMaintenanceRunner(DataSource, options, [PgDistributedCache.CleanupTask], _time);

        var first = Assert.Single((await runner.RunOnceAsync(CancellationToken)).Tasks);
        _time.Advance(TimeSpan.FromMinutes(1));
        var second = Assert.Single((await runner.RunOnceAsync(CancellationToken)).Tasks);

        Assert.Equal((2000L, 2), (first.RowsRemoved, first.Batches));
        Assert.Equal(500L, second.RowsRemoved);
        Assert.Equal(2L, await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".cache_entry"));
        Assert.NotNull(await cache.GetAsync("sliding", CancellationToken));
        Assert.NotNull(await cache.GetAsync("forever", CancellationToken));
    }

    [Fact]
    public async Task CleanupFunction_CallableByHand_AsFromPgCron()
    {
        var cache = await CreateAsync();
        await cache.SetAsync("k", [1], new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(1) }, CancellationToken);

        // The entry expires on the app clock (2026); the database's now() is what pg_cron would pass.
        Assert.Equal(0, await ScalarAsync<int>($"SELECT \"{Schema}\".cache_delete_expired(100, '2026-11-23 12:00:30+00')"));
        Assert.Equal(1, await ScalarAsync<int>($"SELECT \"{Schema}\".cache_delete_expired(100, '2026-11-23 12:01:00+00')"));
    }

    [Fact]
    public async Task GetAsync_TableMissing_ThrowsErrorNamingTheScript()
    {
        var cache = await CreateAsync(install: false);

        var error = await Assert.ThrowsAsync<PgFirstSchemaException>(() => cache.GetAsync("k", CancellationToken));

        Assert.Contains("sql/pgcache/001_cache_entry.sql", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Operations_AreCountedByResult()
    {
        await using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = services.GetRequiredService<IMeterFactory>();
        using var operations = new MetricCollector<long>(meters, "PgCache", "pgcache.operations");
        using var bytes = new MetricCollector<long>(meters, "PgCache", "pgcache.bytes");
        var cache = await CreateAsync(meters: meters);

        await cache.SetAsync("k", new byte[100], new DistributedCacheEntryOptions(), CancellationToken);
        await cache.GetAsync("k", CancellationToken);
        await cache.GetAsync("missing", CancellationToken);

        var results = operations.GetMeasurementSnapshot().Select(m => $"{m.Tags["pgcache.operation"]}:{m.Tags["pgcache.result"]}").ToList();
        Assert.Equal(["set:ok", "get:hit", "get:miss"], results);
        Assert.All(operations.GetMeasurementSnapshot(), m => Assert.Equal("postgresql", m.Tags[PgFirstMetricNames.BackendTag]));
        Assert.Equal(200, bytes.GetMeasurementSnapshot().Sum(m => m.Value));
    }

    [Fact]
    public async Task SetAsync_OperationTimeout_IsHonouredOnTheServer()
    {
        var cache = await CreateAsync(new PgCacheOptions { OperationTimeout = TimeSpan.FromSeconds(1) });
        await cache.SetAsync("k", [1], new DistributedCacheEntryOptions(), CancellationToken);
        await using var blocker = await DataSource.OpenConnectionAsync(CancellationToken);
        await using var transaction = await blocker.BeginTransactionAsync(CancellationToken);
        await using (var lockRow = new Npgsql.NpgsqlCommand($"SELECT 1 FROM \"{Schema}\".cache_entry WHERE key = 'k' FOR UPDATE", blocker, transaction))
        {
            await lockRow.ExecuteNonQueryAsync(CancellationToken);
        }

        var error = await Assert.ThrowsAsync<PgCacheException>(() => cache.SetAsync("k", [2], new DistributedCacheEntryOptions(), CancellationToken));

        Assert.Equal("set", error.Operation);
        await transaction.RollbackAsync(CancellationToken);
        Assert.Equal([1], await cache.GetAsync("k", CancellationToken));
    }

    [Fact]
    public async Task GetAsync_Cancelled_ThrowsOperationCanceled()
    {
        var cache = await CreateAsync();
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cache.GetAsync("k", cancelled.Token));
    }
}
