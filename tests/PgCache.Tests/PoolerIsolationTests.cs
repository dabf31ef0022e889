using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.Caching.Distributed;
using Npgsql;
using PgFirst.Testing;

namespace PgCache.Tests;

// Issue 15: two apps on different schemas behind one PgBouncer in pool_mode = transaction. Npgsql names prepared
// statements _p1, _p2, ... per physical connection; the pooler hands that server connection to the other app, whose
// _p1 then runs there. Measured before the fix: 26000, 08P01, and one store reading the other store's schema.
[Trait("Category", "Pooler")]
public sealed class PoolerIsolationTests(PostgresServer server) : IAsyncLifetime
{
    private const int Callers = 8;
    private const int Rounds = 150;
    private const int Keys = 16;
    private readonly PostgresSchema _a = new(server);
    private readonly PostgresSchema _b = new(server);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        await _a.ApplyAsync([PgDistributedCache.SchemaModule], Ct);
        await _b.ApplyAsync([PgDistributedCache.SchemaModule], Ct);
    }

    public async ValueTask DisposeAsync()
    {
        await _a.DisposeAsync();
        await _b.DisposeAsync();
    }

    [Fact]
    public async Task TwoAppsOnOnePooler_TransactionMode_NeverRunEachOthersStatements()
    {
        var faults = await RunTwoAppsAsync(PgPoolerMode.Transaction);

        Assert.True(faults.IsEmpty, $"{faults.Count} faults, first: {faults.FirstOrDefault()}");
    }

    [Fact]
    public async Task TwoAppsOnOnePooler_WithoutTheSetting_FailWithAnErrorNamingIt()
    {
        // What every store did before the setting existed: prepare, and let the pooler mix the names up.
        var faults = await RunTwoAppsAsync(PgPoolerMode.None);

        Assert.False(faults.IsEmpty, "Prepared statements behind a transaction pooler went unnoticed.");
        Assert.True(
            faults.Any(f => f is PgFirstPoolerException p && p.Message.Contains("PgFirst:Pooler=Transaction", StringComparison.Ordinal)),
            "No fault named the setting: " + string.Join(" | ", faults.Select(f => f.GetType().Name + ": " + f.Message).Distinct().Take(5)));
    }

    [Theory]
    [InlineData("Max Auto Prepare=10", "Max Auto Prepare")]
    [InlineData("No Reset On Close=false", "No Reset On Close=true")]
    public void TransactionMode_UnsafeDataSource_IsRefusedBeforeAnyIo(string setting, string named)
    {
        using var dataSource = NpgsqlDataSource.Create(server.PoolerConnectionString + ";" + setting);
        var options = _a.Options;
        options.Pooler = PgPoolerMode.Transaction;

        var error = Assert.Throws<PgFirstPoolerException>(() => new PgDistributedCache(dataSource, options, new PgCacheOptions(), new PgTenantContext("default"), TimeProvider.System));

        Assert.Contains(named, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TransactionMode_SafeDataSource_IsAccepted()
    {
        using var dataSource = NpgsqlDataSource.Create(server.PoolerConnectionString);
        var options = _a.Options;
        options.Pooler = PgPoolerMode.Transaction;

        Assert.Null(Record.Exception(() => new PgDistributedCache(dataSource, options, new PgCacheOptions(), new PgTenantContext("default"), TimeProvider.System).Dispose()));
    }

    // Each app writes values that carry its own name and checks every value it reads back; a value of the other app,
    // or a pooler error, is a fault. Errors other than the pooler's are faults too.
    private async Task<ConcurrentQueue<Exception>> RunTwoAppsAsync(PgPoolerMode mode)
    {
        var faults = new ConcurrentQueue<Exception>();
        var apps = new[] { ("A", _a), ("B", _b) };
        var workers = new List<Task>();
        foreach (var (name, schema) in apps)
        {
            // Without the setting, the data source is the plain one an app would have (Npgsql's defaults).
            var dataSource = schema.Track(NpgsqlDataSource.Create(
                mode == PgPoolerMode.None ? server.PoolerConnectionString + ";No Reset On Close=false" : server.PoolerConnectionString));
            var options = schema.Options;
            options.Pooler = mode;
            var cache = new PgDistributedCache(dataSource, options, new PgCacheOptions(), new PgTenantContext("default"), TimeProvider.System);
            for (var caller = 0; caller < Callers; caller++)
            {
                var seed = caller;
                workers.Add(Task.Run(() => RunCallerAsync(cache, name, seed, faults), Ct));
            }
        }

        await Task.WhenAll(workers);
        return faults;
    }

    private static async Task RunCallerAsync(PgDistributedCache cache, string app, int seed, ConcurrentQueue<Exception> faults)
    {
        var random = new Random(seed);
        var entry = new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(5) };
        for (var i = 0; i < Rounds && faults.Count < 20; i++)
        {
            var key = "k" + random.Next(Keys);
            try
            {
                await cache.SetAsync(key, Encoding.UTF8.GetBytes($"{app}:{i}"), entry, Ct);
                var value = await cache.GetAsync("k" + random.Next(Keys), Ct);
                if (value is not null && !Encoding.UTF8.GetString(value).StartsWith(app + ":", StringComparison.Ordinal))
                {
                    faults.Enqueue(new InvalidOperationException($"App {app} read the other app's value '{Encoding.UTF8.GetString(value)}'."));
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                faults.Enqueue(ex);
            }
        }
    }
}
