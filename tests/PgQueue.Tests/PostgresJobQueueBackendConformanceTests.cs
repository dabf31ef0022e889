using PgFirst.Testing;

namespace PgQueue.Tests;

[Trait("Category", "Conformance")]
public class PostgresJobQueueBackendConformanceTests(PostgresServer server) : JobQueueBackendConformanceTests
{
    private readonly PostgresSchema _schema = new(server);

    public override async ValueTask InitializeAsync()
    {
        await _schema.ApplyAsync([PostgresJobQueueBackend.SchemaModule], CancellationToken);
        await base.InitializeAsync();
    }

    public override async ValueTask DisposeAsync()
    {
        await _schema.DisposeAsync();
        await base.DisposeAsync();
    }

    protected override IJobQueueBackend CreateBackend() => new PostgresJobQueueBackend(_schema.DataSource, _schema.Options);
}
