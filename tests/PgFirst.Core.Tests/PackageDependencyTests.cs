using PgFirst.Testing;

namespace PgFirst.Core.Tests;

public class PackageDependencyTests
{
    [Fact]
    public void PgFirstCore_TransitiveDependencies_IncludeNpgsqlButNoRedisClient() => DependencyRules.AssertPostgreSqlPackage("PgFirst.Core");
}
