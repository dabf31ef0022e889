using PgFirst.Testing;

namespace PgCache.Tests;

public class PackageDependencyTests
{
    [Fact]
    public void PgCache_TransitiveDependencies_IncludeNpgsqlButNoRedisClient() => DependencyRules.AssertPostgreSqlPackage("PgCache");
}
