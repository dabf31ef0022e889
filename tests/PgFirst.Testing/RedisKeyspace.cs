using StackExchange.Redis;

namespace PgFirst.Testing;

/// <summary>
/// One test's isolated place on the shared Redis server: a generated key prefix and every connection the test makes;
/// the keys are deleted and the connections disposed afterwards.
/// </summary>
public sealed class RedisKeyspace(RedisServer server) : IAsyncDisposable
{
    private readonly List<ConnectionMultiplexer> _connections = [];

    /// <summary>Gets the key prefix.</summary>
    public string Prefix { get; } = RedisServer.NewKeyPrefix();

    /// <summary>A connection of its own (another "app server"), disposed after the test.</summary>
    public ConnectionMultiplexer Connect(ConfigurationOptions configuration)
    {
        var connection = ConnectionMultiplexer.Connect(configuration);
        lock (_connections)
        {
            _connections.Add(connection);
        }

        return connection;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await server.DeleteKeysAsync(Prefix);
        foreach (var connection in _connections)
        {
            await connection.DisposeAsync();
        }
    }
}
