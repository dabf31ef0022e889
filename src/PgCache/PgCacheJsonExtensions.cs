using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.Extensions.Caching.Distributed;

namespace PgCache;

/// <summary>
/// Typed JSON on top of <see cref="IPgDistributedCache"/>, with System.Text.Json. Prefer the
/// <see cref="JsonTypeInfo{T}"/> overloads (source-generated, trimming- and AOT-safe).
/// </summary>
/// <remarks>
/// The JSON is stored as the entry's bytes (UTF-8), so the same entry can be read through <see cref="IDistributedCache"/>.
/// An entry that is not valid JSON for the requested type throws <see cref="PgCacheJsonException"/>; it is never
/// read as a default value.
/// </remarks>
public static class PgCacheJsonExtensions
{
    private const string ReflectionMessage = "JSON serialization without a JsonTypeInfo may need unreferenced code; use the JsonTypeInfo<T> overload.";
    private const string DynamicMessage = "JSON serialization without a JsonTypeInfo may need dynamic code; use the JsonTypeInfo<T> overload.";

    // In-flight factories, so concurrent GetOrSet calls for one key in one process run the factory once.
    private static readonly ConcurrentDictionary<FlightKey, Task> Flights = new();

    /// <summary>
    /// Reads an entry as JSON of type <typeparamref name="T"/>.
    /// </summary>
    /// <typeparam name="T">The type to read.</typeparam>
    /// <param name="cache">The cache.</param>
    /// <param name="key">The key.</param>
    /// <param name="typeInfo">The source-generated type information.</param>
    /// <param name="cancellationToken">The token to cancel the operation.</param>
    /// <returns>The value, or <see langword="default"/> when the key is missing or expired.</returns>
    /// <exception cref="PgCacheJsonException">The entry is not valid JSON for <typeparamref name="T"/>.</exception>
    public static async Task<T?> GetJsonAsync<T>(this IPgDistributedCache cache, string key, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(cache);
        ArgumentNullException.ThrowIfNull(typeInfo);
        var bytes = await cache.GetAsync(key, cancellationToken).ConfigureAwait(false);
        return bytes is null ? default : Deserialize(bytes, key, typeInfo);
    }

    /// <summary>
    /// Reads an entry as JSON of type <typeparamref name="T"/>, with reflection-based serialization.
    /// </summary>
    /// <typeparam name="T">The type to read.</typeparam>
    /// <param name="cache">The cache.</param>
    /// <param name="key">The key.</param>
    /// <param name="options">The serializer options, or <see langword="null"/> for the web defaults.</param>
    /// <param name="cancellationToken">The token to cancel the operation.</param>
    /// <returns>The value, or <see langword="default"/> when the key is missing or expired.</returns>
    /// <exception cref="PgCacheJsonException">The entry is not valid JSON for <typeparamref name="T"/>.</exception>
    [RequiresUnreferencedCode(ReflectionMessage)]
    [RequiresDynamicCode(DynamicMessage)]
    public static Task<T?> GetJsonAsync<T>(this IPgDistributedCache cache, string key, JsonSerializerOptions? options = null, CancellationToken cancellationToken = default) =>
        cache.GetJsonAsync(key, TypeInfo<T>(options), cancellationToken);

    /// <summary>
    /// Writes <paramref name="value"/> as JSON.
    /// </summary>
    /// <typeparam name="T">The type to write.</typeparam>
    /// <param name="cache">The cache.</param>
    /// <param name="key">The key.</param>
    /// <param name="value">The value; not <see langword="null"/>.</param>
    /// <param name="options">The expiration (and tags).</param>
    /// <param name="typeInfo">The source-generated type information.</param>
    /// <param name="cancellationToken">The token to cancel the operation.</param>
    /// <returns>A task that completes when the entry is stored.</returns>
    public static Task SetJsonAsync<T>(this IPgDistributedCache cache, string key, T value, DistributedCacheEntryOptions options, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(cache);
        ArgumentNullException.ThrowIfNull(typeInfo);
        if (value is null)
        {
            throw new ArgumentNullException(nameof(value), "A cached JSON value cannot be null.");
        }

        return cache.SetAsync(key, JsonSerializer.SerializeToUtf8Bytes(value, typeInfo), options, cancellationToken);
    }

    /// <summary>
    /// Writes <paramref name="value"/> as JSON, with reflection-based serialization.
    /// </summary>
    /// <typeparam name="T">The type to write.</typeparam>
    /// <param name="cache">The cache.</param>
    /// <param name="key">The key.</param>
    /// <param name="value">The value; not <see langword="null"/>.</param>
    /// <param name="options">The expiration (and tags).</param>
    /// <param name="serializerOptions">The serializer options, or <see langword="null"/> for the web defaults.</param>
    /// <param name="cancellationToken">The token to cancel the operation.</param>
    /// <returns>A task that completes when the entry is stored.</returns>
    [RequiresUnreferencedCode(ReflectionMessage)]
    [RequiresDynamicCode(DynamicMessage)]
    public static Task SetJsonAsync<T>(this IPgDistributedCache cache, string key, T value, DistributedCacheEntryOptions options, JsonSerializerOptions? serializerOptions = null, CancellationToken cancellationToken = default) =>
        cache.SetJsonAsync(key, value, options, TypeInfo<T>(serializerOptions), cancellationToken);

