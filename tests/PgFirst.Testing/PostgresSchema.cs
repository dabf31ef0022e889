using Npgsql;
using PgFirst.Core;

namespace PgFirst.Testing;

/// <summary>
/// One test's isolated place on the shared server: a generated schema, a data source, and every further data source
/// the test makes; all dropped and disposed afterwards.
/// </summary>
public sealed class PostgresSchema(PostgresServer server) : IAsyncDisposable
{
    private readonly List<NpgsqlDataSource> _dataSources = [];
    private NpgsqlDataSource? _dataSource;

    /// <summary>Gets the schema name.</summary>
    public string Name { get; } = PostgresServer.NewSchemaName();

    /// <summary>Gets the test's main data source.</summary>
    public NpgsqlDataSource DataSource => _dataSource ??= Track(server.CreateDataSource());

    /// <summary>Gets options for a store on this schema: its name, and the server's pooler mode.</summary>
    public PgFirstOptions Options => server.Options(Name);

    /// <summary>Sets the schema name and the server's pooler mode on <paramref name="options"/> (for <c>AddPgFirst</c>).</summary>
    public void ConfigurePgFirst(PgFirstOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.SchemaName = Name;
        server.ConfigurePgFirst(options);
    }

    /// <summary>Applies <paramref name="modules"/> (and the core module) to the schema.</summary>
    public Task ApplyAsync(IEnumerable<PgSchemaModule> modules, CancellationToken cancellationToken) =>
        new PgSchemaInstaller(DataSource, Name, modules).ApplyAsync(cancellationToken);

    /// <summary>Keeps <paramref name="dataSource"/> to dispose it after the test.</summary>
    public NpgsqlDataSource Track(NpgsqlDataSource dataSource)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        _dataSources.Add(dataSource);
        return dataSource;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        try
        {
            await using var dataSource = server.CreateDataSource();
            await using var drop = dataSource.CreateCommand($"DROP SCHEMA IF EXISTS \"{Name}\" CASCADE");
            await drop.ExecuteNonQueryAsync();
        }
        finally
        {
            foreach (var dataSource in _dataSources)
            {
                await dataSource.DisposeAsync();
            }
        }
    }
}
