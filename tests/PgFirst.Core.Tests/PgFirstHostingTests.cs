using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using PgFirst.Testing;

namespace PgFirst.Core.Tests;

public class PgFirstHostingTests(PostgresServer server) : PostgresTest(server)
{
    private static readonly int DownPort = TestEnvironment.UnusedLoopbackPort();

    private IHost BuildHost(Dictionary<string, string?> settings, Action<IServiceCollection>? configure = null, bool withItems = true)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddSingleton(DataSource);
        var pgFirst = builder.Services.AddPgFirst(builder.Configuration.GetSection("PgFirst"));
        if (withItems)
        {
            pgFirst.AddMaintenanceTask(TestModules.ItemCleanup);
        }

        configure?.Invoke(builder.Services);
        return builder.Build();
    }

    [Fact]
    public async Task StartAsync_ApplySchemaOnStartup_AppliesEveryModule()
    {
        using var host = BuildHost(new() { ["PgFirst:SchemaName"] = Schema, ["PgFirst:ApplySchemaOnStartup"] = "true" });

        await host.StartAsync(CancellationToken);
        await host.StopAsync(CancellationToken);

        Assert.True(await RelationExistsAsync("item"));
        Assert.Equal(3L, await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".schema_version"));
    }

    [Fact]
    public async Task StartAsync_WithoutOptIn_AndResolvingServices_TouchesNoSchema()
    {
        using var host = BuildHost(new() { ["PgFirst:SchemaName"] = Schema });

        _ = host.Services.GetRequiredService<PgSchemaInstaller>();
        _ = host.Services.GetRequiredService<PgMaintenanceRunner>();
        await host.StartAsync(CancellationToken);
        await host.StopAsync(CancellationToken);

        Assert.False(await SchemaExistsAsync());
    }

    [Theory]
    [InlineData("PgFirst:SchemaName", "Bad-Name", "PgFirst:SchemaName")]
    [InlineData("PgFirst:DefaultTenantId", "has space", "PgFirst:DefaultTenantId")]
    [InlineData("PgFirst:Maintenance:Interval", "00:00:00", "PgFirst:Maintenance:Interval")]
    [InlineData("PgFirst:Maintenance:BatchSize", "0", "PgFirst:Maintenance:BatchSize")]
    [InlineData("PgFirst:Maintenance:Jitter", "2", "PgFirst:Maintenance:Jitter")]
    public async Task StartAsync_InvalidSetting_FailsAtStartupNamingItAndChangesNothing(string key, string value, string expected)
    {
        using var host = BuildHost(new() { ["PgFirst:SchemaName"] = Schema, ["PgFirst:ApplySchemaOnStartup"] = "true", [key] = value });

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(CancellationToken));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.False(await SchemaExistsAsync());
    }

    [Fact]
    public async Task StartAsync_BackendNotAnEnumValue_FailsAtStartup()
    {
        using var host = BuildHost(new() { ["PgFirst:SchemaName"] = Schema, ["PgFirst:Backend"] = "Mongo" });

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync(CancellationToken));

        Assert.Contains("Mongo", error.Message + error.InnerException?.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Options_BackendFromConfiguration_AppliesDefaultAndPerModuleOverrides()
    {
        using var host = BuildHost(new() { ["PgFirst:Backend"] = "Redis", ["PgFirst:QueueBackend"] = "PostgreSql" });

        var options = host.Services.GetRequiredService<IOptions<PgFirstOptions>>().Value;

        Assert.Equal(PgFirstBackend.Redis, options.GetBackend(PgFirstModule.Cache));
        Assert.Equal(PgFirstBackend.Redis, options.GetBackend(PgFirstModule.Sessions));
        Assert.Equal(PgFirstBackend.Redis, options.GetBackend(PgFirstModule.RateLimit));
        Assert.Equal(PgFirstBackend.PostgreSql, options.GetBackend(PgFirstModule.Queue));
        Assert.True(options.UsesRedis);
        Assert.True(options.UsesPostgreSql);
    }

    [Fact]
    public void Options_Defaults_EveryModuleOnPostgreSql()
    {
        var options = new PgFirstOptions();

        Assert.All(Enum.GetValues<PgFirstModule>(), m => Assert.Equal(PgFirstBackend.PostgreSql, options.GetBackend(m)));
        Assert.False(options.UsesRedis);
        Assert.Equal("pgfirst", options.SchemaName);
        Assert.False(options.ApplySchemaOnStartup);
    }

    [Fact]
    public async Task MaintenanceRunner_HostedWithFakeClock_CleansAfterTheInterval()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 23, 12, 0, 0, TimeSpan.Zero));
        using var host = BuildHost(
            new() { ["PgFirst:SchemaName"] = Schema, ["PgFirst:ApplySchemaOnStartup"] = "true", ["PgFirst:Maintenance:Jitter"] = "0" },
            s => s.AddSingleton<TimeProvider>(time));
        await host.StartAsync(CancellationToken);
        await ExecuteAsync($"INSERT INTO \"{Schema}\".item (expires_at) SELECT $1 FROM generate_series(1, 25)", time.GetUtcNow().AddSeconds(30));

        // Nothing has expired yet; then the clock passes both the expiry and the runner's wait.
        time.Advance(TimeSpan.FromMinutes(2));
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".item") > 0 && DateTime.UtcNow < deadline)
        {
            time.Advance(TimeSpan.FromMinutes(1));
            await Task.Delay(100, CancellationToken);
        }

        await host.StopAsync(CancellationToken);
        Assert.Equal(0L, await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".item"));
    }

    [Fact]
    public void MaintenanceRunner_Disabled_IsNotAmongTheHostedServices()
    {
        using var host = BuildHost(new() { ["PgFirst:SchemaName"] = Schema, ["PgFirst:Maintenance:Enabled"] = "false" });

        Assert.DoesNotContain(host.Services.GetServices<IHostedService>(), s => s is PgMaintenanceRunner);
    }

    [Fact]
    public void MaintenanceRunner_Enabled_IsAmongTheHostedServices()
    {
        using var host = BuildHost(new() { ["PgFirst:SchemaName"] = Schema });

        Assert.Contains(host.Services.GetServices<IHostedService>(), s => s is PgMaintenanceRunner);
    }

    [Fact]
    public void Resolve_NoDataSourceRegistered_ExplainsHowToRegisterOne()
    {
        var services = new ServiceCollection();
        services.AddPgFirst();
        using var provider = services.BuildServiceProvider();

        var error = Assert.Throws<InvalidOperationException>(() => provider.GetRequiredService<PgSchemaInstaller>());

        Assert.Contains("AddNpgsqlDataSource", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Resolve_KeyedDataSource_UsesTheKeyedOne()
    {
        var services = new ServiceCollection();
        services.AddKeyedSingleton("pgfirst", DataSource);
        services.AddPgFirst(o =>
        {
            o.SchemaName = Schema;
            o.DataSourceKey = "pgfirst";
        }).AddSchemaModule(TestModules.Items);
        await using var provider = services.BuildServiceProvider();

        await provider.GetRequiredService<PgSchemaInstaller>().ApplyAsync(CancellationToken);

        Assert.True(await RelationExistsAsync("item"));
    }

    [Fact]
    public void AddSchemaModule_SameModuleTwice_RegistersItOnce()
    {
        var services = new ServiceCollection();
        services.AddPgFirst().AddSchemaModule(TestModules.Items).AddSchemaModule(TestModules.Items).AddMaintenanceTask(TestModules.ItemCleanup);
        services.AddPgFirst().AddSchemaModule(TestModules.Broken);

        Assert.Equal(2, services.Count(d => d.ServiceType == typeof(PgSchemaModule)));
        Assert.Single(services, d => d.ServiceType == typeof(PgMaintenanceTask));
    }

    [Fact]
    public async Task HealthCheck_SchemaMissing_IsUnhealthyNamingTheFirstScript_ThenHealthyOnceApplied()
    {
        using var host = BuildHost(new() { ["PgFirst:SchemaName"] = Schema }, s => s.AddHealthChecks().AddPgFirstPostgres());
        var health = host.Services.GetRequiredService<HealthCheckService>();

        var before = await health.CheckHealthAsync(CancellationToken);
        Assert.Equal(HealthStatus.Unhealthy, before.Status);
        Assert.Contains("sql/pgfirst/001_schema_version.sql", before.Entries["postgresql"].Description, StringComparison.Ordinal);

        await host.Services.GetRequiredService<PgSchemaInstaller>().ApplyAsync(CancellationToken);
        var after = await health.CheckHealthAsync(CancellationToken);
        Assert.Equal(HealthStatus.Healthy, after.Status);
    }

    [Fact]
    public async Task HealthCheck_DatabaseDown_IsUnhealthyWithTheReason()
    {
        await using var nowhere = NpgsqlDataSource.Create($"Host=127.0.0.1;Port={DownPort};Username=x;Password=x;Timeout=2");
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton(nowhere);
        services.AddPgFirst(o => o.SchemaName = Schema);
        services.AddHealthChecks().AddPgFirstPostgres();
        await using var provider = services.BuildServiceProvider();

        var report = await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync(CancellationToken);

        Assert.Equal(HealthStatus.Unhealthy, report.Status);
        Assert.Contains($"Could not connect to PostgreSQL at 127.0.0.1:{DownPort}", report.Entries["postgresql"].Description, StringComparison.Ordinal);
    }
}
