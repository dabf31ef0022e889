using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using PgFirst.Core;
using PgFirst.SignalR;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the PostgreSQL SignalR backplane and its health check.</summary>
public static class PgSignalRBuilderExtensions
{
    /// <summary>
    /// Scales every hub out over PostgreSQL LISTEN/NOTIFY: the drop-in replacement for <c>AddStackExchangeRedis()</c>.
    /// Sends go through the data source PgFirst uses (<c>PgFirst:DataSourceKey</c>); each hub LISTENs on
    /// <c>PgFirst:ListenConnectionString</c> (or <see cref="PgSignalROptions.ListenConnectionString"/>), which must be
    /// a direct connection behind a transaction pooler. Adds the <c>pgsignalr</c> schema module (large messages) and its
    /// cleanup to the maintenance runner.
    /// </summary>
    /// <param name="builder">The SignalR builder.</param>
    /// <param name="configure">Sets the backplane options, or <see langword="null"/> for the defaults.</param>
    /// <returns>The builder.</returns>
    public static ISignalRServerBuilder AddPgFirst(this ISignalRServerBuilder builder, Action<PgSignalROptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        services.AddPgFirst().AddMaintenanceTask(PgSignalRSchema.CleanupTask);
        if (configure is not null)
        {
            services.Configure(configure);
        }

        services.AddOptions<PgSignalROptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PgSignalROptions>, PgSignalROptionsValidator>());
        services.TryAddSingleton(sp => new PgSignalRDataSource(
            sp.GetRequiredNpgsqlDataSource(sp.GetRequiredService<IOptions<PgFirstOptions>>().Value.DataSourceKey)));
        services.RemoveAll(typeof(HubLifetimeManager<>));
        services.AddSingleton(typeof(HubLifetimeManager<>), typeof(PgHubLifetimeManager<>));
        return builder;
    }

    /// <summary>
    /// Adds a health check of a hub's backplane: healthy while its listen connection LISTENs, degraded while it
    /// reconnects (other instances' messages do not reach this instance's connections meanwhile).
    /// </summary>
    /// <typeparam name="THub">The hub.</typeparam>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="name">The check's name.</param>
    /// <param name="tags">Tags, e.g. <c>ready</c>.</param>
    /// <returns>The builder.</returns>
    public static IHealthChecksBuilder AddPgSignalR<THub>(this IHealthChecksBuilder builder, string? name = null, IEnumerable<string>? tags = null)
        where THub : Hub
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Add(new HealthCheckRegistration(
            name ?? "pgfirst-signalr-" + typeof(THub).Name,
            sp => new PgSignalRHealthCheck(() => sp.GetRequiredService<HubLifetimeManager<THub>>() as IPgSignalRBackplaneStatus
                ?? throw new InvalidOperationException($"The hub {typeof(THub).Name} does not use the PostgreSQL backplane: call AddSignalR().AddPgFirst().")),
            HealthStatus.Degraded,
            tags));
    }

    private sealed class PgSignalROptionsValidator : IValidateOptions<PgSignalROptions>
    {
        public ValidateOptionsResult Validate(string? name, PgSignalROptions options)
        {
            try
            {
                options.Validate();
                return ValidateOptionsResult.Success;
            }
            catch (ArgumentException ex)
            {
                return ValidateOptionsResult.Fail(ex.Message);
            }
        }
    }
}
