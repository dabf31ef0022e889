using PgFirst.Testing;
using PgQueue;
using StackExchange.Redis;

namespace PgFirst.Redis.Tests;

public class RedisJobQueueBackendConformanceTests(RedisServer server) : JobQueueBackendConformanceTests
{
    private readonly RedisKeyspace _keyspace = new(server);

    public override async ValueTask DisposeAsync()
    {
        await _keyspace.DisposeAsync();
        await base.DisposeAsync();
    }

    // Each backend is another "app server": its own multiplexer, so concurrent claims and recurring runs really race.
    protected override IJobQueueBackend CreateBackend() =>
        new RedisJobQueueBackend(_keyspace.Connect(ConfigurationOptions.Parse(server.Configuration)), new PgFirstRedisOptions { KeyPrefix = _keyspace.Prefix });
}
