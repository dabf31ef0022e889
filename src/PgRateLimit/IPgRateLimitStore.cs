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
/// Several decisions of one partition asked of a store at once (coalesced by one app instance), in arrival order.
/// </summary>
/// <param name="LimiterId">The limiter identity: part of the counter's key.</param>
/// <param name="PartitionKey">The partition: the rest of the counter's key.</param>
/// <param name="Permits">The permits each decision asks for, in arrival order; each at least 1 and at most <paramref name="PermitLimit"/>.</param>
/// <param name="PermitLimit">The permits per window.</param>
/// <param name="Window">The window.</param>
/// <param name="CountRejected">Whether a rejected request still counts.</param>
public readonly record struct PgRateLimitBatchRequest(string LimiterId, string PartitionKey, IReadOnlyList<int> Permits, int PermitLimit, TimeSpan Window, bool CountRejected);

/// <summary>
/// A store's answer to a <see cref="PgRateLimitBatchRequest"/>: the same decisions, in the same order, as if each had
/// been asked alone one after the other, in one atomic operation.
/// </summary>
/// <param name="Acquired">Per decision, whether its permits were granted.</param>
/// <param name="Count">The window's count after the last decision.</param>
/// <param name="WindowRemaining">The time left in the current window on the store's clock.</param>
public readonly record struct PgRateLimitBatchDecision(IReadOnlyList<bool> Acquired, long Count, TimeSpan WindowRemaining);

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
    /// Reads one partition's counter as the store holds it, without counting anything (an operator's view: what is
    /// this client's window, count and reset?). The default implementation throws <see cref="NotSupportedException"/>.
    /// </summary>
    /// <param name="limiterId">The limiter identity (the policy name unless <see cref="PgFixedWindowRateLimiterOptions.LimiterId"/> was set).</param>
    /// <param name="partitionKey">The partition key as the policy produced it (a long key is looked up by its hash, as the limiter stores it).</param>
    /// <param name="cancellationToken">The token to cancel the read.</param>
    /// <returns>The counter, or <see langword="null"/> when the partition has none (never hit, or cleaned up).</returns>
    ValueTask<PgRateLimitCounter?> InspectAsync(string limiterId, string partitionKey, CancellationToken cancellationToken) =>
        throw new NotSupportedException($"{GetType().Name} does not report counters.");

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

    /// <summary>
    /// <see cref="AcquireAsync(PgRateLimitRequest, CancellationToken)"/>, calling <paramref name="connected"/> once the
    /// store has the connection the decision runs on, so that the time to open a new one is not counted against the
    /// policy's <see cref="PgFixedWindowRateLimiterOptions.Timeout"/> (see
    /// <see cref="PgFixedWindowRateLimiterOptions.ConnectTimeout"/>). The default implementation calls it at once.
    /// </summary>
    /// <param name="request">The request.</param>
    /// <param name="connected">Called once, when the decision's statement is about to be sent; may be <see langword="null"/>.</param>
    /// <param name="cancellationToken">The token to cancel the decision.</param>
    /// <returns>The decision.</returns>
    ValueTask<PgRateLimitDecision> AcquireAsync(PgRateLimitRequest request, Action? connected, CancellationToken cancellationToken)
    {
        connected?.Invoke();
        return AcquireAsync(request, cancellationToken);
    }

    /// <summary>
    /// Decides several requests of one partition in one atomic operation, in arrival order, exactly as if each had been
    /// asked with <see cref="AcquireAsync(PgRateLimitRequest, CancellationToken)"/> one after the other: a hot partition costs one round trip per batch
    /// instead of one per request. The default implementation asks <see cref="AcquireAsync(PgRateLimitRequest, CancellationToken)"/> once per request (correct,
    /// without the saving); the PostgreSQL and Redis stores make it one statement or script.
    /// </summary>
    /// <param name="request">The decisions.</param>
    /// <param name="cancellationToken">The token to cancel the decisions.</param>
    /// <returns>The decisions, in the order asked.</returns>
    async ValueTask<PgRateLimitBatchDecision> AcquireBatchAsync(PgRateLimitBatchRequest request, CancellationToken cancellationToken)
    {
        var acquired = new bool[request.Permits.Count];
        PgRateLimitDecision last = default;
        for (var i = 0; i < acquired.Length; i++)
        {
            last = await AcquireAsync(
                new PgRateLimitRequest(request.LimiterId, request.PartitionKey, request.Permits[i], request.PermitLimit, request.Window, request.CountRejected),
                cancellationToken).ConfigureAwait(false);
            acquired[i] = last.Acquired;
        }

        return new PgRateLimitBatchDecision(acquired, last.Count, last.WindowRemaining);
    }
}

/// <summary>One partition's counter (<see cref="IPgRateLimitStore.InspectAsync"/>).</summary>
/// <param name="LimiterId">The limiter identity.</param>
/// <param name="PartitionKey">The partition key.</param>
/// <param name="WindowStart">When the counter's window began (aligned on the database clock).</param>
/// <param name="Hits">The permits counted in that window.</param>
/// <param name="ResetsAt">When that window ends and the count starts again.</param>
/// <param name="Current">Whether the window is still running (<see langword="false"/>: the next request starts a new one).</param>
public sealed record PgRateLimitCounter(string LimiterId, string PartitionKey, DateTimeOffset WindowStart, long Hits, DateTimeOffset ResetsAt, bool Current);