    /// <summary>
    /// Returns the cached value of <paramref name="key"/>, or runs <paramref name="factory"/>, caches its result as
    /// JSON and returns it. Concurrent calls for the same cache, tenant, key and type in this process share one run
    /// of the factory.
    /// </summary>
    /// <typeparam name="T">The type of the value.</typeparam>
    /// <param name="cache">The cache.</param>
    /// <param name="key">The key.</param>
    /// <param name="factory">Makes the value on a miss; must not return <see langword="null"/>.</param>
    /// <param name="options">The expiration (and tags) of a new entry.</param>
    /// <param name="typeInfo">The source-generated type information.</param>
    /// <param name="cancellationToken">The token to cancel this caller's wait (and the factory, when this caller runs it).</param>
    /// <returns>The cached or new value.</returns>
    /// <exception cref="PgCacheJsonException">The entry is not valid JSON for <typeparamref name="T"/>.</exception>
    public static async Task<T> GetOrSetJsonAsync<T>(
        this IPgDistributedCache cache,
        string key,
        Func<CancellationToken, Task<T>> factory,
        DistributedCacheEntryOptions options,
        JsonTypeInfo<T> typeInfo,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(cache);
        ArgumentNullException.ThrowIfNull(factory);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(typeInfo);

        var bytes = await cache.GetAsync(key, cancellationToken).ConfigureAwait(false);
        if (bytes is not null)
        {
            return Deserialize(bytes, key, typeInfo)!;
        }

        var flightKey = new FlightKey(cache, cache.TenantId, key, typeof(T));
        var flight = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var existing = Flights.GetOrAdd(flightKey, flight.Task);
        if (!ReferenceEquals(existing, flight.Task))
        {
            return await ((Task<T>)existing).WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        try
        {
            // Another instance or an earlier flight may have filled it since the first read.
            bytes = await cache.GetAsync(key, cancellationToken).ConfigureAwait(false);
            T value;
            if (bytes is not null)
            {
                value = Deserialize(bytes, key, typeInfo)!;
            }
            else
            {
                value = await factory(cancellationToken).ConfigureAwait(false);
                await cache.SetJsonAsync(key, value, options, typeInfo, cancellationToken).ConfigureAwait(false);
            }

            flight.SetResult(value);
            return value;
        }
        catch (Exception ex)
        {
            flight.SetException(ex);
            throw;
        }
        finally
        {
            Flights.TryRemove(new KeyValuePair<FlightKey, Task>(flightKey, flight.Task));
        }
    }

    /// <summary>
    /// Like <see cref="GetOrSetJsonAsync{T}(IPgDistributedCache, string, Func{CancellationToken, Task{T}}, DistributedCacheEntryOptions, JsonTypeInfo{T}, CancellationToken)"/>,
    /// with reflection-based serialization.
    /// </summary>
    /// <typeparam name="T">The type of the value.</typeparam>
    /// <param name="cache">The cache.</param>
    /// <param name="key">The key.</param>
    /// <param name="factory">Makes the value on a miss; must not return <see langword="null"/>.</param>
    /// <param name="options">The expiration (and tags) of a new entry.</param>
    /// <param name="serializerOptions">The serializer options, or <see langword="null"/> for the web defaults.</param>
    /// <param name="cancellationToken">The token to cancel the operation.</param>
    /// <returns>The cached or new value.</returns>
    [RequiresUnreferencedCode(ReflectionMessage)]
    [RequiresDynamicCode(DynamicMessage)]
    public static Task<T> GetOrSetJsonAsync<T>(
        this IPgDistributedCache cache,
        string key,
        Func<CancellationToken, Task<T>> factory,
        DistributedCacheEntryOptions options,
        JsonSerializerOptions? serializerOptions = null,
        CancellationToken cancellationToken = default) =>
        cache.GetOrSetJsonAsync(key, factory, options, TypeInfo<T>(serializerOptions), cancellationToken);

    [RequiresUnreferencedCode(ReflectionMessage)]
    [RequiresDynamicCode(DynamicMessage)]
    private static JsonTypeInfo<T> TypeInfo<T>(JsonSerializerOptions? options)
    {
        options ??= JsonSerializerOptions.Web;
        options.MakeReadOnly(populateMissingResolver: true);
        return (JsonTypeInfo<T>)options.GetTypeInfo(typeof(T));
    }

    private static T? Deserialize<T>(byte[] bytes, string key, JsonTypeInfo<T> typeInfo)
    {
        try
        {
            var value = JsonSerializer.Deserialize(bytes, typeInfo);
            return value ?? throw new JsonException("The entry holds JSON null.");
        }
        catch (JsonException ex)
        {
            throw new PgCacheJsonException(
                $"A cache entry ({bytes.Length} bytes) is not valid JSON for {typeof(T).FullName}: {ex.Message} " +
                "Remove the entry, or check what writes it.",
                ex)
            {
                Key = key,
                TargetType = typeof(T),
            };
        }
    }

    private readonly record struct FlightKey(IPgDistributedCache Cache, string TenantId, string Key, Type Type);
}
