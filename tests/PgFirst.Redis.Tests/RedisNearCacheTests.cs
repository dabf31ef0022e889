using System.Globalization;
using PgCache;
using PgFirst.Testing;
using StackExchange.Redis;

namespace PgFirst.Redis.Tests;

// The near cache on Redis: invalidations PUBLISHed inside the write's own script, one subscription per instance
// (StackExchange.Redis's subscription connection), each instance on its own multiplexer.
public class RedisNearCacheTests(RedisServer server) : NearCacheConformanceTests
{
    private readonly RedisKeyspace _keyspace = new(server);
    private readonly string _clientName = "near-" + Guid.NewGuid().ToString("N")[..12];

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        await _keyspace.DisposeAsync();
    }

    protected override IPgCacheBackend CreateBackend(PgCacheOptions options)
    {
        var configuration = ConfigurationOptions.Parse(server.Configuration);
        configuration.ClientName = _clientName;
        configuration.AbortOnConnectFail = false;
        return new RedisCacheBackend(_keyspace.Connect(configuration), new PgFirstRedisOptions { KeyPrefix = _keyspace.Prefix }, options);
    }

    // Every instance of the class has its own subscription connection, named for the class: they all go.
    protected override async Task KillListenerAsync(PgDistributedCache instance)
    {
        var list = (string)(await server.Connection.GetDatabase().ExecuteAsync("CLIENT", "LIST", "TYPE", "pubsub"))!;
        var ids = list.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Where(line => line.Contains($" name={_clientName} ", StringComparison.Ordinal))
            .Select(line => line.Split(' ')[0]["id=".Length..])
            .ToList();
        Assert.NotEmpty(ids);
        foreach (var id in ids)
        {
            await server.Connection.GetDatabase().ExecuteAsync("CLIENT", "KILL", "ID", id);
        }
    }

    protected override async Task DeleteBehindTheCacheAsync(string tenantId, string key) =>
        Assert.True(await server.Connection.GetDatabase().KeyDeleteAsync(EntryKey(tenantId, key)));

    protected override async Task<DateTimeOffset?> StoreExpiryAsync(string tenantId, string key)
    {
        var e = await server.Connection.GetDatabase().HashGetAsync(EntryKey(tenantId, key), "e");
        return e.IsNull ? null : DateTimeOffset.FromUnixTimeMilliseconds(long.Parse((string)e!, CultureInfo.InvariantCulture));
    }

    private string EntryKey(string tenantId, string key) =>
        _keyspace.Prefix + "c:" + tenantId.Length.ToString(CultureInfo.InvariantCulture) + ":" + tenantId + ":" + key;
}
