using PgFirst.Testing;

namespace PgQueue.Tests;

// The PostgreSQL packages must never pull in a Redis client: that lives in PgFirst.Redis alone.
public class PackageDependencyTests
{
    [Fact]
    public void PgQueue_TransitiveDependencies_IncludeNpgsqlButNoRedisClient()
    {
        var dependencies = DependencyRules.TransitiveDependencies("PgQueue");

        Assert.Contains("PgFirst.Core", dependencies);
        Assert.Contains("Npgsql", dependencies);
        Assert.DoesNotContain(dependencies, d => d.Contains("Redis", StringComparison.OrdinalIgnoreCase));
    }
}
