using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using PgFirst.Testing;

namespace WebApp.Tests;

public class HealthTests(PostgresServer postgres, RedisServer redis) : PostgresTest(postgres)
{
    private static readonly int DownPort = TestEnvironment.UnusedLoopbackPort();

    private WebApplicationFactory<Program> CreateApp(string? backend = null, string? connectionString = null) =>
        new WebApplicationFactory<Program>().WithWebHostBuilder(web =>
        {
            web.UseSetting("ConnectionStrings:Postgres", connectionString ?? Server.ConnectionString);
            web.UseSetting("ConnectionStrings:Redis", redis.Configuration);
            web.UseSetting("PgFirst:SchemaName", Schema);
            if (backend is not null)
            {
                web.UseSetting("PgFirst:Backend", backend);
            }
        });

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
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Redis")]
    public async Task Session_KeepsItsDataAcrossRequests_OnEitherBackend(string? backend)
    {
        await using var app = CreateApp(backend);
        using var client = app.CreateClient(); // the factory's client keeps cookies

        var (_, first) = await GetJsonAsync(client, "/session/visits");
        var (_, second) = await GetJsonAsync(client, "/session/visits");

        Assert.Equal(1, first.GetProperty("visits").GetInt32());
        Assert.Equal(2, second.GetProperty("visits").GetInt32());
        Assert.Equal(first.GetProperty("sessionId").GetString(), second.GetProperty("sessionId").GetString());
        Assert.True(await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".data_protection_key") >= 1);
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
        var home = await client.GetStringAsync("/", CancellationToken);
        Assert.Contains("<td>Cache</td><td>Redis</td>", home, StringComparison.Ordinal);
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

    [Theory]
    [InlineData(null)]
    [InlineData("Redis")]
    public async Task PlacingAnOrder_RunsItsFollowUpJobs_OnEitherQueueBackend(string? backend)
    {
        await using var app = CreateApp(backend);
        using var client = app.CreateClient();

        var placed = await client.PostAsync("/orders?sku=tea&quantity=2", null, CancellationToken);
        Assert.Equal(HttpStatusCode.OK, placed.StatusCode);
        var order = JsonDocument.Parse(await placed.Content.ReadAsStringAsync(CancellationToken)).RootElement;
        Assert.Equal(backend is null, order.GetProperty("transactional").GetBoolean());
        var id = order.GetProperty("orderId").GetInt64();

        var deadline = DateTime.UtcNow.AddSeconds(30);
        JsonElement body;
        do
        {
            await Task.Delay(50, CancellationToken);
            (_, body) = await GetJsonAsync(client, $"/orders/{id}");
        }
        while (!(body.GetProperty("confirmed").GetBoolean() && body.GetProperty("invoiced").GetBoolean()) && DateTime.UtcNow < deadline);

        Assert.True(body.GetProperty("confirmed").GetBoolean(), "the confirmation job ran");
        Assert.True(body.GetProperty("invoiced").GetBoolean(), "the invoice job ran");
        Assert.Equal(HttpStatusCode.BadRequest, (await client.PostAsync("/orders?sku=&quantity=0", null, CancellationToken)).StatusCode);
        var (status, stats) = await GetJsonAsync(client, "/jobs/stats");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(2, stats.GetArrayLength());
        var (_, health) = await GetJsonAsync(client, "/health/ready");
        Assert.Equal("Healthy", health.GetProperty("checks").GetProperty("pgqueue").GetProperty("status").GetString());
    }
}
