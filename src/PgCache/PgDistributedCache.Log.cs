using Microsoft.Extensions.Logging;

namespace PgCache;

public sealed partial class PgDistributedCache
{
    // Keys are never logged: operations and reasons only.
    [LoggerMessage(PgCacheEventIds.FailSafeMiss, LogLevel.Warning, "PgCache {Operation} failed with a transient error and was served as a miss (fail-safe): {Reason}")]
    private static partial void LogFailSafeMiss(ILogger logger, Exception exception, string operation, string reason);

    [LoggerMessage(PgCacheEventIds.OperationFailed, LogLevel.Error, "PgCache {Operation} failed: {Reason}")]
    private static partial void LogOperationFailed(ILogger logger, Exception exception, string operation, string reason);

    [LoggerMessage(PgCacheEventIds.ReplicaReadFailed, LogLevel.Warning, "PgCache {Operation} on a read replica failed and was read on the primary: {Reason}")]
    private static partial void LogReplicaReadFailed(ILogger logger, Exception exception, string operation, string reason);

    [LoggerMessage(PgCacheEventIds.ReplicaTableUnreadable, LogLevel.Error, "PgCache gets cannot be read on the read replicas: the cache_entry table of schema {Schema} is UNLOGGED there (created before PgCache:Durability was Logged?). Every get goes to the primary; run ALTER TABLE ... SET LOGGED on the primary, or set ReadConsistency to Strong.")]
    private static partial void LogReplicaTableUnreadable(ILogger logger, Exception exception, string schema);
}
