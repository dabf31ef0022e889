using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Xml.Linq;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Session;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using PgFirst.Testing;

namespace PgSessions.Tests;

// PostgreSQL-only behaviour: what the table holds, cleanup, the Data Protection key repository, metrics, wiring.
public class PostgresSessionTests(PostgresServer server) : PostgresTest(server)
{
    private const string CookieName = ".AspNetCore.Session";

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 23, 12, 0, 0, TimeSpan.Zero));
    private readonly List<WebApplication> _apps = [];

    public override async ValueTask DisposeAsync()
    {
        foreach (var app in _apps)
        {
            await app.DisposeAsync();
        }

        await base.DisposeAsync();
    }

    private async Task<WebApplication> StartAsync(
        Action<IServiceCollection>? services = null,
        Action<PgSessionOptions>? configure = null,
        bool applySchema = true,
        IDataProtectionProvider? dataProtection = null)
    {
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<TimeProvider>(_time);
        builder.Services.AddSingleton(DataSource);
        if (dataProtection is not null)
        {
            builder.Services.AddSingleton(dataProtection);
        }

        builder.Services.AddPgFirst(o =>
        {
            o.SchemaName = Schema;
            o.ApplySchemaOnStartup = applySchema;
            o.Maintenance.Enabled = false;
        });
        services?.Invoke(builder.Services);
        builder.Services.AddPgSessions(configure);
        builder.Services.AddHealthChecks().AddPgSessions();
        var app = builder.Build();
        app.UseSession();
        app.MapPost("/set/{key}", async (HttpContext c, string key, string value) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString(key, value);
            return "ok";
        });
        app.MapGet("/get/{key}", async (HttpContext c, string key) =>
        {
            await c.Session.LoadAsync();
            return c.Session.GetString(key) ?? "<none>";
        });
        app.MapPost("/signin/{user}", async (HttpContext c, string user) =>
        {
            await c.Session.LoadAsync();
            await c.Session.RegenerateIdAsync();
            await c.Session.BindUserAsync(user);
            return c.Session.Id;
        });
        app.MapPost("/revoke/{id}", async (PgSessionManager manager, string id) => (await manager.RevokeAsync(id)).ToString());
        await app.StartAsync(CancellationToken);
        _apps.Add(app);
        return app;
    }

    private static async Task<(string Body, string? Cookie)> SendAsync(WebApplication app, HttpMethod method, string path, string? cookie = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (cookie is not null)
        {
            request.Headers.Add("Cookie", $"{CookieName}={cookie}");
        }

        using var response = await app.GetTestClient().SendAsync(request, CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var setCookie = response.Headers.TryGetValues("Set-Cookie", out var values)
            ? values.Select(v => v[(CookieName.Length + 1)..v.IndexOf(';', StringComparison.Ordinal)]).LastOrDefault()
            : null;
        return (await response.Content.ReadAsStringAsync(CancellationToken), setCookie ?? cookie);
    }

    [Fact]
    public async Task Table_HoldsASha256OfTheKey_NeverTheKeyOrTheCookie()
    {
        var dataProtection = new EphemeralDataProtectionProvider();
        var app = await StartAsync(dataProtection: dataProtection);
        var (_, cookie) = await SendAsync(app, HttpMethod.Post, "/set/a?value=1");
        var protectedBytes = Convert.FromBase64String(Pad(Uri.UnescapeDataString(cookie!)));
        var key = Encoding.UTF8.GetString(dataProtection.CreateProtector("SessionMiddleware").Unprotect(protectedBytes));

        Assert.Equal(1L, await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".session WHERE key_hash = $1", SHA256.HashData(Encoding.UTF8.GetBytes(key))));
        Assert.Equal(0L, await ScalarAsync<long>(
            $"SELECT count(*) FROM \"{Schema}\".session AS s WHERE position(convert_to($1, 'UTF8') IN s::text::bytea) > 0 OR s::text LIKE '%' || $1 || '%'", key));
        Assert.Equal("p", (await ScalarAsync<char>($"SELECT relpersistence FROM pg_class WHERE oid = '\"{Schema}\".session'::regclass")).ToString());
    }

    [Fact]
    public async Task Cleanup_RemovesSessionsPastTheirIdleOrAbsoluteExpiry_AndOnlyThose()
    {
        var app = await StartAsync(configure: o =>
        {
            o.IdleTimeout = TimeSpan.FromMinutes(10);
            o.AbsoluteLifetime = TimeSpan.FromMinutes(30);
        });
        var (_, idle) = await SendAsync(app, HttpMethod.Post, "/set/a?value=idle");
        var (_, active) = await SendAsync(app, HttpMethod.Post, "/set/a?value=active");
        _time.Advance(TimeSpan.FromMinutes(8));
        var (_, fresh) = await SendAsync(app, HttpMethod.Post, "/set/a?value=fresh");
        await SendAsync(app, HttpMethod.Get, "/get/a", active); // touched at 8 min: lives to 18 min
        _time.Advance(TimeSpan.FromMinutes(8)); // 16 min: "idle" expired at 10
        await SendAsync(app, HttpMethod.Get, "/get/a", active); // touched: would live to 26 min
        await SendAsync(app, HttpMethod.Get, "/get/a", fresh); // touched: lives to 26 min

        var runner = app.Services.GetRequiredService<PgFirst.Core.PgMaintenanceRunner>();
        Assert.Equal(1, (await runner.RunOnceAsync(CancellationToken)).RowsRemoved);
        Assert.Equal(2L, await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".session"));

        _time.Advance(TimeSpan.FromMinutes(9)); // 25 min: both still within idle and absolute
        Assert.Equal(0, (await runner.RunOnceAsync(CancellationToken)).RowsRemoved);
        await SendAsync(app, HttpMethod.Get, "/get/a", active); // touched at 25: idle to 35, absolute 30
        await SendAsync(app, HttpMethod.Get, "/get/a", fresh); // absolute 38
        _time.Advance(TimeSpan.FromMinutes(6)); // 31 min: "active" is past its absolute expiry

        Assert.Equal(1, (await runner.RunOnceAsync(CancellationToken)).RowsRemoved);
        Assert.Equal("fresh", (await SendAsync(app, HttpMethod.Get, "/get/a", fresh)).Body);
        Assert.Equal("<none>", (await SendAsync(app, HttpMethod.Get, "/get/a", active)).Body);
    }

    [Fact]
    public async Task DataProtectionKeysInPostgreSql_LetEveryInstanceReadTheOthersCookies()
    {
        var one = await StartAsync(services: s => s.AddDataProtection().PersistKeysToPgFirst());
        var two = await StartAsync(services: s => s.AddDataProtection().PersistKeysToPgFirst());

        var (_, cookie) = await SendAsync(one, HttpMethod.Post, "/set/a?value=from-one");

        Assert.Equal("from-one", (await SendAsync(two, HttpMethod.Get, "/get/a", cookie)).Body);
        Assert.True(await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".data_protection_key") >= 1);
    }

    [Fact]
    public async Task XmlRepository_StoresAndReadsElementsInOrder()
    {
        await new PgFirst.Core.PgSchemaInstaller(DataSource, Schema, [PostgresSessionBackend.SchemaModule]).ApplyAsync(CancellationToken);
        var repository = new PgXmlRepository(DataSource, Schema);

        repository.StoreElement(new XElement("key", new XAttribute("id", "1")), "key-1");
        repository.StoreElement(new XElement("key", new XAttribute("id", "2")), "key-2");

        Assert.Equal(["1", "2"], repository.GetAllElements().Select(e => (string)e.Attribute("id")!));
    }

    [Fact]
    public void XmlRepository_WithoutTheSchema_NamesTheScriptToApply()
    {
        var repository = new PgXmlRepository(DataSource, Schema);

        var error = Assert.Throws<PgFirst.Core.PgFirstSchemaException>(() => repository.GetAllElements());

        Assert.Contains("pgsessions", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Backend_WithoutTheSchema_NamesTheScriptToApply()
    {
        var backend = new PostgresSessionBackend(DataSource, Schema);

        var error = await Assert.ThrowsAsync<PgFirst.Core.PgFirstSchemaException>(async () =>
            await backend.LoadAsync(new PgSessionLoadRequest(new byte[32], "default", _time.GetUtcNow(), TimeSpan.Zero), CancellationToken));

        Assert.Contains("sql/pgsessions/001_session.sql", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_CountLoadsCommitsAndRevocations()
    {
        var app = await StartAsync();
        var meters = app.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
        using var loads = new MetricCollector<long>(meters, "PgSessions", "pgsessions.loads");
        using var commits = new MetricCollector<long>(meters, "PgSessions", "pgsessions.commits");
        using var revocations = new MetricCollector<long>(meters, "PgSessions", "pgsessions.revocations");
        using var loadDuration = new MetricCollector<double>(meters, "PgSessions", "pgsessions.load.duration");

        var (_, cookie) = await SendAsync(app, HttpMethod.Post, "/set/a?value=1");
        await SendAsync(app, HttpMethod.Get, "/get/a", cookie);
        await SendAsync(app, HttpMethod.Post, "/set/a?value=2", cookie);
        var (id, _) = await SendAsync(app, HttpMethod.Post, "/signin/alice", cookie);
        await SendAsync(app, HttpMethod.Post, $"/revoke/{id}");

        Assert.Equal(["new", "found", "found", "found"], loads.GetMeasurementSnapshot().Select(m => (string)m.Tags["pgsessions.result"]!));
        Assert.Equal(["inserted", "updated", "updated", "updated"], commits.GetMeasurementSnapshot().Select(m => (string)m.Tags["pgsessions.result"]!));
        Assert.Equal(1, revocations.GetMeasurementSnapshot().Sum(m => m.Value));
        Assert.Equal(3, loadDuration.GetMeasurementSnapshot().Count);
        Assert.All(loads.GetMeasurementSnapshot(), m => Assert.Equal("postgresql", m.Tags[PgFirst.Core.PgFirstMetricNames.BackendTag]));
    }

    // synchronous_commit = off must hold for the session write's own transaction and nothing after it on that
    // connection (a pooled connection serves the app's other writes next).
    [Theory]
    [InlineData(true, "off")]
    [InlineData(false, "on")]
    public async Task SessionWrites_Asynchronous_TurnSynchronousCommitOffForTheirOwnTransactionOnly(bool asynchronous, string during)
    {
        await ApplySessionSchemaAsync();
        await using var connection = await DataSource.OpenConnectionAsync(CancellationToken);
        Assert.Equal("on", await ShowAsync(connection, "SHOW synchronous_commit"));
        var keyHash = RandomNumberGenerator.GetBytes(32);
        var now = _time.GetUtcNow();

        await using (var transaction = await connection.BeginTransactionAsync(CancellationToken))
        {
            await using var insert = new Npgsql.NpgsqlCommand(
                $"SELECT \"{Schema}\".session_insert($1, gen_random_uuid(), 'default', NULL, $2, $2, '20 min', $2 + interval '1 hour', '\\x0100000000', NULL, NULL, $3)",
                connection, transaction);
            insert.Parameters.AddWithValue(keyHash);
            insert.Parameters.AddWithValue(now);
            insert.Parameters.AddWithValue(asynchronous);
            Assert.Equal(true, await insert.ExecuteScalarAsync(CancellationToken));
            Assert.Equal(during, await ShowAsync(connection, "SHOW synchronous_commit", transaction));
            await transaction.CommitAsync(CancellationToken);
        }

        Assert.Equal("on", await ShowAsync(connection, "SHOW synchronous_commit"));
        await using (var transaction = await connection.BeginTransactionAsync(CancellationToken))
        {
            await using var commit = new Npgsql.NpgsqlCommand(
                $"SELECT status FROM \"{Schema}\".session_commit($1, $1, 'default', 1, '\\x0100000000', NULL, '20 min', $2 + interval '1 hour', $2, '1 min', false, '{{}}', '{{}}', false, NULL, NULL, 1024, $3)",
                connection, transaction);
            commit.Parameters.AddWithValue(keyHash);
            commit.Parameters.AddWithValue(now);
            commit.Parameters.AddWithValue(asynchronous);
            Assert.Equal(0, await commit.ExecuteScalarAsync(CancellationToken));
            Assert.Equal(during, await ShowAsync(connection, "SHOW synchronous_commit", transaction));
            await transaction.CommitAsync(CancellationToken);
        }

        Assert.Equal("on", await ShowAsync(connection, "SHOW synchronous_commit"));
        Assert.Equal(2L, await ScalarAsync<long>($"SELECT version FROM \"{Schema}\".session WHERE key_hash = $1", keyHash));
    }

    private async Task ApplySessionSchemaAsync()
    {
        await StartAsync();
    }

    private static async Task<string> ShowAsync(Npgsql.NpgsqlConnection connection, string sql, Npgsql.NpgsqlTransaction? transaction = null)
    {
        await using var command = new Npgsql.NpgsqlCommand(sql, connection, transaction);
        return (string)(await command.ExecuteScalarAsync(CancellationToken))!;
    }

    [Theory]
    [InlineData("IdleTimeout", "00:00:00")]
    [InlineData("AbsoluteLifetime", "-00:00:01")]
    [InlineData("TouchInterval", "01:00:00")]
    [InlineData("MaxSessionBytes", "10")]
    [InlineData("CommitDurability", "7")]
    public async Task InvalidOptions_FailAtStartUp_NamingTheSetting(string setting, string value)
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => StartAsync(configure: o =>
        {
            switch (setting)
            {
                case "IdleTimeout": o.IdleTimeout = TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
                case "AbsoluteLifetime": o.AbsoluteLifetime = TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
                case "TouchInterval": o.TouchInterval = TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
                case "MaxSessionBytes": o.MaxSessionBytes = int.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
                default: o.CommitDurability = (PgSessionDurability)int.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
            }
        }));

        Assert.Contains("PgSessions:" + setting, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HealthCheck_IsHealthyWithTheSchema_AndUnhealthyWithout()
    {
        var healthy = await StartAsync();
        Assert.Equal(HealthStatus.Healthy, (await healthy.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(CancellationToken)).Status);
        await ExecuteAsync($"DROP TABLE \"{Schema}\".session CASCADE");

        var report = await healthy.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(CancellationToken);

        Assert.Equal(HealthStatus.Unhealthy, report.Entries["pgsessions"].Status);
        Assert.Contains("001_session.sql", report.Entries["pgsessions"].Description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AddSessionCalledFirst_StillGetsThePgSessionStore()
    {
        var app = await StartAsync(services: s => s.AddSession());

        Assert.IsType<PgSessionStore>(app.Services.GetRequiredService<ISessionStore>());
    }

    [Fact]
    public async Task RedisBackendWithoutTheRedisMode_FailsAtStartUpWithAClearError()
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            StartAsync(services: s => s.Configure<PgFirst.Core.PgFirstOptions>(o => o.SessionsBackend = PgFirst.Core.PgFirstBackend.Redis)));

        Assert.Contains("AddRedis", error.Message, StringComparison.Ordinal);
    }

    private static string Pad(string text) => (text.Length % 4) switch
    {
        2 => text + "==",
        3 => text + "=",
        _ => text,
    };
}
