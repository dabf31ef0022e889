using System.Diagnostics;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PgRateLimit.Internal;

namespace PgRateLimit;

/// <summary>
/// One partition of a distributed fixed-window policy: the count lives in the store (PostgreSQL or Redis), so every
/// app instance shares it exactly.
/// </summary>
/// <remarks>
/// <para>
/// The <see cref="RateLimiter"/> contract is kept: <see cref="RateLimiter.AttemptAcquire(int)"/> never does I/O (it
/// answers from what this instance knows, or returns a failed lease so the caller goes on to
/// <see cref="RateLimiter.AcquireAsync(int, CancellationToken)"/>, as the ASP.NET Core middleware does);
/// <see cref="GetStatistics"/> is local; <see cref="IdleDuration"/> is honest, so idle partitions are evicted.
/// </para>
/// <para>
/// Once the store says the window is exhausted, this instance rejects the partition's requests locally until the
/// window ends, with no round trip. Rejections carry <see cref="MetadataName.RetryAfter"/>: the exact time to the
/// window's end on the store's clock. Store errors and timeouts follow <see cref="PgFixedWindowRateLimiterOptions.FailureMode"/>.
/// </para>
/// </remarks>
public sealed partial class PgFixedWindowRateLimiter : RateLimiter
{
    private static readonly RateLimitLease NeedsStore = new Lease(false, null, null);

    private readonly IPgRateLimitStore _store;
    private readonly string _policyName;
    private readonly string _limiterId;
    private readonly string _partitionKey;
    private readonly PgFixedWindowRateLimiterOptions _options;
    private readonly PgRateLimitMetrics _metrics;
    private readonly bool _ownsMetrics;
    private readonly ILogger _logger;
    private readonly SharedStoreState _shared;

    // What this instance last learned about the current window: when it ends (monotonic clock) and its count. Other
    // instances only ever raise the count within a window, so rejecting locally on this knowledge is exact.
    private WindowState? _window;
    private readonly Lock _localGate = new();
    private readonly Lock _batchGate = new();
    private bool _storeCallRunning;
    private List<Waiter>? _queued;
    private long _localWindowEndsAt;
    private long _localCount;
    private long _successful;
    private long _failed;
    private int _inFlight;
    private long _lastUsed = Stopwatch.GetTimestamp();

