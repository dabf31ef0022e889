using Microsoft.Extensions.Caching.Distributed;

namespace PgCache;

/// <summary>
/// Expiration options plus tags, for <see cref="IPgDistributedCache"/>. Plain
/// <see cref="DistributedCacheEntryOptions"/> work too (no tags).
/// </summary>
public sealed class PgCacheEntryOptions : DistributedCacheEntryOptions
{
    /// <summary>
    /// Gets or sets the tags of the entry; <see cref="IPgDistributedCache.RemoveByTagAsync"/> removes every entry of a
    /// tag. Each tag is 1 to 256 characters, without U+0000.
    /// </summary>
    /// <value>The default is empty.</value>
    public IReadOnlyList<string> Tags { get; set; } = [];
}
