using PgFirst.Testing;

namespace PgRateLimit.Tests;

[Trait("Category", "Conformance")]
public class PostgresRateLimiterConformanceTests(PostgresServer server) : RateLimiterConformanceTests
{
    private readonly PostgresSchema _schema = new(server);

    protected override (string Host, int Port) ServerEndpoint => server.Endpoint;

    public override async ValueTask InitializeAsync() =>
        await _schema.ApplyAsync([PostgresRateLimitStore.SchemaModule], CancellationToken);

    public override async ValueTask DisposeAsync()
    {
        await _schema.DisposeAsync();
        await base.DisposeAsync();
    }

    protected override IPgRateLimitStore CreateStore() => new PostgresRateLimitStore(_schema.Track(server.CreateDataSource()), _schema.Options);

    protected override IPgRateLimitStore CreateStoreThrough(TcpProxy proxy) =>
        new PostgresRateLimitStore(_schema.Track(server.CreateDataSourceThrough(proxy)), _schema.Options);

    protected override async Task<DateTimeOffset> StoreNowAsync()
    {
        await using var command = _schema.DataSource.CreateCommand("SELECT clock_timestamp()");
        return new DateTimeOffset((DateTime)(await command.ExecuteScalarAsync(CancellationToken))!, TimeSpan.Zero);
    }
}
