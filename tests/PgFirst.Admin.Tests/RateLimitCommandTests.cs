using PgFirst.Testing;
using PgRateLimit;

namespace PgFirst.Admin.Tests;

public sealed class RateLimitCommandTests(PostgresServer server) : AdminTest(server)
{
    [Fact]
    public async Task Inspect_ShowsThePartitionsWindowCountAndReset()
    {
        var options = new PgFixedWindowRateLimiterOptions { PermitLimit = 3, Window = TimeSpan.FromHours(1), Timeout = TimeSpan.FromSeconds(5) };
        using var limiter = new PgFixedWindowRateLimiter(new PostgresRateLimitStore(DataSource, Options), "login", "ip:203.0.113.7", options);
        // Five requests against a limit of 3: three admitted; rejected ones do not count (CountRejectedRequests off).
        for (var i = 0; i < 5; i++)
        {
            (await limiter.AcquireAsync(1, CancellationToken)).Dispose();
        }

        var run = await AdminAsync("ratelimit", "inspect", "--policy", "login", "--partition", "ip:203.0.113.7");

        AssertExit(AdminExitCode.Ok, run);
        Assert.Matches(@"Count\s+│\s+3\s+│", run.Output);
        Assert.Matches(@"Window\s+│\s+\S+ \S+ to \S+ \S+ \(1h 00m\)", run.Output);
        var json = (await AdminAsync("ratelimit", "inspect", "-p", "login", "-k", "ip:203.0.113.7", "--json")).Json;
        Assert.Equal(3, json.GetProperty("hits").GetInt64());
        Assert.True(json.GetProperty("current").GetBoolean());
        var start = json.GetProperty("windowStart").GetDateTimeOffset();
        Assert.Equal(TimeSpan.FromHours(1), json.GetProperty("resetsAt").GetDateTimeOffset() - start);
        Assert.Equal(0, start.ToUnixTimeSeconds() % 3600);
    }

    // A key over 256 characters is stored by its hash: inspect takes the key as the policy produced it.
    [Fact]
    public async Task Inspect_ALongPartitionKey_IsFoundAsTheLimiterStoredIt()
    {
        var key = "header:" + new string('k', 400);
        using var limiter = new PgFixedWindowRateLimiter(new PostgresRateLimitStore(DataSource, Options), "api", key, new PgFixedWindowRateLimiterOptions { PermitLimit = 10, Window = TimeSpan.FromHours(1), Timeout = TimeSpan.FromSeconds(5) });
        (await limiter.AcquireAsync(1, CancellationToken)).Dispose();

        var run = await AdminAsync("ratelimit", "inspect", "--policy", "api", "--partition", key, "--json");

        AssertExit(AdminExitCode.Ok, run);
        Assert.Equal(1, run.Json.GetProperty("hits").GetInt64());
    }

    [Fact]
    public async Task Inspect_AnUnknownPartition_Exits4_AndMissingOptionsExit2()
    {
        var missing = await AdminAsync("ratelimit", "inspect", "--policy", "login", "--partition", "nobody");
        AssertExit(AdminExitCode.NotFound, missing);
        AssertOneErrorLine(missing, "no counter for policy 'login', partition 'nobody'");

        var usage = await AdminAsync("ratelimit", "inspect", "--policy", "login");
        AssertExit(AdminExitCode.Usage, usage);
        AssertOneErrorLine(usage, "needs --partition");
    }
}
