using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace PgSessions;

/// <summary>
/// Reports whether the session backend answers and its schema is in place.
/// </summary>
public sealed class PgSessionsHealthCheck : IHealthCheck
{
    private readonly IPgSessionBackend _backend;

    /// <summary>
    /// Initializes a new instance of the <see cref="PgSessionsHealthCheck"/> class.
    /// </summary>
    /// <param name="backend">The backend to check.</param>
    public PgSessionsHealthCheck(IPgSessionBackend backend)
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
            return HealthCheckResult.Healthy($"The session store ({_backend.GetType().Name}) answers.");
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, $"The session store ({_backend.GetType().Name}) failed: {ex.Message}", ex);
        }
    }
}
