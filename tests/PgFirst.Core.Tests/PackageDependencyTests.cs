using PgFirst.Testing;

namespace PgFirst.Core.Tests;

// The PostgreSQL packages must never pull in a Redis client: that lives in PgFirst.Redis alone.
public class PackageDependencyTests
{
    [Fact]
    public void PgFirstCore_TransitiveDependencies_IncludeNpgsqlButNoRedisClient()
    {
        var dependencies = DependencyRules.TransitiveDependencies("PgFirst.Core");

        Assert.Contains("Npgsql", dependencies);
        Assert.DoesNotContain(dependencies, d => d.Contains("Redis", StringComparison.OrdinalIgnoreCase));
    }
}
