namespace PgRateLimit;

/// <summary>
/// The stable event ids of PgRateLimit log messages (range 3000–3999).
/// </summary>
public static class PgRateLimitEventIds
{
    /// <summary>The store failed or timed out and the request was admitted (fail-open).</summary>
    public const int DegradedOpen = 3001;

    /// <summary>The store failed or timed out and the request was rejected (fail-closed).</summary>
    public const int DegradedClosed = 3002;
}
