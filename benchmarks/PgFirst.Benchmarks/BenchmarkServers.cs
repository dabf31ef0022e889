namespace PgFirst.Benchmarks;

/// <summary>The servers to measure against: the ones ./pgfirst env prints.</summary>
internal static class BenchmarkServers
{
    public static string Postgres => Require("PGFIRST_POSTGRES");

    public static string Redis => Require("PGFIRST_REDIS");

    private static string Require(string variable) =>
        Environment.GetEnvironmentVariable(variable) is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException($"{variable} is not set: run eval \"$(./pgfirst env)\" first.");
}
