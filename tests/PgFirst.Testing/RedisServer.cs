using StackExchange.Redis;
using Testcontainers.Redis;
using Xunit;

namespace PgFirst.Testing;

/// <summary>
/// One real Redis server per test assembly: the one <c>PGFIRST_TEST_REDIS</c> names, else a Testcontainers
/// container when Docker is available. Without either, every test that needs it fails with a message saying how to
/// provide one. Tests isolate themselves with <see cref="NewKeyPrefix"/>.
/// </summary>
public sealed class RedisServer : IAsyncLifetime
{
    private RedisContainer? _container;
    private ConnectionMultiplexer? _connection;
    private string? _configuration;
    private Exception? _unavailable;

    public string Configuration => _configuration ?? throw new InvalidOperationException(
        "No Redis server for the tests. " + TestEnvironment.HowToProvideServers, _unavailable);

    /// <summary>A shared connection for fixtures and assertions.</summary>
    public IConnectionMultiplexer Connection => _connection ?? throw new InvalidOperationException(
        "No Redis server for the tests. " + TestEnvironment.HowToProvideServers, _unavailable);

    public async ValueTask InitializeAsync()
    {
        var configuration = Environment.GetEnvironmentVariable(TestEnvironment.RedisVariable);
        try
        {
            if (string.IsNullOrWhiteSpace(configuration))
            {
                if (!TestEnvironment.DockerLooksAvailable())
                {
                    throw new InvalidOperationException($"{TestEnvironment.RedisVariable} is not set and no Docker engine was found.");
                }

                _container = new RedisBuilder("redis:7-alpine").Build();
                await _container.StartAsync();
                configuration = _container.GetConnectionString();
            }

            _connection = await ConnectionMultiplexer.ConnectAsync(configuration);
            await _connection.GetDatabase().PingAsync();
            _configuration = configuration;
        }
        catch (Exception ex)
        {
            _unavailable = ex;
        }
    }

    /// <summary>The server's host and port, for <see cref="TcpProxy"/>.</summary>
    public (string Host, int Port) Endpoint => ConfigurationOptions.Parse(Configuration).EndPoints.Single() switch
    {
        System.Net.IPEndPoint ip => (ip.Address.ToString(), ip.Port),
        System.Net.DnsEndPoint dns => (dns.Host, dns.Port),
        var other => throw new InvalidOperationException($"Unexpected Redis endpoint {other}."),
    };

    /// <summary>
    /// The server's settings (password, TLS) reached through <paramref name="proxy"/>, with 1 s timeouts and no abort on
    /// a failed first connect, so a cut store fails fast and recovers.
    /// </summary>
    public ConfigurationOptions ThroughProxy(TcpProxy proxy)
    {
        ArgumentNullException.ThrowIfNull(proxy);
        var configuration = ConfigurationOptions.Parse(Configuration);
        configuration.EndPoints.Clear();
        configuration.EndPoints.Add(System.Net.IPAddress.Loopback, proxy.Port);
        configuration.AbortOnConnectFail = false;
        configuration.ConnectTimeout = 1000;
        configuration.SyncTimeout = 1000;
        configuration.AsyncTimeout = 1000;
        return configuration;
    }

    /// <summary>A key prefix no other test uses.</summary>
    public static string NewKeyPrefix() => "t:" + Guid.NewGuid().ToString("N")[..20] + ":";

    /// <summary>Deletes every key under <paramref name="prefix"/>.</summary>
    public async Task DeleteKeysAsync(string prefix)
    {
        foreach (var endpoint in Connection.GetEndPoints())
        {
            var server = Connection.GetServer(endpoint);
            await foreach (var key in server.KeysAsync(pattern: prefix + "*"))
            {
                await Connection.GetDatabase().KeyDeleteAsync(key);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_connection is not null)
        {
            await _connection.DisposeAsync();
        }

        if (_container is not null)
        {
            await _container.DisposeAsync();
        }
    }
}
