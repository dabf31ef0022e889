using PgFirst.Testing;

namespace PgSessions.Tests;

// With PGFIRST_TEST_READ_REPLICAS=standby, loads go to the standby under ReadYourWrites (one router for the class,
// as for one app instance): every write of the suite must still be read back.
[Trait("Category", "Conformance")]
public class PostgresSessionBackendConformanceTests(PostgresServer server) : SessionBackendConformanceTests
{
    /// <summary>Gets the durability the backend writes with.</summary>
    protected virtual PgSessionDurability Durability => PgSessionDurability.Synchronous;

    private readonly PostgresSchema _schema = new(server);
    private PgReplicaRouter? _replicas;

    public override async ValueTask InitializeAsync()
    {
        await _schema.ApplyAsync([PostgresSessionBackend.SchemaModule], CancellationToken);
        if (server.ReadReplicas)
        {
            _replicas = new PgReplicaRouter(_schema.DataSource, _schema.Options, TimeProvider.System);
            _replicas.Start();
        }

        await base.InitializeAsync();
    }

    public override async ValueTask DisposeAsync()
    {
        if (_replicas is not null)
        {
            await _replicas.DisposeAsync();
        }

        await _schema.DisposeAsync();
        await base.DisposeAsync();
    }

    protected override IPgSessionBackend CreateBackend() => new PostgresSessionBackend(
        _schema.DataSource,
        _schema.Options,
        PgReplicaReads.For(_replicas, "pgsessions", PgReadConsistency.ReadYourWrites, TimeSpan.FromSeconds(30)),
        Durability);
}

// The whole contract again with PgSessions:CommitDurability=Asynchronous: every write behaves the same.
[Trait("Category", "Conformance")]
public sealed class PostgresAsynchronousSessionBackendConformanceTests(PostgresServer server) : PostgresSessionBackendConformanceTests(server)
{
    protected override PgSessionDurability Durability => PgSessionDurability.Asynchronous;
}
