using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using PgCache;
using PgFirst.Testing;
using PgQueue;
using PgRateLimit;
using PgSessions;

namespace PgFirst.Topology.Tests;

// Issue 15: the app runs as a role that cannot change the schema, with exactly the grants docs/production.md
// documents (the SQL is read from that file, so the page and the test cannot drift apart). On a throwaway cluster:
// roles belong to a whole cluster, not to one test's schema.
public sealed partial class LeastPrivilegeRoleTests : IAsyncLifetime
{
    private readonly string _schema = PostgresServer.NewSchemaName();
    private readonly string _role = "r_" + Guid.NewGuid().ToString("N")[..16];
    private readonly string _password = Guid.NewGuid().ToString("N");
    private PrivatePostgres _cluster = null!;
    private NpgsqlDataSource _owner = null!;
    private NpgsqlDataSource _app = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        // The owner (the cluster's superuser) applies the schema and runs the documented grants.
        _cluster = await PrivatePostgres.CreateAsync(Ct);
        _owner = NpgsqlDataSource.Create(_cluster.ConnectionString);
        await new PgSchemaInstaller(_owner, _schema, Modules).ApplyAsync(Ct);
        var grants = DocumentedGrants()
            .Replace("app_runtime", _role, StringComparison.Ordinal)
            .Replace("pgfirst", $"\"{_schema}\"", StringComparison.Ordinal)
            .Replace("'…'", $"'{_password}'", StringComparison.Ordinal);
        await using (var command = _owner.CreateCommand(grants))
        {
            await command.ExecuteNonQueryAsync(Ct);
        }

        _app = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(_cluster.ConnectionString) { Username = _role, Password = _password }.ConnectionString);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync();
        await _owner.DisposeAsync();
        await _cluster.DisposeAsync();
    }

    private static PgSchemaModule[] Modules =>
        [PgDistributedCache.SchemaModule, PostgresSessionBackend.SchemaModule, PostgresRateLimitStore.SchemaModule, PostgresJobQueueBackend.SchemaModule];

    [Fact]
    public async Task EveryModule_WorksUnderTheDocumentedRole_WhichCannotRunDdl()
    {
        var options = new PgFirstOptions { SchemaName = _schema };

        // Cache: set, get, get-many, remove by tag.
        using var cache = new PgDistributedCache(_app, options, new PgCacheOptions(), new PgTenantContext("default"), TimeProvider.System);
        await cache.SetAsync("k", Encoding.UTF8.GetBytes("v"), new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(5), SlidingExpiration = TimeSpan.FromMinutes(1) }, Ct);
        Assert.Equal("v", Encoding.UTF8.GetString((await cache.GetAsync("k", Ct))!));
        Assert.Single(await cache.GetManyAsync(["k", "missing"], Ct));
        await cache.RemoveByTagAsync("t", Ct);

        // Rate limiter: a decision is one upsert.
        var limits = new PostgresRateLimitStore(_app, options);
        var decision = await limits.AcquireAsync(new PgRateLimitRequest("role", "p", 1, 10, TimeSpan.FromMinutes(1), false), Ct);
        Assert.True(decision.Acquired);

        // Sessions: create, load, update, list, revoke.
        var sessions = new PostgresSessionBackend(_app, options);
        var now = DateTimeOffset.UtcNow;
        var record = new PgSessionRecord
        {
            KeyHash = new byte[32],
            SessionId = Guid.NewGuid(),
            TenantId = "default",
            UserId = "alice",
            CreatedAt = now,
            LastSeenAt = now,
            IdleTimeout = TimeSpan.FromMinutes(20),
            AbsoluteExpiresAt = now.AddHours(1),
            Version = 1,
            Data = [],
        };
        Assert.True(await sessions.InsertAsync(record, Ct));
        Assert.NotNull(await sessions.LoadAsync(new PgSessionLoadRequest(record.KeyHash, "default", now, TimeSpan.FromMinutes(1)), Ct));
        Assert.Single(await sessions.ListAsync("default", "alice", now, Ct));
        Assert.True(await sessions.RevokeAsync("default", record.SessionId, Ct));

        // Queue: workers claim, run and complete a job; LISTEN/NOTIFY and the manager's statistics.
        using var host = QueueTestHost.Build(
            s =>
            {
                s.AddSingleton(_app);
                s.AddPgFirst(o => o.SchemaName = _schema);
            },
            handlers: q => q.AddHandler<Work, RecordingHandler>());
        await host.StartAsync(Ct);
        await host.Services.GetRequiredService<IJobQueue>().EnqueueAsync(new Work("as the runtime role"), cancellationToken: Ct);
        var journal = host.Services.GetRequiredService<Journal>();
        await QueueTestHost.WaitUntilAsync(() => journal.Count == 1, "the job runs under the runtime role");
        Assert.Equal(0, (await host.Services.GetRequiredService<JobQueueManager>().GetStatsAsync(["default"], cancellationToken: Ct))[0].Available);

        // The maintenance runner calls every cleanup function, and the installer finds nothing to do.
        var installer = new PgSchemaInstaller(_app, _schema, Modules);
        Assert.Empty(await installer.GetPendingScriptsAsync(Ct));
        var runner = host.Services.GetRequiredService<PgMaintenanceRunner>();
        var run = await runner.RunOnceAsync(Ct);
        Assert.DoesNotContain(run.Tasks, t => t.Outcome == PgMaintenanceOutcome.Failed);
        var health = await new PgFirstPostgresHealthCheck(installer).CheckHealthAsync(new HealthCheckContext { Registration = new HealthCheckRegistration("postgresql", _ => null!, null, null) }, Ct);
        Assert.Equal(HealthStatus.Healthy, health.Status);
        await host.StopAsync(Ct);

        // And it cannot change the schema.
        await using var ddl = _app.CreateCommand($"CREATE TABLE \"{_schema}\".intruder (id int)");
        var error = await Assert.ThrowsAsync<PostgresException>(() => ddl.ExecuteNonQueryAsync(Ct));
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, error.SqlState);
    }

    // The first ```sql block under "## A role that cannot change the schema" in docs/production.md.
    private static string DocumentedGrants()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "docs", "production.md")))
        {
            directory = directory.Parent;
        }

        Assert.NotNull(directory);
        var page = File.ReadAllText(Path.Combine(directory.FullName, "docs", "production.md"));
        var section = page[page.IndexOf("## A role that cannot change the schema", StringComparison.Ordinal)..];
        return SqlBlock().Match(section) is { Success: true } match ? match.Groups["sql"].Value : throw new InvalidOperationException("No SQL block in the role section.");
    }

    [GeneratedRegex("```sql\n(?<sql>.*?)```", RegexOptions.Singleline)]
    private static partial Regex SqlBlock();
}
