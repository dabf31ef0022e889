using Npgsql;
using PgFirst.Testing;

namespace PgRateLimit.Tests;

public class PostgresRateLimiterConformanceTests(PostgresServer server) : RateLimiterConformanceTests
{
    private readonly string _schema = PostgresServer.NewSchemaName();
    private readonly List<NpgsqlDataSource> _dataSources = [];
    private NpgsqlDataSource _dataSource = null!;

    protected override (string Host, int Port) ServerEndpoint => server.Endpoint;

    public override async ValueTask InitializeAsync()
    {
        _dataSource = Track(server.CreateDataSource());
        await new PgSchemaInstaller(_dataSource, _schema, [PostgresRateLimitStore.SchemaModule]).ApplyAsync(CancellationToken);
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

    protected override IPgRateLimitStore CreateStore() => new PostgresRateLimitStore(Track(server.CreateDataSource()), _schema);

    protected override IPgRateLimitStore CreateStoreThrough(TcpProxy proxy) =>
        new PostgresRateLimitStore(
            Track(server.CreateDataSourceThrough(proxy)),
            _schema);

    protected override async Task<DateTimeOffset> StoreNowAsync()
    {
        await using var command = _dataSource.CreateCommand("SELECT clock_timestamp()");
        return new DateTimeOffset((DateTime)(await command.ExecuteScalarAsync(CancellationToken))!, TimeSpan.Zero);
    }

    private NpgsqlDataSource Track(NpgsqlDataSource dataSource)
    {
        _dataSources.Add(dataSource);
        return dataSource;
    }
}
