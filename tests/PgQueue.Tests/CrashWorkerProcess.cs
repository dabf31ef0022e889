using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace PgQueue.Tests;

// One `dotnet PgQueue.CrashWorker.dll` process with its output captured; killed, if still running, on dispose.
internal sealed class CrashWorkerProcess : IDisposable
{
    private const int KeptLines = 20_000;
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();

    private CrashWorkerProcess(string name, Process process)
    {
        Name = name;
        _process = process;
    }

    public string Name { get; }

    public int Id => _process.Id;

    public bool Killed { get; private set; }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public string Output => string.Join('\n', _output);

    public static CrashWorkerProcess Start(string name, string connectionString, string schema, string mode, TimeSpan leaseDuration)
    {
        var start = new ProcessStartInfo(DotnetHost())
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(WorkerPath()),
        };
        start.ArgumentList.Add(WorkerPath());
        start.Environment["CrashWorker__ConnectionString"] = connectionString;
        start.Environment["CrashWorker__Schema"] = schema;
        start.Environment["CrashWorker__Mode"] = mode;
        start.Environment["CrashWorker__LeaseDuration"] = leaseDuration.ToString("c", CultureInfo.InvariantCulture);

        // The worker stops when this process goes away and its standard input closes, so it never lingers.
        start.Environment["CrashWorker__StopWhenInputEnds"] = "true";
        var process = new Process { StartInfo = start };
        var worker = new CrashWorkerProcess(name, process);
        process.OutputDataReceived += (_, e) => worker.Append(e.Data);
        process.ErrorDataReceived += (_, e) => worker.Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return worker;
    }

    // SIGKILL on Linux and macOS (TerminateProcess on Windows): the worker gets no chance to clean up.
    public void Kill()
    {
        Killed = true;
        _process.Kill(entireProcessTree: true);
        if (!_process.WaitForExit(TimeSpan.FromSeconds(10)))
        {
            Assert.Fail($"Worker {Name} (pid {Id}) did not die within 10 s of being killed.");
        }
    }

    // SIGSTOP: the process stops where it is, sockets and transactions open, until SIGCONT.
    public void Freeze() => Signal("STOP");

    public void Resume() => Signal("CONT");

    public string Describe(int lines)
    {
        var state = Killed ? "killed" : HasExited ? $"exited with code {ExitCode}" : "running";
        return $"--- worker {Name} (pid {Id}, {state}), last {lines} lines:\n" + string.Join('\n', _output.TakeLast(lines));
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                Killed = true;
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(TimeSpan.FromSeconds(10));
            }
        }
        catch (InvalidOperationException)
        {
            // It exited in between.
        }
        finally
        {
            _process.Dispose();
        }
    }

    private static string WorkerPath()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "crash-worker", "PgQueue.CrashWorker.dll");
        return File.Exists(path)
            ? path
            : throw new InvalidOperationException($"{path} is missing: PgQueue.Tests.csproj copies tests/PgQueue.CrashWorker's output there on build; rebuild the test project.");
    }

    // The host that runs these tests: DOTNET_HOST_PATH when the SDK set it, else the installation this runtime
    // came from (<root>/shared/Microsoft.NETCore.App/<version>/), else whatever `dotnet` is on the PATH.
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

    private void Signal(string signal)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill") { ArgumentList = { "-" + signal, Id.ToString(CultureInfo.InvariantCulture) }, UseShellExecute = false })!;
        if (!kill.WaitForExit(TimeSpan.FromSeconds(10)) || kill.ExitCode != 0)
        {
            Assert.Fail($"kill -{signal} {Id} failed for worker {Name}.");
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        _output.Enqueue(line);
        while (_output.Count > KeptLines)
        {
            _output.TryDequeue(out _);
        }
    }
}
