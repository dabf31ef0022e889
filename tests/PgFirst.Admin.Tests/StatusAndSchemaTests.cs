using System.Text.Json;
using Microsoft.Extensions.Caching.Distributed;
using PgCache;
using PgFirst.Testing;

namespace PgFirst.Admin.Tests;

[Trait("Category", "Pooler")]
public sealed class StatusAndSchemaTests(PostgresServer server) : AdminTest(server)
{
    [Fact]
    public async Task Status_OnAPreparedSchema_ShowsScriptsTablesAndRows_AsTableAndJson()
    {
        using var cache = new PgDistributedCache(DataSource, Options, new PgCacheOptions(), new PgTenantContext("default"), TimeProvider.System);
        for (var i = 0; i < 3; i++)
        {
            await cache.SetAsync($"k{i}", new byte[100], new DistributedCacheEntryOptions(), CancellationToken);
        }

        var run = await AdminAsync("status");

        AssertExit(AdminExitCode.Ok, run);
        Assert.Contains($"Schema {Schema}: {ScriptCount} scripts applied, 0 pending (up to date)", run.Output, StringComparison.Ordinal);
        Assert.Matches(@"pgcache\s+│\s+cache_entry \(unlogged\)\s+│\s+3\s+│", run.Output);
        Assert.Matches(@"pgqueue\s+│\s+job\s+│\s+0\s+│", run.Output);
        Assert.Contains(Server.Pooler == PgPoolerMode.Transaction ? "through a pooler" : "direct (no pooler)", run.Output, StringComparison.Ordinal);

        var json = (await AdminAsync("status", "--json")).Json;
        Assert.StartsWith(await ScalarAsync<string>("SHOW server_version"), json.GetProperty("serverVersion").GetString(), StringComparison.Ordinal);
        Assert.True(json.GetProperty("schemaExists").GetBoolean());
        Assert.True(json.GetProperty("upToDate").GetBoolean());
        Assert.Equal(Server.Pooler == PgPoolerMode.Transaction, json.GetProperty("behindPooler").GetBoolean());
        Assert.Equal(ScriptCount, json.GetProperty("scripts").GetArrayLength());
        Assert.All(json.GetProperty("scripts").EnumerateArray(), s => Assert.Equal("applied", s.GetProperty("state").GetString()));
        var entry = json.GetProperty("tables").EnumerateArray().Single(t => t.GetProperty("name").GetString() == "cache_entry");
        Assert.Equal("pgcache", entry.GetProperty("module").GetString());
        Assert.Equal(3, entry.GetProperty("rows").GetInt64());
        Assert.True(entry.GetProperty("rowsExact").GetBoolean());
        Assert.True(entry.GetProperty("unlogged").GetBoolean());
        Assert.True(entry.GetProperty("tableBytes").GetInt64() > 0);
        Assert.Equal(JsonValueKind.Array, json.GetProperty("replication").ValueKind);
    }

    [Fact]
    public async Task Status_ShowsTheLastMaintenanceRun()
    {
        await ExecuteAsync($"INSERT INTO \"{Schema}\".maintenance_state (task, last_run_at, last_rows) VALUES ('pgcache.cache_delete_expired', now(), 42)");

        var run = await AdminAsync("status");

        Assert.Matches(@"pgcache\.cache_delete_expired\s+│\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+│\s+42", run.Output);
        var task = (await AdminAsync("status", "--json")).Json.GetProperty("maintenance")[0];
        Assert.Equal(42, task.GetProperty("lastRows").GetInt64());
    }

    [Fact]
    public async Task Status_MissingSchema_SaysSoInOneLine_Exit3()
    {
        var run = await AdminRun.RunAsync(Server.ConnectionString, null, CancellationToken, "status", "--schema", "t_missing_" + Guid.NewGuid().ToString("N")[..8]);

        AssertExit(AdminExitCode.SchemaNotReady, run);
        AssertOneErrorLine(run, "does not exist");
    }

    [Fact]
    public async Task SchemaApply_WithoutYes_ChangesNothing_Exit5_ThenWithYes_Applies_AndVerifyPasses()
    {
        var fresh = PostgresServer.NewSchemaName();
        try
        {
            var verifyBefore = await AdminRun.RunAsync(Server.ConnectionString, null, CancellationToken, "schema", "verify", "--schema", fresh);
            AssertExit(AdminExitCode.SchemaNotReady, verifyBefore);
            Assert.Contains("pending", verifyBefore.Output, StringComparison.Ordinal);

            var dry = await AdminRun.RunAsync(Server.ConnectionString, null, CancellationToken, "schema", "apply", "--schema", fresh);
            AssertExit(AdminExitCode.NotConfirmed, dry);
            Assert.Contains($"Would apply {ScriptCount} script(s)", dry.Output, StringComparison.Ordinal);
            Assert.False(await ScalarAsync<bool>("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", fresh));

            var apply = await AdminRun.RunAsync(Server.ConnectionString, null, CancellationToken, "schema", "apply", "--schema", fresh, "--yes", "--json");
            AssertExit(AdminExitCode.Ok, apply);
            Assert.Equal(ScriptCount, apply.Json.GetProperty("scripts").GetArrayLength());

            var verify = await AdminRun.RunAsync(Server.ConnectionString, null, CancellationToken, "schema", "verify", "--schema", fresh, "--json");
            AssertExit(AdminExitCode.Ok, verify);
            Assert.True(verify.Json.GetProperty("upToDate").GetBoolean());
        }
        finally
        {
            await ExecuteAsync($"DROP SCHEMA IF EXISTS \"{fresh}\" CASCADE");
        }
    }

    [Fact]
    public async Task SchemaVerify_AChecksumThatDiffers_IsReported_Exit3()
    {
        await ExecuteAsync($"UPDATE \"{Schema}\".schema_version SET checksum = 'edited' WHERE module = 'pgqueue' AND version = 1");

        var run = await AdminAsync("schema", "verify");

        AssertExit(AdminExitCode.SchemaNotReady, run);
        Assert.Matches(@"pgqueue\s+│\s+1\s+│\s+001_job\.sql\s+│\s+applied, checksum differs", run.Output);
        var states = (await AdminAsync("schema", "verify", "--json")).Json.GetProperty("scripts").EnumerateArray().ToList();
        Assert.Equal("checksumMismatch", states.Single(s => s.GetProperty("module").GetString() == "pgqueue").GetProperty("state").GetString());
    }

    [Fact]
    public async Task SchemaScript_PrintsEveryModulesSql_ForTheSchema_WithoutAServer()
    {
        var run = await AdminRun.RunAsync("Host=127.0.0.1;Port=1", null, CancellationToken, "schema", "script", "--schema", "shop", "--cache-logged");

        AssertExit(AdminExitCode.Ok, run);
        Assert.Contains("CREATE SCHEMA IF NOT EXISTS \"shop\"", run.Output, StringComparison.Ordinal);
        Assert.Contains("CREATE  TABLE IF NOT EXISTS \"shop\".cache_entry", run.Output, StringComparison.Ordinal);
        Assert.Contains("CREATE UNLOGGED TABLE IF NOT EXISTS \"shop\".rate_limit_counter", run.Output, StringComparison.Ordinal);
        Assert.Contains("\"shop\".job_finished", run.Output, StringComparison.Ordinal);
    }
}
