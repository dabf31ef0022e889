using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace PgFirst.FusionCache;

/// <summary>The health of a <see cref="PgFusionBackplane"/>: healthy while it LISTENs, degraded while it reconnects.</summary>
public sealed class PgFusionBackplaneHealthCheck : IHealthCheck
{
    private readonly Func<PgFusionBackplane?> _backplane;

    /// <summary>Initializes a new instance of the <see cref="PgFusionBackplaneHealthCheck"/> class.</summary>
    /// <param name="backplane">Finds the backplane (resolved on each check, so the cache may be created lazily); <see langword="null"/> when the cache has none.</param>
    public PgFusionBackplaneHealthCheck(Func<PgFusionBackplane?> backplane)
    {
        ArgumentNullException.ThrowIfNull(backplane);
        _backplane = backplane;
    }

    /// <inheritdoc />
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        var backplane = _backplane();
        return Task.FromResult(backplane switch
        {
            null => new HealthCheckResult(context.Registration.FailureStatus, "The FusionCache has no PostgreSQL backplane."),
            { IsListening: true } => HealthCheckResult.Healthy($"LISTENing on {backplane.Channel} (backend pid {backplane.ListenerProcessId})."),
            _ => new HealthCheckResult(context.Registration.FailureStatus, $"Not LISTENing on {backplane.Channel ?? "its channel"}: reconnecting; evictions from other instances do not reach this one meanwhile."),
        });
    }
}
