using PgFirst.Testing;

namespace PgFirst.OutputCaching.Tests;

public sealed class PackageDependencyTests
{
    [Fact]
    public void OutputCacheStore_UsesPgCache_AndNoRedisClient()
    {
        var dependencies = DependencyRules.TransitiveDependencies("PgFirst.OutputCaching");

        Assert.Contains("PgCache", dependencies);
        Assert.Contains("Npgsql", dependencies);
        Assert.DoesNotContain(dependencies, d => d.Contains("Redis", StringComparison.OrdinalIgnoreCase));
    }
}
