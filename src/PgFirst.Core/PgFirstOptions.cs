namespace PgFirst.Core;

/// <summary>
/// Configures what every PgFirst module shares: the schema, the data source, schema installation,
/// the default tenant, the backend of each module and the maintenance runner.
/// </summary>
/// <remarks>
/// Bound from the <c>PgFirst</c> configuration section by convention, e.g. <c>PgFirst__Backend=Redis</c> or
/// <c>PgFirst__CacheBackend=Redis</c> in the environment. Validated when the host starts.
/// </remarks>
public sealed class PgFirstOptions
{
    /// <summary>The name of the default schema.</summary>
    public const string DefaultSchemaName = "pgfirst";

    /// <summary>The id of the tenant used when no tenant is in scope.</summary>
    public const string DefaultTenant = "default";

    /// <summary>
    /// Gets or sets the PostgreSQL schema that holds every PgFirst table and function.
    /// </summary>
    /// <value>The default is <c>pgfirst</c>. Must match <c>^[a-z_][a-z0-9_]{0,62}$</c>.</value>
    public string SchemaName { get; set; } = DefaultSchemaName;

    /// <summary>
    /// Gets or sets the service key of the <c>NpgsqlDataSource</c> to resolve from DI.
    /// </summary>
    /// <value>The default is <see langword="null"/>, which resolves the unkeyed data source.</value>
    public string? DataSourceKey { get; set; }

    /// <summary>
    /// Gets or sets what sits between the app and PostgreSQL on the data source PgFirst uses. Set
    /// <see cref="PgPoolerMode.Transaction"/> behind PgBouncer in transaction mode or any pooler that hands a server
    /// connection to another client after each transaction.
    /// </summary>
    /// <value>The default is <see cref="PgPoolerMode.None"/> (a direct connection); <see cref="PgPoolerMode.Session"/> for a session pooler.</value>
    /// <remarks>
    /// In <see cref="PgPoolerMode.Transaction"/> mode no statement is prepared (the hot paths then cost a parse per call;
    /// <c>docs/production.md</c> has the measured cost) and the data source must not auto-prepare
    /// (<c>Max Auto Prepare</c>). Without the setting, a pooler's prepared-statement errors throw
    /// <see cref="PgFirstPoolerException"/> naming it.
    /// </remarks>
    public PgPoolerMode Pooler { get; set; } = PgPoolerMode.None;

    /// <summary>
    /// Gets or sets an Npgsql connection string that reaches the same database directly, past any pooler, for the
    /// connections that LISTEN (the queue's wake-ups). A LISTEN needs one server connection for as long as it lasts,
    /// which a transaction pooler does not give.
    /// </summary>
    /// <value>
    /// The default is <see langword="null"/>: with <see cref="Pooler"/> <see cref="PgPoolerMode.None"/> or Session PgFirst listens
    /// on the data source; with <see cref="PgPoolerMode.Transaction"/> it does not listen and queue workers poll.
    /// </value>
    public string? ListenConnectionString { get; set; }

    /// <summary>
    /// Gets or sets a value indicating whether the embedded <c>sql/</c> scripts are applied when the host starts.
    /// </summary>
    /// <value>
    /// The default is <see langword="false"/>: production schemas are usually applied by a DBA or a migration step,
    /// from <c>sql/</c> or from <see cref="PgSchemaInstaller.GenerateScript"/>.
    /// </value>
    public bool ApplySchemaOnStartup { get; set; }

    /// <summary>
    /// Gets or sets the tenant id used when no tenant is in scope.
    /// </summary>
    /// <value>The default is <c>default</c>. Must be a valid tenant id (see <see cref="PgTenantId"/>).</value>
    public string DefaultTenantId { get; set; } = DefaultTenant;

    /// <summary>
    /// Gets or sets the backend of every module that has no override of its own.
    /// </summary>
    /// <value>The default is <see cref="PgFirstBackend.PostgreSql"/>.</value>
    public PgFirstBackend Backend { get; set; } = PgFirstBackend.PostgreSql;

    /// <summary>Gets or sets the backend of the cache, overriding <see cref="Backend"/>.</summary>
    /// <value>The default is <see langword="null"/>: use <see cref="Backend"/>.</value>
    public PgFirstBackend? CacheBackend { get; set; }

    /// <summary>Gets or sets the backend of the session store, overriding <see cref="Backend"/>.</summary>
    /// <value>The default is <see langword="null"/>: use <see cref="Backend"/>.</value>
    public PgFirstBackend? SessionsBackend { get; set; }

    /// <summary>Gets or sets the backend of the rate limiter, overriding <see cref="Backend"/>.</summary>
    /// <value>The default is <see langword="null"/>: use <see cref="Backend"/>.</value>
    public PgFirstBackend? RateLimitBackend { get; set; }

    /// <summary>Gets or sets the backend of the job queue, overriding <see cref="Backend"/>.</summary>
    /// <value>The default is <see langword="null"/>: use <see cref="Backend"/>.</value>
    public PgFirstBackend? QueueBackend { get; set; }

    /// <summary>
    /// Gets the read replicas modules may read from when their read consistency allows it.
    /// </summary>
    public PgReplicaOptions Replicas { get; } = new();

    /// <summary>
    /// Gets the settings of the maintenance runner that calls each module's expiry-cleanup function.
    /// </summary>
    public PgMaintenanceOptions Maintenance { get; } = new();

    /// <summary>
    /// Gets the backend that <paramref name="module"/> runs on: its own override, else <see cref="Backend"/>.
    /// </summary>
    /// <param name="module">The module.</param>
    /// <returns>The backend of the module.</returns>
    public PgFirstBackend GetBackend(PgFirstModule module) => module switch
    {
        PgFirstModule.Cache => CacheBackend ?? Backend,
        PgFirstModule.Sessions => SessionsBackend ?? Backend,
        PgFirstModule.RateLimit => RateLimitBackend ?? Backend,
        PgFirstModule.Queue => QueueBackend ?? Backend,
        _ => throw new ArgumentOutOfRangeException(nameof(module), module, "Unknown PgFirst module."),
    };

    /// <summary>
    /// Gets a value indicating whether any module runs on PostgreSQL.
    /// </summary>
    public bool UsesPostgreSql => Enum.GetValues<PgFirstModule>().Any(m => GetBackend(m) == PgFirstBackend.PostgreSql);

    /// <summary>
    /// Gets a value indicating whether any module runs on Redis.
    /// </summary>
    public bool UsesRedis => Enum.GetValues<PgFirstModule>().Any(m => GetBackend(m) == PgFirstBackend.Redis);
}
