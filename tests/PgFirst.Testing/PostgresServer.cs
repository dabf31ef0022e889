using Npgsql;
using Testcontainers.PostgreSql;
using Xunit;

namespace PgFirst.Testing;

/// <summary>
/// One real PostgreSQL server per test assembly: the one <c>PGFIRST_TEST_POSTGRES</c> names, else a Testcontainers
/// container when Docker is available. Without either, every test that needs it fails with a message saying how to
/// provide one; nothing passes silently.
/// </summary>
public sealed class PostgresServer : IAsyncLifetime
{
    private PostgreSqlContainer? _container;
    private string? _connectionString;
    private Exception? _unavailable;

    public string ConnectionString => _connectionString ?? throw new InvalidOperationException(
        "No PostgreSQL server for the tests. " + TestEnvironment.HowToProvideServers, _unavailable);

    public async ValueTask InitializeAsync()
    {
        var connectionString = Environment.GetEnvironmentVariable(TestEnvironment.PostgresVariable);
        try
        {
            if (string.IsNullOrWhiteSpace(connectionString))
            {
                if (!TestEnvironment.DockerLooksAvailable())
                {
                    throw new InvalidOperationException($"{TestEnvironment.PostgresVariable} is not set and no Docker engine was found.");
                }

                _container = new PostgreSqlBuilder("postgres:15-alpine").Build();
                await _container.StartAsync();
                connectionString = _container.GetConnectionString();
            }

            await using var dataSource = NpgsqlDataSource.Create(connectionString);
            await using var command = dataSource.CreateCommand("SELECT current_setting('server_version_num')::int");
            var version = (int)(await command.ExecuteScalarAsync())!;
            if (version < 150000)
            {
                throw new InvalidOperationException($"The tests need PostgreSQL 15 or later; the server is {version}.");
            }

            _connectionString = connectionString;
        }
        catch (Exception ex)
        {
            // Reported by every test that asks for the server, with the cause attached.
            _unavailable = ex;
        }
    }

    /// <summary>Creates a data source on the test server; the caller disposes it.</summary>
    public NpgsqlDataSource CreateDataSource(Action<NpgsqlConnectionStringBuilder>? configure = null)
    {
        var builder = new NpgsqlConnectionStringBuilder(ConnectionString);
        configure?.Invoke(builder);
        return NpgsqlDataSource.Create(builder.ConnectionString);
    }

    /// <summary>The server's host and port, for <see cref="TcpProxy"/>.</summary>
    public (string Host, int Port) Endpoint
    {
        get
        {
            var builder = new NpgsqlConnectionStringBuilder(ConnectionString);
            return (builder.Host!, builder.Port);
        }
    }

    /// <summary>A data source to this server through <paramref name="proxy"/>, with a 2 s connect timeout; the caller disposes it.</summary>
    public NpgsqlDataSource CreateDataSourceThrough(TcpProxy proxy)
    {
        ArgumentNullException.ThrowIfNull(proxy);
        return CreateDataSource(b =>
        {
            b.Host = "127.0.0.1";
            b.Port = proxy.Port;
            b.Timeout = 2;
        });
    }

    /// <summary>A schema name no other test uses.</summary>
    public static string NewSchemaName() => "t_" + Guid.NewGuid().ToString("N")[..20];

    public async ValueTask DisposeAsync()
    {
        if (_container is not null)
        {
            await _container.DisposeAsync();
        }
    }
}
