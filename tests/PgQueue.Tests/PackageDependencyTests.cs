using PgFirst.Testing;

namespace PgQueue.Tests;

public class PackageDependencyTests
{
    [Fact]
    public void PgQueue_TransitiveDependencies_IncludeNpgsqlButNoRedisClient() => DependencyRules.AssertPostgreSqlPackage("PgQueue");
}
