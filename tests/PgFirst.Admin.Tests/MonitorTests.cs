using System.Diagnostics;
using System.Text;
using PgFirst.Testing;
using PgQueue;

namespace PgFirst.Admin.Tests;

public sealed class MonitorTests(PostgresServer server) : AdminTest(server)
{
    [Fact]
    public async Task Monitor_RefreshesTheQueueAndStoreViews_ThenStopsAfterRefreshes()
    {
        var backend = new PostgresJobQueueBackend(DataSource, Options);
        for (var i = 0; i < 4; i++)
        {
            await backend.EnqueueAsync(new JobEnqueueRequest { Queue = "email", Kind = "welcome", Payload = "{}", RunAt = DateTimeOffset.UtcNow, MaxAttempts = 3, EnqueuedAt = DateTimeOffset.UtcNow }, CancellationToken);
        }

        var run = await AdminAsync("monitor", "--refreshes", "3", "--interval", "0.2s");

        AssertExit(AdminExitCode.Ok, run);
        Assert.Contains("refresh 3", run.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("refresh 4", run.Output, StringComparison.Ordinal);
        Assert.Matches(@"email\s+│\s+4\s+│", run.Output);
        Assert.Matches(@"cache_entry\s+│", run.Output);
        Assert.Contains("Inserts/s", run.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Monitor_JsonIsRefused_AsAUsageError()
    {
        var run = await AdminAsync("monitor", "--json");

        AssertExit(AdminExitCode.Usage, run);
        AssertOneErrorLine(run, "monitor is a live view");
    }

    // The real tool in a real pseudo-terminal (util-linux script): it redraws on its interval and quits on q.
    [Fact]
    public async Task Monitor_InAPseudoTerminal_RedrawsAndQuitsOnQ()
    {
        var tool = Path.Combine(AppContext.BaseDirectory, "PgFirst.Admin.dll");
        Assert.True(File.Exists(tool), $"{tool} is not beside the tests.");
        var command = $"stty cols 160 rows 60; dotnet '{tool}' monitor --interval 0.3s --schema {Schema}";
        var start = new ProcessStartInfo("script", ["-q", "-f", "-e", "-c", command, "/dev/null"])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["PGFIRST_POSTGRES"] = Server.ConnectionString;
        start.Environment["TERM"] = "xterm";
        start.Environment["COLUMNS"] = "160";
        start.Environment["LINES"] = "50";
        using var process = Process.Start(start)!;
        var output = new StringBuilder();
        var reading = Task.Run(async () =>
        {
            var buffer = new char[4096];
            int read;
            while ((read = await process.StandardOutput.ReadAsync(buffer, CancellationToken)) > 0)
            {
                lock (output)
                {
                    output.Append(buffer, 0, read);
                }
            }
        }, CancellationToken);

        try
        {
            await QueueTestHost.WaitUntilAsync(
                () =>
                {
                    lock (output)
                    {
                        return output.ToString().Contains("refresh 3", StringComparison.Ordinal);
                    }
                },
                "the monitor to redraw three times in the terminal");

            await process.StandardInput.WriteAsync("q");
            await process.StandardInput.FlushAsync(CancellationToken);
            using var exited = CancellationTokenSource.CreateLinkedTokenSource(CancellationToken);
            exited.CancelAfter(TimeSpan.FromSeconds(30));
            await process.WaitForExitAsync(exited.Token);
            Assert.Equal(0, process.ExitCode);
            await reading;
            Assert.Contains("q or Ctrl-C quits", output.ToString(), StringComparison.Ordinal);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }
}
