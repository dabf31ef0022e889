using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Mvc.Testing;
using PgFirst.Testing;

namespace WebApp.Tests;

public class HealthTests(PostgresServer postgres, RedisServer redis) : PostgresTest(postgres)
{
    private static readonly int DownPort = TestEnvironment.UnusedLoopbackPort();

    private WebApplicationFactory<Program> CreateApp(string? backend = null, string? connectionString = null) =>
        DemoApp.Create(Server, redis, Schema, backend, connectionString: connectionString);

    private static async Task<(HttpStatusCode Status, JsonElement Body)> GetJsonAsync(HttpClient client, string path)
    {
        var response = await client.GetAsync(path, CancellationToken);
        var body = await response.Content.ReadAsStringAsync(CancellationToken);
        return (response.StatusCode, JsonDocument.Parse(body).RootElement);
    }

    [Fact]
    public async Task Health_PostgreSqlBackend_AppliesSchemaAtStartupAndReportsPostgreSqlHealthy()
    {
        await using var app = CreateApp();
        using var client = app.CreateClient();

        var (status, body) = await GetJsonAsync(client, "/health");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Healthy", body.GetProperty("status").GetString());
        Assert.Equal("Healthy", body.GetProperty("checks").GetProperty("postgresql").GetProperty("status").GetString());
        Assert.Equal("Healthy", body.GetProperty("checks").GetProperty("pgcache").GetProperty("status").GetString());
        Assert.False(body.GetProperty("checks").TryGetProperty("redis", out _));
        Assert.True(await RelationExistsAsync("schema_version"));
        Assert.True(await RelationExistsAsync("cache_entry"));
        Assert.True(await RelationExistsAsync("rate_limit_counter"));
        Assert.True(await RelationExistsAsync("session"));
        Assert.True(await RelationExistsAsync("data_protection_key"));
        Assert.Equal("Healthy", body.GetProperty("checks").GetProperty("pgsessions").GetProperty("status").GetString());
        Assert.Equal("Healthy", body.GetProperty("checks").GetProperty("pgratelimit").GetProperty("status").GetString());
        Assert.Equal("Healthy", body.GetProperty("checks").GetProperty("pgqueue").GetProperty("status").GetString());
    }

    [Fact]
    public async Task Health_RedisBackend_ReportsRedisToo()
    {
        await using var app = CreateApp(backend: "Redis");
        using var client = app.CreateClient();

        var (status, body) = await GetJsonAsync(client, "/health/ready");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Healthy", body.GetProperty("checks").GetProperty("redis").GetProperty("status").GetString());
        Assert.Equal("Healthy", body.GetProperty("checks").GetProperty("pgcache").GetProperty("status").GetString());
        Assert.Equal("Healthy", body.GetProperty("checks").GetProperty("postgresql").GetProperty("status").GetString());
        Assert.Contains("RedisRateLimitStore", body.GetProperty("checks").GetProperty("pgratelimit").GetProperty("description").GetString(), StringComparison.Ordinal);
        var home = await client.GetStringAsync("/", CancellationToken);
        Assert.Contains("<td id=\"backend-cache\">Redis</td>", home, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Health_Live_RunsNoDependencyCheck()
    {
        await using var app = CreateApp();
        using var client = app.CreateClient();

        var (status, body) = await GetJsonAsync(client, "/health/live");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Empty(body.GetProperty("checks").EnumerateObject());
    }

    [Fact]
    public async Task Startup_PostgreSqlDown_FailsWithAnErrorNamingTheServer()
    {
        await using var app = CreateApp(connectionString: $"Host=127.0.0.1;Port={DownPort};Username=x;Password=x;Timeout=2");

        var error = Assert.ThrowsAny<Exception>(() => app.CreateClient());

        Assert.Contains($"Could not connect to PostgreSQL at 127.0.0.1:{DownPort}", error.ToString(), StringComparison.Ordinal);
    }
}
