using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Caching.Distributed;
using Npgsql;
using PgCache;
using PgFirst.Core;
using PgFirst.Testing;

namespace PgCache.Tests;

// Another app server in a process of its own (tests/PgCache.NearCacheWorker) with the near cache on, and a real
// PostgreSQL crash and restart under it: this class has a throwaway cluster (PrivatePostgres), as the shared server
// must stay up for the other classes.
public sealed class NearCacheProcessTests : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(1);
    private readonly string _schemaName = PostgresServer.NewSchemaName();
    private PrivatePostgres? _postgres;
    private NpgsqlDataSource? _dataSource;
    private WorkerProcess? _worker;
    private PgDistributedCache? _cache;

    private static CancellationToken CancellationToken => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        _postgres = await PrivatePostgres.CreateAsync(CancellationToken);
        _dataSource = NpgsqlDataSource.Create(_postgres.ConnectionString);
        await new PgSchemaInstaller(_dataSource, _schemaName, [PgDistributedCache.SchemaModule]).ApplyAsync(CancellationToken);
        var options = new PgCacheOptions();
        options.NearCache.Enabled = true;
        options.NearCache.MaxStaleness = Bound;
        _cache = new PgDistributedCache(_dataSource, new PgFirstOptions { SchemaName = _schemaName }, options, new PgTenantContext("default"), TimeProvider.System);
    }

    public async ValueTask DisposeAsync()
    {
        _worker?.Dispose();
        if (_cache is not null)
        {
            await _cache.DisposeAsync();
        }

        if (_dataSource is not null)
        {
            await _dataSource.DisposeAsync();
        }

        if (_postgres is not null)
        {
            await _postgres.DisposeAsync();
        }
    }

    [Fact]
    public async Task AnotherProcess_StopsServingWhatThisOneChanged_AndThroughAPostgresCrashAndRestart()
    {
        var cache = _cache!;
        var worker = _worker = WorkerProcess.Start(_postgres!.ConnectionString, _schemaName, Bound);
        await worker.WaitForAsync("ready", TimeSpan.FromSeconds(60));
        await cache.SetStringAsync("k", "v1", CancellationToken);
        await WaitUntilAsync(worker, "the worker holds a copy of v1", async () =>
            await worker.AskAsync("get k") == "value v1" && (await worker.AskAsync("state")).Contains("count=1", StringComparison.Ordinal));

        await cache.SetStringAsync("k", "v2", CancellationToken);
        await WaitUntilAsync(worker, "the worker serves v2", async () => await worker.AskAsync("get k") == "value v2");
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal("value v2", await worker.AskAsync("get k"));
        }

        // The server goes away: past the bound, the worker must not answer from memory any more.
        await _postgres.CrashAsync(CancellationToken);
        var crashed = Stopwatch.StartNew();
        await Task.Delay(Bound + TimeSpan.FromMilliseconds(200), CancellationToken);
        for (var i = 0; i < 5; i++)
        {
            var answer = await worker.AskAsync("get k");
            Assert.True(answer.StartsWith("error ", StringComparison.Ordinal), $"{crashed.Elapsed} after the crash the worker answered '{answer}'. {worker.Describe()}");
        }

        await _postgres.StartAsync(CancellationToken);
        _dataSource!.Clear();

        // An UNLOGGED table is emptied by crash recovery; a new value after the restart must reach the worker too.
        await WaitUntilAsync(worker, "the worker's near cache serves again", async () => (await worker.AskAsync("state")).Contains("serving=True", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        Assert.Equal("miss", await worker.AskAsync("get k"));
        await cache.SetStringAsync("k", "v3", CancellationToken);
        await WaitUntilAsync(worker, "the worker serves v3 after the restart", async () => await worker.AskAsync("get k") == "value v3");
        await WaitUntilAsync(worker, "the worker holds a copy again", async () =>
            await worker.AskAsync("get k") == "value v3" && (await worker.AskAsync("state")).Contains("count=1", StringComparison.Ordinal));
        await cache.SetStringAsync("k", "v4", CancellationToken);
        await WaitUntilAsync(worker, "invalidations reach the worker after the restart", async () => await worker.AskAsync("get k") == "value v4", Bound * 2);
    }

    private static async Task WaitUntilAsync(WorkerProcess worker, string what, Func<Task<bool>> condition, TimeSpan? within = null)
    {
        var limit = within ?? TimeSpan.FromSeconds(20);
        var elapsed = Stopwatch.StartNew();
        while (!await condition())
        {
            if (elapsed.Elapsed > limit)
            {
                Assert.Fail($"Not within {limit}: {what}. {worker.Describe()}");
            }

            await Task.Delay(20, CancellationToken);
        }
    }

    // One `dotnet near-worker/PgCache.NearCacheWorker.dll`: a command per line in, an answer per line out.
    private sealed class WorkerProcess : IDisposable
    {
        private readonly Process _process;
        private readonly BlockingCollection<string> _lines = [];
        private readonly ConcurrentQueue<string> _log = new();

        private WorkerProcess(Process process) => _process = process;

        public static WorkerProcess Start(string connectionString, string schema, TimeSpan bound)
        {
            var path = Path.Combine(AppContext.BaseDirectory, "near-worker", "PgCache.NearCacheWorker.dll");
            Assert.True(File.Exists(path), $"{path} is missing: PgCache.Tests.csproj copies the worker there on build.");
            var start = new ProcessStartInfo(DotnetHost())
            {
                UseShellExecute = false,
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = Path.GetDirectoryName(path),
            };
            start.ArgumentList.Add(path);
            start.Environment["NEARCACHE_CONNECTION"] = connectionString;
            start.Environment["NEARCACHE_SCHEMA"] = schema;
            start.Environment["NEARCACHE_MAX_STALENESS"] = bound.ToString("c", CultureInfo.InvariantCulture);
            var process = new Process { StartInfo = start };
            var worker = new WorkerProcess(process);
            process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is { } line)
                {
                    worker._log.Enqueue(line);
                    worker._lines.Add(line);
                }
            };
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is { } line)
                {
                    worker._log.Enqueue("stderr: " + line);
                }
            };
            process.Start();
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            return worker;
        }

        public Task WaitForAsync(string line, TimeSpan within) => Task.Run(() =>
        {
            while (_lines.TryTake(out var next, (int)within.TotalMilliseconds, CancellationToken))
            {
                if (next == line)
                {
                    return;
                }
            }

            Assert.Fail($"The worker did not say '{line}' within {within}. {Describe()}");
        });

        public async Task<string> AskAsync(string command)
        {
            await _process.StandardInput.WriteLineAsync(command.AsMemory(), CancellationToken);
            await _process.StandardInput.FlushAsync(CancellationToken);
            return await Task.Run(() => _lines.TryTake(out var answer, 20_000, CancellationToken)
                ? answer
                : throw new TimeoutException($"The worker did not answer '{command}'. {Describe()}"));
        }

        public string Describe() => $"--- worker (pid {_process.Id}, {(_process.HasExited ? "exited" : "running")}), last lines:\n" + string.Join('\n', _log.TakeLast(20));

        public void Dispose()
        {
            try
            {
                if (!_process.HasExited)
                {
                    _process.StandardInput.Close();
                    if (!_process.WaitForExit(TimeSpan.FromSeconds(5)))
                    {
                        _process.Kill(entireProcessTree: true);
                    }
                }
            }
            finally
            {
                _process.Dispose();
                _lines.Dispose();
            }
        }

        private static string DotnetHost()
        {
            if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } hostPath && File.Exists(hostPath))
            {
                return hostPath;
            }

            var runtime = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
            var host = Path.GetFullPath(Path.Combine(runtime, "..", "..", "..", OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet"));
            return File.Exists(host) ? host : "dotnet";
        }
    }
}
