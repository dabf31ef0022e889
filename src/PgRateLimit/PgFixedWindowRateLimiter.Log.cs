using Microsoft.Extensions.Logging;

namespace PgRateLimit;

public sealed partial class PgFixedWindowRateLimiter
{
    // Partition keys (users, IPs) are never logged.
    [LoggerMessage(PgRateLimitEventIds.DegradedOpen, LogLevel.Warning, "Rate limit policy {Policy}: the store failed or timed out, request {Outcome} by this instance's local window of {Share} permits (fail-open): {Reason} ({Unlogged} more degraded decisions on this store since the previous such message were counted, not logged)")]
    private static partial void LogDegradedOpen(ILogger logger, Exception exception, string policy, string reason, string outcome, int share, long unlogged);

    [LoggerMessage(PgRateLimitEventIds.DegradedClosed, LogLevel.Warning, "Rate limit policy {Policy}: the store failed or timed out, request rejected (fail-closed): {Reason} ({Unlogged} more degraded decisions on this store since the previous such message were counted, not logged)")]
    private static partial void LogDegradedClosed(ILogger logger, Exception exception, string policy, string reason, long unlogged);
}
