using Microsoft.AspNetCore.Http;

namespace PgRateLimit;

/// <summary>
/// What a limiter does when its store cannot be reached in time.
/// </summary>
public enum PgRateLimitFailureMode
{
    /// <summary>
    /// Decide on this instance alone, within a bounded share of the limit: a local fixed window per partition admits
    /// up to <see cref="PgFixedWindowRateLimiterOptions.DegradedPermitLimit"/> permits per window and rejects the rest
    /// (logged as event 3001 and counted). The default: an outage of the store does not become an outage of the app,
    /// and a slow or cold store does not switch the limit off either.
    /// </summary>
    FailOpen = 0,

    /// <summary>Reject the request (logged as event 3002 and counted), with a short <c>Retry-After</c>.</summary>
    FailClosed = 1,
}

/// <summary>
/// Configures one distributed fixed-window policy.
/// </summary>
public sealed class PgFixedWindowRateLimiterOptions
{
    /// <summary>
    /// Gets or sets the permits each partition may take per window.
    /// </summary>
    /// <value>The default is 100. Must be at least 1.</value>
    public int PermitLimit { get; set; } = 100;

    /// <summary>
    /// Gets or sets the window. Windows are aligned to the epoch on the store's clock, so every app instance agrees on
    /// where one ends; a client can get up to twice the limit across a boundary, as with any fixed window.
    /// </summary>
    /// <value>The default is 1 minute. Must be between 1 second and 1 day, in whole milliseconds.</value>
    public TimeSpan Window { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Gets or sets a value indicating whether rejected requests count toward the window.
    /// </summary>
    /// <value>The default is <see langword="false"/>: a client that keeps trying is not punished beyond the window.</value>
    public bool CountRejectedRequests { get; set; }

    /// <summary>
    /// Gets or sets how long one decision may wait for the store before the failure mode applies.
    /// </summary>
    /// <value>The default is 250 milliseconds. Must be between 1 millisecond and 30 seconds.</value>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Gets or sets how long a decision may wait, beyond <see cref="Timeout"/>, for the store to open a new connection
    /// while the store is healthy (its last call succeeded): a cold pool at start-up, a scale-out or a pool growing
    /// under a burst is not a store timeout. Once a call fails or times out, connection time counts against
    /// <see cref="Timeout"/> again until a call succeeds, so an outage that breaks connections does not make every
    /// decision wait this long. Decisions queued behind a running call of their partition (see
    /// <see cref="CoalesceDecisions"/>) may wait <see cref="Timeout"/> plus this while the store is healthy.
    /// </summary>
    /// <value>The default is 1 second. Must be between 0 (connection time always counts) and 30 seconds.</value>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Gets or sets how many decisions that outlived <see cref="Timeout"/> may still be running on the store before this
    /// policy's decisions stop asking it and apply <see cref="FailureMode"/> at once, until those calls finish.
    /// </summary>
    /// <remarks>
    /// A decision that times out is not cancelled: its statement finishes on its own and returns its connection, because
    /// a cancel costs the server a new connection each. But its caller moves on, so without this cap a store slower than
    /// the timeout would receive more calls than there are requests, which slows it further. The count is shared by
    /// every policy on the same store instance.
    /// </remarks>
    /// <value>The default is 8. Must be between 1 and 10,000.</value>
    public int MaxOverdueStoreCalls { get; set; } = 8;

    /// <summary>
    /// Gets or sets what happens when the store fails or times out.
    /// </summary>
    /// <value>The default is <see cref="PgRateLimitFailureMode.FailOpen"/>.</value>
    public PgRateLimitFailureMode FailureMode { get; set; } = PgRateLimitFailureMode.FailOpen;

    /// <summary>
    /// Gets or sets how many app instances share this policy's limit, which sets the share of it each instance may
    /// admit on its own while the store cannot answer (<see cref="DegradedPermitLimit"/>). Set it to your instance
    /// count.
    /// </summary>
    /// <value>The default is 4. Must be between 1 and 10,000.</value>
    public int ExpectedInstances { get; set; } = 4;

    /// <summary>
    /// Gets the permits one instance admits per partition and window while the store cannot answer in time
    /// (<see cref="PgRateLimitFailureMode.FailOpen"/>): <see cref="PermitLimit"/> ÷ <see cref="ExpectedInstances"/>,
    /// rounded up. In any window an instance admits at most this many permits beyond what the store counted; the
    /// local window is aligned to the store's window once the store has answered.
    /// </summary>
    public int DegradedPermitLimit => (int)Math.Min(PermitLimit, ((long)PermitLimit + Math.Max(1, ExpectedInstances) - 1) / Math.Max(1, ExpectedInstances));

    /// <summary>
    /// Gets or sets a value indicating whether concurrent decisions of one partition on this instance share a store
    /// call: while one call is running, later decisions queue and go together in the next, decided in arrival order in
    /// one statement (one Lua script on Redis). A hot partition then costs one round trip per batch instead of one per
    /// request, and each instance has at most one call per partition on the store. The count stays exact across
    /// instances: the store's count decides.
    /// </summary>
    /// <value>The default is <see langword="true"/>.</value>
    public bool CoalesceDecisions { get; set; } = true;

    /// <summary>
    /// Gets or sets the partition of a request: whose permits it takes. See <see cref="PgRateLimitPartition"/>.
    /// </summary>
    /// <value>The default is <see cref="PgRateLimitPartition.ByUserOrIp"/>.</value>
    public Func<HttpContext, string> PartitionKey { get; set; } = PgRateLimitPartition.ByUserOrIp;

    /// <summary>
    /// Gets or sets the identity of the counters in the store. Policies with different ids never share a counter.
    /// </summary>
    /// <value>The default is <see langword="null"/>: the policy name.</value>
    public string? LimiterId { get; set; }

    internal void Validate(string policyName)
    {
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(policyName))
        {
            failures.Add("the policy name must not be empty");
        }

        if (PermitLimit < 1)
        {
            failures.Add($"PermitLimit must be at least 1 (was {PermitLimit})");
        }

        if (Window < TimeSpan.FromSeconds(1) || Window > TimeSpan.FromDays(1) || Window.Ticks % TimeSpan.TicksPerMillisecond != 0)
        {
            failures.Add($"Window must be between 00:00:01 and 1.00:00:00 in whole milliseconds (was {Window})");
        }

        if (Timeout < TimeSpan.FromMilliseconds(1) || Timeout > TimeSpan.FromSeconds(30))
        {
            failures.Add($"Timeout must be between 1 ms and 30 s (was {Timeout})");
        }

        if (ConnectTimeout < TimeSpan.Zero || ConnectTimeout > TimeSpan.FromSeconds(30))
        {
            failures.Add($"ConnectTimeout must be between 0 and 30 s (was {ConnectTimeout})");
        }

        if (MaxOverdueStoreCalls is < 1 or > 10_000)
        {
            failures.Add($"MaxOverdueStoreCalls must be between 1 and 10000 (was {MaxOverdueStoreCalls})");
        }

        if (ExpectedInstances is < 1 or > 10_000)
        {
            failures.Add($"ExpectedInstances must be between 1 and 10000 (was {ExpectedInstances})");
        }

        if (!Enum.IsDefined(FailureMode))
        {
            failures.Add($"FailureMode {(int)FailureMode} is neither FailOpen nor FailClosed");
        }

        if (PartitionKey is null)
        {
            failures.Add("PartitionKey must be set");
        }

        if (LimiterId is { } id && (id.Length == 0 || id.Length > 200))
        {
            failures.Add("LimiterId must be 1 to 200 characters when set");
        }

        if (failures.Count > 0)
        {
            throw new ArgumentException($"Rate limit policy '{policyName}' is invalid: {string.Join("; ", failures)}.");
        }
    }
}
