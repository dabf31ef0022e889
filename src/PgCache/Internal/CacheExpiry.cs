using Microsoft.Extensions.Caching.Distributed;

namespace PgCache.Internal;

// One clock (the injected TimeProvider) and one stored expiry: min(absolute, now + sliding), or none.
internal static class CacheExpiry
{
    public static PgCacheExpiry Compute(DistributedCacheEntryOptions options, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(options);
        DateTimeOffset? absolute = null;
        if (options.AbsoluteExpiration is { } at)
        {
            if (at <= now)
            {
                throw new ArgumentOutOfRangeException(
                    nameof(options), at, "The absolute expiration must be in the future; nothing was written.");
            }

            absolute = at.ToUniversalTime();
        }

        if (options.AbsoluteExpirationRelativeToNow is { } relative)
        {
            // The setter already refuses zero and negative values; the earlier of the two absolute bounds wins.
            var relativeAt = (now + relative).ToUniversalTime();
            absolute = absolute is null || relativeAt < absolute ? relativeAt : absolute;
        }

        var sliding = options.SlidingExpiration;
        DateTimeOffset? expiresAt = absolute;
        if (sliding is { } window)
        {
            var slidingAt = (now + window).ToUniversalTime();
            expiresAt = absolute is null || slidingAt < absolute ? slidingAt : absolute;
        }

        return new PgCacheExpiry(expiresAt, sliding, absolute);
    }

    // The step below which a read does not rewrite a sliding entry's expiry.
    public static TimeSpan RefreshStep(TimeSpan sliding, TimeSpan granularity) =>
        sliding / 10 < granularity ? sliding / 10 : granularity;
}
