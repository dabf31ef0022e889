using Microsoft.Extensions.Logging;
using PgCache;

namespace PgFirst.Redis;

public sealed partial class RedisDistributedCache
{
    // Keys are never logged: operations and reasons only. The scripts carry keys as arguments, which
    // StackExchange.Redis leaves out of its messages (it names the command, EVALSHA).
    [LoggerMessage(PgCacheEventIds.FailSafeMiss, LogLevel.Warning, "PgCache {Operation} failed with a transient error and was served as a miss (fail-safe): {Reason}")]
    private static partial void LogFailSafeMiss(ILogger logger, Exception exception, string operation, string reason);

    [LoggerMessage(PgCacheEventIds.OperationFailed, LogLevel.Error, "PgCache {Operation} failed: {Reason}")]
    private static partial void LogOperationFailed(ILogger logger, Exception exception, string operation, string reason);
}
