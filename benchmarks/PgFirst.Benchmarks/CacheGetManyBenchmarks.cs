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
/// 100 keys of 1 KiB in one call: PgCache's GetManyAsync against a raw prepared <c>= ANY($1)</c> read of the same rows,
/// and the Redis twin. Target (issue 3): ours ≥ 0.85 of raw.
/// </summary>
[MemoryDiagnoser]
public class CacheGetManyBenchmarks
{
    private const string Schema = "bench_cache_many";

    private NpgsqlDataSource _dataSource = null!;
    private ConnectionMultiplexer _redis = null!;
    private PgDistributedCache _cache = null!;
    private PgDistributedCache _redisCache = null!;
    private string[] _keys = null!;
    private string _rawSql = null!;

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
        await using (var drop = _dataSource.CreateCommand($"DROP SCHEMA IF EXISTS \"{Schema}\" CASCADE"))
        {
            await drop.ExecuteNonQueryAsync();
        }

        await new PgSchemaInstaller(_dataSource, Schema, [PgDistributedCache.SchemaModule]).ApplyAsync();
        _redis = await ConnectionMultiplexer.ConnectAsync(BenchmarkServers.Redis);
        var tenants = new PgTenantContext("default");
        _cache = new PgDistributedCache(_dataSource, new PgFirstOptions { SchemaName = Schema }, new PgCacheOptions(), tenants, TimeProvider.System);
        _redisCache = new PgDistributedCache(new RedisCacheBackend(_redis, new PgFirstRedisOptions { KeyPrefix = "bench:" }, new PgCacheOptions()), new PgCacheOptions(), tenants, TimeProvider.System);
        _keys = Enumerable.Range(0, 100).Select(i => $"product:{i}").ToArray();
        var entries = _keys.Select(k => new KeyValuePair<string, byte[]>(k, new byte[1024])).ToList();
        var options = new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromHours(1) };
        await _cache.SetManyAsync(entries, options);
        await _redisCache.SetManyAsync(entries, options);
        _rawSql = $"SELECT key, value FROM \"{Schema}\".cache_entry WHERE tenant_id = $1 AND key_hash = ANY(ARRAY(SELECT hashtextextended(k, 0) FROM unnest($2::text[]) AS k)) AND key = ANY($2) AND expires_at > $3";
    }

    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        _cache.Dispose();
        _redisCache.Dispose();
        await _dataSource.DisposeAsync();
        await _redis.DisposeAsync();
    }

    [Benchmark(Baseline = true, Description = "raw prepared = ANY($1), 100 keys")]
    public async Task<int> RawAny()
    {
        await using var connection = await _dataSource.OpenConnectionAsync();
        await using var command = new NpgsqlCommand(_rawSql, connection);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = "default", NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = _keys, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = DateTimeOffset.UtcNow, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        await command.PrepareAsync();
        await using var reader = await command.ExecuteReaderAsync();
        var found = new Dictionary<string, byte[]>(_keys.Length, StringComparer.Ordinal);
        while (await reader.ReadAsync())
        {
            found[reader.GetString(0)] = reader.GetFieldValue<byte[]>(1);
        }

        return found.Count;
    }

    [Benchmark(Description = "PgCache GetManyAsync, 100 keys")]
    public async Task<int> CacheGetMany() => (await _cache.GetManyAsync(_keys)).Count;

    [Benchmark(Description = "Redis twin GetManyAsync, 100 keys")]
    public async Task<int> RedisGetMany() => (await _redisCache.GetManyAsync(_keys)).Count;
}
