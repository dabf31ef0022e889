using PgFirst.Testing;
using PgSessions;

namespace PgFirst.Redis.Tests;

public class RedisSessionBackendConformanceTests(RedisServer server) : SessionBackendConformanceTests
{
    private readonly string _prefix = RedisServer.NewKeyPrefix();

    public override async ValueTask DisposeAsync()
    {
        await server.DeleteKeysAsync(_prefix);
        await base.DisposeAsync();
    }

    protected override IPgSessionBackend CreateBackend() =>
        new RedisSessionBackend(server.Connection, new PgFirstRedisOptions { KeyPrefix = _prefix });
}
