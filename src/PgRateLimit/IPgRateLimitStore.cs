namespace PgRateLimit;

/// <summary>
/// One decision asked of a store.
/// </summary>
/// <param name="LimiterId">The limiter identity (the policy name unless set): part of the counter's key.</param>
/// <param name="PartitionKey">The partition (user, IP, API key, …): the rest of the counter's key.</param>
/// <param name="Permits">The permits asked for (1 unless the request is weighted).</param>
/// <param name="PermitLimit">The permits per window.</param>
/// <param name="Window">The window.</param>
/// <param name="CountRejected">Whether a rejected request still counts.</param>
public readonly record struct PgRateLimitRequest(string LimiterId, string PartitionKey, int Permits, int PermitLimit, TimeSpan Window, bool CountRejected);

/// <summary>
/// A store's answer.
/// </summary>
/// <param name="Acquired">Whether the permits were granted.</param>
/// <param name="Count">The window's count after the decision.</param>
/// <param name="WindowRemaining">The time left in the current window on the store's clock: the exact <c>Retry-After</c> of a rejection.</param>
public readonly record struct PgRateLimitDecision(bool Acquired, long Count, TimeSpan WindowRemaining);

/// <summary>
/// Where counters live: PostgreSQL (the default) or Redis (<c>PgFirst.Redis</c>). Each decision is one atomic
/// operation on the store, windows aligned to the store's clock.
/// </summary>
public interface IPgRateLimitStore
{
    /// <summary>
    /// Counts <see cref="PgRateLimitRequest.Permits"/> against the partition's current window and decides.
    /// </summary>
    /// <param name="request">The request.</param>
    /// <param name="cancellationToken">The token to cancel the decision.</param>
    /// <returns>The decision.</returns>
    ValueTask<PgRateLimitDecision> AcquireAsync(PgRateLimitRequest request, CancellationToken cancellationToken);

    /// <summary>
    /// Checks that the store answers and holds what decisions need (on PostgreSQL, the counter table), without counting
    /// anything. Used by <see cref="PgRateLimitHealthCheck"/>.
    /// </summary>
    /// <param name="cancellationToken">The token to cancel the check.</param>
    /// <returns>A task that completes when the store has answered.</returns>
    /// <exception cref="PgFirst.Core.PgFirstSchemaException">The schema is missing or out of date (PostgreSQL).</exception>
    ValueTask PingAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Gets the store ready for traffic before the app takes any: on PostgreSQL, opens up to
    /// <paramref name="connections"/> pooled connections at once and prepares the decision's statement on each, so the
    /// first burst of decisions does not wait for new connections (and time out) while it is being counted. Counts
    /// nothing. Called by PgRateLimit's warm-up at start-up (<see cref="PgRateLimitOptions.WarmUpConnections"/>).
    /// </summary>
    /// <param name="connections">How many connections to have open and ready.</param>
    /// <param name="cancellationToken">The token to cancel the warm-up.</param>
    /// <returns>A task that completes when the store is ready.</returns>
    ValueTask WarmUpAsync(int connections, CancellationToken cancellationToken) => PingAsync(cancellationToken);
}
