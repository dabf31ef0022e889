using PgFirst.Testing;

namespace PgRateLimit.Tests;

// The PostgreSQL packages must never pull in a Redis client: that lives in PgFirst.Redis alone.
public class PackageDependencyTests
{
    [Fact]
    public void PgRateLimit_TransitiveDependencies_IncludeNpgsqlButNoRedisClient()
    {
        var dependencies = DependencyRules.TransitiveDependencies("PgRateLimit");

        Assert.Contains("PgFirst.Core", dependencies);
        Assert.Contains("Npgsql", dependencies);
        Assert.DoesNotContain(dependencies, d => d.Contains("Redis", StringComparison.OrdinalIgnoreCase));
    }
}
