using Microsoft.Extensions.Logging;

namespace PgRateLimit.Internal;

// What every partition limiter of every policy shares: the store, one set of instruments, the loggers.
internal sealed class PgRateLimitRuntime(IPgRateLimitStore store, PgRateLimitMetrics metrics, ILoggerFactory? loggerFactory) : IDisposable
{
    public IPgRateLimitStore Store { get; } = store;

    public PgRateLimitMetrics Metrics { get; } = metrics;

    public ILoggerFactory? LoggerFactory { get; } = loggerFactory;

    // Set once the start-up warm-up has succeeded (or when there is none), for the readiness check.
    public bool IsWarm { get; set; } = true;

    public void Dispose() => Metrics.Dispose();
}
