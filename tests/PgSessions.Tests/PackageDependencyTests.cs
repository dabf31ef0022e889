using PgFirst.Testing;

namespace PgSessions.Tests;

public class PackageDependencyTests
{
    [Fact]
    public void PgSessions_TransitiveDependencies_IncludeNpgsqlButNoRedisClient() => DependencyRules.AssertPostgreSqlPackage("PgSessions");
}
