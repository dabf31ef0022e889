using Microsoft.Extensions.Logging;

namespace PgCache;

public sealed partial class PgDistributedCache
{
    // Keys are never logged: operations and reasons only.
    [LoggerMessage(PgCacheEventIds.FailSafeMiss, LogLevel.Warning, "PgCache {Operation} failed with a transient error and was served as a miss (fail-safe): {Reason}")]
    private static partial void LogFailSafeMiss(ILogger logger, Exception exception, string operation, string reason);

    [LoggerMessage(PgCacheEventIds.OperationFailed, LogLevel.Error, "PgCache {Operation} failed: {Reason}")]
    private static partial void LogOperationFailed(ILogger logger, Exception exception, string operation, string reason);
}
