using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using PgFirst.Testing;
using StackExchange.Redis;

namespace PgFirst.Redis.Tests;

public class PgFirstRedisTests(RedisServer server) : IAsyncLifetime
{
    private readonly string _prefix = RedisServer.NewKeyPrefix();

    private static CancellationToken CancellationToken => TestContext.Current.CancellationToken;

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        await server.DeleteKeysAsync(_prefix);
        GC.SuppressFinalize(this);
    }

    private static IHost BuildHost(Dictionary<string, string?> settings)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddPgFirst(o => o.Backend = PgFirstBackend.Redis).AddRedis(builder.Configuration.GetSection("PgFirst:Redis"));
        builder.Services.AddHealthChecks().AddPgFirstRedis();
        return builder.Build();
    }

    [Fact]
    public async Task AddRedis_RealServer_SharesOneConnectionAndReportsHealthy()
    {
        using var host = BuildHost(new() { ["PgFirst:Redis:Configuration"] = server.Configuration, ["PgFirst:Redis:KeyPrefix"] = _prefix });
        await host.StartAsync(CancellationToken);

        var connection = host.Services.GetRequiredService<IConnectionMultiplexer>();
        await connection.GetDatabase().StringSetAsync(_prefix + "k", "v");
        var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(CancellationToken);

        Assert.Same(connection, host.Services.GetRequiredService<IConnectionMultiplexer>());
        Assert.Equal("v", (string?)await server.Connection.GetDatabase().StringGetAsync(_prefix + "k"));
        Assert.Equal(HealthStatus.Healthy, report.Status);
        Assert.Equal(_prefix, host.Services.GetRequiredService<IOptions<PgFirstRedisOptions>>().Value.KeyPrefix);
        await host.StopAsync(CancellationToken);
    }

    [Fact]
    public async Task HealthCheck_RedisDown_IsUnhealthyAndTheHostStillStarts()
    {
        using var host = BuildHost(new() { ["PgFirst:Redis:Configuration"] = $"127.0.0.1:{TestEnvironment.UnusedLoopbackPort()},connectTimeout=500,syncTimeout=500" });
        await host.StartAsync(CancellationToken);

        var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(CancellationToken);

        Assert.Equal(HealthStatus.Unhealthy, report.Status);
        Assert.Contains("does not answer", report.Entries["redis"].Description, StringComparison.Ordinal);
        await host.StopAsync(CancellationToken);
    }

    [Theory]
    [InlineData(null, "pgfirst:", "PgFirst:Redis:Configuration is required")]
    [InlineData("127.0.0.1:6379", "", "KeyPrefix")]
    [InlineData("127.0.0.1:6379", "has space", "KeyPrefix")]
    public async Task StartAsync_InvalidRedisOptions_FailsAtStartup(string? configuration, string prefix, string expected)
    {
        using var host = BuildHost(new() { ["PgFirst:Redis:Configuration"] = configuration, ["PgFirst:Redis:KeyPrefix"] = prefix });

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(CancellationToken));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DeleteKeysAsync_RemovesOnlyTheTestsOwnPrefix()
    {
        var other = RedisServer.NewKeyPrefix();
        var db = server.Connection.GetDatabase();
        await db.StringSetAsync(_prefix + "a", "1");
        await db.StringSetAsync(_prefix + "b", "2");
        await db.StringSetAsync(other + "a", "3");

        await server.DeleteKeysAsync(_prefix);

        Assert.False(await db.KeyExistsAsync(_prefix + "a"));
        Assert.False(await db.KeyExistsAsync(_prefix + "b"));
        Assert.Equal("3", (string?)await db.StringGetAsync(other + "a"));
        await server.DeleteKeysAsync(other);
    }

}
