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

    /// <summary>The near cache subscribed to its invalidation channel (it serves once its heartbeat is back).</summary>
    public const int NearCacheSubscribed = 1010;

    /// <summary>The near cache serves near hits (first time, or again after it was flushed).</summary>
    public const int NearCacheServing = 1011;

    /// <summary>The near cache lost its listener: flushed and bypassed until it is back.</summary>
    public const int NearCacheListenerLost = 1012;

    /// <summary>The near cache's heartbeat was later than its bound: flushed and bypassed until it is back.</summary>
    public const int NearCacheLate = 1013;

    /// <summary>The near cache could not send its heartbeat.</summary>
    public const int NearCacheHeartbeatFailed = 1014;

    /// <summary>A message on the near cache's channel could not be read.</summary>
    public const int NearCacheUndecodable = 1015;
}
