using BenchmarkDotNet.Attributes;
using Npgsql;
using NpgsqlTypes;
using PgFirst.Core;
using PgFirst.Redis;
using PgRateLimit;
using StackExchange.Redis;

namespace PgFirst.Benchmarks;

/// <summary>
/// One rate-limit decision over 1,000 partitions: the limiter (through the ASP.NET-facing RateLimiter API) against raw
/// Npgsql making the same prepared call on the same data source (the baseline), a bare upsert without the window
/// arithmetic (informative), and the Redis twin. Target (issue 5): ours ≥ 0.85 of raw.
/// </summary>
[MemoryDiagnoser]
public class RateLimitBenchmarks
{
    private const string Schema = "bench_ratelimit";
    private const int Partitions = 1000;

    private NpgsqlDataSource _dataSource = null!;
    private PgFixedWindowRateLimiter[] _limiters = null!;
    private PgFixedWindowRateLimiter[] _redisLimiters = null!;
    private ConnectionMultiplexer _redis = null!;
    private string[] _keys = null!;
    private string _rawSql = null!;
    private int _next;

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        await using (var drop = _dataSource.CreateCommand($"DROP SCHEMA IF EXISTS \"{Schema}\" CASCADE"))
        {
            await drop.ExecuteNonQueryAsync();
        }

        await new PgSchemaInstaller(_dataSource, Schema, [PostgresRateLimitStore.SchemaModule]).ApplyAsync();
        var store = new PostgresRateLimitStore(_dataSource, Schema);
        _redis = await ConnectionMultiplexer.ConnectAsync(BenchmarkServers.Redis);
        var redisStore = new RedisRateLimitStore(_redis, new PgFirstRedisOptions { KeyPrefix = "bench:" + Guid.NewGuid().ToString("N") + ":" });
        _keys = Enumerable.Range(0, Partitions).Select(i => $"user:{i}").ToArray();
        var policy = new PgFixedWindowRateLimiterOptions { PermitLimit = int.MaxValue, Window = TimeSpan.FromHours(1) };
        _limiters = Enumerable.Range(0, Partitions).Select(i => new PgFixedWindowRateLimiter(store, "bench", $"user:{i}", policy)).ToArray();
        _redisLimiters = Enumerable.Range(0, Partitions).Select(i => new PgFixedWindowRateLimiter(redisStore, "bench", $"user:{i}", policy)).ToArray();
        _rawSql = $"""
            INSERT INTO "{Schema}".rate_limit_counter AS c (limiter_id, partition_key, window_start, hits, expires_at)
            VALUES ('raw', $1, date_trunc('hour', clock_timestamp()), 1, date_trunc('hour', clock_timestamp()) + interval '1 hour')
            ON CONFLICT (limiter_id, partition_key) DO UPDATE
            SET hits = CASE WHEN c.window_start = EXCLUDED.window_start THEN c.hits + 1 ELSE 1 END,
                window_start = EXCLUDED.window_start,
                expires_at = EXCLUDED.expires_at
            RETURNING c.hits
            """;
    }

    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        foreach (var limiter in _limiters.Concat(_redisLimiters))
        {
            limiter.Dispose();
        }

        await _dataSource.DisposeAsync();
        await _redis.DisposeAsync();
    }

    [Benchmark(Description = "bare upsert without window arithmetic (informative)")]
    public async Task<long> RawUpsert()
    {
        await using var connection = await _dataSource.OpenConnectionAsync();
        await using var command = new NpgsqlCommand(_rawSql, connection);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _keys[Next()], NpgsqlDbType = NpgsqlDbType.Text });
        await command.PrepareAsync();
        return (long)(await command.ExecuteScalarAsync())!;
    }

    [Benchmark(Baseline = true, Description = "raw prepared call of the same SQL")]
    public async Task<bool> RawSameSql()
    {
        await using var connection = await _dataSource.OpenConnectionAsync();
        await using var command = new NpgsqlCommand($"SELECT acquired, hits, retry_after FROM \"{Schema}\".ratelimit_acquire($1, $2, $3, $4, $5, $6)", connection);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = "fn", NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _keys[Next()], NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = 1, NpgsqlDbType = NpgsqlDbType.Integer });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = int.MaxValue, NpgsqlDbType = NpgsqlDbType.Integer });
        command.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = TimeSpan.FromHours(1), NpgsqlDbType = NpgsqlDbType.Interval });
        command.Parameters.Add(new NpgsqlParameter<bool> { TypedValue = false, NpgsqlDbType = NpgsqlDbType.Boolean });
        await command.PrepareAsync();
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return reader.GetBoolean(0);
    }

    [Benchmark(Description = "PgFixedWindowRateLimiter.AcquireAsync")]
    public async Task<bool> LimiterDecision()
    {
        using var lease = await _limiters[Next()].AcquireAsync(1);
        return lease.IsAcquired;
    }

    [Benchmark(Description = "Redis twin AcquireAsync")]
    public async Task<bool> RedisDecision()
    {
        using var lease = await _redisLimiters[Next()].AcquireAsync(1);
        return lease.IsAcquired;
    }

    private int Next() => _next = (_next + 1) % Partitions;
}
