using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using PgFirst.Testing;

namespace PgRateLimit.Tests;

// Through the real ASP.NET Core rate-limiting middleware, on a test server, against PostgreSQL.
public class PgRateLimitMiddlewareTests(PostgresServer server) : PostgresTest(server)
{
    private async Task<WebApplication> StartAsync(Action<RateLimiterOptions> configure)
    {
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseTestServer();
        builder.Services.AddSingleton(DataSource);
        builder.Services.AddPgFirst(o =>
        {
            o.SchemaName = Schema;
            o.ApplySchemaOnStartup = true;
        });
        builder.Services.AddPgRateLimiting();
        builder.Services.AddRateLimiter(o =>
        {
            o.UsePgRejectionResponse();
            configure(o);
        });
        var app = builder.Build();
        app.UseRateLimiter();
        app.MapGet("/api", () => "ok").RequireRateLimiting("api");
        app.MapGet("/login", () => "login").RequireRateLimiting("login");
        app.MapGet("/free", () => "free");
        await app.StartAsync(CancellationToken);
        return app;
    }

    private static Action<RateLimiterOptions> TwoPolicies(int apiLimit, int loginLimit) => o =>
    {
        o.AddPgFixedWindowLimiter("api", p =>
        {
            p.PermitLimit = apiLimit;
            p.Window = TimeSpan.FromHours(1);
            p.PartitionKey = PgRateLimitPartition.ByHeader("X-Api-Key");
        });
        o.AddPgFixedWindowLimiter("login", p =>
        {
            p.PermitLimit = loginLimit;
            p.Window = TimeSpan.FromHours(1);
            p.PartitionKey = PgRateLimitPartition.ByHeader("X-Api-Key");
        });
    };

    private static async Task<HttpResponseMessage> GetAsync(HttpClient client, string path, string apiKey)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Add("X-Api-Key", apiKey);
        return await client.SendAsync(request, CancellationToken);
    }

    [Fact]
    public async Task OverTheLimit_Answers429WithRetryAfterAndIetfHeaders()
    {
        await using var app = await StartAsync(TwoPolicies(apiLimit: 2, loginLimit: 5));
        var client = app.GetTestClient();

        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? last = null;
        for (var i = 0; i < 3; i++)
        {
            last = await GetAsync(client, "/api", "key-1");
            statuses.Add(last.StatusCode);
        }

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], statuses);
        var retryAfter = int.Parse(last!.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(retryAfter, 1, 3600);
        Assert.Equal("\"api\";q=2;w=3600", last.Headers.GetValues("RateLimit-Policy").Single());
        Assert.Equal($"\"api\";r=0;t={retryAfter}", last.Headers.GetValues("RateLimit").Single());
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(client, "/free", "key-1")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(client, "/api", "key-2")).StatusCode);
    }

    [Fact]
    public async Task TwoPolicies_SameKey_KeepSeparateCounters()
    {
        await using var app = await StartAsync(TwoPolicies(apiLimit: 1, loginLimit: 1));
        var client = app.GetTestClient();

        Assert.Equal(HttpStatusCode.OK, (await GetAsync(client, "/api", "k")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(client, "/login", "k")).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await GetAsync(client, "/api", "k")).StatusCode);
        Assert.Equal(2L, await ScalarAsync<long>($"SELECT count(DISTINCT limiter_id) FROM \"{Schema}\".rate_limit_counter WHERE partition_key = 'header:k'"));
    }

    [Fact]
    public async Task GlobalLimiter_AppliesToEveryEndpoint()
    {
        await using var app = await StartAsync(o =>
        {
            TwoPolicies(100, 100)(o);
            o.UsePgGlobalFixedWindowLimiter("global", p =>
            {
                p.PermitLimit = 2;
                p.Window = TimeSpan.FromHours(1);
                p.PartitionKey = PgRateLimitPartition.ByHeader("X-Api-Key");
            });
        });
        var client = app.GetTestClient();

        Assert.Equal(HttpStatusCode.OK, (await GetAsync(client, "/free", "g")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(client, "/api", "g")).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await GetAsync(client, "/free", "g")).StatusCode);
    }

    [Theory]
    [InlineData(0, 60, "PermitLimit")]
    [InlineData(5, 0, "Window")]
    public async Task InvalidPolicy_FailsAtStartupWithAClearMessage(int limit, int windowSeconds, string expected)
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() => StartAsync(o => o.AddPgFixedWindowLimiter("api", p =>
        {
            p.PermitLimit = limit;
            p.Window = TimeSpan.FromSeconds(windowSeconds);
        })));

        Assert.Contains(expected, error.ToString(), StringComparison.Ordinal);
        Assert.Contains("'api'", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void AddPgFixedWindowLimiter_EmptyPolicyName_Throws()
    {
        var error = Assert.Throws<ArgumentException>(() => new RateLimiterOptions().AddPgFixedWindowLimiter("", p => p.PermitLimit = 1));

        Assert.Contains("policy name", error.Message, StringComparison.Ordinal);
    }
}
