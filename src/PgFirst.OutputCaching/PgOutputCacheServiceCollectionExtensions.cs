using Microsoft.AspNetCore.OutputCaching;
using Microsoft.Extensions.DependencyInjection.Extensions;
using PgCache;
using PgFirst.OutputCaching;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the PgCache output cache store.</summary>
public static class PgOutputCacheServiceCollectionExtensions
{
    /// <summary>
    /// Adds ASP.NET Core output caching (<c>services.AddOutputCache()</c>) with its store on PgCache
    /// (<see cref="PgOutputCacheStore"/>), replacing the in-memory store: responses cached by one instance are served by
    /// every instance, and evicting a tag evicts it everywhere. Call <c>services.AddPgCache(...)</c> as well; the
    /// cache's backend (PostgreSQL, or Redis) is the store's.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Configures the output cache (policies, sizes), or <see langword="null"/>.</param>
    /// <returns>The services.</returns>
    public static IServiceCollection AddPgOutputCache(this IServiceCollection services, Action<OutputCacheOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        if (configure is null)
        {
            services.AddOutputCache();
        }
        else
        {
            services.AddOutputCache(configure);
        }

        services.Replace(ServiceDescriptor.Singleton<IOutputCacheStore>(sp => new PgOutputCacheStore(sp.GetRequiredService<IPgDistributedCache>())));
        return services;
    }
}
