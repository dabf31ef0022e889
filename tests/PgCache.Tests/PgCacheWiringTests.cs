using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using PgFirst.Testing;

namespace PgCache.Tests;

// PgCache behind the framework's own consumers: AddSession() and HybridCache, wired only through DI.
public class PgCacheWiringTests(PostgresServer server) : PostgresTest(server)
{
    private void AddPgFirst(IServiceCollection services)
    {
        services.AddSingleton(DataSource);
        services.AddPgFirst(o =>
        {
            o.SchemaName = Schema;
            o.ApplySchemaOnStartup = true;
        });
        services.AddPgCache();
    }

    [Fact]
    public async Task AddPgCache_ResolvesOneInstanceForEveryCacheAbstraction()
    {
        var services = new ServiceCollection();
        services.AddDistributedMemoryCache();
        AddPgFirst(services);
        await using var provider = services.BuildServiceProvider();

        var cache = provider.GetRequiredService<IDistributedCache>();

        Assert.IsType<PgDistributedCache>(cache);
        Assert.Same(cache, provider.GetRequiredService<IBufferDistributedCache>());
        Assert.Same(cache, provider.GetRequiredService<IPgDistributedCache>());
        Assert.Contains(provider.GetServices<PgSchemaModule>(), m => m.Name == "pgcache");
        Assert.Contains(provider.GetServices<PgMaintenanceTask>(), t => t.Name == "pgcache.cache_delete_expired");
    }

    [Fact]
    public async Task AddPgCache_DatabaseDownWhenResolved_ResolvesThenRecoversWhenItComesBack()
    {
        await new PgSchemaInstaller(DataSource, Schema, [PgDistributedCache.SchemaModule]).ApplyAsync(CancellationToken);
        var (host, port) = Server.Endpoint;
        await using var proxy = new TcpProxy(host, port);
        proxy.GoDown();
        var services = new ServiceCollection();
        services.AddSingleton(CreateDataSourceThrough(proxy));
        services.AddPgFirst(o => o.SchemaName = Schema);
        services.AddPgCache();
        await using var provider = services.BuildServiceProvider();

        var cache = provider.GetRequiredService<IDistributedCache>();
        await Assert.ThrowsAsync<PgCacheException>(() => cache.GetAsync("k", CancellationToken));

        proxy.ComeBack();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try
            {
                await cache.SetAsync("k", [7], new DistributedCacheEntryOptions(), CancellationToken);
                break;
            }
            catch (PgCacheException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(200, CancellationToken);
            }
        }

