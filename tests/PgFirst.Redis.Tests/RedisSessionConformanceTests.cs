using Microsoft.Extensions.DependencyInjection;
using PgFirst.Testing;
using StackExchange.Redis;
using StackExchange.Redis.Profiling;

namespace PgFirst.Redis.Tests;

public class RedisSessionConformanceTests(RedisServer server) : SessionConformanceTests
{
    private readonly RedisKeyspace _keyspace = new(server);
    private ProfilingSession _profiling = new();

    protected override (string Host, int Port) ServerEndpoint => server.Endpoint;

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        await _keyspace.DisposeAsync();
    }

    protected override void ConfigureBackend(IServiceCollection services, TcpProxy? proxy)
    {
        var configuration = proxy is null ? ConfigurationOptions.Parse(server.Configuration) : server.ThroughProxy(proxy);
        configuration.AbortOnConnectFail = false;
        var connection = _keyspace.Connect(configuration);
        // Every command the store sends is profiled: counting them counts the store's round trips of commands.
        connection.RegisterProfiler(() => _profiling);
        services.AddSingleton<IConnectionMultiplexer>(connection);
        services.AddPgFirst(o => o.Backend = PgFirstBackend.Redis).AddRedis(o =>
        {
            o.Configuration = server.Configuration;
            o.KeyPrefix = _keyspace.Prefix;
        });
    }

    protected override int TakeCommandCount()
    {
        // The multiplexer's own housekeeping (heartbeat PING/ECHO, handshake) is not the store's.
        var count = _profiling.FinishProfiling().Count(c => c.Command is not ("PING" or "ECHO" or "INFO" or "CLIENT" or "CLUSTER" or "CONFIG" or "SUBSCRIBE" or "ROLE" or "HELLO" or "AUTH" or "SELECT"));
        _profiling = new ProfilingSession();
        return count;
    }
}
