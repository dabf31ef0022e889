using System.Diagnostics.Metrics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using PgFirst.Core;
using PgFirst.Core.Internal;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// A builder for PgFirst's shared services; modules and the Redis package add to it.
/// </summary>
public interface IPgFirstBuilder
{
    /// <summary>Gets the service collection.</summary>
    IServiceCollection Services { get; }
}

/// <summary>
/// Extension methods that register PgFirst's shared services.
/// </summary>
public static class PgFirstServiceCollectionExtensions
{
    /// <summary>
    /// Registers the shared services of PgFirst: options, the schema installer (and its opt-in startup run), the
    /// maintenance runner, the tenant context and <see cref="TimeProvider"/>. Safe to call more than once; each call
    /// adds its configuration.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Configures <see cref="PgFirstOptions"/>, or <see langword="null"/>.</param>
    /// <returns>A builder for further PgFirst configuration.</returns>
    public static IPgFirstBuilder AddPgFirst(this IServiceCollection services, Action<PgFirstOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var builder = AddCore(services);
        if (configure is not null)
        {
            services.Configure(configure);
        }

        return builder;
    }

    /// <summary>
    /// Registers the shared services of PgFirst with options bound from <paramref name="configuration"/>, usually the
    /// <c>PgFirst</c> section.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">The configuration section to bind <see cref="PgFirstOptions"/> from.</param>
    /// <returns>A builder for further PgFirst configuration.</returns>
    public static IPgFirstBuilder AddPgFirst(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        var builder = AddCore(services);
        services.Configure<PgFirstOptions>(configuration);
        return builder;
    }

    /// <summary>
    /// Adds a module's schema scripts to those the installer applies and the health check expects.
    /// </summary>
    /// <param name="builder">The PgFirst builder.</param>
    /// <param name="module">The module.</param>
    /// <returns>The builder.</returns>
    public static IPgFirstBuilder AddSchemaModule(this IPgFirstBuilder builder, PgSchemaModule module)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(module);
        // One registration per module name: modules register themselves from several entry points.
        if (!builder.Services.Any(d => d.ServiceType == typeof(PgSchemaModule) && d.ImplementationInstance is PgSchemaModule m && m.Name == module.Name))
        {
            builder.Services.AddSingleton(module);
        }

