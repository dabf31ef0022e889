using System.Diagnostics.Metrics;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using PgFirst.Core;
using PgRateLimit;
using PgRateLimit.Internal;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// Extension methods that register PgRateLimit and its policies.
/// </summary>
public static class PgRateLimitServiceCollectionExtensions
{
    /// <summary>
    /// Registers the rate-limit store on the backend <c>PgFirst:RateLimitBackend</c> (or <c>PgFirst:Backend</c>)
    /// selects, its schema module and its cleanup task. Policies are added with
    /// <see cref="AddPgFixedWindowLimiter"/> inside <c>services.AddRateLimiter(...)</c>.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Configures <see cref="PgRateLimitOptions"/>, or <see langword="null"/>.</param>
    /// <returns>The service collection.</returns>
    public static IServiceCollection AddPgRateLimiting(this IServiceCollection services, Action<PgRateLimitOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddPgFirst();
        if (configure is not null)
        {
            services.Configure(configure);
        }

        if (services.Any(d => d.ServiceType == typeof(PgRateLimitRuntime)))
        {
            return services;
        }

        services.AddOptions<PgRateLimitOptions>()
            .Validate(o => Enum.IsDefined(o.Durability), "PgRateLimit:Durability is neither Unlogged nor Logged.")
            .Validate(o => o.WarmUpConnections is >= 0 and <= 1_000, "PgRateLimit:WarmUpConnections must be between 0 and 1000.")
            .Validate(o => o.WarmUpTimeout >= TimeSpan.FromSeconds(1) && o.WarmUpTimeout <= TimeSpan.FromMinutes(5), "PgRateLimit:WarmUpTimeout must be between 00:00:01 and 00:05:00.")
            .ValidateOnStart();
        services.AddSingleton(sp => OnPostgreSql(sp)
            ? PostgresRateLimitStore.SchemaModuleFor(sp.GetRequiredService<IOptions<PgRateLimitOptions>>().Value.Durability)
            : null!);
        services.AddSingleton(sp => OnPostgreSql(sp) ? PostgresRateLimitStore.CleanupTask : null!);
        services.TryAddSingleton<IPgRateLimitStore>(sp =>
        {
            var first = sp.GetRequiredService<IOptions<PgFirstOptions>>().Value;
            if (first.GetBackend(PgFirstModule.RateLimit) == PgFirstBackend.Redis)
            {
                return sp.GetKeyedService<IPgRateLimitStore>(PgFirstBackend.Redis) ?? throw new InvalidOperationException(
                    "PgFirst:RateLimitBackend (or PgFirst:Backend) is Redis, but the Redis mode is not registered: reference " +
                    "PgFirst.Redis and call services.AddPgFirst(...).AddRedis(...).");
            }

            return new PostgresRateLimitStore(sp.GetRequiredNpgsqlDataSource(first.DataSourceKey), first);
        });
        services.AddSingleton(sp => new PgRateLimitRuntime(
            sp.GetRequiredService<IPgRateLimitStore>(),
            new PgRateLimitMetrics(sp.GetService<IMeterFactory>()),
            sp.GetService<ILoggerFactory>()));
        services.AddHostedService(sp => new PgRateLimitWarmUp(
            sp.GetRequiredService<PgRateLimitRuntime>(),
            sp.GetRequiredService<IOptions<PgRateLimitOptions>>(),
            sp.GetService<ILoggerFactory>()?.CreateLogger<PgRateLimitWarmUp>() ?? Microsoft.Extensions.Logging.Abstractions.NullLogger<PgRateLimitWarmUp>.Instance));
        return services;
    }

