using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using PgFirst.Testing;

namespace PgFirst.Core.Tests;

public class PgMaintenanceRunnerTests(PostgresServer server) : PostgresTest(server)
{
    private static readonly int DownPort = TestEnvironment.UnusedLoopbackPort();

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 23, 12, 0, 0, TimeSpan.Zero));

    private PgFirstOptions Options(int batchSize = 1000, int maxBatches = 10)
    {
        var options = new PgFirstOptions { SchemaName = Schema };
        options.Maintenance.BatchSize = batchSize;
        options.Maintenance.MaxBatchesPerRun = maxBatches;
        options.Maintenance.Interval = TimeSpan.FromMinutes(1);
        return options;
    }

    private PgMaintenanceRunner CreateRunner(PgFirstOptions options, NpgsqlDataSource? dataSource = null, IMeterFactory? meters = null) =>
        new(dataSource ?? DataSource, options, [TestModules.ItemCleanup], _time, meters);

    private async Task InstallAsync() => await new PgSchemaInstaller(DataSource, Schema, [TestModules.Items]).ApplyAsync(CancellationToken);

    private async Task AddItemsAsync(int count, TimeSpan expiresIn) =>
        await ExecuteAsync(
            $"INSERT INTO \"{Schema}\".item (expires_at) SELECT $1 FROM generate_series(1, $2)",
            _time.GetUtcNow() + expiresIn,
            count);

    private Task<long> CountAsync(string where = "true") => ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".item WHERE {where}");

    [Fact]
    public async Task RunOnceAsync_ExpiredAndLiveRows_RemovesOnlyExpiredInBoundedBatches()
    {
        await InstallAsync();
        await AddItemsAsync(2500, TimeSpan.FromMinutes(-1));
        await AddItemsAsync(300, TimeSpan.FromMinutes(10));
        var runner = CreateRunner(Options(batchSize: 1000, maxBatches: 2));

        var first = Assert.Single((await runner.RunOnceAsync(CancellationToken)).Tasks);

        Assert.Equal(PgMaintenanceOutcome.Ran, first.Outcome);
        Assert.Equal(2000, first.RowsRemoved);
        Assert.Equal(2, first.Batches);
        Assert.Equal(800L, await CountAsync());
        Assert.Equal(300L, await CountAsync($"expires_at > '{_time.GetUtcNow():O}'"));

        _time.Advance(TimeSpan.FromMinutes(1));
        var second = Assert.Single((await runner.RunOnceAsync(CancellationToken)).Tasks);

        Assert.Equal(500, second.RowsRemoved);
        Assert.Equal(1, second.Batches);
        Assert.Equal(300L, await CountAsync());
    }

    [Fact]
    public async Task RunOnceAsync_UsesTheInjectedClock_NotTheDatabaseClock()
    {
        await InstallAsync();
        await AddItemsAsync(10, TimeSpan.FromMinutes(5));
        var runner = CreateRunner(Options());

        Assert.Equal(0, (await runner.RunOnceAsync(CancellationToken)).RowsRemoved);

        _time.Advance(TimeSpan.FromMinutes(6));
        Assert.Equal(10, (await runner.RunOnceAsync(CancellationToken)).RowsRemoved);
    }

    [Fact]
    public async Task RunOnceAsync_FourInstancesAtOnce_ExactlyOneRunsTheTask()
    {
        await InstallAsync();
        await AddItemsAsync(1500, TimeSpan.FromMinutes(-1));
        var runners = Enumerable.Range(0, 4).Select(_ => CreateRunner(Options(), CreateDataSource())).ToList();

        var results = await Task.WhenAll(runners.Select(r => Task.Run(() => r.RunOnceAsync(CancellationToken), CancellationToken)));
        var outcomes = results.Select(r => Assert.Single(r.Tasks)).ToList();

        var leader = Assert.Single(outcomes, o => o.Outcome == PgMaintenanceOutcome.Ran);
        Assert.Equal(1500, leader.RowsRemoved);
        Assert.All(outcomes.Where(o => o != leader), o => Assert.Contains(o.Outcome, new[] { PgMaintenanceOutcome.NotLeader, PgMaintenanceOutcome.NotDue }));
        Assert.Equal(0L, await CountAsync());
    }

    [Fact]
    public async Task RunOnceAsync_AnotherInstanceHoldsTheLeaderLock_SkipsAsNotLeader()
    {
        await InstallAsync();
        await AddItemsAsync(5, TimeSpan.FromMinutes(-1));
        await using var other = await DataSource.OpenConnectionAsync(CancellationToken);
        await using var transaction = await other.BeginTransactionAsync(CancellationToken);
        await using (var hold = new NpgsqlCommand("SELECT pg_advisory_xact_lock($1, hashtext($2))", other, transaction))
        {
            hold.Parameters.Add(new NpgsqlParameter { Value = PgMaintenanceRunner.LockClass });
            hold.Parameters.Add(new NpgsqlParameter { Value = Schema + "." + TestModules.ItemCleanup.Name });
            await hold.ExecuteNonQueryAsync(CancellationToken);
        }

        var blocked = Assert.Single((await CreateRunner(Options()).RunOnceAsync(CancellationToken)).Tasks);
        Assert.Equal(PgMaintenanceOutcome.NotLeader, blocked.Outcome);
        Assert.Equal(5L, await CountAsync());

        // Transaction-scoped: the lock is gone with the transaction, nothing to release by hand.
        await transaction.RollbackAsync(CancellationToken);
        var after = Assert.Single((await CreateRunner(Options()).RunOnceAsync(CancellationToken)).Tasks);
        Assert.Equal(PgMaintenanceOutcome.Ran, after.Outcome);
        Assert.Equal(0L, await CountAsync());
    }

    [Fact]
    public async Task RunOnceAsync_RanByAnotherInstanceWithinHalfAnInterval_IsNotDue()
    {
        await InstallAsync();
        await CreateRunner(Options()).RunOnceAsync(CancellationToken);
        await AddItemsAsync(3, TimeSpan.FromMinutes(-1));

        _time.Advance(TimeSpan.FromSeconds(20));
        var early = Assert.Single((await CreateRunner(Options(), CreateDataSource()).RunOnceAsync(CancellationToken)).Tasks);
        Assert.Equal(PgMaintenanceOutcome.NotDue, early.Outcome);
        Assert.Equal(3L, await CountAsync());

        _time.Advance(TimeSpan.FromSeconds(15));
        var due = Assert.Single((await CreateRunner(Options(), CreateDataSource()).RunOnceAsync(CancellationToken)).Tasks);
        Assert.Equal(PgMaintenanceOutcome.Ran, due.Outcome);
        Assert.Equal(3L, await ScalarAsync<long>($"SELECT last_rows FROM \"{Schema}\".maintenance_state"));
    }

    [Fact]
    public async Task RunOnceAsync_SchemaNotInstalled_FailsWithAnErrorNamingTheScript()
    {
        await new PgSchemaInstaller(DataSource, Schema, []).ApplyAsync(CancellationToken); // bookkeeping only

        var failed = Assert.Single((await CreateRunner(Options()).RunOnceAsync(CancellationToken)).Tasks);

        Assert.Equal(PgMaintenanceOutcome.Failed, failed.Outcome);
        var error = Assert.IsType<PgFirstSchemaException>(failed.Error);
        Assert.Contains("sql/testmod/001_item.sql", error.Message, StringComparison.Ordinal);
        Assert.Contains("item_delete_expired", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunOnceAsync_DatabaseDown_ReportsFailureWithoutThrowing()
    {
        await using var nowhere = NpgsqlDataSource.Create($"Host=127.0.0.1;Port={DownPort};Username=x;Password=x;Timeout=2");

        var failed = Assert.Single((await CreateRunner(Options(), nowhere).RunOnceAsync(CancellationToken)).Tasks);

        Assert.Equal(PgMaintenanceOutcome.Failed, failed.Outcome);
        Assert.IsAssignableFrom<NpgsqlException>(failed.Error);
    }

    [Fact]
    public async Task RunOnceAsync_RecordsRowsRemovedAndOutcomeMetrics()
    {
        await InstallAsync();
        await AddItemsAsync(42, TimeSpan.FromMinutes(-1));
        var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        await using var _ = services;
        var meters = services.GetRequiredService<IMeterFactory>();
        using var removed = new MetricCollector<long>(meters, PgFirstMetricNames.CoreMeter, PgFirstMetricNames.MaintenanceRowsRemoved);
        using var runs = new MetricCollector<long>(meters, PgFirstMetricNames.CoreMeter, PgFirstMetricNames.MaintenanceRuns);

        await CreateRunner(Options(), meters: meters).RunOnceAsync(CancellationToken);
        await CreateRunner(Options(), meters: meters).RunOnceAsync(CancellationToken);

        var measurement = Assert.Single(removed.GetMeasurementSnapshot());
        Assert.Equal(42, measurement.Value);
        Assert.Equal("testmod", measurement.Tags[PgFirstMetricNames.ModuleTag]);
        Assert.Equal(
            ["ran", "not_due"],
            runs.GetMeasurementSnapshot().Select(m => (string)m.Tags[PgFirstMetricNames.OutcomeTag]!));
    }

    [Fact]
    public void Constructor_SameTaskTwice_Throws()
    {
        var error = Assert.Throws<ArgumentException>(
            () => new PgMaintenanceRunner(DataSource, Options(), [TestModules.ItemCleanup, new PgMaintenanceTask(TestModules.Items, "item_delete_expired")], _time));

        Assert.Contains("testmod.item_delete_expired", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("Drop")]
    [InlineData("f(); DROP TABLE x")]
    public void PgMaintenanceTask_InvalidFunctionName_Throws(string name)
    {
        Assert.ThrowsAny<ArgumentException>(() => new PgMaintenanceTask(TestModules.Items, name));
    }
}
