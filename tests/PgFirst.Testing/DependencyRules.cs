using System.Text.Json;
using Xunit;

namespace PgFirst.Testing;

/// <summary>
/// Checks on the package graph, read from the test project's <c>.deps.json</c> (the resolved, transitive graph).
/// </summary>
public static class DependencyRules
{
    /// <summary>
    /// Asserts that a PostgreSQL package depends on Npgsql (and on PgFirst.Core unless it is the core) and, anywhere in
    /// its transitive graph, on no Redis client: that lives in PgFirst.Redis alone.
    /// </summary>
    public static void AssertPostgreSqlPackage(string project)
    {
        var dependencies = TransitiveDependencies(project);

        Assert.Contains("Npgsql", dependencies);
        if (project != "PgFirst.Core")
        {
            Assert.Contains("PgFirst.Core", dependencies);
        }

        Assert.DoesNotContain(dependencies, d => d.Contains("Redis", StringComparison.OrdinalIgnoreCase));

        // The operator tool's console packages stay in PgFirst.Admin, FusionCache in PgFirst.FusionCache.
        Assert.DoesNotContain(dependencies, d => d.StartsWith("Spectre.", StringComparison.OrdinalIgnoreCase) || d.Equals("System.CommandLine", StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(dependencies, d => d.StartsWith("ZiggyCreatures.", StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>
    /// Returns every package and project that <paramref name="project"/> depends on, transitively.
    /// </summary>
    public static IReadOnlySet<string> TransitiveDependencies(string project)
    {
        // The test project of a package is named after it: PgCache -> PgCache.Tests.deps.json.
        var depsFile = Path.Combine(AppContext.BaseDirectory, project + ".Tests.deps.json");
        using var document = JsonDocument.Parse(File.ReadAllText(depsFile));
        var targets = document.RootElement.GetProperty("targets").EnumerateObject().First().Value;
        var graph = new Dictionary<string, List<string>>(StringComparer.OrdinalIgnoreCase);
        foreach (var library in targets.EnumerateObject())
        {
            var name = library.Name.Split('/')[0];
            var dependencies = new List<string>();
            if (library.Value.TryGetProperty("dependencies", out var deps))
            {
                dependencies.AddRange(deps.EnumerateObject().Select(d => d.Name));
            }

            graph[name] = dependencies;
        }

        Assert.True(graph.ContainsKey(project), $"{project} is not in {Path.GetFileName(depsFile)}.");
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var stack = new Stack<string>(graph[project]);
        while (stack.TryPop(out var next))
        {
            if (seen.Add(next) && graph.TryGetValue(next, out var more))
            {
                foreach (var dependency in more)
                {
                    stack.Push(dependency);
                }
            }
        }

        return seen;
    }
}
