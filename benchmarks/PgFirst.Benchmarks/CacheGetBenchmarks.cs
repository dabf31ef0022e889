using System.Buffers;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Caching.Distributed;
using Npgsql;
using NpgsqlTypes;
using PgCache;
using PgFirst.Core;
using PgFirst.Redis;
using StackExchange.Redis;

namespace PgFirst.Benchmarks;

/// <summary>
/// A 1 KiB cache hit: PgCache's get (byte[] and buffer paths) against the raw prepared Npgsql SELECT of the same row,
/// on the same data source, and the Redis twin. Target (issue 3): ours ≥ 0.85 of raw; a buffer hit allocates ≤ value + 1 KiB.
/// </summary>
[MemoryDiagnoser]
public class CacheGetBenchmarks
{
    private const string Schema = "bench_cache";
    private const string Key = "product:42";

    private NpgsqlDataSource _dataSource = null!;
    private PgDistributedCache _cache = null!;
    private ConnectionMultiplexer _redis = null!;
    private PgDistributedCache _redisCache = null!;
    private ArrayBufferWriter<byte> _buffer = null!;
    private string _rawSql = null!;

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        await using (var drop = _dataSource.CreateCommand($"DROP SCHEMA IF EXISTS \"{Schema}\" CASCADE"))
        {
            await drop.ExecuteNonQueryAsync(); // a fresh schema from the current scripts for every run
        }

        await new PgSchemaInstaller(_dataSource, Schema, [PgDistributedCache.SchemaModule]).ApplyAsync();
        _cache = new PgDistributedCache(_dataSource, new PgFirstOptions { SchemaName = Schema }, new PgCacheOptions(), new PgTenantContext("default"), TimeProvider.System);
        var value = new byte[1024];
        Random.Shared.NextBytes(value);
        await _cache.SetAsync(Key, value, new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromHours(1) });
        _redis = await ConnectionMultiplexer.ConnectAsync(BenchmarkServers.Redis);
        _redisCache = new PgDistributedCache(new RedisCacheBackend(_redis, new PgFirstRedisOptions { KeyPrefix = "bench:" }, new PgCacheOptions()), new PgCacheOptions(), new PgTenantContext("default"), TimeProvider.System);
        await _redisCache.SetAsync(Key, value, new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromHours(1) });
        _buffer = new ArrayBufferWriter<byte>(2048);
        _rawSql = $"SELECT value FROM \"{Schema}\".cache_entry WHERE tenant_id = $1 AND key_hash = hashtextextended($2, 0) AND key = $2 AND expires_at > $3";
    }

    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        _cache.Dispose();
        _redisCache.Dispose();
        await _dataSource.DisposeAsync();
        await _redis.DisposeAsync();
    }

    [Benchmark(Baseline = true, Description = "raw prepared SELECT")]
    public async Task<byte[]?> RawSelect()
    {
        await using var connection = await _dataSource.OpenConnectionAsync();
        await using var command = new NpgsqlCommand(_rawSql, connection);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = "default", NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Key, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = DateTimeOffset.UtcNow, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        await command.PrepareAsync();
        await using var reader = await command.ExecuteReaderAsync();
        return await reader.ReadAsync() ? reader.GetFieldValue<byte[]>(0) : null;
    }

    [Benchmark(Description = "PgCache GetAsync")]
    public Task<byte[]?> CacheGet() => _cache.GetAsync(Key);

    [Benchmark(Description = "Redis twin GetAsync")]
    public Task<byte[]?> RedisGet() => _redisCache.GetAsync(Key);

    [Benchmark(Description = "PgCache TryGetAsync (buffer)")]
    public async Task<bool> CacheTryGet()
    {
        _buffer.ResetWrittenCount();
        return await _cache.TryGetAsync(Key, _buffer);
    }
}
