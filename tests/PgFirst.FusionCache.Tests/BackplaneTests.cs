using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using PgCache;
using PgFirst.FusionCache;
using PgFirst.Testing;
using ZiggyCreatures.Caching.Fusion;
using ZiggyCreatures.Caching.Fusion.Backplane;
using ZiggyCreatures.Caching.Fusion.Serialization.SystemTextJson;

namespace PgFirst.FusionCache.Tests;

// FusionCache nodes over PgCache (their distributed level) with the PostgreSQL backplane: each node has its own
// memory level and data sources, as separate app instances would; they share one schema.
[Trait("Category", "Pooler")]
public sealed class BackplaneTests(PostgresServer server) : IAsyncLifetime
{
    private readonly PostgresSchema _schema = new(server);
    private readonly List<IAsyncDisposable> _disposables = [];
    private readonly string _cacheName = "shop-" + Guid.NewGuid().ToString("N")[..8];

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync() =>
        await _schema.ApplyAsync([PgDistributedCache.SchemaModule], Ct);

    public async ValueTask DisposeAsync()
    {
        foreach (var disposable in Enumerable.Reverse(_disposables))
        {
            await disposable.DisposeAsync();
        }

        await _schema.DisposeAsync();
    }

    [Fact]
    public async Task SetOnOneNode_EvictsTheOthersMemoryCopy_ANodeWithoutTheBackplaneKeepsServingTheOldValue()
    {
        var (a, _) = await NodeAsync();
        var (b, _) = await NodeAsync();
        var withoutBackplane = Node(backplane: false).Cache;
        Assert.Equal("v1", await b.GetOrSetAsync<string>("product:1", _ => Task.FromResult("v1"), token: Ct));
        Assert.Equal("v1", await withoutBackplane.GetOrSetAsync<string>("product:1", _ => Task.FromResult("v1"), token: Ct));

        await a.SetAsync("product:1", "v2", token: Ct);

        await QueueTestHost.WaitUntilAsync(async () => await b.GetOrDefaultAsync<string>("product:1", token: Ct) == "v2", "node B to see node A's set");
        Assert.Equal("v1", await withoutBackplane.GetOrDefaultAsync<string>("product:1", token: Ct));
    }

    [Fact]
    public async Task RemoveAndExpireOnOneNode_ReachTheOthers()
    {
        var (a, _) = await NodeAsync();
        var (b, _) = await NodeAsync();
        await b.SetAsync("cart:7", "3 items", token: Ct);
        await b.SetAsync("cart:8", "1 item", token: Ct);
        Assert.Equal("3 items", await a.GetOrDefaultAsync<string>("cart:7", token: Ct));

        await a.RemoveAsync("cart:7", token: Ct);
        await a.ExpireAsync("cart:8", token: Ct);

        await QueueTestHost.WaitUntilAsync(async () => await b.GetOrDefaultAsync<string>("cart:7", token: Ct) is null, "node B to drop the removed entry");
        await QueueTestHost.WaitUntilAsync(async () => await b.GetOrDefaultAsync<string>("cart:8", token: Ct) is null, "node B to drop the expired entry");
    }

    // HybridCache users: FusionCache serves the HybridCache abstraction, so its memory level gets our backplane too.
    [Fact]
    public async Task ThroughTheHybridCacheAdapter_SetAndRemoveOnOneHostReachTheOther()
    {
        var a = await HybridHostAsync();
        var b = await HybridHostAsync();
        Assert.Equal("v1", await b.GetOrCreateAsync("price:9", _ => ValueTask.FromResult("v1"), cancellationToken: Ct));

        await a.SetAsync("price:9", "v2", cancellationToken: Ct);
        await QueueTestHost.WaitUntilAsync(async () => await b.GetOrCreateAsync("price:9", _ => ValueTask.FromResult("factory"), cancellationToken: Ct) == "v2", "host B to see host A's set");

        await a.RemoveAsync("price:9", Ct);
        await QueueTestHost.WaitUntilAsync(async () => await b.GetOrCreateAsync("price:9", _ => ValueTask.FromResult("fresh"), cancellationToken: Ct) == "fresh", "host B to see host A's removal");
    }

    // The failure rule: a listener killed on the server comes back by itself, and evictions flow again.
    [Fact]
    public async Task ListenerKilledOnTheServer_Reconnects_AndEvictionsFlowAgain()
    {
        var (a, _) = await NodeAsync();
        var (b, backplane) = await NodeAsync();
        var killed = backplane.ListenerProcessId;
        Assert.NotEqual(0, killed);

        await using (var admin = server.CreateDataSource())
        {
            await using var kill = admin.CreateCommand("SELECT pg_terminate_backend($1)");
            kill.Parameters.Add(new NpgsqlParameter<int> { TypedValue = killed });
            Assert.True((bool)(await kill.ExecuteScalarAsync(Ct))!);
        }

        await QueueTestHost.WaitUntilAsync(() => backplane.IsListening && backplane.ListenerProcessId != killed, "the backplane to LISTEN again on a new connection");
        Assert.Equal("v1", await b.GetOrSetAsync<string>("k", _ => Task.FromResult("v1"), token: Ct));
        await a.SetAsync("k", "v2", token: Ct);
        await QueueTestHost.WaitUntilAsync(async () => await b.GetOrDefaultAsync<string>("k", token: Ct) == "v2", "node B to see a set made after the reconnection");
    }

