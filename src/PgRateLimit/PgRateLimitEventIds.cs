namespace PgRateLimit;

/// <summary>
/// The stable event ids of PgRateLimit log messages (range 3000–3999).
/// </summary>
public static class PgRateLimitEventIds
{
    /// <summary>The store failed or timed out and the request was decided by the instance's bounded local window (fail-open).</summary>
    public const int DegradedOpen = 3001;

    /// <summary>The store failed or timed out and the request was rejected (fail-closed).</summary>
    public const int DegradedClosed = 3002;

    /// <summary>The start-up warm-up opened and readied the store's connections.</summary>
    public const int WarmedUp = 3003;

    /// <summary>The store was not ready within the warm-up timeout; the app started anyway.</summary>
    public const int NotWarm = 3004;
}
