using Npgsql;
using PgFirst.Testing;

namespace PgFirst.Benchmarks.Tests;

// The load runner cannot rot: every scenario runs for a second (a batch scenario on a small batch: 500 jobs, 20 for
// Hangfire) against the real servers, on its own schema and key prefix, and the report is written. No figure is asserted
// beyond "it did work".
public class LoadRunnerTests(PostgresServer postgres, RedisServer redis)
{
    [Fact]
    public async Task EveryScenario_RunsForASecond_AndTheReportCoversIt()
    {
        var folder = Directory.CreateTempSubdirectory("pgfirst-bench-");
        var schema = PostgresServer.NewSchemaName();
        var prefix = RedisServer.NewKeyPrefix();
        var report = Path.Combine(folder.FullName, "BENCHMARKS.md");
        var charts = Path.Combine(folder.FullName, "charts");
        var table = new StringWriter();
        LoadRunner.Table = TextWriter.Synchronized(table);
        try
        {
            var exitCode = await LoadRunner.RunAsync(
            [
                "load", "--seconds", "1", "--warm-up", "0.1", "--callers", "1", "--repeat", "1", "--keys", "1000",
                "--jobs", "500", "--drain-jobs", "500", "--hangfire-jobs", "20", "--sizes", "1000,3000", "--session-sizes", "1000,3000", "--backlogs", "1000,3000", "--expired", "2000",
                "--schema", schema, "--redis-prefix", prefix,
                "--postgres", postgres.ConnectionString, "--redis", redis.Configuration,
                "--pgbouncer", postgres.PoolerConnectionString, "--standby", PostgresServer.StandbyConnectionString,
                "--report", report, "--charts", charts,
            ]);

            Assert.Equal(0, exitCode);
            Assert.Equal(LoadRunner.ScenarioNames, LoadRunner.LastResults.Select(r => $"{r.Group}: {r.Variant}"));

            // The running table has a row for every scenario run (a batch scenario's row carries its own caller count).
            var rows = table.ToString().Split('\n').Where(l => l.StartsWith("| ", StringComparison.Ordinal)).Skip(2).ToList();
            Assert.All(LoadRunner.ScenarioNames, name => Assert.Contains(rows, row => row.StartsWith($"| {name} | ", StringComparison.Ordinal)));
            Assert.All(LoadRunner.LastResults, r => Assert.True(r.OpsPerSecond > 0, $"{r.Group}: {r.Variant} did nothing"));
            var markdown = await File.ReadAllTextAsync(report, TestContext.Current.CancellationToken);
            foreach (var group in LoadRunner.LastResults.Select(r => r.Group).Distinct())
            {
                Assert.Contains($"### {group}", markdown, StringComparison.Ordinal);
            }

            Assert.NotEmpty(Directory.GetFiles(charts, "*.svg"));

            // The sections that make the report believable (issue 18) are there, from this run's own figures.
            Assert.Equal(LoadRunner.AllocationOperations, LoadRunner.LastAllocations.Select(a => $"{a.Group}: {a.Variant}"));
            Assert.All(LoadRunner.LastAllocations, a => Assert.True(a.BytesPerOperation > 0, $"{a.Group}: {a.Variant} allocated nothing"));
            foreach (var section in new[] { "## Verdict", "## Headline: PostgreSQL ÷ Redis", "## Cost as the work grows", "## Allocations per operation", "## Machine load by scenario" })
            {
                Assert.Contains(section + "\n", markdown, StringComparison.Ordinal);
            }
        }
        finally
        {
            LoadRunner.Table = null;
            await using (var dataSource = NpgsqlDataSource.Create(postgres.ConnectionString))
            {
                // The run's schema and every one it derives from it (_logged, _hangfire, the size tables…).
                await using var list = dataSource.CreateCommand("SELECT nspname FROM pg_namespace WHERE nspname = $1 OR starts_with(nspname, $1 || '_')");
                list.Parameters.AddWithValue(schema);
                var schemas = new List<string>();
                await using (var reader = await list.ExecuteReaderAsync(TestContext.Current.CancellationToken))
                {
                    while (await reader.ReadAsync(TestContext.Current.CancellationToken))
                    {
                        schemas.Add(reader.GetString(0));
                    }
                }

                foreach (var name in schemas)
                {
                    await using var drop = dataSource.CreateCommand($"DROP SCHEMA IF EXISTS \"{name}\" CASCADE");
                    await drop.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
                }
            }

            await redis.DeleteKeysAsync(prefix);
            folder.Delete(recursive: true);
        }
    }
}
