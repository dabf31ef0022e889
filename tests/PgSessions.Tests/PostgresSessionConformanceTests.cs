using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using PgFirst.Testing;

namespace PgSessions.Tests;

public class PostgresSessionConformanceTests(PostgresServer server) : SessionConformanceTests
{
    private readonly string _schema = PostgresServer.NewSchemaName();
    private readonly CapturingLoggerProvider _npgsqlLogs = new();
    private readonly List<NpgsqlDataSource> _dataSources = [];

    protected override (string Host, int Port) ServerEndpoint => server.Endpoint;

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        await using (var dataSource = server.CreateDataSource())
        await using (var drop = dataSource.CreateCommand($"DROP SCHEMA IF EXISTS \"{_schema}\" CASCADE"))
        {
            await drop.ExecuteNonQueryAsync();
        }

        foreach (var dataSource in _dataSources)
        {
            await dataSource.DisposeAsync();
        }
    }

    protected override void ConfigureBackend(IServiceCollection services, TcpProxy? proxy)
    {
        var connectionString = new NpgsqlConnectionStringBuilder(server.ConnectionString);
        if (proxy is not null)
        {
            connectionString.Host = "127.0.0.1";
            connectionString.Port = proxy.Port;
            connectionString.Timeout = 3;
        }

        // Npgsql logs one CommandExecutionCompleted event per command: counting them counts round trips of commands.
        var builder = new NpgsqlDataSourceBuilder(connectionString.ConnectionString);
        builder.UseLoggerFactory(LoggerFactory.Create(l => l.AddProvider(_npgsqlLogs).SetMinimumLevel(LogLevel.Trace)));
        var dataSource = builder.Build();
        _dataSources.Add(dataSource);
        services.AddSingleton(dataSource);
        services.AddPgFirst(o =>
        {
            o.SchemaName = _schema;
            o.ApplySchemaOnStartup = true;
            o.Maintenance.Enabled = false;
        });
    }

    protected override int TakeCommandCount() =>
        _npgsqlLogs.Take(e => e.EventId.Id == NpgsqlEventId.CommandExecutionCompleted);
}
