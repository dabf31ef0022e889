namespace PgFirst.Core;

/// <summary>
/// The stable event ids of PgFirst.Core log messages (range 5000–5999). Each module has its own range:
/// PgCache 1000s, PgSessions 2000s, PgRateLimit 3000s, PgQueue 4000s, PgFirst.Redis 6000s.
/// </summary>
public static class PgFirstEventIds
{
    /// <summary>The installer starts applying the schema.</summary>
    public const int SchemaApplying = 5001;

    /// <summary>A script was applied.</summary>
    public const int SchemaScriptApplied = 5002;

    /// <summary>The schema was already up to date.</summary>
    public const int SchemaUpToDate = 5003;

    /// <summary>An applied script's recorded checksum differs from the embedded one.</summary>
    public const int SchemaChecksumMismatch = 5004;

    /// <summary>A script failed and the transaction was rolled back.</summary>
    public const int SchemaApplyFailed = 5005;

    /// <summary>The server could not be reached.</summary>
    public const int ConnectFailed = 5006;

    /// <summary>A maintenance task ran on this instance, the leader.</summary>
    public const int MaintenanceTaskRan = 5010;

    /// <summary>A maintenance task was skipped: another instance holds the lock or ran it recently.</summary>
    public const int MaintenanceTaskSkipped = 5011;

    /// <summary>A maintenance task failed; the runner goes on.</summary>
    public const int MaintenanceTaskFailed = 5012;

    /// <summary>The maintenance runner is disabled or has no task.</summary>
    public const int MaintenanceDisabled = 5013;

    /// <summary>A read replica became unavailable (unreachable, or no longer a standby); its reads go to the primary.</summary>
    public const int ReplicaUnavailable = 5020;

    /// <summary>A read replica became available.</summary>
    public const int ReplicaAvailable = 5021;

    /// <summary>A sample of the read replicas failed.</summary>
    public const int ReplicaSampleFailed = 5022;
}
