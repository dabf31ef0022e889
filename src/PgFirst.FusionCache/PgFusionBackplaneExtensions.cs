using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using PgFirst.Core;
using PgFirst.FusionCache;
using ZiggyCreatures.Caching.Fusion;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the PostgreSQL backplane with FusionCache, and its health check.</summary>
public static class PgFusionBackplaneExtensions
{
    /// <summary>
    /// Uses a <see cref="PgFusionBackplane"/> for this FusionCache: it publishes through the data source PgFirst uses
    /// (<c>PgFirst:DataSourceKey</c>) and LISTENs on <c>PgFirst:ListenConnectionString</c> (or
    /// <see cref="PgFusionBackplaneOptions.ListenConnectionString"/>). Needs <c>services.AddPgFirst(...)</c>.
    /// </summary>
    /// <param name="builder">The FusionCache builder.</param>
    /// <param name="configure">Sets the backplane options, or <see langword="null"/> for the defaults.</param>
    /// <returns>The builder.</returns>
    public static IFusionCacheBuilder WithPgFirstBackplane(this IFusionCacheBuilder builder, Action<PgFusionBackplaneOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = new PgFusionBackplaneOptions();
        configure?.Invoke(options);
        return builder.WithBackplane(sp =>
        {
            var first = sp.GetRequiredService<IOptions<PgFirstOptions>>().Value;
            return new PgFusionBackplane(
                sp.GetRequiredNpgsqlDataSource(first.DataSourceKey),
                first,
                options,
                sp.GetService<ILogger<PgFusionBackplane>>());
        });
    }

    /// <summary>
    /// Adds a health check of the backplane of a FusionCache: healthy while its listen connection LISTENs, degraded
    /// while it reconnects (other instances' evictions do not reach this one meanwhile).
    /// </summary>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="cacheName">The FusionCache's name (its default name when <see langword="null"/>).</param>
    /// <param name="name">The check's name.</param>
    /// <param name="tags">Tags, e.g. <c>ready</c>.</param>
    /// <returns>The builder.</returns>
    public static IHealthChecksBuilder AddPgFusionBackplane(this IHealthChecksBuilder builder, string? cacheName = null, string name = "pgfirst-fusion-backplane", IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Add(new HealthCheckRegistration(
            name,
            sp => new PgFusionBackplaneHealthCheck(() =>
            {
                var provider = sp.GetRequiredService<IFusionCacheProvider>();
                return (cacheName is null ? provider.GetDefaultCache() : provider.GetCache(cacheName)).Backplane as PgFusionBackplane;
            }),
            HealthStatus.Degraded,
            tags));
    }
}