    [Fact]
    public async Task HealthCheck_IsDegraded_WhileTheListenConnectionCannotBeOpened()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddNpgsqlDataSource(new NpgsqlConnectionStringBuilder(server.ConnectionString) { NoResetOnClose = server.Pooler == PgPoolerMode.Transaction }.ConnectionString);
        services.AddPgFirst(_schema.ConfigurePgFirst);
        services.AddFusionCache(_cacheName).WithPgFirstBackplane(o => o.ListenConnectionString = "Host=127.0.0.1;Port=1;Username=x;Password=y;Timeout=1");
        services.AddHealthChecks().AddPgFusionBackplane(_cacheName);
        await using var provider = services.BuildServiceProvider();
        provider.GetRequiredService<IFusionCacheProvider>().GetCache(_cacheName);

        var health = await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync(Ct);

        Assert.Equal(HealthStatus.Degraded, health.Status);
        Assert.Contains("Not LISTENing", health.Entries["pgfirst-fusion-backplane"].Description, StringComparison.Ordinal);
    }

    [Fact]
    public void BehindATransactionPooler_WithoutADirectListenConnection_Refuses()
    {
        var options = new PgFirstOptions { SchemaName = _schema.Name, Pooler = PgPoolerMode.Transaction };

        var error = Assert.Throws<PgFirstPoolerException>(() => new PgFusionBackplane(_schema.DataSource, options));

        Assert.Contains("ListenConnectionString", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AKeyTooLongForNotify_FailsThePublish_WithAClearMessage()
    {
        var backplane = Backplane();
        await backplane.SubscribeAsync(new BackplaneSubscriptionOptions("test", "me", "test-channel", _ => { }, _ => { }, _ => ValueTask.CompletedTask, _ => ValueTask.CompletedTask));

        var error = await Assert.ThrowsAsync<FusionCacheBackplaneException>(async () =>
            await backplane.PublishAsync(BackplaneMessage.CreateForEntrySet("me", new string('k', 7000), DateTimeOffset.UtcNow.Ticks), new FusionCacheEntryOptions(), Ct));

        Assert.Contains("NOTIFY", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Channels_DependOnTheSchema_SoAppsOnOtherSchemasNeverShareOne()
    {
        var one = PgFusionBackplane.ChannelFor("pgfirst_fc", "shop", "FusionCache");
        var other = PgFusionBackplane.ChannelFor("pgfirst_fc", "billing", "FusionCache");

        Assert.NotEqual(one, other);
        Assert.True(one.Length <= 63);
        Assert.Equal(one, PgFusionBackplane.ChannelFor("pgfirst_fc", "shop", "FusionCache"));
    }

    private async Task<(IFusionCache Cache, PgFusionBackplane Backplane)> NodeAsync()
    {
        var node = Node(backplane: true);
        await node.Backplane!.WaitUntilListeningAsync(Ct);
        return (node.Cache, node.Backplane);
    }

    private (IFusionCache Cache, PgFusionBackplane? Backplane) Node(bool backplane)
    {
        var dataSource = _schema.Track(server.CreateDataSource());
        var cache = new ZiggyCreatures.Caching.Fusion.FusionCache(new FusionCacheOptions { CacheName = _cacheName });
        _disposables.Add(new Disposer(() => cache.Dispose()));
        cache.SetupDistributedCache(
            new PgDistributedCache(dataSource, _schema.Options, new PgCacheOptions(), new PgTenantContext("default"), TimeProvider.System),
            new FusionCacheSystemTextJsonSerializer());
        PgFusionBackplane? plane = null;
        if (backplane)
        {
            plane = Backplane(dataSource);
            cache.SetupBackplane(plane);
        }

        return (cache, plane);
    }

    private PgFusionBackplane Backplane(NpgsqlDataSource? dataSource = null)
    {
        var options = _schema.Options;
        var plane = new PgFusionBackplane(dataSource ?? _schema.DataSource, options, new PgFusionBackplaneOptions { ListenConnectionString = server.DirectConnectionString });
        _disposables.Add(plane);
        return plane;
    }

    // The wiring of the package README, on its own service provider (a separate app instance).
    private async Task<HybridCache> HybridHostAsync()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddNpgsqlDataSource(new NpgsqlConnectionStringBuilder(server.ConnectionString) { NoResetOnClose = server.Pooler == PgPoolerMode.Transaction }.ConnectionString);
        services.AddPgFirst(o =>
        {
            _schema.ConfigurePgFirst(o);
            o.ListenConnectionString = server.DirectConnectionString;
        });
        services.AddPgCache();

        services.AddFusionCache(_cacheName)
            .WithSerializer(new FusionCacheSystemTextJsonSerializer())
            .WithRegisteredDistributedCache()
            .WithPgFirstBackplane()
            .AsHybridCache();
        services.AddHealthChecks().AddPgFusionBackplane(_cacheName);
        var provider = services.BuildServiceProvider();
        _disposables.Add(provider);
        var hybrid = provider.GetRequiredService<HybridCache>();

        // Resolving the cache subscribes its backplane; the first set must not race the LISTEN.
        var backplane = (PgFusionBackplane)provider.GetRequiredService<IFusionCacheProvider>().GetCache(_cacheName).Backplane!;
        await backplane.WaitUntilListeningAsync(Ct);
        var health = await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync(Ct);
        Assert.Equal(HealthStatus.Healthy, health.Status);
        return hybrid;
    }

    private sealed class Disposer(Action dispose) : IAsyncDisposable
    {
        public ValueTask DisposeAsync()
        {
            dispose();
            return ValueTask.CompletedTask;
        }
    }
}
