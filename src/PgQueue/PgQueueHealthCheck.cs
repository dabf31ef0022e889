using Microsoft.Extensions.Diagnostics.HealthChecks;
using PgFirst.Core;

namespace PgQueue;

/// <summary>
/// Reports whether the job store answers and has its schema.
/// </summary>
public sealed class PgQueueHealthCheck : IHealthCheck
{
    private readonly IJobQueueBackend _backend;

    /// <summary>Initializes a new instance of the <see cref="PgQueueHealthCheck"/> class.</summary>
    /// <param name="backend">The job store.</param>
    public PgQueueHealthCheck(IJobQueueBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        _backend = backend;
    }

    /// <inheritdoc />
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        PgStoreProbe.CheckAsync(context, $"{_backend.Name} job store", _backend.PingAsync, cancellationToken);
}
