using System.Globalization;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace PgFirst.Core;

/// <summary>
/// Reports the read replicas as PgFirst last measured them: Healthy when every standby is available with a lag under
/// <see cref="PgReplicaOptions.DegradedLag"/>, Degraded otherwise (their reads then go to the primary, so the app works
/// on), Healthy with no standby configured. Does no I/O: it reads the router's last sample.
/// </summary>
public sealed class PgFirstReplicaHealthCheck : IHealthCheck
{
    private readonly PgReplicaRouter _router;
    private readonly TimeSpan _degradedLag;

    /// <summary>Initializes a new instance of the <see cref="PgFirstReplicaHealthCheck"/> class.</summary>
    /// <param name="router">The router that samples the replicas.</param>
    /// <param name="options">The replica options (the degraded bound).</param>
    public PgFirstReplicaHealthCheck(PgReplicaRouter router, PgReplicaOptions options)
    {
        ArgumentNullException.ThrowIfNull(router);
        ArgumentNullException.ThrowIfNull(options);
        _router = router;
        _degradedLag = options.DegradedLag;
    }

    /// <inheritdoc />
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        var replicas = _router.Status;
        if (replicas.Count == 0)
        {
            return Task.FromResult(HealthCheckResult.Healthy("No read replica is configured; every read goes to the primary."));
        }

        var data = new Dictionary<string, object>();
        var problems = new List<string>();
        foreach (var replica in replicas)
        {
            data[replica.Host] = replica.Lag is { } lag ? lag.TotalSeconds : -1;
            if (!replica.IsAvailable || replica.Lag is not { } measured)
            {
                problems.Add($"{replica.Host} is unavailable ({replica.Error})");
            }
            else if (measured > _degradedLag)
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture, $"{replica.Host} lags {measured.TotalSeconds:0.0} s (more than {_degradedLag.TotalSeconds:0.#} s)"));
            }
        }

        return Task.FromResult(problems.Count == 0
            ? HealthCheckResult.Healthy(string.Create(CultureInfo.InvariantCulture, $"{replicas.Count} read replica(s) within {_degradedLag.TotalSeconds:0.#} s of the primary."), data)
            : HealthCheckResult.Degraded(string.Join("; ", problems) + "; their reads go to the primary.", data: data));
    }
}
