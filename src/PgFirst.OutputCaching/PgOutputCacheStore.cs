using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.OutputCaching;
using PgCache;

namespace PgFirst.OutputCaching;

/// <summary>
/// The ASP.NET Core output cache store on PgCache: every cached response is a PgCache entry with its tags, so an
/// eviction by tag is one statement on the server (one script on Redis), expiry is cleaned up by PgCache's
/// maintenance runner, and the store runs wherever PgCache runs (PostgreSQL, or Redis with <c>PgFirst.Redis</c>), per
/// tenant.
/// </summary>
/// <remarks>
/// Output-cache keys and tags live in their own namespace of the cache (<see cref="KeyPrefix"/>,
/// <see cref="TagPrefix"/>), so an app's own cache entries and tags never collide with them: evicting the output-cache
/// tag <c>catalog</c> leaves the app's <c>catalog</c>-tagged data entries alone. Errors of the store propagate as
/// <see cref="PgCacheException"/> (ASP.NET Core's output caching middleware logs them and serves the request uncached).
/// </remarks>
public sealed class PgOutputCacheStore : IOutputCacheStore, IOutputCacheBufferStore
{
    /// <summary>The prefix of every output-cache key in the cache.</summary>
    public const string KeyPrefix = "__oc:";

    /// <summary>The prefix of every output-cache tag in the cache.</summary>
    public const string TagPrefix = "__oc:";

    private readonly IPgDistributedCache _cache;

    /// <summary>Initializes a new instance of the <see cref="PgOutputCacheStore"/> class.</summary>
    /// <param name="cache">The cache (PostgreSQL or Redis backend) the entries are stored in.</param>
    public PgOutputCacheStore(IPgDistributedCache cache)
    {
        ArgumentNullException.ThrowIfNull(cache);
        _cache = cache;
    }

    /// <inheritdoc />
    public async ValueTask EvictByTagAsync(string tag, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tag);
        await _cache.RemoveByTagAsync(TagPrefix + tag, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<byte[]?> GetAsync(string key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        return await _cache.GetAsync(KeyPrefix + key, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask SetAsync(string key, byte[] value, string[]? tags, TimeSpan validFor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        await _cache.SetAsync(KeyPrefix + key, value, Options(tags ?? [], validFor), cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public ValueTask<bool> TryGetAsync(string key, PipeWriter destination, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(destination);
        return _cache.TryGetAsync(KeyPrefix + key, destination, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask SetAsync(string key, ReadOnlySequence<byte> value, ReadOnlyMemory<string> tags, TimeSpan validFor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        return _cache.SetAsync(KeyPrefix + key, value, Options(tags.Span, validFor), cancellationToken);
    }

    private static PgCacheEntryOptions Options(ReadOnlySpan<string> tags, TimeSpan validFor)
    {
        if (validFor <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(validFor), validFor, "An output-cache entry is valid for a positive time.");
        }

        var prefixed = new string[tags.Length];
        for (var i = 0; i < tags.Length; i++)
        {
            prefixed[i] = TagPrefix + (tags[i] ?? throw new ArgumentException("A tag is null.", nameof(tags)));
        }

        return new PgCacheEntryOptions { AbsoluteExpirationRelativeToNow = validFor, Tags = prefixed };
    }
}
