using PgFirst.Testing;

namespace PgFirst.Admin.Tests;

public sealed class PackageDependencyTests
{
    [Fact]
    public void AdminTool_UsesTheLibrariesAndItsConsolePackages_AndNoRedisClient()
    {
        var dependencies = DependencyRules.TransitiveDependencies("PgFirst.Admin");

        Assert.Superset(new HashSet<string>(["PgCache", "PgSessions", "PgRateLimit", "PgQueue", "PgFirst.Core", "Npgsql", "Spectre.Console", "System.CommandLine"], StringComparer.OrdinalIgnoreCase), new HashSet<string>(dependencies, StringComparer.OrdinalIgnoreCase));
        Assert.DoesNotContain(dependencies, d => d.Contains("Redis", StringComparison.OrdinalIgnoreCase));
    }
}