        return builder;
    }

    /// <summary>
    /// Adds an expiry-cleanup task for the maintenance runner (and the task's module to the installer).
    /// </summary>
    /// <param name="builder">The PgFirst builder.</param>
    /// <param name="task">The task.</param>
    /// <returns>The builder.</returns>
    public static IPgFirstBuilder AddMaintenanceTask(this IPgFirstBuilder builder, PgMaintenanceTask task)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(task);
        builder.AddSchemaModule(task.Module);
        if (!builder.Services.Any(d => d.ServiceType == typeof(PgMaintenanceTask) && ReferenceEquals(d.ImplementationInstance, task)))
        {
            builder.Services.AddSingleton(task);
        }

        return builder;
    }

    /// <summary>
    /// Adds a health check that reports whether PostgreSQL answers and carries every PgFirst script the app needs, and
    /// Degraded when a connection pooler answers while <see cref="PgFirstOptions.Pooler"/> is <see cref="PgPoolerMode.None"/>.
    /// </summary>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="name">The check's name.</param>
    /// <param name="failureStatus">The status reported on failure; <see langword="null"/> for unhealthy.</param>
    /// <param name="tags">Tags, e.g. <c>ready</c>.</param>
    /// <returns>The builder.</returns>
    public static IHealthChecksBuilder AddPgFirstPostgres(
        this IHealthChecksBuilder builder,
        string name = "postgresql",
        HealthStatus? failureStatus = null,
        IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Add(new HealthCheckRegistration(
            name,
            sp =>
            {
                var options = sp.GetRequiredService<IOptions<PgFirstOptions>>().Value;
                return new PgFirstPostgresHealthCheck(sp.GetRequiredService<PgSchemaInstaller>(), sp.GetRequiredNpgsqlDataSource(options.DataSourceKey), options.Pooler);
            },
            failureStatus,
            tags));
    }

    /// <summary>
    /// Adds a health check of the read replicas (<see cref="PgFirstOptions.Replicas"/>): Degraded when a standby is
    /// unavailable or lags more than <see cref="PgReplicaOptions.DegradedLag"/>. Reads the last sample; no I/O.
    /// </summary>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="name">The check's name.</param>
    /// <param name="tags">Tags, e.g. <c>ready</c>.</param>
    /// <returns>The builder.</returns>
    public static IHealthChecksBuilder AddPgFirstReplicas(
        this IHealthChecksBuilder builder,
        string name = "postgresql-replicas",
        IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Add(new HealthCheckRegistration(
            name,
            sp => new PgFirstReplicaHealthCheck(sp.GetRequiredService<PgReplicaRouter>(), sp.GetRequiredService<IOptions<PgFirstOptions>>().Value.Replicas),
            HealthStatus.Degraded,
            tags));
    }

    private static PgFirstBuilder AddCore(IServiceCollection services)
    {
        var builder = new PgFirstBuilder(services);
        if (services.Any(d => d.ServiceType == typeof(PgFirstBuilder)))
        {
            return builder;
        }

        services.AddSingleton(builder);
        services.AddOptions<PgFirstOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PgFirstOptions>, PgFirstOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<ITenantContext, PgTenantContext>();
        services.TryAddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<PgFirstOptions>>().Value;
            return new PgSchemaInstaller(
                sp.GetRequiredNpgsqlDataSource(options.DataSourceKey),
                options.SchemaName,
                ModulesInUse(sp),
                sp.GetService<ILogger<PgSchemaInstaller>>());
        });
        services.TryAddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<PgFirstOptions>>().Value;
            return new PgMaintenanceRunner(
                sp.GetRequiredNpgsqlDataSource(options.DataSourceKey),
                options,
                TasksInUse(sp),
                sp.GetRequiredService<TimeProvider>(),
                sp.GetService<IMeterFactory>(),
                sp.GetService<ILogger<PgMaintenanceRunner>>());
        });

        services.TryAddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<PgFirstOptions>>().Value;
            // Lag is measured on the real clock whatever the app's TimeProvider: standbys replay in real time.
            return new PgReplicaRouter(
                sp.GetRequiredNpgsqlDataSource(options.DataSourceKey),
                options,
                TimeProvider.System,
                sp.GetService<IMeterFactory>(),
                sp.GetService<ILogger<PgReplicaRouter>>(),
                sp.GetService<ILoggerFactory>());
        });
        services.AddSingleton<IHostedService, PgReplicaStartup>();

        // Order matters: the schema is applied (StartingAsync) before the runner starts.
        services.AddSingleton<IHostedService, PgFirstSchemaStartup>();
        services.AddSingleton<IHostedService>(sp =>
        {
            // Resolve the runner (and so the data source) only when it has work: an app whose modules all run on
            // Redis needs no PostgreSQL.
            var options = sp.GetRequiredService<IOptions<PgFirstOptions>>().Value;
            return options.Maintenance.Enabled && TasksInUse(sp).Any()
                ? sp.GetRequiredService<PgMaintenanceRunner>()
                : new IdleHostedService();
        });
        return builder;
    }

    // A module registers its schema and cleanup task with a factory that yields null when the module runs on Redis.
    private static IEnumerable<PgSchemaModule> ModulesInUse(IServiceProvider services) =>
        services.GetServices<PgSchemaModule?>().OfType<PgSchemaModule>();

    private static IEnumerable<PgMaintenanceTask> TasksInUse(IServiceProvider services) =>
        services.GetServices<PgMaintenanceTask?>().OfType<PgMaintenanceTask>();

    // Starts sampling the replicas, only when some are configured (so an app without replicas resolves no data source).
    private sealed class PgReplicaStartup(IServiceProvider services, IOptions<PgFirstOptions> options) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            if (options.Value.Replicas.ConnectionString is not null)
            {
                services.GetRequiredService<PgReplicaRouter>().Start();
            }

            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed class IdleHostedService : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed class PgFirstBuilder(IServiceCollection services) : IPgFirstBuilder
    {
        public IServiceCollection Services { get; } = services;
    }
}
