using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Session;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using PgFirst.Core;
using PgSessions;
using PgSessions.Internal;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// A builder for PgSessions configuration.
/// </summary>
public interface IPgSessionsBuilder
{
    /// <summary>Gets the service collection.</summary>
    IServiceCollection Services { get; }
}

/// <summary>
/// Extension methods that register PgSessions.
/// </summary>
public static class PgSessionsServiceCollectionExtensions
{
    /// <summary>
    /// Registers ASP.NET Core session (<c>AddSession</c>) with <see cref="PgSessionStore"/> as its
    /// <see cref="ISessionStore"/>, on the backend <c>PgFirst:SessionsBackend</c> (or <c>PgFirst:Backend</c>) selects,
    /// plus <see cref="PgSessionManager"/>, the schema module and the expiry-cleanup task. Use it with
    /// <c>app.UseSession()</c> as usual; configure the cookie with <c>services.Configure&lt;SessionOptions&gt;</c>.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Configures <see cref="PgSessionOptions"/>, or <see langword="null"/>.</param>
    /// <returns>A builder for further configuration.</returns>
    public static IPgSessionsBuilder AddPgSessions(this IServiceCollection services, Action<PgSessionOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        AddCore(services);
        if (configure is not null)
        {
            services.Configure(configure);
        }

        return new PgSessionsBuilder(services);
    }

    /// <summary>
    /// Registers PgSessions with options bound from <paramref name="configuration"/> (usually the <c>PgSessions</c> section).
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">The section to bind <see cref="PgSessionOptions"/> from.</param>
    /// <returns>A builder for further configuration.</returns>
    public static IPgSessionsBuilder AddPgSessions(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        AddCore(services);
        services.Configure<PgSessionOptions>(configuration);
        return new PgSessionsBuilder(services);
    }

    /// <summary>
    /// Adds a health check that queries the session store on its configured backend.
    /// </summary>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="name">The check's name.</param>
    /// <param name="failureStatus">The status reported on failure; <see langword="null"/> for unhealthy.</param>
    /// <param name="tags">Tags, e.g. <c>ready</c>.</param>
    /// <returns>The builder.</returns>
    public static IHealthChecksBuilder AddPgSessions(
        this IHealthChecksBuilder builder,
        string name = "pgsessions",
        HealthStatus? failureStatus = null,
        IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Add(new HealthCheckRegistration(
            name,
            sp => new PgSessionsHealthCheck(sp.GetRequiredService<IPgSessionBackend>()),
            failureStatus,
            tags));
    }

    /// <summary>
    /// Stores the Data Protection key ring in PostgreSQL (<see cref="PgXmlRepository"/>, table
    /// <c>{schema}.data_protection_key</c>, created by the PgSessions schema module, which this call registers), so
    /// every instance of the app reads the cookies of the others.
    /// </summary>
    /// <param name="builder">The Data Protection builder.</param>
    /// <returns>The builder.</returns>
    public static IDataProtectionBuilder PersistKeysToPgFirst(this IDataProtectionBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddPgFirst();
        builder.Services.AddSingleton(PostgresSessionBackend.SchemaModule);
        builder.Services.AddSingleton<IConfigureOptions<KeyManagementOptions>>(sp => new ConfigureOptions<KeyManagementOptions>(options =>
        {
            var first = sp.GetRequiredService<IOptions<PgFirstOptions>>().Value;
            options.XmlRepository = new PgXmlRepository(sp.GetRequiredNpgsqlDataSource(first.DataSourceKey), first.SchemaName);
        }));
        return builder;
    }

    private static void AddCore(IServiceCollection services)
    {
        services.AddPgFirst();
        if (services.Any(d => d.ServiceType == typeof(PgSessionsBuilder)))
        {
            return;
        }

        services.AddSingleton<PgSessionsBuilder>(_ => throw new InvalidOperationException("Marker only."));
        services.AddSession();
        services.AddHttpContextAccessor();
        services.AddOptions<PgSessionOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PgSessionOptions>, PgSessionOptionsValidator>());

        // Both the module and the cleanup task exist only when sessions run on PostgreSQL.
        services.AddSingleton(sp => OnPostgreSql(sp) ? PostgresSessionBackend.SchemaModule : null!);
        services.AddSingleton(sp => OnPostgreSql(sp) ? PostgresSessionBackend.CleanupTask : null!);

        services.TryAddSingleton<IPgSessionBackend>(sp =>
        {
            var first = sp.GetRequiredService<IOptions<PgFirstOptions>>().Value;
            if (first.GetBackend(PgFirstModule.Sessions) == PgFirstBackend.Redis)
            {
                return sp.GetKeyedService<IPgSessionBackend>(PgFirstBackend.Redis) ?? throw new InvalidOperationException(
                    "PgFirst:SessionsBackend (or PgFirst:Backend) is Redis, but the Redis mode is not registered: reference " +
                    "PgFirst.Redis and call services.AddPgFirst(...).AddRedis(...).");
            }

            var options = sp.GetRequiredService<IOptions<PgSessionOptions>>().Value;
            var dataSource = sp.GetRequiredNpgsqlDataSource(first.DataSourceKey);
            var store = new PostgresSessionBackend(
                dataSource,
                first,
                sp.GetPgReplicaReads("pgsessions", options.ReadConsistency, options.MaxReplicaLag),
                options.CommitDurability);
            if (!options.NearCache.Enabled)
            {
                return store;
            }

            var near = new NearCachedSessionBackend(
                store,
                options.NearCache,
                dataSource,
                first,
                sp.GetRequiredService<TimeProvider>(),
                sp.GetService<ILoggerFactory>()?.CreateLogger<PgSessionStore>() ?? NullLogger<PgSessionStore>.Instance);
            near.Start();
            return near;
        });
        services.TryAddSingleton(sp => new PgSessionsMetrics(
            sp.GetService<IMeterFactory>(),
            sp.GetRequiredService<IOptions<PgFirstOptions>>().Value.GetBackend(PgFirstModule.Sessions) == PgFirstBackend.Redis ? "redis" : "postgresql"));
        services.Replace(ServiceDescriptor.Singleton<ISessionStore>(sp => new PgSessionStore(
            sp.GetRequiredService<IPgSessionBackend>(),
            sp.GetRequiredService<IOptions<PgSessionOptions>>().Value,
            new SessionCookie(sp.GetRequiredService<IDataProtectionProvider>(), sp.GetRequiredService<IOptions<SessionOptions>>().Value),
            sp.GetRequiredService<IHttpContextAccessor>(),
            sp.GetRequiredService<ITenantContext>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<PgSessionsMetrics>(),
            sp.GetService<ILoggerFactory>()?.CreateLogger<PgSessionStore>() ?? NullLogger<PgSessionStore>.Instance)));
        services.TryAddSingleton(sp => new PgSessionManager(
            sp.GetRequiredService<IPgSessionBackend>(),
            sp.GetRequiredService<ITenantContext>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<PgSessionsMetrics>(),
            sp.GetService<ILoggerFactory>()?.CreateLogger<PgSessionManager>() ?? NullLogger<PgSessionManager>.Instance));
    }

    private static bool OnPostgreSql(IServiceProvider services) =>
        services.GetRequiredService<IOptions<PgFirstOptions>>().Value.GetBackend(PgFirstModule.Sessions) == PgFirstBackend.PostgreSql;

    private sealed class PgSessionsBuilder(IServiceCollection services) : IPgSessionsBuilder
    {
        public IServiceCollection Services { get; } = services;
    }
}
