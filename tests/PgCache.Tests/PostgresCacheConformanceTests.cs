using PgCache;
using PgFirst.Testing;

namespace PgCache.Tests;

// With PGFIRST_TEST_READ_REPLICAS=standby the suite runs with gets on the standby under ReadYourWrites (a logged
// table, one router for the class as for one app instance): every write of the suite must still be read back.
[Trait("Category", "Conformance")]
public class PostgresCacheConformanceTests(PostgresServer server) : DistributedCacheConformanceTests
{
    private readonly PostgresSchema _schema = new(server);
    private PgReplicaRouter? _replicas;

    protected override (string Host, int Port) ServerEndpoint => server.Endpoint;

    private readonly List<PgDistributedCache> _caches = [];

    /// <summary>Gets a value indicating whether the caches run with the near cache on (the suite must pass either way).</summary>
    protected virtual bool NearCache => false;

    private PgCacheOptions Options
    {
        get
        {
            var options = server.ReadReplicas
                ? new PgCacheOptions { Durability = PgCacheDurability.Logged, ReadConsistency = PgReadConsistency.ReadYourWrites, MaxReplicaLag = TimeSpan.FromSeconds(30) }
                : new PgCacheOptions();
            options.NearCache.Enabled = NearCache;
            return options;
        }
    }

    public override async ValueTask InitializeAsync()
    {
        await _schema.ApplyAsync([PgDistributedCache.SchemaModuleFor(Options.Durability)], CancellationToken);
        if (server.ReadReplicas)
        {
            _replicas = new PgReplicaRouter(_schema.DataSource, _schema.Options, TimeProvider.System);
            _replicas.Start();
        }

        await base.InitializeAsync();
    }

    public override async ValueTask DisposeAsync()
    {
        foreach (var cache in _caches)
        {
            await cache.DisposeAsync();
        }

        if (_replicas is not null)
        {
            await _replicas.DisposeAsync();
        }

        await _schema.DisposeAsync();
        await base.DisposeAsync();
    }

    protected override async Task<IPgDistributedCache> CreateCacheAsync(ITenantContext tenantContext)
    {
        var cache = new PgDistributedCache(_schema.DataSource, _schema.Options, Options, tenantContext, Time, replicas: _replicas);
        _caches.Add(cache);
        if (cache.NearCache is { } near)
        {
            await near.WaitUntilServingAsync(CancellationToken).WaitAsync(TimeSpan.FromSeconds(20), CancellationToken);
        }

        return cache;
    }

    // Through the proxy, the primary alone: these tests take the server away and expect the errors.
    protected override Task<IPgDistributedCache> CreateCacheThroughAsync(TcpProxy proxy, bool failSafe) =>
        Task.FromResult<IPgDistributedCache>(new PgDistributedCache(
            _schema.Track(server.CreateDataSourceThrough(proxy)),
            _schema.Options,
            new PgCacheOptions { FailSafe = failSafe },
            new PgTenantContext("default"),
            Time));
}

// The same suite with the near cache on: every rule holds when reads are served from memory.
[Trait("Category", "Conformance")]
public class PostgresNearCacheConformanceTests(PostgresServer server) : PostgresCacheConformanceTests(server)
{
    protected override bool NearCache => true;
}
