using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Npgsql;
using PgFirst.Testing;

namespace PgFirst.Core.Tests;

public class PgSchemaInstallerTests(PostgresServer server) : PostgresTest(server)
{
    private PgSchemaInstaller CreateInstaller(NpgsqlDataSource? dataSource = null, ILogger<PgSchemaInstaller>? logger = null, params PgSchemaModule[] modules) =>
        new(dataSource ?? DataSource, Schema, modules.Length == 0 ? [TestModules.Items] : modules, logger);

    private Task<long> VersionRowsAsync() => ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".schema_version");

    [Fact]
    public async Task ApplyAsync_EmptyDatabase_CreatesEveryObjectAndRecordsOneVersionPerScript()
    {
        var result = await CreateInstaller().ApplyAsync(CancellationToken);

        Assert.Equal(
            ["sql/pgfirst/001_schema_version.sql", "sql/testmod/001_item.sql", "sql/testmod/002_item_note.sql"],
            result.Applied.Select(s => s.SourcePath));
        Assert.True(await RelationExistsAsync("item"));
        Assert.True(await RelationExistsAsync("maintenance_state"));
        Assert.Equal(1L, await ScalarAsync<long>(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'item' AND column_name = 'note'", Schema));
        Assert.Equal(3L, await VersionRowsAsync());
        Assert.Equal(
            TestModules.Items.Scripts[1].Checksum,
            await ScalarAsync<string>($"SELECT checksum FROM \"{Schema}\".schema_version WHERE module = 'testmod' AND version = 2"));
    }

    [Fact]
    public async Task ApplyAsync_SecondCall_AppliesNothingAndChangesNothing()
    {
        await CreateInstaller().ApplyAsync(CancellationToken);
        await ExecuteAsync($"INSERT INTO \"{Schema}\".item (expires_at) VALUES (now())");

        var second = await CreateInstaller().ApplyAsync(CancellationToken);

        Assert.True(second.WasUpToDate);
        Assert.Equal(3L, await VersionRowsAsync());
        Assert.Equal(1L, await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".item"));
    }

    [Fact]
    public async Task ApplyAsync_EightInstancesAtOnce_OneSetOfObjectsAndOneVersionRowEach()
    {
        // Eight "app instances", each with its own pool, starting together.
        var installers = Enumerable.Range(0, 8).Select(_ => CreateInstaller(CreateDataSource())).ToList();
        using var start = new ManualResetEventSlim();
        var runs = installers.Select(i => Task.Run(
            async () =>
            {
                start.Wait(CancellationToken);
                return await i.ApplyAsync(CancellationToken);
            },
            CancellationToken)).ToList();
        start.Set();
        var results = await Task.WhenAll(runs);

        Assert.Single(results, r => !r.WasUpToDate);
        Assert.Equal(7, results.Count(r => r.WasUpToDate));
        Assert.Equal(3L, await VersionRowsAsync());
        Assert.Equal(3L, await ScalarAsync<long>(
            $"SELECT count(DISTINCT (module, version)) FROM \"{Schema}\".schema_version"));
        Assert.Equal(1L, await ScalarAsync<long>(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1 AND p.proname = 'item_delete_expired'",
            Schema));
    }

    [Fact]
    public async Task ApplyAsync_ScriptFailsHalfway_RollsBackEverythingAndNamesTheScript()
    {
        var installer = CreateInstaller(modules: [TestModules.Items, TestModules.Broken]);

        var error = await Assert.ThrowsAsync<PgFirstSchemaException>(() => installer.ApplyAsync(CancellationToken));

        Assert.Contains("sql/testbroken/002_fails_halfway.sql", error.Message, StringComparison.Ordinal);
        Assert.Contains("rolled back", error.Message, StringComparison.Ordinal);
        Assert.Equal("002_fails_halfway.sql", error.Script?.FileName);
        Assert.IsType<PostgresException>(error.InnerException);
        // Not even the schema, created by the first script of the same transaction, is left behind.
        Assert.False(await SchemaExistsAsync());
    }

    [Fact]
    public async Task ApplyAsync_NewModuleFailsOnExistingSchema_LeavesEarlierVersionsIntact()
    {
        await CreateInstaller().ApplyAsync(CancellationToken);

        await Assert.ThrowsAsync<PgFirstSchemaException>(
            () => CreateInstaller(modules: [TestModules.Items, TestModules.Broken]).ApplyAsync(CancellationToken));

        Assert.Equal(3L, await VersionRowsAsync());
        Assert.True(await RelationExistsAsync("item"));
        Assert.False(await RelationExistsAsync("widget"));
        Assert.False(await RelationExistsAsync("gadget"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("Upper")]
    [InlineData("with-dash")]
    [InlineData("1starts_with_digit")]
    [InlineData("x\"; DROP SCHEMA public; --")]
    [InlineData("a_name_that_is_far_too_long_for_postgresql_identifiers_0123456789")]
    public async Task Constructor_InvalidSchemaName_ThrowsAndCreatesNothing(string schemaName)
    {
        var error = Assert.Throws<ArgumentException>(() => new PgSchemaInstaller(DataSource, schemaName, [TestModules.Items]));

        Assert.Contains("not a valid schema name", error.Message, StringComparison.Ordinal);
        Assert.Equal(0L, await ScalarAsync<long>("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schemaName));
    }

    [Fact]
    public async Task ApplyAsync_UnreachableServer_ThrowsErrorNamingTheServer()
    {
        var port = TestEnvironment.UnusedLoopbackPort();
        await using var nowhere = NpgsqlDataSource.Create($"Host=127.0.0.1;Port={port};Username=nobody;Password=x;Timeout=3");
        var installer = new PgSchemaInstaller(nowhere, Schema, [TestModules.Items]);

        var error = await Assert.ThrowsAsync<PgFirstSchemaException>(() => installer.ApplyAsync(CancellationToken));

        Assert.Contains($"127.0.0.1:{port}", error.Message, StringComparison.Ordinal);
        Assert.Contains("nothing was changed", error.Message, StringComparison.Ordinal);
        Assert.IsAssignableFrom<NpgsqlException>(error.InnerException);
    }

    [Fact]
    public async Task GenerateScript_AppliedByHandTwice_LeavesNothingPendingForTheInstaller()
    {
        var installer = CreateInstaller();
        var script = installer.GenerateScript();

        await ExecuteAsync(script);
        await ExecuteAsync(script);

        Assert.Empty(await installer.GetPendingScriptsAsync(CancellationToken));
        Assert.True((await installer.ApplyAsync(CancellationToken)).WasUpToDate);
        Assert.Equal(3L, await VersionRowsAsync());
        Assert.True(await RelationExistsAsync("item"));
    }

    [Fact]
    public async Task GetPendingScriptsAsync_PartlyApplied_ListsOnlyTheMissingScripts()
    {
        var installer = CreateInstaller();
        Assert.Equal(3, (await installer.GetPendingScriptsAsync(CancellationToken)).Count);
        Assert.False(await SchemaExistsAsync());

        await installer.ApplyAsync(CancellationToken);
        var withBroken = CreateInstaller(modules: [TestModules.Items, TestModules.Broken]);

        Assert.Equal(
            ["sql/testbroken/001_widget.sql", "sql/testbroken/002_fails_halfway.sql"],
            (await withBroken.GetPendingScriptsAsync(CancellationToken)).Select(s => s.SourcePath));
    }

    [Fact]
    public async Task ApplyAsync_RecordedChecksumDiffers_LogsAWarningAndAppliesNothing()
    {
        await CreateInstaller().ApplyAsync(CancellationToken);
        await ExecuteAsync($"UPDATE \"{Schema}\".schema_version SET checksum = 'edited' WHERE module = 'testmod' AND version = 1");
        var logs = new FakeLogCollector();
        using var factory = LoggerFactory.Create(b => b.AddProvider(new FakeLoggerProvider(logs)));

        var result = await CreateInstaller(logger: factory.CreateLogger<PgSchemaInstaller>()).ApplyAsync(CancellationToken);

        Assert.True(result.WasUpToDate);
        var warning = Assert.Single(logs.GetSnapshot(), r => r.Id.Id == PgFirstEventIds.SchemaChecksumMismatch);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains("sql/testmod/001_item.sql", warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ApplyAsync_Failure_IsLoggedAsAnError()
    {
        var logs = new FakeLogCollector();
        using var factory = LoggerFactory.Create(b => b.AddProvider(new FakeLoggerProvider(logs)));

        await Assert.ThrowsAsync<PgFirstSchemaException>(
            () => CreateInstaller(logger: factory.CreateLogger<PgSchemaInstaller>(), modules: [TestModules.Broken]).ApplyAsync(CancellationToken));

        var error = Assert.Single(logs.GetSnapshot(), r => r.Id.Id == PgFirstEventIds.SchemaApplyFailed);
        Assert.Equal(LogLevel.Error, error.Level);
        Assert.NotNull(error.Exception);
    }

    [Fact]
    public void GenerateScript_RendersEveryScriptInOrderInOneTransaction()
    {
        var script = CreateInstaller(modules: [TestModules.Items]).GenerateScript();

        Assert.StartsWith("-- PgFirst schema", script, StringComparison.Ordinal);
        Assert.Contains("BEGIN;", script, StringComparison.Ordinal);
        Assert.EndsWith("COMMIT;\n", script, StringComparison.Ordinal);
        Assert.DoesNotContain("{schema}", script, StringComparison.Ordinal);
        var core = script.IndexOf("-- sql/pgfirst/001_schema_version.sql", StringComparison.Ordinal);
        var first = script.IndexOf("-- sql/testmod/001_item.sql", StringComparison.Ordinal);
        var second = script.IndexOf("-- sql/testmod/002_item_note.sql", StringComparison.Ordinal);
        Assert.True(core >= 0 && core < first && first < second, "scripts out of order");
        Assert.Contains($"CREATE TABLE IF NOT EXISTS \"{Schema}\".item", script, StringComparison.Ordinal);
    }
}
