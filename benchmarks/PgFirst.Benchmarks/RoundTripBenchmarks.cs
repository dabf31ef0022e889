using BenchmarkDotNet.Attributes;
using Npgsql;
using StackExchange.Redis;

namespace PgFirst.Benchmarks;

/// <summary>
/// The floor under every module: one round trip to each server, with the data-source settings the providers use.
/// Later suites compare the providers with these raw figures.
/// </summary>
[MemoryDiagnoser]
public class RoundTripBenchmarks
{
    private NpgsqlDataSource _dataSource = null!;
    private ConnectionMultiplexer _redis = null!;

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        _redis = await ConnectionMultiplexer.ConnectAsync(BenchmarkServers.Redis);
    }

    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        await _dataSource.DisposeAsync();
        await _redis.DisposeAsync();
    }

    [Benchmark(Baseline = true, Description = "Npgsql prepared SELECT 1")]
    public async Task<int> PostgresPreparedSelect()
    {
        await using var connection = await _dataSource.OpenConnectionAsync();
        await using var command = new NpgsqlCommand("SELECT 1", connection);
        await command.PrepareAsync();
        return (int)(await command.ExecuteScalarAsync())!;
    }

    [Benchmark(Description = "StackExchange.Redis PING")]
    public async Task<TimeSpan> RedisPing() => await _redis.GetDatabase().PingAsync();
}
