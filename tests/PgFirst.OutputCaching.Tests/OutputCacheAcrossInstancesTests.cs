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

    [Fact]
    public async Task ConcurrentRequestsForOneColdEntry_RenderItOnce()
    {
        var a = await StartAsync();
        var client = a.CreateClient();

        var bodies = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => client.GetStringAsync("/catalog", Ct)));

        Assert.Single(bodies.Distinct());
        Assert.Equal(1, Volatile.Read(ref _rendered));
    }

    private async Task<TestServer> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        var dataSource = _schema.Track(server.CreateDataSource());
        builder.Services.AddSingleton<IPgDistributedCache>(new PgDistributedCache(dataSource, _schema.Options, new PgCacheOptions(), new PgTenantContext("default"), TimeProvider.System));
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
        return app.GetTestServer();
    }
}
