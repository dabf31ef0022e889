namespace PgFirst.Core;

/// <summary>
/// The store a PgFirst module runs on.
/// </summary>
public enum PgFirstBackend
{
    /// <summary>PostgreSQL, through the application's <c>NpgsqlDataSource</c>. The default.</summary>
    PostgreSql = 0,

    /// <summary>Redis, through the optional <c>PgFirst.Redis</c> package.</summary>
    Redis = 1,
}

/// <summary>
/// The four PgFirst modules, for per-module settings such as <see cref="PgFirstOptions.GetBackend(PgFirstModule)"/>.
/// </summary>
public enum PgFirstModule
{
    /// <summary>The distributed cache (<c>PgCache</c>).</summary>
    Cache,

    /// <summary>The session store (<c>PgSessions</c>).</summary>
    Sessions,

    /// <summary>The distributed rate limiter (<c>PgRateLimit</c>).</summary>
    RateLimit,

    /// <summary>The job queue (<c>PgQueue</c>).</summary>
    Queue,
}
