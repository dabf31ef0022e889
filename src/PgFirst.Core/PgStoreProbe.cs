using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace PgFirst.Core;

/// <summary>
/// The health-check body the PgFirst modules share: ask a store to answer, and report it healthy, or report the
/// registration's failure status with the error. A cancellation by the caller is not a failure and propagates.
/// </summary>
public static class PgStoreProbe
{
    /// <summary>
    /// Runs <paramref name="probe"/> and turns its outcome into a health check result.
    /// </summary>
    /// <param name="context">The health check context (its registration gives the failure status).</param>
    /// <param name="store">What is probed, as the description names it, e.g. "session store (PostgresSessionBackend)".</param>
    /// <param name="probe">The probe: completes when the store has answered, throws when it cannot.</param>
    /// <param name="cancellationToken">The token to cancel the probe.</param>
    /// <returns>Healthy ("The … answers."), or the failure status with the error's message and the error.</returns>
    public static async Task<HealthCheckResult> CheckAsync(
        HealthCheckContext context,
        string store,
        Func<CancellationToken, ValueTask> probe,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentException.ThrowIfNullOrEmpty(store);
        ArgumentNullException.ThrowIfNull(probe);
        try
        {
            await probe(cancellationToken).ConfigureAwait(false);
            return HealthCheckResult.Healthy($"The {store} answers.");
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, $"The {store} failed: {ex.Message}", ex);
        }
    }
}