    /// <summary>
    /// Initializes a new instance of the <see cref="PgFixedWindowRateLimiter"/> class. Does no I/O.
    /// </summary>
    /// <param name="store">The store of the counters.</param>
    /// <param name="policyName">The policy name.</param>
    /// <param name="partitionKey">The partition this limiter decides for.</param>
    /// <param name="options">The policy options.</param>
    /// <param name="logger">The logger, or <see langword="null"/>.</param>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public PgFixedWindowRateLimiter(
        IPgRateLimitStore store,
        string policyName,
        string partitionKey,
        PgFixedWindowRateLimiterOptions options,
        ILogger<PgFixedWindowRateLimiter>? logger = null)
        : this(store, policyName, partitionKey, options, null, logger)
    {
    }

    internal PgFixedWindowRateLimiter(
        IPgRateLimitStore store,
        string policyName,
        string partitionKey,
        PgFixedWindowRateLimiterOptions options,
        PgRateLimitMetrics? metrics,
        ILogger? logger)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(partitionKey);
        options.Validate(policyName);
        _store = store;
        _policyName = policyName;
        _limiterId = options.LimiterId ?? policyName;
        _partitionKey = PgRateLimitPartition.Normalize(partitionKey);
        _options = options;
        _ownsMetrics = metrics is null;
        _metrics = metrics ?? new PgRateLimitMetrics(null);
        _logger = logger ?? NullLogger.Instance;
        _shared = SharedStoreState.For(store);
    }

    /// <inheritdoc />
    public override TimeSpan? IdleDuration =>
        Volatile.Read(ref _inFlight) > 0 ? null : Stopwatch.GetElapsedTime(Volatile.Read(ref _lastUsed));

    /// <inheritdoc />
    public override RateLimiterStatistics? GetStatistics()
    {
        var known = CurrentWindow()?.Count ?? 0;
        return new RateLimiterStatistics
        {
            CurrentAvailablePermits = Math.Max(0, _options.PermitLimit - known),
            CurrentQueuedCount = 0,
            TotalFailedLeases = Interlocked.Read(ref _failed),
            TotalSuccessfulLeases = Interlocked.Read(ref _successful),
        };
    }

    /// <inheritdoc />
    protected override RateLimitLease AttemptAcquireCore(int permitCount)
    {
        ValidatePermits(permitCount);
        Touch();

        // No I/O here, ever: answer what is known locally, else let the caller go on to AcquireAsync.
        if (WontFit(permitCount, out var remaining))
        {
            return Rejected(remaining, PgRateLimitMetadataReason.Exhausted);
        }

        return permitCount == 0 ? Acquired(CurrentWindow()?.Count ?? 0) : NeedsStore;
    }

    /// <inheritdoc />
    protected override async ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken)
    {
        ValidatePermits(permitCount);
        Touch();
        if (WontFit(permitCount, out var remaining))
        {
            Interlocked.Increment(ref _failed);
            _metrics.Decision(_policyName, "rejected_local");
            _metrics.Saved(_policyName);
            return Rejected(remaining, PgRateLimitMetadataReason.Exhausted);
        }

        if (permitCount == 0)
        {
            return Acquired(CurrentWindow()?.Count ?? 0);
        }

        if (_shared.OverdueCalls >= _options.MaxOverdueStoreCalls)
        {
            // The store is already slower than the timeout: one more call would only slow it further.
            return Degraded(permitCount, "overdue", new TimeoutException(
                $"{_shared.OverdueCalls} earlier decisions are still running on the store past their timeout " +
                $"(MaxOverdueStoreCalls = {_options.MaxOverdueStoreCalls}); this decision did not ask the store."));
        }

        Interlocked.Increment(ref _inFlight);
        var started = Stopwatch.GetTimestamp();
        try
        {
            // The timeout bounds how long this request waits, not the statement: a late decision finishes on its own
            // and returns its connection to the pool. Cancelling it instead would make the driver send a cancel request
            // on a new connection for every late decision, which under load turns a slow store into a stalled one.
            // Late calls are counted until they end, and MaxOverdueStoreCalls caps them. The caller's token cancels
            // its wait only: with coalescing, one store call may answer several callers.
            var connectGrace = _options.ConnectTimeout > TimeSpan.Zero && !_shared.Failing;
            var connected = connectGrace ? new ConnectedSignal() : null;
            var call = StartDecision(permitCount, connected, out var ownCall);
            PgRateLimitDecision decision;
            try
            {
                if (call.IsCompletedSuccessfully)
                {
                    decision = await call.ConfigureAwait(false);
                }
                else if (!connectGrace || (ownCall && connected!.Task.IsCompleted))
                {
                    // No grace, or the connection was there at once (an idle pooled one): the statement has Timeout.
                    decision = await call.WaitAsync(_options.Timeout, cancellationToken).ConfigureAwait(false);
                }
                else if (ownCall)
                {
                    // Opening a new connection is not a store timeout: wait for it (at most ConnectTimeout), then the
                    // statement gets the whole Timeout.
                    await Task.WhenAny(call, connected!.Task).WaitAsync(_options.ConnectTimeout, cancellationToken).ConfigureAwait(false);
                    decision = await call.WaitAsync(_options.Timeout, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    decision = await call.WaitAsync(_options.Timeout + _options.ConnectTimeout, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
            catch (Exception ex) when (IsStoreFailure(ex))
            {
                if (ex is TimeoutException && ownCall && !call.IsCompleted)
                {
                    _shared.TrackOverdue(call);
                }

                _shared.CallFailed();
                return Degraded(permitCount, ex is TimeoutException ? "timeout" : "error", ex);
            }

            _shared.CallSucceeded();
            _metrics.Duration(_policyName, started);

            // The window's end is kept on our monotonic clock from the store's own "time left", so app-clock skew
            // cannot matter. It is counted from when the answer arrived (not from when the call started, which may
            // include opening a connection): later rejections may overstate the wait by the answer's travel time only.
            Volatile.Write(ref _window, new WindowState(
                Stopwatch.GetTimestamp() + (long)(decision.WindowRemaining.TotalSeconds * Stopwatch.Frequency),
                decision.Count));

            if (decision.Acquired)
            {
                Interlocked.Increment(ref _successful);
                _metrics.Decision(_policyName, "acquired");
                return Acquired(decision.Count, decision.WindowRemaining);
            }

            Interlocked.Increment(ref _failed);
            _metrics.Decision(_policyName, "rejected");
            return Rejected(decision.WindowRemaining, PgRateLimitMetadataReason.Exhausted);
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
            Touch();
        }
    }

    // Asks the store for one decision. With CoalesceDecisions, while a store call for this partition is running, later
    // decisions queue and go together in the next call (one statement or script deciding them in arrival order), so a
    // hot partition costs one round trip per batch and each instance has at most one call per partition on the store.
    // ownCall: whether the returned task is this decision's own store call (tracked if it outlives the timeout).
    private Task<PgRateLimitDecision> StartDecision(int permitCount, ConnectedSignal? connected, out bool ownCall)
    {
        ownCall = true;
        if (!_options.CoalesceDecisions)
        {
            return _store.AcquireAsync(Request(permitCount), connected is null ? null : connected.Set, CancellationToken.None).AsTask();
        }

        lock (_batchGate)
        {
            if (_storeCallRunning)
            {
                var waiter = new Waiter(permitCount);
                (_queued ??= []).Add(waiter);
                ownCall = false;
#pragma warning disable VSTHRD003 // The batch runner completes it; nothing here waits on a context.
                return waiter.Result.Task;
#pragma warning restore VSTHRD003
            }

            _storeCallRunning = true;
        }

        return CallThenHandOverAsync(permitCount, connected);
    }

    private async Task<PgRateLimitDecision> CallThenHandOverAsync(int permitCount, ConnectedSignal? connected)
    {
        try
        {
            return await _store.AcquireAsync(Request(permitCount), connected is null ? null : connected.Set, CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            if (TakeQueued() is { } next)
            {
                _ = RunBatchesAsync(next);
            }
        }
    }

    // The decisions that queued meanwhile, or null (and no store call running any more) when there are none.
    private List<Waiter>? TakeQueued()
    {
        lock (_batchGate)
        {
            var queued = _queued;
            _queued = null;
            if (queued is null)
            {
                _storeCallRunning = false;
            }

            return queued;
        }
    }

    private async Task RunBatchesAsync(List<Waiter> batch)
    {
        for (var next = batch; next is not null; next = TakeQueued())
        {
            _metrics.BatchSize(_policyName, next.Count);
            try
            {
                if (next.Count == 1)
                {
                    next[0].Result.TrySetResult(await _store.AcquireAsync(Request(next[0].Permits), CancellationToken.None).ConfigureAwait(false));
                    _shared.CallSucceeded();
                    continue;
                }

                var permits = new int[next.Count];
                for (var i = 0; i < permits.Length; i++)
                {
                    permits[i] = next[i].Permits;
                }

                var decisions = await _store.AcquireBatchAsync(
                    new PgRateLimitBatchRequest(_limiterId, _partitionKey, permits, _options.PermitLimit, _options.Window, _options.CountRejectedRequests),
                    CancellationToken.None).ConfigureAwait(false);
                if (decisions.Acquired.Count != next.Count)
                {
                    throw new InvalidOperationException($"The store answered {decisions.Acquired.Count} decisions for a batch of {next.Count}.");
                }

                for (var i = 0; i < next.Count; i++)
                {
                    next[i].Result.TrySetResult(new PgRateLimitDecision(decisions.Acquired[i], decisions.Count, decisions.WindowRemaining));
                }

                // Its waiters may have stopped waiting; the store answered all the same.
                _shared.CallSucceeded();
            }
            catch (Exception ex)
            {
                _shared.CallFailed();
                foreach (var waiter in next)
                {
                    waiter.Result.TrySetException(ex);
                }
            }
        }
    }

    private PgRateLimitRequest Request(int permitCount) =>
        new(_limiterId, _partitionKey, permitCount, _options.PermitLimit, _options.Window, _options.CountRejectedRequests);

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing && _ownsMetrics)
        {
            _metrics.Dispose();
        }

        base.Dispose(disposing);
    }

    // The store could not decide in time. Fail-open decides here, within this instance's share of the limit for the
    // window (never unlimited); fail-closed rejects.
    private Lease Degraded(int permitCount, string cause, Exception exception)
    {
        _metrics.Error(_policyName);
        _metrics.Degraded(_policyName, cause);
        if (_options.FailureMode == PgRateLimitFailureMode.FailOpen)
        {
            var admitted = TryAcquireLocally(permitCount, out var retryAfter);
            if (_shared.ShouldLogDegraded(out var unlogged))
            {
                LogDegradedOpen(_logger, exception, _policyName, exception.Message, admitted ? "admitted" : "rejected", _options.DegradedPermitLimit, unlogged);
            }

            if (admitted)
            {
                _metrics.Decision(_policyName, "degraded_local");
                Interlocked.Increment(ref _successful);
                return new Lease(true, null, null);
            }

            _metrics.Decision(_policyName, "degraded_local_rejected");
            Interlocked.Increment(ref _failed);
            return Rejected(retryAfter, PgRateLimitMetadataReason.LocalShareExhausted);
        }

        if (_shared.ShouldLogDegraded(out var unloggedClosed))
        {
            LogDegradedClosed(_logger, exception, _policyName, exception.Message, unloggedClosed);
        }

        _metrics.Decision(_policyName, "degraded_closed");
        Interlocked.Increment(ref _failed);
        return Rejected(TimeSpan.FromSeconds(1), PgRateLimitMetadataReason.StoreUnavailable);
    }

    // A fixed window of this instance's own: DegradedPermitLimit permits per window. Its windows follow the store's
    // once the store has answered (the last known window end, stepped on by whole windows), so "per window" means the
    // store's window; before any answer they start at the first degraded decision. Within a window the store said
    // was already partly used, the share is also capped by what the store said was left.
    private bool TryAcquireLocally(int permitCount, out TimeSpan retryAfter)
    {
        var windowTicks = (long)(_options.Window.TotalSeconds * Stopwatch.Frequency);
        lock (_localGate)
        {
            var now = Stopwatch.GetTimestamp();
            if (now >= _localWindowEndsAt)
            {
                var known = Volatile.Read(ref _window);
                var end = known?.EndsAt ?? now + windowTicks;
                if (end <= now)
                {
                    end += ((now - end) / windowTicks + 1) * windowTicks;
                }

                _localWindowEndsAt = end;
                _localCount = 0;
            }

            long share = _options.DegradedPermitLimit;
            if (CurrentWindow() is { } current && current.EndsAt == _localWindowEndsAt)
            {
                share = Math.Min(share, Math.Max(0, _options.PermitLimit - current.Count));
            }

            if (_localCount + permitCount <= share)
            {
                _localCount += permitCount;
                retryAfter = TimeSpan.Zero;
                return true;
            }

            retryAfter = TimeSpan.FromSeconds((double)(_localWindowEndsAt - now) / Stopwatch.Frequency);
            return false;
        }
    }

    // Store outages and timeouts (TimeoutException from the wait) degrade; programming errors (bad arguments, casts,
    // nulls) propagate.
    private static bool IsStoreFailure(Exception exception) => exception is not (
        OperationCanceledException or ArgumentException or InvalidCastException or NullReferenceException or NotSupportedException);

    private void ValidatePermits(int permitCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(permitCount);
        if (permitCount > _options.PermitLimit)
        {
            throw new ArgumentOutOfRangeException(
                nameof(permitCount), permitCount, $"{permitCount} permits exceed the policy's PermitLimit of {_options.PermitLimit}.");
        }
    }

    private WindowState? CurrentWindow()
    {
        var window = Volatile.Read(ref _window);
        return window is not null && window.EndsAt > Stopwatch.GetTimestamp() ? window : null;
    }

    // True when the permits cannot fit in what is left of the current window as this instance knows it. When rejected
    // requests count, a rejection is answered locally only once the window is full: before that, the store must count
    // it, since it changes what later, smaller requests get.
    private bool WontFit(int permitCount, out TimeSpan remaining)
    {
        var window = CurrentWindow();
        var needed = _options.CountRejectedRequests ? 1 : Math.Max(permitCount, 1);
        if (window is not null && window.Count + needed > _options.PermitLimit)
        {
            remaining = TimeSpan.FromSeconds((double)(window.EndsAt - Stopwatch.GetTimestamp()) / Stopwatch.Frequency);
            return true;
        }

        remaining = TimeSpan.Zero;
        return false;
    }

    private void Touch() => Volatile.Write(ref _lastUsed, Stopwatch.GetTimestamp());

    private Lease Acquired(long count, TimeSpan? reset = null) =>
        new(true, null, new Info(_policyName, _options.PermitLimit, Math.Max(0, _options.PermitLimit - count), _options.Window, reset));

    private Lease Rejected(TimeSpan retryAfter, string reason) =>
        new(false, retryAfter, new Info(_policyName, _options.PermitLimit, 0, _options.Window, retryAfter), reason);

    private sealed record WindowState(long EndsAt, long Count);

    // Completed when the store has the connection a decision runs on.
    private sealed class ConnectedSignal
    {
        private readonly TaskCompletionSource _connected = new(TaskCreationOptions.RunContinuationsAsynchronously);

#pragma warning disable VSTHRD003 // The store completes it; nothing waits on a context.
        public Task Task => _connected.Task;
#pragma warning restore VSTHRD003

        public void Set() => _connected.TrySetResult();
    }

    private sealed class Waiter(int permits)
    {
        public int Permits { get; } = permits;

        public TaskCompletionSource<PgRateLimitDecision> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed record Info(string Policy, int Limit, long Remaining, TimeSpan Window, TimeSpan? Reset);

    private sealed class Lease(bool isAcquired, TimeSpan? retryAfter, Info? info, string? reason = null) : RateLimitLease
    {
        public override bool IsAcquired { get; } = isAcquired;

        public override IEnumerable<string> MetadataNames
        {
            get
            {
                if (retryAfter is not null)
                {
                    yield return MetadataName.RetryAfter.Name;
                }

                if (reason is not null)
                {
                    yield return MetadataName.ReasonPhrase.Name;
                }

                if (info is not null)
                {
                    yield return PgRateLimitMetadata.Policy.Name;
                    yield return PgRateLimitMetadata.Limit.Name;
                    yield return PgRateLimitMetadata.Remaining.Name;
                    yield return PgRateLimitMetadata.Window.Name;
                    if (info.Reset is not null)
                    {
                        yield return PgRateLimitMetadata.Reset.Name;
                    }
                }
            }
        }

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = metadataName switch
            {
                _ when metadataName == MetadataName.RetryAfter.Name => retryAfter,
                _ when metadataName == MetadataName.ReasonPhrase.Name => reason,
                _ when metadataName == PgRateLimitMetadata.Policy.Name => info?.Policy,
                _ when metadataName == PgRateLimitMetadata.Limit.Name => info?.Limit,
                _ when metadataName == PgRateLimitMetadata.Remaining.Name => info?.Remaining,
                _ when metadataName == PgRateLimitMetadata.Window.Name => info?.Window,
                _ when metadataName == PgRateLimitMetadata.Reset.Name => info?.Reset,
                _ => null,
            };
            return metadata is not null;
        }
    }
}

internal static class PgRateLimitMetadataReason
{
    public const string Exhausted = "The rate limit window is exhausted.";
    public const string StoreUnavailable = "The rate limit store is unavailable (fail-closed).";
    public const string LocalShareExhausted = "The rate limit store is unavailable and this instance's share of the window is used up (fail-open).";
}
