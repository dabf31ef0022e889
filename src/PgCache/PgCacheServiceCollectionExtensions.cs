using System.Diagnostics.Metrics;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using PgCache;
using PgCache.Internal;
using PgFirst.Core;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// A builder for PgCache configuration.
/// </summary>
public interface IPgCacheBuilder
{
    /// <summary>Gets the service collection.</summary>
    IServiceCollection Services { get; }
}

/// <summary>
/// Extension methods that register PgCache.
/// </summary>
public static class PgCacheServiceCollectionExtensions
{
    /// <summary>
    /// Registers PgCache as the application's <see cref="IDistributedCache"/>, <see cref="IBufferDistributedCache"/>
    /// and <see cref="IPgDistributedCache"/>, on the backend <c>PgFirst:CacheBackend</c> (or <c>PgFirst:Backend</c>)
    /// selects, plus its schema module and its expiry-cleanup task. Replaces any other <see cref="IDistributedCache"/>.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Configures <see cref="PgCacheOptions"/>, or <see langword="null"/>.</param>
    /// <returns>A builder for further configuration.</returns>
    public static IPgCacheBuilder AddPgCache(this IServiceCollection services, Action<PgCacheOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        AddCore(services);
        if (configure is not null)
        {
            services.Configure(configure);
        }

        return new PgCacheBuilder(services);
    }

    /// <summary>
    /// Registers PgCache with options bound from <paramref name="configuration"/> (usually the <c>PgCache</c> section).
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">The section to bind <see cref="PgCacheOptions"/> from.</param>
    /// <returns>A builder for further configuration.</returns>
    public static IPgCacheBuilder AddPgCache(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        AddCore(services);
        services.Configure<PgCacheOptions>(configuration);
        return new PgCacheBuilder(services);
    }

    /// <summary>
    /// Adds a health check that reads one probe key through the cache, on its configured backend.
    /// </summary>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="name">The check's name.</param>
    /// <param name="failureStatus">The status reported on failure; <see langword="null"/> for unhealthy.</param>
    /// <param name="tags">Tags, e.g. <c>ready</c>.</param>
    /// <returns>The builder.</returns>
    public static IHealthChecksBuilder AddPgCache(
        this IHealthChecksBuilder builder,
        string name = "pgcache",
        HealthStatus? failureStatus = null,
        IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Add(new HealthCheckRegistration(
            name,
            sp => new PgCacheHealthCheck(sp.GetRequiredService<IPgDistributedCache>()),
            failureStatus,
            tags));
    }

    private static void AddCore(IServiceCollection services)
    {
        services.AddPgFirst();
        if (services.Any(d => d.ServiceType == typeof(PgCacheBuilder)))
        {
            return;
        }

        services.AddSingleton<PgCacheBuilder>(_ => throw new InvalidOperationException("Marker only."));
        services.AddOptions<PgCacheOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PgCacheOptions>, PgCacheOptionsValidator>());

        // The table's durability is a deployment choice, so the module is rendered from the options. Both the module
        // and the cleanup task exist only when the cache runs on PostgreSQL (a Redis-only app needs no database).
        services.AddSingleton(sp => OnPostgreSql(sp)
            ? PgDistributedCache.SchemaModuleFor(sp.GetRequiredService<IOptions<PgCacheOptions>>().Value.Durability)
            : null!);
        services.AddSingleton(sp => OnPostgreSql(sp) ? PgDistributedCache.CleanupTask : null!);

        services.TryAddSingleton<IPgDistributedCache>(sp =>
        {
            var first = sp.GetRequiredService<IOptions<PgFirstOptions>>().Value;
            if (first.GetBackend(PgFirstModule.Cache) == PgFirstBackend.Redis)
            {
                return sp.GetKeyedService<IPgDistributedCache>(PgFirstBackend.Redis) ?? throw new InvalidOperationException(
                    "PgFirst:CacheBackend (or PgFirst:Backend) is Redis, but the Redis mode is not registered: reference " +
                    "PgFirst.Redis and call services.AddPgFirst(...).AddRedis(...).");
            }

            return new PgDistributedCache(
                sp.GetRequiredNpgsqlDataSource(first.DataSourceKey),
                first,
                sp.GetRequiredService<IOptions<PgCacheOptions>>().Value,
                sp.GetRequiredService<ITenantContext>(),
                sp.GetRequiredService<TimeProvider>(),
                sp.GetService<IMeterFactory>(),
                sp.GetService<ILogger<PgDistributedCache>>(),
                first.Replicas.ConnectionString is null ? null : sp.GetRequiredService<PgReplicaRouter>());
        });
        services.Replace(ServiceDescriptor.Singleton<IDistributedCache>(sp => sp.GetRequiredService<IPgDistributedCache>()));
        services.Replace(ServiceDescriptor.Singleton<IBufferDistributedCache>(sp => sp.GetRequiredService<IPgDistributedCache>()));
    }

    private static bool OnPostgreSql(IServiceProvider services) =>
        services.GetRequiredService<IOptions<PgFirstOptions>>().Value.GetBackend(PgFirstModule.Cache) == PgFirstBackend.PostgreSql;

    private sealed class PgCacheBuilder(IServiceCollection services) : IPgCacheBuilder
    {
        public IServiceCollection Services { get; } = services;
    }
}
