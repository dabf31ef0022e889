using Npgsql;
using Xunit;

namespace PgFirst.Testing;

/// <summary>
/// Base of tests that need PostgreSQL: each test gets its own generated schema name (created by the code under test,
/// or by <see cref="CreateSchemaAsync"/>) and a data source, and the schema is dropped afterwards.
/// </summary>
public abstract class PostgresTest(PostgresServer server) : IAsyncLifetime
{
    private readonly List<NpgsqlDataSource> _dataSources = [];

    protected PostgresServer Server { get; } = server;

    protected string Schema { get; } = PostgresServer.NewSchemaName();

    protected NpgsqlDataSource DataSource { get; private set; } = null!;

    protected static CancellationToken CancellationToken => TestContext.Current.CancellationToken;

    public virtual ValueTask InitializeAsync()
    {
        DataSource = CreateDataSource();
        return ValueTask.CompletedTask;
    }

    public virtual async ValueTask DisposeAsync()
    {
        try
        {
            await using var command = DataSource.CreateCommand($"DROP SCHEMA IF EXISTS \"{Schema}\" CASCADE");
            await command.ExecuteNonQueryAsync();
        }
        finally
        {
            foreach (var dataSource in _dataSources)
            {
                await dataSource.DisposeAsync();
            }

            GC.SuppressFinalize(this);
        }
    }

    /// <summary>A further data source (its own pool, as another app instance would have), disposed after the test.</summary>
    protected NpgsqlDataSource CreateDataSource(Action<NpgsqlConnectionStringBuilder>? configure = null)
    {
        var dataSource = Server.CreateDataSource(configure);
        _dataSources.Add(dataSource);
        return dataSource;
    }

    /// <summary>A data source through <paramref name="proxy"/>, disposed after the test.</summary>
    protected NpgsqlDataSource CreateDataSourceThrough(TcpProxy proxy)
    {
        var dataSource = Server.CreateDataSourceThrough(proxy);
        _dataSources.Add(dataSource);
        return dataSource;
    }

    protected async Task CreateSchemaAsync()
    {
        await ExecuteAsync($"CREATE SCHEMA \"{Schema}\"");
    }

    protected async Task<int> ExecuteAsync(string sql, params object[] parameters)
    {
        await using var command = DataSource.CreateCommand(sql);
        foreach (var p in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = p });
        }

        return await command.ExecuteNonQueryAsync(CancellationToken);
    }

    protected async Task<T> ScalarAsync<T>(string sql, params object[] parameters)
    {
        await using var command = DataSource.CreateCommand(sql);
        foreach (var p in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = p });
        }

        return (T)(await command.ExecuteScalarAsync(CancellationToken))!;
    }

    protected Task<bool> SchemaExistsAsync() =>
        ScalarAsync<bool>("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", Schema);

    protected Task<bool> RelationExistsAsync(string name) =>
        ScalarAsync<bool>("SELECT to_regclass($1) IS NOT NULL", $"\"{Schema}\".{name}");
}
