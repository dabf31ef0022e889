using System.Security.Cryptography;
using PgFirst.Testing;
using PgSessions;

namespace PgFirst.Admin.Tests;

[Trait("Category", "Pooler")]
public sealed class SessionCommandTests(PostgresServer server) : AdminTest(server)
{
    private PgSessionRecord _aliceLaptop = null!;

    public override async ValueTask InitializeAsync()
    {
        await base.InitializeAsync();
        var backend = new PostgresSessionBackend(DataSource, Options);
        var now = DateTimeOffset.UtcNow;
        _aliceLaptop = Session(now, "alice", "default", 100, "203.0.113.7", "Firefox on Linux");
        await backend.InsertAsync(_aliceLaptop, CancellationToken);
        await backend.InsertAsync(Session(now.AddMinutes(-1), "alice", "default", 200, "198.51.100.2", "Safari on iPhone"), CancellationToken);
        await backend.InsertAsync(Session(now, "bob", "default", 300, null, null), CancellationToken);
        await backend.InsertAsync(Session(now, null, "default", 400, null, null), CancellationToken);
        await backend.InsertAsync(Session(now, "alice", "acme", 500, null, null), CancellationToken);
        await backend.InsertAsync(Session(now.AddDays(-2), "carol", "default", 600, null, null), CancellationToken);
    }

    [Fact]
    public async Task Stats_CountsLiveSignedInUsersExpiredAndBytes_PerTenant()
    {
        var run = await AdminAsync("sessions", "stats");

        AssertExit(AdminExitCode.Ok, run);
        Assert.Contains("5 live sessions (4 signed in), 1 expired awaiting cleanup, 2.1 KiB of data", run.Output, StringComparison.Ordinal);
        Assert.Matches(@"default\s+│\s+4\s+│\s+3\s+│\s+2\s+│\s+1\s+│", run.Output);

        var json = (await AdminAsync("sessions", "stats", "--tenant", "acme", "--json")).Json;
        Assert.Equal(1, json.GetProperty("live").GetInt64());
        Assert.Equal("acme", json.GetProperty("tenants")[0].GetProperty("tenantId").GetString());
        Assert.Equal(500, json.GetProperty("dataBytes").GetInt64());
    }

    [Fact]
    public async Task List_ShowsAUsersLiveSessions_NewestFirst_WithTheirDevice()
    {
        var run = await AdminAsync("sessions", "list", "--user", "alice");

        AssertExit(AdminExitCode.Ok, run);
        Assert.Contains(_aliceLaptop.SessionId.ToString(), run.Output, StringComparison.Ordinal);
        var laptop = run.Output.IndexOf("Firefox on Linux", StringComparison.Ordinal);
        var phone = run.Output.IndexOf("Safari on iPhone", StringComparison.Ordinal);
        Assert.True(laptop >= 0 && phone > laptop, run.ToString());

        var json = (await AdminAsync("sessions", "list", "--user", "alice", "--json")).Json;
        Assert.Equal(2, json.GetArrayLength());
        Assert.Equal("203.0.113.7", json[0].GetProperty("clientIp").GetString());
        Assert.Equal(1, (await AdminAsync("sessions", "list", "--user", "alice", "--tenant", "acme", "--json")).Json.GetArrayLength());
    }

    [Fact]
    public async Task Revoke_WithoutYes_ChangesNothing_ThenById_AndByUser_InTheirTenantOnly()
    {
        var dry = await AdminAsync("sessions", "revoke", "--user", "alice");
        AssertExit(AdminExitCode.NotConfirmed, dry);
        Assert.Contains("Would revoke the 2 live session(s) of user 'alice'", dry.Output, StringComparison.Ordinal);
        Assert.Equal(6, await CountAsync());

        var one = await AdminAsync("sessions", "revoke", "--id", _aliceLaptop.SessionId.ToString(), "--yes", "--json");
        AssertExit(AdminExitCode.Ok, one);
        Assert.Equal(1, one.Json.GetProperty("revoked").GetInt32());
        Assert.Equal(5, await CountAsync());

        var all = await AdminAsync("sessions", "revoke", "--user", "alice", "--yes");
        Assert.Contains("Revoked 1 session(s) in tenant 'default'.", all.Output, StringComparison.Ordinal);
        Assert.Equal(1, (await AdminAsync("sessions", "list", "--user", "alice", "--tenant", "acme", "--json")).Json.GetArrayLength());

        var again = await AdminAsync("sessions", "revoke", "--id", _aliceLaptop.SessionId.ToString(), "--yes");
        AssertExit(AdminExitCode.NotFound, again);
        AssertOneErrorLine(again, "no session");
    }

    [Fact]
    public async Task SessionCommands_OnAnUnreachableServer_OrAMissingSchema_OneLineAndTheirExitCode()
    {
        var down = await AdminRun.RunAsync("Host=127.0.0.1;Port=1;Username=x;Password=y;Database=z", null, CancellationToken, "sessions", "list", "--user", "alice");
        AssertExit(AdminExitCode.Failed, down);
        AssertOneErrorLine(down, "cannot reach PostgreSQL at 127.0.0.1:1");

        var missing = await AdminRun.RunAsync(Server.ConnectionString, null, CancellationToken, "sessions", "stats", "--schema", "t_missing_" + Guid.NewGuid().ToString("N")[..8]);
        AssertExit(AdminExitCode.SchemaNotReady, missing);
        AssertOneErrorLine(missing, "t_missing_");
    }

    [Theory]
    [InlineData(new[] { "sessions", "revoke", "--yes" }, "exactly one of --user U and --id ID")]
    [InlineData(new[] { "sessions", "revoke", "--user", "alice", "--id", "x", "--yes" }, "exactly one of --user U and --id ID")]
    [InlineData(new[] { "sessions", "revoke", "--id", "not-a-guid", "--yes" }, "is not a session id")]
    [InlineData(new[] { "sessions", "list" }, "needs --user")]
    public async Task BadArguments_AreUsageErrors_AndChangeNothing(string[] args, string message)
    {
        var run = await AdminAsync(args);

        AssertExit(AdminExitCode.Usage, run);
        AssertOneErrorLine(run, message);
        Assert.Equal(6, await CountAsync());
    }

    private Task<long> CountAsync() => ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".session");

    private static PgSessionRecord Session(DateTimeOffset at, string? user, string tenant, int bytes, string? ip, string? agent) => new()
    {
        KeyHash = RandomNumberGenerator.GetBytes(32),
        TenantId = tenant,
        SessionId = Guid.NewGuid(),
        UserId = user,
        Version = 1,
        Data = new byte[bytes],
        CreatedAt = at,
        LastSeenAt = at,
        IdleTimeout = TimeSpan.FromMinutes(20),
        AbsoluteExpiresAt = at + TimeSpan.FromDays(1),
        ClientIp = ip,
        UserAgent = agent,
    };
}
