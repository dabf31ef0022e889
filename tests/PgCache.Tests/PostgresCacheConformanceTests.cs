using PgCache;
using PgFirst.Testing;

namespace PgCache.Tests;

[Trait("Category", "Conformance")]
public class PostgresCacheConformanceTests(PostgresServer server) : DistributedCacheConformanceTests
{
    private readonly PostgresSchema _schema = new(server);

    protected override (string Host, int Port) ServerEndpoint => server.Endpoint;

    public override async ValueTask InitializeAsync()
    {
        await _schema.ApplyAsync([PgDistributedCache.SchemaModule], CancellationToken);
        await base.InitializeAsync();
    }

    public override async ValueTask DisposeAsync()
    {
        await _schema.DisposeAsync();
        await base.DisposeAsync();
    }

    protected override Task<IPgDistributedCache> CreateCacheAsync(ITenantContext tenantContext) =>
        Task.FromResult<IPgDistributedCache>(new PgDistributedCache(
            _schema.DataSource, _schema.Options, new PgCacheOptions(), tenantContext, Time));

    protected override Task<IPgDistributedCache> CreateCacheThroughAsync(TcpProxy proxy, bool failSafe) =>
        Task.FromResult<IPgDistributedCache>(new PgDistributedCache(
            _schema.Track(server.CreateDataSourceThrough(proxy)),
            _schema.Options,
            new PgCacheOptions { FailSafe = failSafe },
            new PgTenantContext("default"),
            Time));
}
