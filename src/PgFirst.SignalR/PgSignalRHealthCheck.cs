using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace PgFirst.SignalR;

/// <summary>The health of a hub's PostgreSQL backplane: healthy while it LISTENs, degraded while it reconnects.</summary>
public sealed class PgSignalRHealthCheck : IHealthCheck
{
    private readonly Func<IPgSignalRBackplaneStatus> _backplane;

    /// <summary>Initializes a new instance of the <see cref="PgSignalRHealthCheck"/> class.</summary>
    /// <param name="backplane">Finds the hub's backplane (resolved on each check).</param>
    public PgSignalRHealthCheck(Func<IPgSignalRBackplaneStatus> backplane)
    {
        ArgumentNullException.ThrowIfNull(backplane);
        _backplane = backplane;
    }

    /// <inheritdoc />
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        var backplane = _backplane();
        return Task.FromResult(backplane.IsListening
            ? HealthCheckResult.Healthy($"LISTENing on {backplane.Channel} (backend pid {backplane.ListenerProcessId}).")
            : new HealthCheckResult(context.Registration.FailureStatus, $"Not LISTENing on {backplane.Channel}: reconnecting; messages other instances send do not reach this instance's connections meanwhile."));
    }
}

/// <summary>What the health check and operators read of a hub's backplane.</summary>
public interface IPgSignalRBackplaneStatus
{
    /// <summary>Gets the NOTIFY channel.</summary>
    string Channel { get; }

    /// <summary>Gets a value indicating whether the listen connection is open and LISTENing.</summary>
    bool IsListening { get; }

    /// <summary>Gets the PostgreSQL backend pid of the listen connection, or 0 when not listening.</summary>
    int ListenerProcessId { get; }
}
