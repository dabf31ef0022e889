using PgFirst.Testing;

namespace PgSessions.Tests;

// The PostgreSQL packages must never pull in a Redis client: that lives in PgFirst.Redis alone.
public class PackageDependencyTests
{
    [Fact]
    public void PgSessions_TransitiveDependencies_IncludeNpgsqlButNoRedisClient()
    {
        var dependencies = DependencyRules.TransitiveDependencies("PgSessions");

        Assert.Contains("PgFirst.Core", dependencies);
        Assert.Contains("Npgsql", dependencies);
        Assert.DoesNotContain(dependencies, d => d.Contains("Redis", StringComparison.OrdinalIgnoreCase));
    }
}
