using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using PgFirst.Testing;

namespace PgSessions.Tests;

[Trait("Category", "Conformance")]
public class PostgresSessionConformanceTests(PostgresServer server) : SessionConformanceTests
{
    private readonly PostgresSchema _schema = new(server);
    private readonly CapturingLoggerProvider _npgsqlLogs = new();
    private readonly CapturingLoggerProvider _standbyLogs = new();
    private PgReplicaRouter? _router;

    protected override (string Host, int Port) ServerEndpoint => server.Endpoint;

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        if (_router is not null)
        {
            await _router.DisposeAsync();
        }

        await _schema.DisposeAsync();
    }

    protected override void ConfigureBackend(IServiceCollection services, TcpProxy? proxy)
    {
        var connectionString = new NpgsqlConnectionStringBuilder(server.ConnectionString)
        {
            NoResetOnClose = server.Pooler == PgPoolerMode.Transaction,
        };
        if (proxy is not null)
        {
            connectionString.Host = "127.0.0.1";
            connectionString.Port = proxy.Port;
            connectionString.Timeout = 3;
        }

        // Npgsql logs one CommandExecutionCompleted event per command: counting them counts round trips of commands.
        var builder = new NpgsqlDataSourceBuilder(connectionString.ConnectionString);
        builder.UseLoggerFactory(NpgsqlLogging(_npgsqlLogs));
        services.AddSingleton(_schema.Track(builder.Build()));
        services.AddPgFirst(o =>
        {
            _schema.ConfigurePgFirst(o);

            // Loads on the standby (PGFIRST_TEST_READ_REPLICAS=standby) read back every write of this app; through
            // the proxy the primary alone, since those tests take it away and expect the errors.
            if (proxy is not null)
            {
                o.Replicas.ConnectionString = null;
            }

            o.ApplySchemaOnStartup = true;
            o.Maintenance.Enabled = false;
        });
        if (server.ReadReplicas && proxy is null)
        {
            // The suite's "instances" (several apps in one test) share one router: read-your-writes is per router, and
            // across routers a revocation is seen within MaxReplicaLag only (docs/production.md), which a test of
            // instant cross-instance revocation would report as a failure of the store rather than of the setting.
            _router ??= StartRouter();
            services.AddSingleton(_router);
            services.PostConfigure<PgSessionOptions>(o =>
            {
                o.ReadConsistency = PgReadConsistency.ReadYourWrites;
                o.MaxReplicaLag = TimeSpan.FromSeconds(30);
            });
        }
    }

    private PgReplicaRouter StartRouter()
    {
        // The standbys log to the same capture as the primary: a read the router sends to a standby once it has
        // caught up is still a command of this app, and the command-count tests must see it.
        var router = new PgReplicaRouter(_schema.DataSource, _schema.Options, TimeProvider.System, standbyLoggerFactory: NpgsqlLogging(_standbyLogs));
        router.Start();
        return router;
    }

    protected override int TakeCommandCount() => TakeCommands(_npgsqlLogs) + TakeCommands(_standbyLogs);

    protected override int TakePrimaryCommandCount()
    {
        TakeCommands(_standbyLogs);
        return TakeCommands(_npgsqlLogs);
    }

    private static int TakeCommands(CapturingLoggerProvider logs) =>
        logs.Take(e => e.EventId.Id == NpgsqlEventId.CommandExecutionCompleted
            && !e.Message.Contains("pg_current_wal_insert_lsn", StringComparison.Ordinal) // the replica router's samples,
            && !e.Message.Contains("pg_last_wal_replay_lsn", StringComparison.Ordinal)); // of the primary and the standbys

    private static ILoggerFactory NpgsqlLogging(CapturingLoggerProvider logs) =>
        LoggerFactory.Create(l => l.AddProvider(logs).SetMinimumLevel(LogLevel.Trace));
}