        Assert.Equal([7], await cache.GetAsync("k", CancellationToken));
    }

    [Fact]
    public async Task AddPgCache_InvalidOptions_FailAtStartup()
    {
        var builder = Host.CreateApplicationBuilder();
        AddPgFirst(builder.Services);
        builder.Services.AddPgCache(o => o.OperationTimeout = TimeSpan.Zero);
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(CancellationToken));

        Assert.Contains("PgCache:OperationTimeout", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AddPgCache_NearCacheFromConfiguration_ServesNearHits()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["PgCache:NearCache:Enabled"] = "true",
            ["PgCache:NearCache:MaxEntries"] = "500",
            ["PgCache:NearCache:MaxStaleness"] = "00:00:03",
        });
        builder.Services.AddSingleton(DataSource);
        builder.Services.AddPgFirst(o =>
        {
            o.SchemaName = Schema;
            o.ApplySchemaOnStartup = true;
            Server.ConfigurePgFirst(o);
        });
        builder.Services.AddPgCache(builder.Configuration.GetSection("PgCache"));
        using var host = builder.Build();
        await host.StartAsync(CancellationToken);
        var cache = (PgDistributedCache)host.Services.GetRequiredService<IDistributedCache>();
        var options = host.Services.GetRequiredService<IOptions<PgCacheOptions>>().Value;

        Assert.True(options.NearCache.Enabled);
        Assert.Equal(500, options.NearCache.MaxEntries);
        Assert.Equal(TimeSpan.FromSeconds(3), options.NearCache.MaxStaleness);
        await cache.NearCache!.WaitUntilServingAsync(CancellationToken).WaitAsync(TimeSpan.FromSeconds(20), CancellationToken);
        await cache.SetStringAsync("wired", "near", CancellationToken);
        Assert.Equal("near", await cache.GetStringAsync("wired", CancellationToken));
        Assert.True(cache.NearCache.Contains("default", "wired"));
        await ExecuteAsync($"DELETE FROM \"{Schema}\".cache_entry");
        Assert.Equal("near", await cache.GetStringAsync("wired", CancellationToken));
        await host.StopAsync(CancellationToken);
    }

    [Fact]
    public async Task AddPgCache_NearCacheBehindATransactionPoolerWithoutAListenConnection_FailsAtStartup()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton(DataSource);
        builder.Services.AddPgFirst(o =>
        {
            o.SchemaName = Schema;
            o.Pooler = PgPoolerMode.Transaction;
            o.ListenConnectionString = null;
        });
        builder.Services.AddPgCache(o => o.NearCache.Enabled = true);
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(CancellationToken));

        Assert.Contains("PgFirst:ListenConnectionString", error.Message, StringComparison.Ordinal);
        var direct = Assert.Throws<PgFirstPoolerException>(() => new PgDistributedCache(
            CreateDataSource(b =>
            {
                b.NoResetOnClose = true;
                b.MaxAutoPrepare = 0;
            }),
            new PgFirstOptions { SchemaName = Schema, Pooler = PgPoolerMode.Transaction },
            new PgCacheOptions { NearCache = { Enabled = true } },
            new PgTenantContext("default"),
            TimeProvider.System));
        Assert.Contains("ListenConnectionString", direct.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("MaxEntries", "0")]
    [InlineData("MaxBytes", "10")]
    [InlineData("MaxValueBytes", "0")]
    [InlineData("MaxLocalLifetime", "00:00:00")]
    [InlineData("MaxStaleness", "00:00:00.010")]
    public async Task AddPgCache_InvalidNearCacheOptions_FailAtStartupNamingTheSetting(string setting, string value)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["PgCache:NearCache:" + setting] = value });
        builder.Services.AddSingleton(DataSource);
        builder.Services.AddPgFirst(o => o.SchemaName = Schema);
        builder.Services.AddPgCache(builder.Configuration.GetSection("PgCache"));
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(CancellationToken));

        Assert.Contains("PgCache:NearCache:" + setting, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AddPgCache_RedisBackendWithoutRedisPackage_ExplainsWhatToAdd()
    {
        var services = new ServiceCollection();
        AddPgFirst(services);
        services.Configure<PgFirstOptions>(o => o.CacheBackend = PgFirstBackend.Redis);
        await using var provider = services.BuildServiceProvider();

        var error = Assert.Throws<InvalidOperationException>(() => provider.GetRequiredService<IDistributedCache>());

        Assert.Contains("AddRedis", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HealthCheck_ReportsTheCacheHealthyOnceTheSchemaExists()
    {
        var builder = Host.CreateApplicationBuilder();
        AddPgFirst(builder.Services);
        builder.Services.AddHealthChecks().AddPgCache();
        using var host = builder.Build();
        var health = host.Services.GetRequiredService<HealthCheckService>();

        Assert.Equal(HealthStatus.Unhealthy, (await health.CheckHealthAsync(CancellationToken)).Status);
        await host.StartAsync(CancellationToken);
        Assert.Equal(HealthStatus.Healthy, (await health.CheckHealthAsync(CancellationToken)).Status);
        await host.StopAsync(CancellationToken);
    }

    [Fact]
    public async Task AddSession_OverPgCache_KeepsSessionDataAcrossRequests()
    {
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseTestServer();
        AddPgFirst(builder.Services);
        builder.Services.AddSession();
        await using var app = builder.Build();
        app.UseSession();
        app.MapPost("/cart/{item}", async (HttpContext context, string item) =>
        {
            await context.Session.LoadAsync();
            context.Session.SetString("cart", (context.Session.GetString("cart") ?? string.Empty) + item + ";");
            return Results.Ok();
        });
        app.MapGet("/cart", async (HttpContext context) =>
        {
            await context.Session.LoadAsync();
            return context.Session.GetString("cart") ?? "(empty)";
        });
        await app.StartAsync(CancellationToken);
        var client = app.GetTestClient();

        var first = await client.PostAsync("/cart/tea", null, CancellationToken);
        var cookie = first.Headers.GetValues("Set-Cookie").Single().Split(';')[0];
        using var second = new HttpRequestMessage(HttpMethod.Post, "/cart/milk");
        second.Headers.Add("Cookie", cookie);
        await client.SendAsync(second, CancellationToken);
        using var read = new HttpRequestMessage(HttpMethod.Get, "/cart");
        read.Headers.Add("Cookie", cookie);
        var response = await client.SendAsync(read, CancellationToken);

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal("tea;milk;", await response.Content.ReadAsStringAsync(CancellationToken));
        Assert.Equal(1L, await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".cache_entry WHERE sliding IS NOT NULL"));
        await app.StopAsync(CancellationToken);
    }

    private async Task<List<string>> KeysAsync()
    {
        var keys = new List<string>();
        await using var command = DataSource.CreateCommand($"SELECT key FROM \"{Schema}\".cache_entry");
        await using var reader = await command.ExecuteReaderAsync(CancellationToken);
        while (await reader.ReadAsync(CancellationToken))
        {
            keys.Add(reader.GetString(0));
        }

        return keys;
    }

    [Fact]
    public async Task HybridCache_WithPgCacheAsL2_SharesEntriesAcrossInstances()
    {
        async Task<(IHost Host, HybridCache Cache)> StartAsync()
        {
            var builder = Host.CreateApplicationBuilder();
            AddPgFirst(builder.Services);
            builder.Services.AddHybridCache();
            var host = builder.Build();
            await host.StartAsync(CancellationToken);
            return (host, host.Services.GetRequiredService<HybridCache>());
        }

        var (hostA, cacheA) = await StartAsync();
        var (hostB, cacheB) = await StartAsync();
        var runs = 0;

        var a = await cacheA.GetOrCreateAsync("greeting", _ => { runs++; return ValueTask.FromResult("hello"); }, cancellationToken: CancellationToken);
        // HybridCache hands the value back first and writes L2 right after.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!(await KeysAsync()).Contains("greeting") && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50, CancellationToken);
        }

        var b = await cacheB.GetOrCreateAsync("greeting", _ => { runs++; return ValueTask.FromResult("other"); }, cancellationToken: CancellationToken);

        Assert.Equal("hello", a);
        Assert.Equal("hello", b);
        Assert.Equal(1, runs);
        Assert.Equal(1L, await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".cache_entry WHERE key = 'greeting' AND sliding IS NULL"));

        await cacheA.RemoveAsync("greeting", CancellationToken);
        Assert.Equal(0L, await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".cache_entry WHERE key = 'greeting'"));
        await hostA.StopAsync(CancellationToken);
        await hostB.StopAsync(CancellationToken);
        hostA.Dispose();
        hostB.Dispose();
    }
}
