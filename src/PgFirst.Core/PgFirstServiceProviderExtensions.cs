using Microsoft.Extensions.DependencyInjection;
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
}
