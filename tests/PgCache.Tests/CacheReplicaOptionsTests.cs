using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace PgCache.Tests;

// Replica reads are refused at start-up where they cannot work: an UNLOGGED table, or no replica configured.
public sealed class CacheReplicaOptionsTests
{
    [Theory]
    [InlineData(PgCacheDurability.Unlogged, "Host=127.0.0.1;Port=1", "UNLOGGED table is not replicated")]
    [InlineData(PgCacheDurability.Logged, null, "PgFirst:Replicas:ConnectionString is not set")]
    public void ReplicaReadConsistency_WhereItCannotWork_FailsAtStartup(PgCacheDurability durability, string? replicas, string message)
    {
        var services = new ServiceCollection();
        services.AddPgFirst(o => o.Replicas.ConnectionString = replicas);
        services.AddPgCache(o =>
        {
            o.Durability = durability;
            o.ReadConsistency = PgReadConsistency.BoundedStaleness;
        });
        using var provider = services.BuildServiceProvider();

        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<PgCacheOptions>>().Value);

        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void StrongConsistency_NeedsNoReplica()
    {
        var services = new ServiceCollection();
        services.AddPgFirst();
        services.AddPgCache(o => o.MaxReplicaLag = TimeSpan.FromSeconds(5));
        using var provider = services.BuildServiceProvider();

        Assert.Equal(PgReadConsistency.Strong, provider.GetRequiredService<IOptions<PgCacheOptions>>().Value.ReadConsistency);
    }
}
