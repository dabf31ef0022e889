using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using PgFirst.Core;
using PgFirst.Testing;

namespace PgFirst.SignalR.Tests;

// What only our backplane has: its options, its health check, its refusal behind a transaction pooler, and a real
// PostgreSQL restart on a throwaway cluster.
public sealed class PgBackplaneTests(PostgresServer postgres, RedisServer redis) : IAsyncLifetime
{
    private readonly SignalRCluster _cluster = new(postgres, redis);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public ValueTask InitializeAsync() => _cluster.InitializeAsync();

    public ValueTask DisposeAsync() => _cluster.DisposeAsync();

    [Theory]
    [InlineData("ChannelPrefix", "Bad-Prefix")]
    [InlineData("AckTimeout", "00:00:00.010")]
    [InlineData("LargeMessageRetention", "00:00:00")]
    [InlineData("ReconnectDelay", "00:00:00")]
    [InlineData("KeepAlive", "01:00:00")]
    public void AnOptionOutOfRange_FailsAtStartUp_NamingIt(string option, string value)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton(_cluster.Schema.DataSource);
        services.AddPgFirst(_cluster.Schema.ConfigurePgFirst);
        services.AddSignalR().AddPgFirst(o =>
        {
            switch (option)
            {
                case "ChannelPrefix": o.ChannelPrefix = value; break;
                case "AckTimeout": o.AckTimeout = TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
                case "LargeMessageRetention": o.LargeMessageRetention = TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
                case "ReconnectDelay": o.ReconnectDelay = TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
                case "KeepAlive": o.KeepAlive = TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
            }
        });
        using var provider = services.BuildServiceProvider();

        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<PgSignalROptions>>().Value);
        Assert.Contains("PgSignalR:" + option, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BehindATransactionPoolerWithoutAListenConnection_TheBackplaneRefusesToStart()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton(_cluster.Schema.DataSource);
        services.AddPgFirst(o =>
        {
            _cluster.Schema.ConfigurePgFirst(o);
            o.Pooler = PgPoolerMode.Transaction;
            o.ListenConnectionString = null;
        });
        services.AddSignalR().AddPgFirst();
        using var provider = services.BuildServiceProvider();

        var error = Assert.Throws<PgFirstPoolerException>(() => provider.GetRequiredService<HubLifetimeManager<TestHub>>());
        Assert.Contains("ListenConnectionString", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AddPgFirst_ReplacesAnyOtherBackplane_AndRegistersTheSchemaAndItsCleanup()
    {
        var services = new ServiceCollection();
        services.AddSignalR().AddPgFirst();

        Assert.Equal(typeof(PgHubLifetimeManager<>), Assert.Single(services, d => d.ServiceType == typeof(HubLifetimeManager<>)).ImplementationType);
        Assert.Contains(services, d => d.ImplementationInstance is PgSchemaModule { Name: "pgsignalr" });
        Assert.Contains(services, d => ReferenceEquals(d.ImplementationInstance, PgSignalRSchema.CleanupTask));
    }

    [Fact]
    public async Task TheHealthCheck_IsHealthyWhileListening()
    {
        var a = await _cluster.StartAsync(SignalRCluster.PostgreSql);
        var check = new PgSignalRHealthCheck(() => a.Backplane);
        var registration = new HealthCheckRegistration("signalr", check, HealthStatus.Degraded, null);

        var result = await check.CheckHealthAsync(new HealthCheckContext { Registration = registration }, Ct);

        Assert.Equal(HealthStatus.Healthy, result.Status);
        Assert.Contains(a.Backplane.Channel, result.Description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task APostgreSqlRestart_IsSurvived_SendsFlowAgainOnceBothInstancesListenAgain()
    {
        await using var cluster = await PrivatePostgres.CreateAsync(Ct);
        var app1 = await PrivateInstanceAsync(cluster);
        var app2 = await PrivateInstanceAsync(cluster);
        var onB = await app2.ConnectAsync();
        await app1.Hub.Clients.All.SendAsync("Message", "before", Ct);
        Assert.Equal("before", await onB.NextAsync());

        var check = new PgSignalRHealthCheck(() => app2.Backplane);
        var registration = new HealthCheckRegistration("signalr", check, HealthStatus.Degraded, null);
        await cluster.CrashAsync(Ct);
        await QueueTestHost.WaitUntilAsync(() => !app2.Backplane.IsListening, "instance B to notice the lost listen connection");
        Assert.Equal(HealthStatus.Degraded, (await check.CheckHealthAsync(new HealthCheckContext { Registration = registration }, Ct)).Status);

        await cluster.StartAsync(Ct);
        await QueueTestHost.WaitUntilAsync(() => app1.Backplane.IsListening && app2.Backplane.IsListening, "both instances to LISTEN again", seconds: 60);
        Assert.Equal(HealthStatus.Healthy, (await check.CheckHealthAsync(new HealthCheckContext { Registration = registration }, Ct)).Status);

        // The first send after the restart may meet a pooled connection the restart broke (Npgsql then discards it).
        await QueueTestHost.WaitUntilAsync(
            async () =>
            {
                try
                {
                    await app1.Hub.Clients.All.SendAsync("Message", "after", Ct);
                    return true;
                }
                catch (Npgsql.NpgsqlException)
                {
                    return false;
                }
            },
            "a send through instance A to succeed after the restart");
        Assert.Equal("after", await onB.NextAsync());
    }

    private async Task<SignalRCluster.Instance> PrivateInstanceAsync(PrivatePostgres cluster)
    {
        const string schema = "signalr_restart";
        await using (var dataSource = Npgsql.NpgsqlDataSource.Create(cluster.ConnectionString))
        {
            await new PgSchemaInstaller(dataSource, schema, [PgSignalRSchema.Module]).ApplyAsync(Ct);
        }

        return await _cluster.StartOnAsync(cluster.ConnectionString, schema, o => o.ReconnectDelay = TimeSpan.FromMilliseconds(200));
    }
}
