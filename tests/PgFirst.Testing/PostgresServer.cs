using Npgsql;
using PgFirst.Core;
using Testcontainers.PostgreSql;
using Xunit;

namespace PgFirst.Testing;

/// <summary>
/// One real PostgreSQL server per test assembly: the one <c>PGFIRST_TEST_POSTGRES</c> names, else a Testcontainers
/// container when Docker is available. Without either, every test that needs it fails with a message saying how to
/// provide one; nothing passes silently.
/// </summary>
/// <remarks>
/// With <c>PGFIRST_TEST_POOLER=transaction</c>, <c>PGFIRST_TEST_POSTGRES</c> names a transaction pooler (PgBouncer in
/// <c>pool_mode = transaction</c>, or any other) and <c>PGFIRST_TEST_POSTGRES_DIRECT</c> the server behind it: the
/// stores the tests build through <see cref="ConfigurePgFirst"/> then run in <see cref="PgPoolerMode.Transaction"/>
/// mode and LISTEN on the direct connection. With <c>PGFIRST_TEST_READ_REPLICAS=standby</c>, the stores that can read
/// from replicas read from the standby <c>PGFIRST_TEST_STANDBY</c> names (<see cref="ReadReplicas"/>).
/// </remarks>
public sealed class PostgresServer : IAsyncLifetime
{
    private PostgreSqlContainer? _container;
    private string? _connectionString;
    private string? _directConnectionString;
    private Exception? _unavailable;

    /// <summary>Gets the pooler mode the tests run PgFirst in (<c>PGFIRST_TEST_POOLER</c>).</summary>
    public PgPoolerMode Pooler { get; private set; }

    /// <summary>Gets a value indicating whether stores that can read from a replica read from the standby (<c>PGFIRST_TEST_READ_REPLICAS=standby</c>).</summary>
    public bool ReadReplicas { get; private set; }

    /// <summary>Gets a connection string to the streaming standby of this server (<c>PGFIRST_TEST_STANDBY</c>).</summary>
    /// <exception cref="InvalidOperationException">No standby is known; the message says how to provide one.</exception>
    public static string StandbyConnectionString =>
        Environment.GetEnvironmentVariable(TestEnvironment.StandbyVariable) is { Length: > 0 } standby ? standby
        : throw new InvalidOperationException(
            $"This test needs a streaming standby of the test server: set {TestEnvironment.StandbyVariable} (./pgfirst test starts one).");

    /// <summary>Gets a connection string that goes past any pooler (<c>PGFIRST_TEST_POSTGRES_DIRECT</c>, else <see cref="ConnectionString"/>).</summary>
    public string DirectConnectionString => _directConnectionString ?? ConnectionString;

    public string ConnectionString => _connectionString ?? throw new InvalidOperationException(
        "No PostgreSQL server for the tests. " + TestEnvironment.HowToProvideServers, _unavailable);

    public async ValueTask InitializeAsync()
    {
        var connectionString = Environment.GetEnvironmentVariable(TestEnvironment.PostgresVariable);
        try
        {
            Pooler = TestEnvironment.Pooler();
            ReadReplicas = Environment.GetEnvironmentVariable(TestEnvironment.ReadReplicasVariable)?.Trim().ToLowerInvariant() switch
            {
                null or "" or "none" => false,
                "standby" => true,
                var other => throw new InvalidOperationException($"{TestEnvironment.ReadReplicasVariable}='{other}': use 'standby' or leave it unset."),
            };
            if (Pooler == PgPoolerMode.Transaction)
            {
                _directConnectionString = Environment.GetEnvironmentVariable(TestEnvironment.PostgresDirectVariable) is { Length: > 0 } direct
                    ? direct
                    : throw new InvalidOperationException(
                        $"{TestEnvironment.PoolerVariable}=transaction needs {TestEnvironment.PostgresDirectVariable}: the server behind the pooler, for LISTEN.");
            }

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
        if (Pooler == PgPoolerMode.Transaction)
        {
            // What PgFirst requires behind a transaction pooler (PgPooler.EnsureCompatible).
            builder.NoResetOnClose = true;
        }

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

    /// <summary>
    /// Sets what PgFirst must know about the path to this server: the pooler mode and, behind a transaction pooler,
    /// the direct connection string to LISTEN on.
    /// </summary>
    public void ConfigurePgFirst(PgFirstOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Pooler = Pooler;
        options.ListenConnectionString = Pooler == PgPoolerMode.Transaction ? DirectConnectionString : null;
        options.Replicas.ConnectionString = ReadReplicas ? StandbyConnectionString : null;
    }

    /// <summary>Options for a store on <paramref name="schemaName"/> on this server (see <see cref="ConfigurePgFirst"/>).</summary>
    public PgFirstOptions Options(string schemaName)
    {
        var options = new PgFirstOptions { SchemaName = schemaName };
        ConfigurePgFirst(options);
        return options;
    }

    /// <summary>
    /// Gets a connection string through the transaction pooler <c>./pgfirst test</c> starts in front of this server
    /// (<c>PGFIRST_TEST_PGBOUNCER</c>, else <see cref="ConnectionString"/> when the tests already run through one).
    /// </summary>
    /// <exception cref="InvalidOperationException">No pooler is known; the message says how to provide one.</exception>
    public string PoolerConnectionString =>
        Environment.GetEnvironmentVariable(TestEnvironment.PgBouncerVariable) is { Length: > 0 } pooler ? WithoutReset(pooler)
        : Pooler == PgPoolerMode.Transaction ? WithoutReset(ConnectionString)
        : throw new InvalidOperationException(
            $"This test needs a transaction pooler in front of the test server: set {TestEnvironment.PgBouncerVariable} " +
            "to a connection string through PgBouncer in pool_mode = transaction (./pgfirst test starts one).");

    private static string WithoutReset(string connectionString) =>
        new NpgsqlConnectionStringBuilder(connectionString) { NoResetOnClose = true }.ConnectionString;

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
