using PgFirst.Testing;

namespace PgFirst.FusionCache.Tests;

public sealed class PackageDependencyTests
{
    [Fact]
    public void Backplane_UsesFusionCacheNpgsqlAndTheCore_AndNoRedisClient()
    {
        var dependencies = DependencyRules.TransitiveDependencies("PgFirst.FusionCache");

        Assert.Contains("ZiggyCreatures.FusionCache", dependencies);
        Assert.Contains("Npgsql", dependencies);
        Assert.Contains("PgFirst.Core", dependencies);
        Assert.DoesNotContain("PgCache", dependencies);
        Assert.DoesNotContain(dependencies, d => d.Contains("Redis", StringComparison.OrdinalIgnoreCase));
    }
}
