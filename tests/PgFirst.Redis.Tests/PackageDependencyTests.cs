using PgFirst.Testing;

namespace PgFirst.Redis.Tests;

public class PackageDependencyTests
{
    [Fact]
    public void PgFirstRedis_TransitiveDependencies_IncludeTheRedisClientAndCore()
    {
        var dependencies = DependencyRules.TransitiveDependencies("PgFirst.Redis");

        Assert.Contains("StackExchange.Redis", dependencies);
        Assert.Contains("PgFirst.Core", dependencies);
    }
}
