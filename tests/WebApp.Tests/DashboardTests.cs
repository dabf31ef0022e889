using System.Net;
using System.Text.Json;
using PgFirst.Testing;

namespace WebApp.Tests;

/// <summary>The dashboard's page, figures, load button and requeue button, on both backends.</summary>
public class DashboardTests(PostgresServer postgres, RedisServer redis) : PostgresTest(postgres)
{
    private static async Task<JsonElement> WaitForAsync(DemoClient client, Func<JsonElement, bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(45);
        JsonElement data;
        do
        {
            data = await client.GetJsonAsync("/dashboard/data");
            if (condition(data))
            {
                return data;
            }

            await Task.Delay(200, TestContext.Current.CancellationToken);
        }
        while (DateTime.UtcNow < deadline);

        Assert.Fail($"Timed out waiting for {what}; last data: {data}");
        return data;
    }

    private static long Queue(JsonElement data, string queue, string state) =>
        data.GetProperty("queues").EnumerateArray().Single(q => q.GetProperty("queue").GetString() == queue).GetProperty(state).GetInt64();

    // Issue 15: with a standby configured, the dashboard says where the cache and sessions read from and how far the
    // standby lags; reads of what this instance wrote move to the standby once it has replayed them.
    [Fact]
    public async Task Dashboard_WithAStandby_ShowsWhereEachModuleReads_AndTheReplayLag()
    {
        await using var app = DemoApp.Create(Server, redis, Schema, settings: new Dictionary<string, string?>
        {
            ["PgFirst:Replicas:ConnectionString"] = PostgresServer.StandbyConnectionString,
            ["PgCache:Durability"] = "Logged",
            ["PgCache:ReadConsistency"] = "ReadYourWrites",

            // The demo's near cache reads its misses on the primary (a lagging standby could undo an invalidation):
            // off here, where the cache's reads on the standby are what is shown.
            ["PgCache:NearCache:Enabled"] = "false",
            ["PgSessions:ReadConsistency"] = "ReadYourWrites",
            ["PgQueue:StatsReadConsistency"] = "BoundedStaleness",
        });
        using var client = app.Client();
        JsonElement data = default;
        await QueueTestHost.WaitUntilAsync(
            async () =>
            {
                await client.GetPageAsync("/");
                data = await client.GetJsonAsync("/dashboard/data");
                var readsFrom = data.GetProperty("topology").GetProperty("readsFrom");
                return readsFrom.GetProperty("cache").GetString() is not (null or "primary")
                    && readsFrom.GetProperty("queue").GetString() is not (null or "primary");
            },
            "the catalog's cache reads and the dashboard's queue statistics to move to the standby");

        var topology = data.GetProperty("topology");
        var replica = topology.GetProperty("replicas").EnumerateArray().Single();
        Assert.Equal(replica.GetProperty("host").GetString(), topology.GetProperty("readsFrom").GetProperty("cache").GetString());
        Assert.True(replica.GetProperty("available").GetBoolean());
        Assert.True(replica.GetProperty("lagSeconds").GetDouble() >= 0);
        Assert.Equal(replica.GetProperty("host").GetString(), topology.GetProperty("readsFrom").GetProperty("queue").GetString());
        Assert.Equal("primary", topology.GetProperty("readsFrom").GetProperty("rateLimit").GetString());
        Assert.Contains("postgresql-replicas", await client.GetPageAsync("/health/ready"), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, "PostgreSql")]
    [InlineData("Redis", "Redis")]
    public async Task Dashboard_ShowsEachModulesBackend(string? backend, string expected)
    {
        await using var app = DemoApp.Create(Server, redis, Schema, backend);
        using var client = app.Client();

        var page = await client.GetPageAsync("/dashboard");
        var data = await client.GetJsonAsync("/dashboard/data");

        foreach (var module in new[] { "cache", "sessions", "ratelimit", "queue" })
        {
            Assert.Contains($"id=\"backend-{module}\">{expected}<", page, StringComparison.Ordinal);
        }

        Assert.Equal(expected, data.GetProperty("backends").GetProperty("cache").GetString());
        Assert.Equal(expected, data.GetProperty("backends").GetProperty("queue").GetString());
        var topology = data.GetProperty("topology");
        Assert.Equal("None", topology.GetProperty("pooler").GetString());
        Assert.Equal(expected == "Redis" ? "Redis" : "primary", topology.GetProperty("readsFrom").GetProperty("cache").GetString());
        Assert.Equal(0, topology.GetProperty("replicas").GetArrayLength());
        Assert.Contains("id=\"reads-from-cache\"", page, StringComparison.Ordinal);
        Assert.Contains("<script src=\"/dashboard.js\"></script>", page, StringComparison.Ordinal);
        Assert.Contains("refresh", await client.GetPageAsync("/dashboard.js"), StringComparison.Ordinal);
        Assert.Equal(["default", "invoices", "load"], data.GetProperty("queues").EnumerateArray().Select(q => q.GetProperty("queue").GetString()));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Redis")]
    public async Task LoadButton_JobsRunAndAreCounted_FlakyOnesGoDead_AndRequeueRunsThemAgain(string? backend)
    {
        await using var app = DemoApp.Create(Server, redis, Schema, backend, new Dictionary<string, string?>
        {
            ["Demo:LoadJobCount"] = "200",
            ["Demo:FlakyEvery"] = "50",
            ["Demo:LoadJobWork"] = "00:00:00",
        });
        using var client = app.Client();
        await client.SignInAsync("alice");

        using var load = await client.PostJsonAsync("/dashboard/load", "{}");
        Assert.Equal(HttpStatusCode.OK, load.StatusCode);
        Assert.Equal(200, JsonDocument.Parse(await DemoClient.BodyAsync(load)).RootElement.GetProperty("enqueued").GetInt32());

        var data = await WaitForAsync(client, d => d.GetProperty("totals").GetProperty("jobsSucceeded").GetInt64() >= 196 && d.GetProperty("dead").GetArrayLength() == 4, "196 successes and 4 dead jobs");
        Assert.Equal(4, Queue(data, "load", "dead"));
        Assert.Equal(0, Queue(data, "load", "available"));
        var dead = data.GetProperty("dead")[0];
        Assert.Equal("load", dead.GetProperty("queue").GetString());
        Assert.Contains("the warehouse API refused the first try", dead.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain("\n", dead.GetProperty("error").GetString(), StringComparison.Ordinal);
        // The per-second series comes from the meters: at least one point saw jobs finish.
        data = await WaitForAsync(client, d => d.GetProperty("series").EnumerateArray().Any(p => p.GetProperty("jobsPerSecond").GetDouble() > 0), "a point with jobs/s > 0");
        Assert.Contains(data.GetProperty("series").EnumerateArray(), p => p.GetProperty("jobWaitP50Ms").ValueKind == JsonValueKind.Number);

        var id = dead.GetProperty("id").GetInt64();
        using var requeued = await client.PostJsonAsync("/dashboard/requeue", $$"""{"id":{{id}}}""");
        Assert.Equal(HttpStatusCode.OK, requeued.StatusCode);
        data = await WaitForAsync(client, d => d.GetProperty("totals").GetProperty("jobsSucceeded").GetInt64() >= 197 && d.GetProperty("dead").GetArrayLength() == 3, "the requeued job to succeed");
        Assert.DoesNotContain(data.GetProperty("dead").EnumerateArray(), j => j.GetProperty("id").GetInt64() == id);
        using var again = await client.PostJsonAsync("/dashboard/requeue", $$"""{"id":{{id}}}""");
        Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
    }

    [Fact]
    public async Task DashboardActions_RefuseAnonymousUsersBadInputAndCrossSiteForms()
    {
        await using var app = DemoApp.Create(Server, redis, Schema, settings: new Dictionary<string, string?> { ["PgQueue:RunWorkers"] = "false" });
        using var client = app.Client();

        using var anonymousLoad = await client.PostJsonAsync("/dashboard/load", "{}");
        using var anonymousRequeue = await client.PostJsonAsync("/dashboard/requeue", """{"id":1}""");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymousLoad.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymousRequeue.StatusCode);
        await client.SignInAsync("bob");
        using var zero = await client.PostJsonAsync("/dashboard/load", """{"count":0}""");
        using var huge = await client.PostJsonAsync("/dashboard/load", """{"count":10001}""");
        using var bodyless = await client.Http.PostAsync("/dashboard/load", null, CancellationToken);
        using var emptyForm = await client.Http.PostAsync("/dashboard/load", new FormUrlEncodedContent([]), CancellationToken);
        using var broken = await client.PostJsonAsync("/dashboard/load", """{"count":""");
        using var form = await client.Http.PostAsync("/dashboard/load", new FormUrlEncodedContent([new("count", "5")]), CancellationToken);
        using var requeueForm = await client.Http.PostAsync("/dashboard/requeue", new FormUrlEncodedContent([new("id", "1")]), CancellationToken);
        using var unknown = await client.PostJsonAsync("/dashboard/requeue", """{"id":424242}""");

        Assert.Equal(HttpStatusCode.BadRequest, zero.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, huge.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, broken.StatusCode);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, form.StatusCode);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, emptyForm.StatusCode);
        Assert.Contains(bodyless.StatusCode, new[] { HttpStatusCode.BadRequest, HttpStatusCode.UnsupportedMediaType });
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, requeueForm.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal(0, await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".job"));

        using var five = await client.PostJsonAsync("/dashboard/load", """{"count":5}""");
        Assert.Equal(HttpStatusCode.OK, five.StatusCode);
        Assert.Equal(5, await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".job WHERE queue = 'load'"));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Redis")]
    public async Task Dashboard_CountsSignedInSessionsFromTheStore_AndCacheAndSessionTraffic(string? backend)
    {
        await using var app = DemoApp.Create(Server, redis, Schema, backend);
        using var alice = app.Client();
        using var bob = app.Client();
        using var anonymous = app.Client();
        await alice.SignInAsync("alice");
        await bob.SignInAsync("bob");
        await anonymous.GetPageAsync("/");

        var data = await anonymous.GetJsonAsync("/dashboard/data");

        Assert.Equal(2, data.GetProperty("signedInSessions").GetInt32());
        var totals = data.GetProperty("totals");
        Assert.True(totals.GetProperty("sessionLoads").GetInt64() >= 2);
        Assert.True(totals.GetProperty("sessionCommits").GetInt64() >= 2);
        Assert.True(totals.GetProperty("cacheOperations").GetInt64() >= 2);

        using var signedOut = await bob.PostFormAsync("/cart", "/signout");
        Assert.Equal(1, (await anonymous.GetJsonAsync("/dashboard/data")).GetProperty("signedInSessions").GetInt32());
    }

    [Fact]
    public void Startup_InvalidDemoSettings_FailsWithAClearError()
    {
        using var app = DemoApp.Create(Server, redis, Schema, settings: new Dictionary<string, string?> { ["Demo:LoadJobCount"] = "10001" });

        var error = Assert.ThrowsAny<Exception>(() => app.CreateClient());

        Assert.Contains("Demo settings: LoadJobCount must be 1 to 10000.", error.ToString(), StringComparison.Ordinal);
    }
}
