namespace PgCache;

/// <summary>
/// The stable event ids of PgCache log messages (range 1000–1999).
/// </summary>
public static class PgCacheEventIds
{
    /// <summary>A read failed with a transient error and was turned into a miss (fail-safe mode).</summary>
    public const int FailSafeMiss = 1001;

    /// <summary>An operation failed and its error was thrown.</summary>
    public const int OperationFailed = 1002;

    /// <summary>A read on a read replica failed (unreachable, or cancelled by a recovery conflict); the primary answered it.</summary>
    public const int ReplicaReadFailed = 1003;

    /// <summary>The cache table cannot be read on a standby (it is UNLOGGED there); every get goes to the primary from then on.</summary>
    public const int ReplicaTableUnreadable = 1004;
}
