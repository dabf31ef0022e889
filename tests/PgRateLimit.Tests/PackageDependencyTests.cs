using PgFirst.Testing;

namespace PgRateLimit.Tests;

public class PackageDependencyTests
{
    [Fact]
    public void PgRateLimit_TransitiveDependencies_IncludeNpgsqlButNoRedisClient() => DependencyRules.AssertPostgreSqlPackage("PgRateLimit");
}
