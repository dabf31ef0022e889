using PgFirst.Testing;

namespace PgSessions.Tests;

[Trait("Category", "Conformance")]
public class PostgresSessionBackendConformanceTests(PostgresServer server) : SessionBackendConformanceTests
{
    private readonly PostgresSchema _schema = new(server);

    public override async ValueTask InitializeAsync()
    {
        await _schema.ApplyAsync([PostgresSessionBackend.SchemaModule], CancellationToken);
        await base.InitializeAsync();
    }

    public override async ValueTask DisposeAsync()
    {
        await _schema.DisposeAsync();
        await base.DisposeAsync();
    }

    protected override IPgSessionBackend CreateBackend() => new PostgresSessionBackend(_schema.DataSource, _schema.Options);
}
