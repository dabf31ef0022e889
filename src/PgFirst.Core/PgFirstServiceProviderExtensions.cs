using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Npgsql;

namespace PgFirst.Core;

/// <summary>
/// Resolves the <see cref="NpgsqlDataSource"/> PgFirst modules use.
/// </summary>
public static class PgFirstServiceProviderExtensions
{
    /// <summary>
    /// Returns the data source registered under <paramref name="serviceKey"/>, or the unkeyed one when it is
    /// <see langword="null"/>.
    /// </summary>
    /// <param name="services">The service provider.</param>
    /// <param name="serviceKey">The service key, or <see langword="null"/>.</param>
    /// <returns>The data source. PgFirst never disposes it: its owner, the container, does.</returns>
    /// <exception cref="InvalidOperationException">No such data source is registered; the message says how to add one.</exception>
    public static NpgsqlDataSource GetRequiredNpgsqlDataSource(this IServiceProvider services, string? serviceKey)
    {
        ArgumentNullException.ThrowIfNull(services);
        var dataSource = serviceKey is null
            ? services.GetService<NpgsqlDataSource>()
            : services.GetKeyedService<NpgsqlDataSource>(serviceKey);
        return dataSource ?? throw new InvalidOperationException(serviceKey is null
            ? "PgFirst needs an NpgsqlDataSource: register one with services.AddNpgsqlDataSource(connectionString) " +
              "(package Npgsql.DependencyInjection) before resolving PgFirst services."
            : $"PgFirst needs the NpgsqlDataSource keyed '{serviceKey}' (PgFirst:DataSourceKey): register it with " +
              $"services.AddNpgsqlDataSource(connectionString, serviceKey: \"{serviceKey}\").");
    }

    /// <summary>
    /// Returns a module's use of the read replicas, or <see langword="null"/> when it reads only from the primary
    /// (no <see cref="PgReplicaOptions.ConnectionString"/>, or <paramref name="consistency"/> is
    /// <see cref="PgReadConsistency.Strong"/>). Resolves the router only when replicas are configured.
    /// </summary>
    /// <param name="services">The service provider.</param>
    /// <param name="module">The module's name, e.g. <c>pgsessions</c>.</param>
    /// <param name="consistency">The module's read consistency.</param>
    /// <param name="maxLag">The largest lag of a replica the module reads from.</param>
    /// <returns>The replica reads, or <see langword="null"/>.</returns>
    public static PgReplicaReads? GetPgReplicaReads(this IServiceProvider services, string module, PgReadConsistency consistency, TimeSpan maxLag)
    {
        ArgumentNullException.ThrowIfNull(services);
        return services.GetRequiredService<IOptions<PgFirstOptions>>().Value.Replicas.ConnectionString is null
            ? null
            : PgReplicaReads.For(services.GetRequiredService<PgReplicaRouter>(), module, consistency, maxLag);
    }
}
