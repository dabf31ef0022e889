using Microsoft.Extensions.DependencyInjection;
using PgFirst.Core;
using PgFirst.Testing;
using PgQueue;
using StackExchange.Redis;

namespace PgFirst.Redis.Tests;

// The worker conformance suite on the Redis job store.
public sealed class RedisQueueWorkerTests(RedisServer server) : QueueWorkerConformanceTests
{
    private readonly RedisKeyspace _keyspace = new(server);

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        await _keyspace.DisposeAsync();
    }

    protected override void ConfigureStore(IServiceCollection services)
    {
        var configuration = ConfigurationOptions.Parse(server.Configuration);
        configuration.AbortOnConnectFail = false;
        services.AddSingleton<IConnectionMultiplexer>(_keyspace.Connect(configuration));
        services.AddPgFirst(o => o.Backend = PgFirstBackend.Redis).AddRedis(o =>
        {
            o.Configuration = server.Configuration;
            o.KeyPrefix = _keyspace.Prefix;
        });
    }

    protected override IJobQueueBackend CreateBackend() =>
        new RedisJobQueueBackend(_keyspace.Connect(ConfigurationOptions.Parse(server.Configuration)), new PgFirstRedisOptions { KeyPrefix = _keyspace.Prefix });
}
