using Microsoft.Extensions.Diagnostics.HealthChecks;

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
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        try
        {
            await _backend.PingAsync(cancellationToken).ConfigureAwait(false);
            return HealthCheckResult.Healthy($"The {_backend.Name} job store answers.");
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, $"The {_backend.Name} job store does not answer: {ex.Message}", ex);
        }
    }
}
