using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Time.Testing;
using PgCache;
using PgFirst.Testing;

namespace PgFirst.Admin.Tests;

public sealed class CacheCommandTests(PostgresServer server) : AdminTest(server)
{
    private static readonly PgCacheEntryOptions Hour = new() { AbsoluteExpirationRelativeToNow = TimeSpan.FromHours(1) };

    public override async ValueTask InitializeAsync()
    {
        await base.InitializeAsync();
        var shop = Cache("default");
        await shop.SetAsync("product:1", new byte[1000], new PgCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromHours(1), Tags = ["catalog", "product:1"] }, CancellationToken);
        await shop.SetAsync("product:2", new byte[1000], new PgCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(20), Tags = ["catalog"] }, CancellationToken);
        await shop.SetAsync("cart:9", new byte[10], Hour, CancellationToken);
        await Cache("acme").SetAsync("product:1", new byte[500], new PgCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromHours(1), Tags = ["catalog"] }, CancellationToken);

        // Written yesterday with a one-hour life: expired, waiting for the cleanup.
        var yesterday = new FakeTimeProvider(DateTimeOffset.UtcNow.AddDays(-1));
        await Cache("default", yesterday).SetAsync("stale", new byte[7], Hour, CancellationToken);
    }

    [Fact]
    public async Task Stats_CountsEntriesBytesExpired_PerTenant_AndTopTags()
    {
        var run = await AdminAsync("cache", "stats");

        AssertExit(AdminExitCode.Ok, run);
        Assert.Contains("5 entries, 2.5 KiB of values, 1 expired awaiting cleanup, 2 tenant(s)", run.Output, StringComparison.Ordinal);
        Assert.Matches(@"default\s+│\s+4\s+│\s+2.0 KiB\s+│\s+1\s+│", run.Output);
        Assert.Matches(@"catalog\s+│\s+3\s+│", run.Output);

        var json = (await AdminAsync("cache", "stats", "--json")).Json;
        Assert.Equal(5, json.GetProperty("entries").GetInt64());
        Assert.Equal(2517, json.GetProperty("valueBytes").GetInt64());
        Assert.Equal(1, json.GetProperty("expired").GetInt64());
        Assert.Equal("default", json.GetProperty("tenants")[0].GetProperty("tenantId").GetString());
        Assert.Equal("catalog", json.GetProperty("topTags")[0].GetProperty("tag").GetString());
        Assert.Equal(3, json.GetProperty("topTags")[0].GetProperty("entries").GetInt64());

        var acme = (await AdminAsync("cache", "stats", "--tenant", "acme", "--json")).Json;
        Assert.Equal(1, acme.GetProperty("entries").GetInt64());
        Assert.Equal(1, acme.GetProperty("topTags").GetArrayLength());
    }

    [Fact]
    public async Task Get_ShowsMetadata_NotTheValue_AndAMissingKeyExits4()
    {
        var run = await AdminAsync("cache", "get", "product:2");

        AssertExit(AdminExitCode.Ok, run);
        Assert.Matches(@"Value size\s+│\s+1000 B", run.Output);
        Assert.Matches(@"Sliding expiration\s+│\s+20m 00s", run.Output);
        Assert.Matches(@"Tags\s+│\s+catalog", run.Output);

        var json = (await AdminAsync("cache", "get", "product:1", "--tenant", "acme", "--json")).Json;
        Assert.Equal(500, json.GetProperty("valueBytes").GetInt32());
        Assert.False(json.GetProperty("expired").GetBoolean());
        Assert.True((await AdminAsync("cache", "get", "stale", "--json")).Json.GetProperty("expired").GetBoolean());

        var missing = await AdminAsync("cache", "get", "nope");
        AssertExit(AdminExitCode.NotFound, missing);
        AssertOneErrorLine(missing, "no cache entry 'nope' in tenant 'default'");
    }

    [Fact]
    public async Task Clear_WithoutYes_SaysWhatItWouldRemove_AndRemovesNothing()
    {
        var run = await AdminAsync("cache", "clear", "--tag", "catalog");

        AssertExit(AdminExitCode.NotConfirmed, run);
        Assert.Contains("Would remove 3 entries (every entry tagged 'catalog' in every tenant). Nothing was changed", run.Output, StringComparison.Ordinal);
        Assert.Equal(5, await CountAsync());
    }

    [Fact]
    public async Task Clear_ByTagInOneTenant_ByTenant_AndAll_RemoveExactlyThat()
    {
        var tag = await AdminAsync("cache", "clear", "--tag", "catalog", "--tenant", "default", "--yes", "--json");
        AssertExit(AdminExitCode.Ok, tag);
        Assert.Equal(2, tag.Json.GetProperty("removed").GetInt64());
        Assert.NotNull(await Cache("acme").GetAsync("product:1", CancellationToken));
        Assert.NotNull(await Cache("default").GetAsync("cart:9", CancellationToken));

        var tenant = await AdminAsync("cache", "clear", "--tenant", "acme", "--yes");
        Assert.Contains("Removed 1 entries (every entry of tenant 'acme').", tenant.Output, StringComparison.Ordinal);
        Assert.Null(await Cache("acme").GetAsync("product:1", CancellationToken));
        Assert.NotNull(await Cache("default").GetAsync("cart:9", CancellationToken));

        AssertExit(AdminExitCode.Ok, await AdminAsync("cache", "clear", "--all", "--yes"));
        Assert.Equal(0, await CountAsync());
    }

    [Theory]
    [InlineData(new[] { "cache", "clear", "--yes" }, "Say what to clear")]
    [InlineData(new[] { "cache", "clear", "--all", "--tenant", "acme", "--yes" }, "--all removes everything")]
    [InlineData(new[] { "cache", "clear", "--tenant", "", "--yes" }, "tenant")]
    public async Task Clear_WithConflictingOrMissingScope_IsAUsageError_AndRemovesNothing(string[] args, string message)
    {
        var run = await AdminAsync(args);

        AssertExit(AdminExitCode.Usage, run);
        AssertOneErrorLine(run, message);
        Assert.Equal(5, await CountAsync());
    }

    [Fact]
    public async Task Cleanup_RemovesOnlyExpiredEntries()
    {
        var run = await AdminAsync("cache", "cleanup", "--json");

        AssertExit(AdminExitCode.Ok, run);
        Assert.Equal(1, run.Json.GetProperty("removed").GetInt64());
        Assert.Equal(4, await CountAsync());
    }

    private Task<long> CountAsync() => ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".cache_entry");

    private PgDistributedCache Cache(string tenant, TimeProvider? time = null) =>
        new(DataSource, Options, new PgCacheOptions(), new PgTenantContext(tenant), time ?? TimeProvider.System);
}
