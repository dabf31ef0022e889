using PgFirst.Testing;

namespace PgCache.Tests;

// The PostgreSQL packages must never pull in a Redis client: that lives in PgFirst.Redis alone.
public class PackageDependencyTests
{
    [Fact]
    public void PgCache_TransitiveDependencies_IncludeNpgsqlButNoRedisClient()
    {
        var dependencies = DependencyRules.TransitiveDependencies("PgCache");

        Assert.Contains("PgFirst.Core", dependencies);
        Assert.Contains("Npgsql", dependencies);
        Assert.DoesNotContain(dependencies, d => d.Contains("Redis", StringComparison.OrdinalIgnoreCase));
    }
}
