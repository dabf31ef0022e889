using System.Diagnostics;
using PgFirst.Testing;

namespace PgFirst.Admin.Tests;

// Issue 20's "done when": dotnet pack produces the tool package, and it installs with dotnet tool install from that
// local output and runs status on the server (what ./pgfirst admin does). --no-build: packs what the suite's own
// Release build produced, so nothing is compiled while other test assemblies run.
public sealed class ToolPackageTests(PostgresServer server) : AdminTest(server)
{
    [Fact]
    public async Task Pack_ThenToolInstall_FromTheLocalOutput_RunsStatusAndJobsStats()
    {
        var root = RepositoryRoot();
        var work = Directory.CreateTempSubdirectory("pgfirst-admin-tool-");
        try
        {
            var version = "0.0.0-test." + Guid.NewGuid().ToString("N")[..12];
            var feed = Path.Combine(work.FullName, "feed");
            var tools = Path.Combine(work.FullName, "tools");

            var pack = await RunAsync("dotnet", ["pack", Path.Combine(root, "src", "PgFirst.Admin"), "-c", "Release", "--no-build", "-o", feed, $"-p:Version={version}", "-nologo"]);
            Assert.True(pack.Code == 0, pack.Output);
            var package = Assert.Single(Directory.GetFiles(feed, "*.nupkg"));
            Assert.Equal($"PgFirst.Admin.{version}.nupkg", Path.GetFileName(package));

            var install = await RunAsync("dotnet", ["tool", "install", "--tool-path", tools, "--add-source", feed, "PgFirst.Admin", "--version", version]);
            Assert.True(install.Code == 0, install.Output);

            var status = await RunAsync(Path.Combine(tools, "pgfirst-admin"), ["status", "--schema", Schema], Server.ConnectionString);
            Assert.True(status.Code == 0, status.Output);
            Assert.Contains($"Schema {Schema}: {ScriptCount} scripts applied, 0 pending (up to date)", status.Output, StringComparison.Ordinal);

            var jobs = await RunAsync(Path.Combine(tools, "pgfirst-admin"), ["jobs", "stats", "--schema", Schema, "--json"], Server.ConnectionString);
            Assert.True(jobs.Code == 0, jobs.Output);
            Assert.Equal("[]", jobs.Stdout.Trim());
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "PgFirst.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"No PgFirst.sln above {AppContext.BaseDirectory}.");
    }

    private static async Task<(int Code, string Output, string Stdout)> RunAsync(string file, string[] args, string? connectionString = null)
    {
        var start = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        if (connectionString is not null)
        {
            start.Environment["PGFIRST_POSTGRES"] = connectionString;
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(5));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, $"{file} {string.Join(' ', args)}: exit {process.ExitCode}\n{await output}\n{await error}", await output);
    }
}
