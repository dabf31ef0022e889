using Npgsql;
using PgCache;
using PgFirst.Testing;

namespace PgCache.Tests;

public class PostgresCacheConformanceTests(PostgresServer server) : DistributedCacheConformanceTests
{
    private readonly string _schema = PostgresServer.NewSchemaName();
    private readonly List<NpgsqlDataSource> _dataSources = [];
    private NpgsqlDataSource _dataSource = null!;

    protected override (string Host, int Port) ServerEndpoint => server.Endpoint;

    public override async ValueTask InitializeAsync()
    {
        _dataSource = Track(server.CreateDataSource());
        await new PgSchemaInstaller(_dataSource, _schema, [PgDistributedCache.SchemaModule]).ApplyAsync(CancellationToken);
        await base.InitializeAsync();
    }

    public override async ValueTask DisposeAsync()
    {
        await using (var drop = _dataSource.CreateCommand($"DROP SCHEMA IF EXISTS \"{_schema}\" CASCADE"))
        {
            await drop.ExecuteNonQueryAsync();
        }

        foreach (var dataSource in _dataSources)
        {
            await dataSource.DisposeAsync();
        }

        await base.DisposeAsync();
    }

    protected override Task<IPgDistributedCache> CreateCacheAsync(ITenantContext tenantContext) =>
        Task.FromResult<IPgDistributedCache>(new PgDistributedCache(_dataSource, new PgFirstOptions { SchemaName = _schema }, new PgCacheOptions(), tenantContext, Time));

    protected override Task<IPgDistributedCache> CreateCacheThroughAsync(TcpProxy proxy, bool failSafe)
    {
        var dataSource = Track(server.CreateDataSourceThrough(proxy));
        return Task.FromResult<IPgDistributedCache>(new PgDistributedCache(
            dataSource, new PgFirstOptions { SchemaName = _schema }, new PgCacheOptions { FailSafe = failSafe }, new PgTenantContext("default"), Time));
    }

    private NpgsqlDataSource Track(NpgsqlDataSource dataSource)
    {
        _dataSources.Add(dataSource);
        return dataSource;
    }
}
