using System.Net;
using System.Net.Sockets;
using Npgsql;
using PgFirst.Testing;

namespace PgFirst.Admin.Tests;

public sealed class ConnectionAndUsageTests(PostgresServer server) : AdminTest(server)
{
    [Fact]
    public async Task UnreachableServer_OneClearLine_Exit1()
    {
        var port = FreePort();

        var run = await AdminRun.RunAsync($"Host=127.0.0.1;Port={port};Username=x;Password=y;Database=z", null, CancellationToken, "status");

        AssertExit(AdminExitCode.Failed, run);
        AssertOneErrorLine(run, $"cannot reach PostgreSQL at 127.0.0.1:{port} (database 'z')");
    }

    [Fact]
    public async Task WrongPassword_IsAConnectionFailure_Exit1_NotASchemaProblem()
    {
        var wrong = new NpgsqlConnectionStringBuilder(Server.DirectConnectionString) { Password = "not-the-password-" + Guid.NewGuid().ToString("N") }.ConnectionString;

        foreach (var args in new[] { new[] { "status" }, ["schema", "verify"], ["jobs", "stats"] })
        {
            var run = await AdminRun.RunAsync(wrong, null, CancellationToken, [.. args, "--schema", Schema]);

            AssertExit(AdminExitCode.Failed, run);
            AssertOneErrorLine(run, "cannot connect to PostgreSQL");
            Assert.Contains("28P01", run.Error, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task NoConnectionConfigured_SaysHowToGiveOne_Exit2()
    {
        var run = await AdminRun.RunAsync("", new Dictionary<string, string>(), CancellationToken, "status");

        AssertExit(AdminExitCode.Usage, run);
        AssertOneErrorLine(run, "pass --connection");
    }

    [Fact]
    public async Task StandardPgVariables_AreUsed_WhenNeitherOptionNorPgFirstVariableIsSet()
    {
        var builder = new NpgsqlConnectionStringBuilder(Server.ConnectionString);
        var environment = new Dictionary<string, string>
        {
            ["PGHOST"] = builder.Host!,
            ["PGPORT"] = builder.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["PGUSER"] = builder.Username!,
            ["PGPASSWORD"] = builder.Password!,
            ["PGDATABASE"] = builder.Database!,
            ["PGFIRST_SCHEMA"] = Schema,
        };

        var run = await AdminRun.RunAsync("", environment, CancellationToken, "schema", "verify", "--json");

        AssertExit(AdminExitCode.Ok, run);
        Assert.Equal(Schema, run.Json.GetProperty("schema").GetString());
    }

    [Fact]
    public async Task ConnectionOption_WinsOverTheEnvironment()
    {
        var environment = new Dictionary<string, string> { ["PGFIRST_POSTGRES"] = $"Host=127.0.0.1;Port={FreePort()};Username=x;Password=y" };

        var run = await AdminRun.RunAsync("", environment, CancellationToken, "schema", "verify", "--connection", Server.ConnectionString, "--schema", Schema);

        AssertExit(AdminExitCode.Ok, run);
    }

    [Theory]
    [InlineData(new[] { "bogus" }, "Unrecognized command or argument 'bogus'")]
    [InlineData(new[] { "jobs", "show", "abc" }, "abc")]
    [InlineData(new[] { "jobs", "stats", "--window", "soon" }, "is not a duration")]
    [InlineData(new[] { "status", "--schema", "Bad-Name" }, "is not a valid schema name")]
    [InlineData(new[] { "monitor", "--interval", "0.01s" }, "--interval is between")]
    public async Task BadArguments_Exit2_WithAClearMessage(string[] args, string message)
    {
        var run = await AdminRun.RunAsync(Server.ConnectionString, null, CancellationToken, args);

        AssertExit(AdminExitCode.Usage, run);
        Assert.Contains(message, run.Error, StringComparison.Ordinal);
        Assert.StartsWith("pgfirst-admin: ", run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AModuleCommand_OnASchemaWithoutItsTables_Exit3_NamesTheSchema()
    {
        var bare = PostgresServer.NewSchemaName();
        await ExecuteAsync($"CREATE SCHEMA \"{bare}\"");
        try
        {
            var run = await AdminRun.RunAsync(Server.ConnectionString, null, CancellationToken, "jobs", "stats", "--schema", bare);

            AssertExit(AdminExitCode.SchemaNotReady, run);
            AssertOneErrorLine(run, bare);
        }
        finally
        {
            await ExecuteAsync($"DROP SCHEMA \"{bare}\" CASCADE");
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
