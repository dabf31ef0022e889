using PgFirst.Testing;

namespace PgFirst.SignalR.Tests;

public sealed class PackageDependencyTests
{
    // SignalR itself is in the ASP.NET Core shared framework: the package adds no dependency beyond PgFirst.Core.
    [Fact]
    public void Backplane_IsAPostgreSqlPackage_WithNoRedisClient() => DependencyRules.AssertPostgreSqlPackage("PgFirst.SignalR");
}
