using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.OutputCaching;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using PgCache;
using PgFirst.Testing;

namespace PgFirst.OutputCaching.Tests;

// Two app instances (hosts with their own data sources) sharing one schema, with AddPgOutputCache as an app wires it.
[Trait("Category", "Pooler")]
public sealed class OutputCacheAcrossInstancesTests(PostgresServer server) : IAsyncLifetime
{
    private readonly PostgresSchema _schema = new(server);
    private readonly List<IHost> _hosts = [];
    private readonly List<PgDistributedCache> _caches = [];
    private int _rendered;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync() => await _schema.ApplyAsync([PgDistributedCache.SchemaModule], Ct);

    public async ValueTask DisposeAsync()
    {
        foreach (var host in _hosts)
        {
            await host.StopAsync(Ct);
            host.Dispose();
        }

        foreach (var cache in _caches)
        {
            await cache.DisposeAsync(); // registered as instances, so not the container's to dispose
        }

        await _schema.DisposeAsync();
    }

    [Fact]
    public async Task AResponseCachedByOneInstance_IsServedByTheOther_UntilItsTagIsEvictedThere()
    {
        var a = await StartAsync();
        var b = await StartAsync();

        var first = await a.CreateClient().GetStringAsync("/catalog", Ct);
        Assert.Equal(first, await b.CreateClient().GetStringAsync("/catalog", Ct));
        Assert.Equal(1, Volatile.Read(ref _rendered));

        await a.Services.GetRequiredService<IOutputCacheStore>().EvictByTagAsync("catalog", Ct);

        var fresh = await b.CreateClient().GetStringAsync("/catalog", Ct);
        Assert.NotEqual(first, fresh);
        Assert.Equal(2, Volatile.Read(ref _rendered));
        Assert.Equal(fresh, await a.CreateClient().GetStringAsync("/catalog", Ct));
    }

    // With PgCache's near cache each instance serves the page from memory; an eviction by tag on one instance must still
    // reach the other's copy (through the invalidation), or it would serve the stale page for the copy's whole local
    // lifetime (five minutes by default).
    [Fact]
    public async Task WithTheNearCache_AnEvictionOnOneInstance_DropsTheOthersCopy()
    {
        var a = await StartAsync(near: true);
        var b = await StartAsync(near: true);
        var nearB = NearCache(b);

        // A near cache keeps copies only once its listener is proven current; until then every read goes to the store.
        await NearCache(a).WaitUntilServingAsync(Ct).WaitAsync(TimeSpan.FromSeconds(30), Ct);
        await nearB.WaitUntilServingAsync(Ct).WaitAsync(TimeSpan.FromSeconds(30), Ct);

        var first = await a.CreateClient().GetStringAsync("/catalog", Ct);
        Assert.Equal(first, await b.CreateClient().GetStringAsync("/catalog", Ct));
        Assert.Equal(1, Volatile.Read(ref _rendered));
        Assert.True(nearB.Count > 0, "b holds no near copy: the test would not test the near cache.");
        Assert.Equal(first, await b.CreateClient().GetStringAsync("/catalog", Ct));

        await a.Services.GetRequiredService<IOutputCacheStore>().EvictByTagAsync("catalog", Ct);

        // The invalidation is asynchronous (a NOTIFY b's listener applies); the near cache's rule bounds it by
        // MaxStaleness (2 s by default). Wait well past that before calling the copy stale.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        string served;
        do
        {
            served = await b.CreateClient().GetStringAsync("/catalog", Ct);
            if (served != first)
            {
                break;
            }

            await Task.Delay(50, Ct);
        }
        while (DateTime.UtcNow < deadline);

        Assert.NotEqual(first, served);
        Assert.Equal(2, Volatile.Read(ref _rendered));
    }

    [Fact]
    public async Task ConcurrentRequestsForOneColdEntry_RenderItOnce()
    {
        var a = await StartAsync();
        var client = a.CreateClient();

        var bodies = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => client.GetStringAsync("/catalog", Ct)));

        Assert.Single(bodies.Distinct());
        Assert.Equal(1, Volatile.Read(ref _rendered));
    }

    private static PgNearCache NearCache(TestServer server) =>
        ((PgDistributedCache)server.Services.GetRequiredService<IPgDistributedCache>()).NearCache!;

    private async Task<TestServer> StartAsync(bool near = false)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        var dataSource = _schema.Track(server.CreateDataSource());
        var cacheOptions = new PgCacheOptions();
        var schemaOptions = _schema.Options;
        if (near)
        {
            // Behind a transaction pooler the near cache listens on the direct connection, as an app configures it.
            cacheOptions.NearCache.Enabled = true;
            schemaOptions.ListenConnectionString ??= server.DirectConnectionString;
        }

        var cache = new PgDistributedCache(dataSource, schemaOptions, cacheOptions, new PgTenantContext("default"), TimeProvider.System);
        _caches.Add(cache);
        builder.Services.AddSingleton<IPgDistributedCache>(cache);
        builder.Services.AddPgOutputCache(o => o.AddBasePolicy(p => p.Expire(TimeSpan.FromMinutes(5)).Tag("catalog")));
        var app = builder.Build();
        app.UseOutputCache();
        app.MapGet("/catalog", async () =>
        {
            // Slow enough that concurrent requests overlap.
            await Task.Delay(200);
            return $"rendered {Interlocked.Increment(ref _rendered)} at {Guid.NewGuid():N}";
        }).CacheOutput();
        await app.StartAsync(Ct);
        _hosts.Add(app);
        if (near)
        {
            await cache.NearCache!.WaitUntilServingAsync(Ct).WaitAsync(TimeSpan.FromSeconds(30), Ct);
        }

        return app.GetTestServer();
    }
}
