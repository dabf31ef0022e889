using System.Diagnostics.Metrics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using PgCache;
using PgFirst.Core;
using PgFirst.Redis;
using PgFirst.Redis.Internal;
using PgQueue;
using PgRateLimit;
using PgSessions;
using StackExchange.Redis;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// Extension methods that register the shared Redis connection of PgFirst's Redis mode.
/// </summary>
public static class PgFirstRedisServiceCollectionExtensions
{
    /// <summary>
    /// Registers one shared <see cref="IConnectionMultiplexer"/> (unless one is registered already) for the modules that
    /// run on Redis, and their Redis implementations as keyed services (<see cref="PgFirstBackend.Redis"/>) that the
    /// modules pick when their backend is Redis: <see cref="RedisCacheBackend"/> (under <see cref="PgDistributedCache"/>) for <c>AddPgCache</c> and
    /// <see cref="RedisRateLimitStore"/> for <c>AddPgRateLimiting</c>, <see cref="RedisSessionBackend"/> for
    /// <c>AddPgSessions</c> and <see cref="RedisJobQueueBackend"/> for <c>AddPgQueue</c>. The connection is made on first
    /// use, not at registration.
    /// </summary>
    /// <param name="builder">The PgFirst builder.</param>
    /// <param name="configure">Configures <see cref="PgFirstRedisOptions"/>.</param>
    /// <returns>The builder.</returns>
    public static IPgFirstBuilder AddRedis(this IPgFirstBuilder builder, Action<PgFirstRedisOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        builder.Services.Configure(configure);
        return AddCore(builder);
    }

    /// <summary>
    /// Registers the shared Redis connection with options bound from <paramref name="configuration"/>.
    /// </summary>
    /// <param name="builder">The PgFirst builder.</param>
    /// <param name="configuration">The section to bind <see cref="PgFirstRedisOptions"/> from.</param>
    /// <returns>The builder.</returns>
    public static IPgFirstBuilder AddRedis(this IPgFirstBuilder builder, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configuration);
        builder.Services.Configure<PgFirstRedisOptions>(configuration);
        return AddCore(builder);
    }

    /// <summary>
    /// Adds a health check that pings the shared Redis connection.
    /// </summary>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="name">The check's name.</param>
    /// <param name="failureStatus">The status reported on failure; <see langword="null"/> for unhealthy.</param>
    /// <param name="tags">Tags, e.g. <c>ready</c>.</param>
    /// <returns>The builder.</returns>
    public static IHealthChecksBuilder AddPgFirstRedis(
        this IHealthChecksBuilder builder,
        string name = "redis",
        HealthStatus? failureStatus = null,
        IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Add(new HealthCheckRegistration(
            name,
            sp => new PgFirstRedisHealthCheck(sp.GetRequiredService<IConnectionMultiplexer>()),
            failureStatus,
            tags));
    }

    private static IPgFirstBuilder AddCore(IPgFirstBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<PgFirstRedisOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PgFirstRedisOptions>, PgFirstRedisOptionsValidator>());
        services.TryAddSingleton<IConnectionMultiplexer>(sp =>
        {
            var options = sp.GetRequiredService<IOptions<PgFirstRedisOptions>>().Value;
            var configuration = ConfigurationOptions.Parse(options.Configuration!);
            // Start even if Redis is down; commands fail fast with a clear error and the health check reports it.
            configuration.AbortOnConnectFail = false;
            return ConnectionMultiplexer.Connect(configuration);
        });
        services.TryAddKeyedSingleton<IPgDistributedCache>(PgFirstBackend.Redis, static (sp, _) => new PgDistributedCache(
            new RedisCacheBackend(
                sp.GetRequiredService<IConnectionMultiplexer>(),
                sp.GetRequiredService<IOptions<PgFirstRedisOptions>>().Value,
                sp.GetRequiredService<IOptions<PgCacheOptions>>().Value),
            sp.GetRequiredService<IOptions<PgCacheOptions>>().Value,
            sp.GetRequiredService<ITenantContext>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<IMeterFactory>(),
            sp.GetService<ILogger<PgDistributedCache>>()));
        services.TryAddKeyedSingleton<IPgRateLimitStore>(PgFirstBackend.Redis, static (sp, _) => new RedisRateLimitStore(
            sp.GetRequiredService<IConnectionMultiplexer>(),
            sp.GetRequiredService<IOptions<PgFirstRedisOptions>>().Value));
        services.TryAddKeyedSingleton<IPgSessionBackend>(PgFirstBackend.Redis, static (sp, _) => new RedisSessionBackend(
            sp.GetRequiredService<IConnectionMultiplexer>(),
            sp.GetRequiredService<IOptions<PgFirstRedisOptions>>().Value));
        services.TryAddKeyedSingleton<IJobQueueBackend>(PgFirstBackend.Redis, static (sp, _) => new RedisJobQueueBackend(
            sp.GetRequiredService<IConnectionMultiplexer>(),
            sp.GetRequiredService<IOptions<PgFirstRedisOptions>>().Value));
        return builder;
    }
}