    /// <summary>
    /// Adds a health check that asks the rate-limit store, on its configured backend, to answer without counting
    /// anything: on PostgreSQL it reads the counter table (so a missing schema is reported), on Redis it pings. Needs
    /// <see cref="AddPgRateLimiting"/>.
    /// </summary>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="name">The check's name.</param>
    /// <param name="failureStatus">The status reported on failure; <see langword="null"/> for unhealthy.</param>
    /// <param name="tags">Tags, e.g. <c>ready</c>.</param>
    /// <returns>The builder.</returns>
    public static IHealthChecksBuilder AddPgRateLimit(
        this IHealthChecksBuilder builder,
        string name = "pgratelimit",
        HealthStatus? failureStatus = null,
        IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Add(new HealthCheckRegistration(
            name,
            sp => new PgRateLimitHealthCheck(sp.GetRequiredService<IPgRateLimitStore>(), sp.GetService<PgRateLimitRuntime>()),
            failureStatus,
            tags));
    }

    /// <summary>
    /// Adds a distributed fixed-window policy named <paramref name="policyName"/>, for
    /// <c>[EnableRateLimiting(name)]</c> and <c>RequireRateLimiting(name)</c>. Needs <see cref="AddPgRateLimiting"/>.
    /// </summary>
    /// <param name="options">The rate limiter options.</param>
    /// <param name="policyName">The policy name; part of every counter's identity.</param>
    /// <param name="configure">Configures the policy.</param>
    /// <returns>The options.</returns>
    /// <exception cref="ArgumentException">The policy is invalid (thrown when the options are built, at start-up).</exception>
    public static RateLimiterOptions AddPgFixedWindowLimiter(this RateLimiterOptions options, string policyName, Action<PgFixedWindowRateLimiterOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(configure);
        var policy = Configure(policyName, configure);
        options.AddPolicy(policyName, context => Partition(context, policyName, policy));
        return options;
    }

    /// <summary>
    /// Sets <see cref="RateLimiterOptions.GlobalLimiter"/> to a distributed fixed-window limiter that every request
    /// passes, before any endpoint policy. Needs <see cref="AddPgRateLimiting"/>.
    /// </summary>
    /// <param name="options">The rate limiter options.</param>
    /// <param name="limiterName">The name of the global limiter; part of every counter's identity.</param>
    /// <param name="configure">Configures the limiter.</param>
    /// <returns>The options.</returns>
    public static RateLimiterOptions UsePgGlobalFixedWindowLimiter(this RateLimiterOptions options, string limiterName, Action<PgFixedWindowRateLimiterOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(configure);
        var policy = Configure(limiterName, configure);
        options.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(context => Partition(context, limiterName, policy));
        return options;
    }

    /// <summary>
    /// Answers rejections with 429, <c>Retry-After</c> and the IETF <c>RateLimit</c> / <c>RateLimit-Policy</c> headers
    /// (<see cref="PgRateLimitRejection.OnRejected"/>).
    /// </summary>
    /// <param name="options">The rate limiter options.</param>
    /// <returns>The options.</returns>
    public static RateLimiterOptions UsePgRejectionResponse(this RateLimiterOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
        options.OnRejected = PgRateLimitRejection.OnRejected;
        return options;
    }

    private static PgFixedWindowRateLimiterOptions Configure(string policyName, Action<PgFixedWindowRateLimiterOptions> configure)
    {
        var policy = new PgFixedWindowRateLimiterOptions();
        configure(policy);
        policy.Validate(policyName);
        return policy;
    }

    private static RateLimitPartition<string> Partition(HttpContext context, string policyName, PgFixedWindowRateLimiterOptions policy)
    {
        var key = policy.PartitionKey(context) ?? string.Empty;
        return RateLimitPartition.Get(key, k =>
        {
            var runtime = context.RequestServices.GetService<PgRateLimitRuntime>() ?? throw new InvalidOperationException(
                "PgRateLimit policies need services.AddPgRateLimiting().");
            return new PgFixedWindowRateLimiter(runtime.Store, policyName, k, policy, runtime.Metrics, runtime.LoggerFactory?.CreateLogger<PgFixedWindowRateLimiter>());
        });
    }

    private static bool OnPostgreSql(IServiceProvider services) =>
        services.GetRequiredService<IOptions<PgFirstOptions>>().Value.GetBackend(PgFirstModule.RateLimit) == PgFirstBackend.PostgreSql;
}
