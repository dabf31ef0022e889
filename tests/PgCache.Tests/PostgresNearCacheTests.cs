using Npgsql;
using PgCache;
using PgFirst.Core;
using PgFirst.Testing;

namespace PgCache.Tests;

// The near cache on PostgreSQL: invalidations by NOTIFY in the write's own transaction, one LISTEN connection per
// instance (the direct one behind a transaction pooler), each instance on its own data source. Run behind the pooler too.
[Trait("Category", "Pooler")]
public class PostgresNearCacheTests(PostgresServer server) : NearCacheConformanceTests
{
    private readonly PostgresSchema _schema = new(server);

    public override async ValueTask InitializeAsync()
    {
        await _schema.ApplyAsync([PgDistributedCache.SchemaModule], CancellationToken);
        await base.InitializeAsync();
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        await _schema.DisposeAsync();
    }

    // A dedicated listen connection (as behind a pooler), so the test can find it by its application_name.
    protected override IPgCacheBackend CreateBackend(PgCacheOptions options)
    {
        var first = _schema.Options;
        first.ListenConnectionString ??= server.DirectConnectionString;
        return new PostgresCacheBackend(_schema.Track(server.CreateDataSource()), first, options);
    }

    protected override async Task KillListenerAsync(PgDistributedCache instance)
    {
        await using var command = _schema.DataSource.CreateCommand(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = "pgcache-near " + instance.NearCache!.Channel });
        var killed = (long)(await command.ExecuteScalarAsync(CancellationToken))!;

        // Every instance of the class listens on the schema's one channel: the test kills them all, which the rule
        // must survive as well; at least the instance's own must have gone.
        Assert.True(killed >= 1, "No LISTEN backend was found to kill.");
    }

    protected override async Task DeleteBehindTheCacheAsync(string tenantId, string key)
    {
        await using var command = _schema.DataSource.CreateCommand(
            $"DELETE FROM {PgSqlIdentifier.Quote(_schema.Name)}.cache_entry WHERE tenant_id = $1 AND key = $2");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = tenantId });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key });
        Assert.Equal(1, await command.ExecuteNonQueryAsync(CancellationToken));
    }

    protected override async Task<DateTimeOffset?> StoreExpiryAsync(string tenantId, string key)
    {
        await using var command = _schema.DataSource.CreateCommand(
            $"SELECT expires_at FROM {PgSqlIdentifier.Quote(_schema.Name)}.cache_entry WHERE tenant_id = $1 AND key = $2");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = tenantId });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key });
        return await command.ExecuteScalarAsync(CancellationToken) is DateTime at ? new DateTimeOffset(at, TimeSpan.Zero) : null;
    }
}
