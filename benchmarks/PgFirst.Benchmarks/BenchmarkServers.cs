namespace PgFirst.Benchmarks;

/// <summary>The servers to measure against: the ones ./pgfirst env prints, unless the load runner was given others.</summary>
internal static class BenchmarkServers
{
    /// <summary>Gets or sets a connection string that replaces PGFIRST_POSTGRES (the load runner's --postgres).</summary>
    public static string? PostgresOverride { get; set; }

    /// <summary>Gets or sets a configuration that replaces PGFIRST_REDIS (the load runner's --redis).</summary>
    public static string? RedisOverride { get; set; }

    public static string Postgres => PostgresOverride ?? Require("PGFIRST_POSTGRES");

    public static string Redis => RedisOverride ?? Require("PGFIRST_REDIS");

    /// <summary>
    /// Gets a connection string through PgBouncer in transaction mode (PGFIRST_PGBOUNCER), with the setting PgFirst
    /// requires there (<c>No Reset On Close=true</c>).
    /// </summary>
    public static string PgBouncer => new Npgsql.NpgsqlConnectionStringBuilder(PgBouncerOverride ?? Require("PGFIRST_PGBOUNCER")) { NoResetOnClose = true }.ConnectionString;

    /// <summary>Gets or sets a connection string that replaces PGFIRST_PGBOUNCER (the load runner's --pgbouncer).</summary>
    public static string? PgBouncerOverride { get; set; }

    /// <summary>Gets or sets a connection string that replaces PGFIRST_STANDBY (the load runner's --standby).</summary>
    public static string? StandbyOverride { get; set; }

    /// <summary>Gets a connection string to the streaming standby of <see cref="Postgres"/> (PGFIRST_STANDBY).</summary>
    public static string Standby => StandbyOverride ?? Require("PGFIRST_STANDBY");

    private static string Require(string variable) =>
        Environment.GetEnvironmentVariable(variable) is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException($"{variable} is not set: run eval \"$(./pgfirst env)\" first.");
}
