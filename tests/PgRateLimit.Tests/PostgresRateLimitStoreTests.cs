using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using PgFirst.Testing;
using PgRateLimit.Internal;

namespace PgRateLimit.Tests;

// PostgreSQL-only behaviour of the store and the table.
public class PostgresRateLimitStoreTests(PostgresServer server) : PostgresTest(server)
{
    private async Task<PostgresRateLimitStore> InstallAsync(PgRateLimitDurability durability = PgRateLimitDurability.Unlogged)
    {
        await new PgSchemaInstaller(DataSource, Schema, [PostgresRateLimitStore.SchemaModuleFor(durability)]).ApplyAsync(CancellationToken);
        return new PostgresRateLimitStore(DataSource, Schema);
    }

    [Fact]
    public async Task Durability_DefaultIsUnlogged_LoggedOnRequest()
    {
        await InstallAsync();
        Assert.Equal('u', await ScalarAsync<char>("SELECT relpersistence FROM pg_class WHERE oid = to_regclass($1)", $"\"{Schema}\".rate_limit_counter"));

        await ExecuteAsync($"DROP SCHEMA \"{Schema}\" CASCADE");
        await InstallAsync(PgRateLimitDurability.Logged);
        Assert.Equal('p', await ScalarAsync<char>("SELECT relpersistence FROM pg_class WHERE oid = to_regclass($1)", $"\"{Schema}\".rate_limit_counter"));
    }

    [Fact]
    public async Task WarmUp_OpensThatManyConnectionsAtOnce_CappedByMaxPoolSize_AndCountsNothing()
    {
        await InstallAsync();
        var application = "warm-" + Guid.NewGuid().ToString("N")[..8];
        var dataSource = CreateDataSource(b =>
        {
            b.ApplicationName = application;
            b.MaxPoolSize = 6;
        });
        var store = new PostgresRateLimitStore(dataSource, Schema);

        await store.WarmUpAsync(10, CancellationToken);

        Assert.Equal(6L, await ScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", application));
        Assert.Equal(0L, await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".rate_limit_counter"));
        var decision = await store.AcquireAsync(new PgRateLimitRequest("warm", "k", 1, 1, TimeSpan.FromHours(1), false), CancellationToken);
        Assert.True(decision.Acquired);
        Assert.Equal(6L, await ScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", application));
    }

    [Fact]
    public async Task Cleanup_RemovesOnlyCountersOfEndedWindows()
    {
        var store = await InstallAsync();
        await store.AcquireAsync(new PgRateLimitRequest("short", "a", 1, 10, TimeSpan.FromSeconds(1), false), CancellationToken);
        await store.AcquireAsync(new PgRateLimitRequest("long", "a", 1, 10, TimeSpan.FromHours(1), false), CancellationToken);
        await Task.Delay(1100, CancellationToken);

        var removed = await ScalarAsync<int>($"SELECT \"{Schema}\".ratelimit_delete_expired(100)");

        Assert.Equal(1, removed);
        Assert.Equal("long", await ScalarAsync<string>($"SELECT limiter_id FROM \"{Schema}\".rate_limit_counter"));
    }

    [Fact]
    public async Task Acquire_TableMissing_ThrowsErrorNamingTheScript()
    {
        var store = new PostgresRateLimitStore(DataSource, Schema);

        var error = await Assert.ThrowsAsync<PgFirstSchemaException>(
            async () => await store.AcquireAsync(new PgRateLimitRequest("api", "k", 1, 1, TimeSpan.FromMinutes(1), false), CancellationToken));

        Assert.Contains("sql/pgratelimit/001_rate_limit_counter.sql", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HealthCheck_SchemaMissing_IsUnhealthyNamingTheScript_AndHealthyOnceApplied()
    {
        var check = new PgRateLimitHealthCheck(new PostgresRateLimitStore(DataSource, Schema));
        var context = new HealthCheckContext { Registration = new HealthCheckRegistration("pgratelimit", check, null, null) };

        var missing = await check.CheckHealthAsync(context, CancellationToken);
        await InstallAsync();
        var applied = await check.CheckHealthAsync(context, CancellationToken);

        Assert.Equal(HealthStatus.Unhealthy, missing.Status);
        Assert.IsType<PgFirstSchemaException>(missing.Exception);
        Assert.Contains("sql/pgratelimit/001_rate_limit_counter.sql", missing.Description, StringComparison.Ordinal);
        Assert.Equal(HealthStatus.Healthy, applied.Status);
        Assert.Equal(0L, await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".rate_limit_counter"));
    }

    [Fact]
    public async Task Decisions_AreCountedByResult_IncludingRoundTripsSaved()
    {
        var store = await InstallAsync();
        await using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = services.GetRequiredService<IMeterFactory>();
        using var decisions = new MetricCollector<long>(meters, "PgRateLimit", "pgratelimit.decisions");
        using var saved = new MetricCollector<long>(meters, "PgRateLimit", "pgratelimit.round_trips_saved");
        using var metrics = new PgRateLimitMetrics(meters);
        using var limiter = new PgFixedWindowRateLimiter(
            store, "api", "k", new PgFixedWindowRateLimiterOptions { PermitLimit = 1, Window = TimeSpan.FromHours(1) }, metrics, null);

        for (var i = 0; i < 4; i++)
        {
            await limiter.AcquireAsync(1, CancellationToken);
        }

        Assert.Equal(
            ["acquired", "rejected_local", "rejected_local", "rejected_local"],
            decisions.GetMeasurementSnapshot().Select(m => (string)m.Tags["pgratelimit.result"]!));
        Assert.Equal(3, saved.GetMeasurementSnapshot().Sum(m => m.Value));
    }

    [Fact]
    public async Task Acquire_LongPartitionKey_IsStoredByItsHash()
    {
        await InstallAsync();
        using var limiter = new PgFixedWindowRateLimiter(
            new PostgresRateLimitStore(DataSource, Schema), "api", new string('k', 5000), new PgFixedWindowRateLimiterOptions { PermitLimit = 1 });

        Assert.True((await limiter.AcquireAsync(1, CancellationToken)).IsAcquired);
        Assert.StartsWith("sha256:", await ScalarAsync<string>($"SELECT partition_key FROM \"{Schema}\".rate_limit_counter"), StringComparison.Ordinal);
    }
}
