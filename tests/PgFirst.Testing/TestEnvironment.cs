namespace PgFirst.Testing;

/// <summary>How the tests find their servers, and what to tell the developer when they cannot.</summary>
public static class TestEnvironment
{
    public const string PostgresVariable = "PGFIRST_TEST_POSTGRES";
    public const string RedisVariable = "PGFIRST_TEST_REDIS";
    public const string PoolerVariable = "PGFIRST_TEST_POOLER";
    public const string PostgresDirectVariable = "PGFIRST_TEST_POSTGRES_DIRECT";
    public const string PgBouncerVariable = "PGFIRST_TEST_PGBOUNCER";
    public const string StandbyVariable = "PGFIRST_TEST_STANDBY";
    public const string ReadReplicasVariable = "PGFIRST_TEST_READ_REPLICAS";

    /// <summary>The pooler mode named by <c>PGFIRST_TEST_POOLER</c>: unset or <c>none</c>, or <c>transaction</c>.</summary>
    public static PgFirst.Core.PgPoolerMode Pooler() => Environment.GetEnvironmentVariable(PoolerVariable)?.Trim().ToLowerInvariant() switch
    {
        null or "" or "none" => PgFirst.Core.PgPoolerMode.None,
        "transaction" => PgFirst.Core.PgPoolerMode.Transaction,
        var other => throw new InvalidOperationException($"{PoolerVariable}='{other}': use 'transaction' or leave it unset."),
    };

    public const string HowToProvideServers =
        "Run the tests with ./pgfirst test (it installs and starts private PostgreSQL 15+ and Redis 7 servers and sets " +
        PostgresVariable + " / " + RedisVariable + "), set those variables yourself (an Npgsql connection string and a " +
        "StackExchange.Redis host:port), or start a Docker engine so Testcontainers can run the servers.";

    /// <summary>A loopback port nothing listens on (for "server down" tests).</summary>
    public static int UnusedLoopbackPort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    public static bool DockerLooksAvailable()
    {
        var host = Environment.GetEnvironmentVariable("DOCKER_HOST");
        if (!string.IsNullOrEmpty(host))
        {
            return true;
        }

        return File.Exists("/var/run/docker.sock");
    }
}
