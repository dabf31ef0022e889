using System.Threading.RateLimiting;

namespace PgRateLimit;

/// <summary>
/// Lease metadata PgRateLimit adds besides <see cref="MetadataName.RetryAfter"/> (on rejections: the exact time to the
/// window's end on the store's clock) and <see cref="MetadataName.ReasonPhrase"/>.
/// </summary>
public static class PgRateLimitMetadata
{
    /// <summary>The policy name.</summary>
    public static MetadataName<string> Policy { get; } = MetadataName.Create<string>("PGRATELIMIT_POLICY");

    /// <summary>The permits per window.</summary>
    public static MetadataName<int> Limit { get; } = MetadataName.Create<int>("PGRATELIMIT_LIMIT");

    /// <summary>The permits left in the window after this decision, as last known.</summary>
    public static MetadataName<long> Remaining { get; } = MetadataName.Create<long>("PGRATELIMIT_REMAINING");

    /// <summary>The window.</summary>
    public static MetadataName<TimeSpan> Window { get; } = MetadataName.Create<TimeSpan>("PGRATELIMIT_WINDOW");

    /// <summary>The time left in the window.</summary>
    public static MetadataName<TimeSpan> Reset { get; } = MetadataName.Create<TimeSpan>("PGRATELIMIT_RESET");
}
