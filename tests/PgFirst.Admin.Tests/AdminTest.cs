using PgFirst.Admin;
using PgFirst.Testing;

namespace PgFirst.Admin.Tests;

/// <summary>A test of the tool against its own schema on the test server, applied with every module.</summary>
public abstract class AdminTest(PostgresServer server) : PostgresTest(server)
{
    protected PgFirstOptions Options => Server.Options(Schema);

    /// <summary>Gets how many scripts the installer applies: the tool's modules' (every module's <c>sql/</c> folder) and its own <c>sql/pgfirst</c> one.</summary>
    private protected static int ScriptCount => Internal.Modules.All().Sum(m => m.Scripts.Count) + 1;

    public override async ValueTask InitializeAsync()
    {
        await base.InitializeAsync();
        await new PgSchemaInstaller(DataSource, Schema, Internal.Modules.All()).ApplyAsync(CancellationToken);
    }

    // The tool with --schema set to this test's schema.
    private protected Task<AdminRun> AdminAsync(params string[] args) =>
        AdminRun.RunAsync(Server.ConnectionString, null, CancellationToken, [.. args, "--schema", Schema]);

    private protected static void AssertExit(AdminExitCode expected, AdminRun run) =>
        Assert.True(run.Code == expected, $"Expected exit {(int)expected} ({expected}), got:\n{run}");

    // An error is one line, naming the tool.
    private protected static void AssertOneErrorLine(AdminRun run, string contains)
    {
        var lines = run.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.True(lines.Length == 1, $"Expected one error line, got:\n{run}");
        Assert.StartsWith("pgfirst-admin: ", lines[0], StringComparison.Ordinal);
        Assert.Contains(contains, lines[0], StringComparison.Ordinal);
    }
}
