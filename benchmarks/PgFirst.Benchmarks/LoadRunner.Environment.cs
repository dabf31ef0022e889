using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using Npgsql;
using StackExchange.Redis;

namespace PgFirst.Benchmarks;

// What the report discloses: the machine, the versions, and every setting that moves the figures.
internal static partial class LoadRunner
{
    private static async Task<IReadOnlyList<KeyValuePair<string, string>>> MachineAsync()
    {
        var machine = new List<KeyValuePair<string, string>>
        {
            new("CPU", CpuModel()),
            new("logical cores", Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture)),
            new("memory", MemoryTotal()),
            new("OS", RuntimeInformation.OSDescription),
            new(".NET", RuntimeInformation.FrameworkDescription),
            new("Npgsql", PackageVersion(typeof(NpgsqlDataSource))),
            new("StackExchange.Redis", PackageVersion(typeof(ConnectionMultiplexer))),
        };
        await using var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        await using (var version = dataSource.CreateCommand("SELECT version()"))
        {
            machine.Add(new("PostgreSQL", ((string)(await version.ExecuteScalarAsync())!).Split(" on ")[0]));
        }

        await using var redis = await ConnectionMultiplexer.ConnectAsync(BenchmarkServers.Redis);
        var server = redis.GetServer(redis.GetEndPoints()[0]);
        machine.Add(new("Redis", server.Version.ToString()));
        machine.Add(new("topology", "client, PostgreSQL and Redis on the same machine, over loopback TCP"));
        return machine;
    }

    private static async Task<IReadOnlyList<KeyValuePair<string, string>>> SettingsAsync(bool quick, double seconds, double warmUp, int[] callers, int rounds)
    {
        var settings = new List<KeyValuePair<string, string>>
        {
            new("mode", quick ? "quick (--quick): short steps, 1 and 8 callers, 10,000 keys; for a smoke check, not for citing" : "full"),
            new("per step", string.Create(CultureInfo.InvariantCulture, $"{warmUp:0.#} s warm-up, then {seconds:0.#} s measured; ops/s over the measured time; latency percentiles of every operation in it")),
            new("callers", string.Join(", ", callers) + " concurrent async callers, each awaiting one operation at a time"),
            new("rounds", rounds == 1
                ? "1: every figure is a single measurement"
                : string.Create(CultureInfo.InvariantCulture, $"{rounds}, interleaved (every step once, then again); each figure is the round with the median ops/s, with that round's percentiles")),
            new("data source", "a fresh NpgsqlDataSource per step, default settings (pool up to 100, reset on close), every statement prepared; raw baselines use the same settings"),
            new("cache", string.Create(CultureInfo.InvariantCulture, $"{Keys:N0} keys of 1 KiB, UNLOGGED table (PgCache default); keys cycle through the key space")),
            new("rate limit", "1,000 partitions, window 1 h, limit never reached (every decision is a round trip)"),
            new("sessions", string.Create(CultureInfo.InvariantCulture, $"{Sessions:N0} sessions, each a 1 KiB cart; LOGGED table; touch interval {TouchInterval.TotalMinutes:0} min, sessions created just before the session steps, so no load in them writes a touch")),
            new("Redis", "StackExchange.Redis, one multiplexer per step; server without persistence (--save \"\" --appendonly no) as ./pgfirst starts it"),
        };
        await using var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        foreach (var name in new[] { "shared_buffers", "synchronous_commit", "fsync", "wal_level", "max_connections" })
        {
            await using var show = dataSource.CreateCommand($"SHOW {name}");
            settings.Add(new($"PostgreSQL {name}", (string)(await show.ExecuteScalarAsync())!));
        }

        return settings;
    }

    // The informational version is the package version (assembly versions are often pinned, e.g. 2.0.0.0).
    private static string PackageVersion(Type type)
    {
        var version = type.Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
            ?? type.Assembly.GetName().Version?.ToString() ?? "?";
        var plus = version.IndexOf('+', StringComparison.Ordinal);
        return plus < 0 ? version : version[..plus];
    }

    private static string CpuModel()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line is null ? RuntimeInformation.ProcessArchitecture.ToString() : line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
        }
        catch (IOException)
        {
            return RuntimeInformation.ProcessArchitecture.ToString();
        }
    }

    private static string MemoryTotal()
    {
        try
        {
            var line = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal", StringComparison.Ordinal));
            var kib = line is null ? 0 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
            return kib == 0 ? "?" : string.Create(CultureInfo.InvariantCulture, $"{kib / 1024.0 / 1024.0:0.0} GiB");
        }
        catch (IOException)
        {
            return "?";
        }
    }

}
