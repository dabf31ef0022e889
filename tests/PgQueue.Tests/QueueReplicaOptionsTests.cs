using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using PgFirst.Testing;

namespace PgQueue.Tests;

// The statistics may be read on a replica only by bounded staleness, and only with replicas configured.
public sealed class QueueReplicaOptionsTests(PostgresServer server)
{
    [Theory]
    [InlineData(PgReadConsistency.ReadYourWrites, "standby", "must be Strong or BoundedStaleness")]
    [InlineData(PgReadConsistency.BoundedStaleness, null, "PgFirst:Replicas:ConnectionString is not set")]
    public async Task StatsReadConsistency_Invalid_FailsAtStartup(PgReadConsistency consistency, string? replicas, string message)
    {
        await using var schema = new PostgresSchema(server);
        using var host = QueueTestHost.Build(
            s =>
            {
                s.AddSingleton(schema.DataSource);
                s.AddPgFirst(o =>
                {
                    schema.ConfigurePgFirst(o);
                    o.Replicas.ConnectionString = replicas is null ? null : "Host=127.0.0.1;Port=1";
                });
            },
            o => o.StatsReadConsistency = consistency);

        var error = Assert.Throws<OptionsValidationException>(() => host.Services.GetRequiredService<IOptions<PgQueueOptions>>().Value);

        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }
}
