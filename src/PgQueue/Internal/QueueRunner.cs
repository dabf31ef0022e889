using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace PgQueue.Internal;

// The workers of one queue in this process. One driver claims jobs in batches (carrying the acknowledgements of
// finished jobs in the same round trip) into an in-memory buffer; `concurrency` executors run them.
internal sealed partial class QueueRunner : IAsyncDisposable
{
    private const int MaxAcksPerFlush = 2000;

    private readonly string _queue;
    private readonly int _concurrency;
    private readonly int _prefetch;
    private readonly IJobQueueBackend _backend;
    private readonly PgQueueOptions _options;
    private readonly JobRegistry _registry;
    private readonly IServiceScopeFactory _scopes;
    private readonly PgQueueMetrics _metrics;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly string _worker;
    private readonly Channel<ClaimedJob> _buffer = Channel.CreateUnbounded<ClaimedJob>(new UnboundedChannelOptions { SingleWriter = true });
    private readonly Channel<bool>[] _signals;
    private readonly ConcurrentDictionary<long, HeldJob> _held = new();
    private readonly ConcurrentQueue<JobToken> _acks = new();
    private readonly ConcurrentBag<JobToken> _unstarted = [];
    private readonly CancellationTokenSource _hardStop = new();
    private readonly CancellationTokenSource _stopClaiming = new();
    private int _outstanding;
    private int _woken;
    private volatile bool _stopping;
    private Task[] _drivers = [];
    private Task[] _executors = [];

    public QueueRunner(string queue, PgQueueWorkerOptions queueOptions, IJobQueueBackend backend, PgQueueOptions options, JobRegistry registry, IServiceScopeFactory scopes, PgQueueMetrics metrics, TimeProvider timeProvider, ILogger logger, string worker)
    {
        _queue = queue;
        _concurrency = queueOptions.Concurrency;
        _prefetch = queueOptions.Prefetch;
        _backend = backend;
        _options = options;
        _registry = registry;
        _scopes = scopes;
        _metrics = metrics;
        _timeProvider = timeProvider;
        _logger = logger;
        _worker = worker;

        // Two claim loops when jobs are prefetched, so one claim's round trip (and commit) overlaps the other's:
        // a single loop leaves the database idle between round trips and caps a drain at one batch per round trip.
        _signals = [.. Enumerable.Range(0, _prefetch > 0 ? 2 : 1).Select(_ => Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite }))];
    }

    public string Queue => _queue;

    public void Start()
    {
        _drivers = [.. _signals.Select(signal => Task.Run(() => DriveAsync(signal)))];
        _executors = [.. Enumerable.Range(0, _concurrency).Select(_ => Task.Run(ExecuteLoopAsync))];
    }

    // New work may be there (a local enqueue, a notification, a promotion).
    public void Wake()
    {
        // One loop answers a wake-up; if it finds a full batch it wakes the other.
        Volatile.Write(ref _woken, 1);
        _signals[0].Writer.TryWrite(true);
    }

    public IReadOnlyList<JobToken> HeldTokens() => [.. _held.Values.Where(h => !h.Lost).Select(h => h.Token)];

    public void LeaseLost(JobToken token)
    {
        if (_held.TryGetValue(token.Id, out var held) && held.Token == token)
        {
            held.MarkLost();
            LogLeaseLost(_logger, token.Id, _queue);
        }
    }

    // Graceful stop: no more claims, running handlers get the grace period, unstarted jobs go back unspent.
    public async Task StopAsync(TimeSpan grace)
    {
        _stopping = true;
        Signal();

        // A claim stuck on an unreachable database must not hold shutdown up; jobs it may have claimed are rescued.
        await _stopClaiming.CancelAsync().ConfigureAwait(false);
#pragma warning disable VSTHRD003 // The driver is this runner's own task, started in Start.
        await Task.WhenAll(_drivers).ConfigureAwait(false);
#pragma warning restore VSTHRD003
        _buffer.Writer.TryComplete();
        var executors = Task.WhenAll(_executors);
        if (await Task.WhenAny(executors, Task.Delay(grace, _timeProvider)).ConfigureAwait(false) != executors)
        {
            LogShutdownTimedOut(_logger, _queue, _outstanding);
            await _hardStop.CancelAsync().ConfigureAwait(false);
            await Task.WhenAny(executors, Task.Delay(TimeSpan.FromSeconds(5), _timeProvider)).ConfigureAwait(false);
        }

        var now = _timeProvider.GetUtcNow();
        try
        {
            var acks = TakeAcks(int.MaxValue);
            if (acks.Count > 0)
            {
                await _backend.CompleteAsync(acks, now, now + _options.SucceededRetention, CancellationToken.None).ConfigureAwait(false);
                Forget(acks);
            }

            var unstarted = _unstarted.ToArray();
            if (unstarted.Length > 0)
            {
                await _backend.ReleaseAsync(unstarted, now, CancellationToken.None).ConfigureAwait(false);
            }

            LogStopped(_logger, _queue, unstarted.Length);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Their leases expire and they are rescued; nothing is lost.
            LogWorkerError(_logger, ex, _queue);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stopping)
        {
            await StopAsync(TimeSpan.Zero).ConfigureAwait(false);
        }

        _hardStop.Dispose();
        _stopClaiming.Dispose();
        foreach (var held in _held.Values)
        {
            held.Dispose();
        }
    }

    private async Task DriveAsync(Channel<bool> signal)
    {
        var idle = false;
        var failures = 0;
        var capacity = _concurrency + _prefetch;
        while (!_stopping)
        {
            // Reserve the slots before the round trip, so the other claim loop cannot claim them too.
            var outstanding = Volatile.Read(ref _outstanding);
            var want = Math.Min(_options.MaxClaimBatch, capacity - outstanding);

            // While every handler is busy, small top-ups of the buffer are not worth a round trip.
            if (outstanding >= _concurrency && want < Math.Max(1, _prefetch / 4))
            {
                want = 0;
            }

            // After a short claim the queue was empty: claim again only when woken or at the next poll.
            if (want > 0 && idle && Interlocked.Exchange(ref _woken, 0) == 0)
            {
                want = 0;
            }

            if (want > 0 && Interlocked.CompareExchange(ref _outstanding, outstanding + want, outstanding) != outstanding)
            {
                // The other loop moved first; look again.
                continue;
            }

            var acks = TakeAcks(MaxAcksPerFlush);
            if (want > 0 || acks.Count > 0)
            {
                var got = 0;
                try
                {
                    var now = _timeProvider.GetUtcNow();
                    var jobs = await _backend.ClaimAsync(
                        new JobClaimRequest
                        {
                            Queue = _queue,
                            Count = want,
                            Worker = _worker,
                            Now = now,
                            LeaseExpiresAt = now + _options.LeaseDuration,
                            Succeeded = acks,
                            SucceededDeleteAfter = now + _options.SucceededRetention,
                            AsynchronousCommit = !_options.DurableClaims,
                        },
                        _stopClaiming.Token).ConfigureAwait(false);
                    failures = 0;
                    Forget(acks);
                    got = jobs.Count;
                    foreach (var job in jobs)
                    {
                        // The same job claimed again (its earlier lease here expired): that earlier copy is stale.
                        var held = new HeldJob(job.Token, _hardStop.Token);
                        _held.AddOrUpdate(job.Id, held, (_, stale) =>
                        {
                            stale.MarkLost();
                            return held;
                        });
                        _buffer.Writer.TryWrite(job);
                    }

                    if (want > 0)
                    {
                        idle = jobs.Count < want;
                        if (!idle)
                        {
                            // A full batch: there is likely more, so the other loop joins in.
                            Volatile.Write(ref _woken, 1);
                            Signal();
                            continue;
                        }
                    }

                    if (_acks.Count >= MaxAcksPerFlush)
                    {
                        continue;
                    }
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    foreach (var ack in acks)
                    {
                        _acks.Enqueue(ack);
                    }

                    if (_stopping)
                    {
                        break;
                    }

                    failures++;
                    LogWorkerError(_logger, ex, _queue);
                    await DelayAsync(signal, TimeSpan.FromMilliseconds(Math.Min(5000, 100 * Math.Pow(2, Math.Min(failures, 6))))).ConfigureAwait(false);
                    continue;
                }
                finally
                {
                    // Give back the reserved slots no job came for.
                    if (want > got)
                    {
                        Interlocked.Add(ref _outstanding, got - want);
                    }
                }
            }

            if (!await WaitForSignalAsync(signal).ConfigureAwait(false))
            {
                // The poll interval passed with no signal: look again.
                idle = false;
            }
        }
    }

    private async Task ExecuteLoopAsync()
    {
        await foreach (var job in _buffer.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            if (_stopping)
            {
                _unstarted.Add(job.Token);
                continue;
            }

            await ExecuteAsync(job).ConfigureAwait(false);
        }
    }

    private async Task ExecuteAsync(ClaimedJob job)
    {
        if (!_held.TryGetValue(job.Id, out var held) || held.Lost || held.Token != job.Token)
        {
            // A stale copy: the entry, if any, belongs to a newer claim and is not this copy's to release.
            Done(job, keepHeld: true);
            return;
        }

        var started = _timeProvider.GetUtcNow();
        _metrics.Started(_queue, started - job.AvailableAt);
        var stopwatch = Stopwatch.StartNew();
        using var activity = StartActivity(job);
        var completeInTransaction = _backend is PostgresJobQueueBackend postgres
            ? (Npgsql.NpgsqlTransaction transaction, CancellationToken ct) =>
            {
                var now = _timeProvider.GetUtcNow();
                return postgres.CompleteAsync(transaction, job.Token, now, now + _options.SucceededRetention, ct);
            }
            : (Func<Npgsql.NpgsqlTransaction, CancellationToken, ValueTask>?)null;
        var context = new JobContext(job, completeInTransaction);
        var outcome = "succeeded";
        var keepHeld = false;
        try
        {
            if (job.Attempt > job.MaxAttempts)
            {
                throw new JobPayloadException($"Job {job.Id} ran out of attempts ({job.MaxAttempts}) before this one started: earlier attempts lost their leases.");
            }

            var registration = _registry.Find(job.Kind);
            if (registration?.Invoke is null)
            {
                throw new InvalidOperationException($"This worker ({_worker}) has no handler for job kind '{job.Kind}' on queue '{_queue}'.");
            }

            var scope = _scopes.CreateAsyncScope();
            await using (scope.ConfigureAwait(false))
            {
                await registration.Invoke(scope.ServiceProvider, job.Payload, _options.SerializerOptions, context, held.CancellationToken).ConfigureAwait(false);
            }

            if (context.CompletedInTransaction)
            {
                outcome = "succeeded";
            }
            else if (context.SnoozeDelay is { } delay)
            {
                outcome = "snoozed";
                await _backend.RetryAsync(job.Token, _timeProvider.GetUtcNow() + delay, null, refundAttempt: true, CancellationToken.None).ConfigureAwait(false);
                LogSnoozedOrCancelled(_logger, job.Id, _queue, outcome);
            }
            else if (context.CancelReason is { } reason)
            {
                outcome = "cancelled";
                var now = _timeProvider.GetUtcNow();
                await _backend.FinishAsync(job.Token, JobState.Cancelled, new JobError(job.Attempt, now, "Cancelled", reason), now, now + _options.CancelledRetention, CancellationToken.None).ConfigureAwait(false);
                LogSnoozedOrCancelled(_logger, job.Id, _queue, outcome);
            }
            else
            {
                keepHeld = true;
                _acks.Enqueue(job.Token);
            }
        }
        catch (OperationCanceledException) when (held.Lost)
        {
            // Another worker holds the job now; this attempt's result does not count.
            outcome = "lease_lost";
        }
        catch (OperationCanceledException ex) when (_hardStop.IsCancellationRequested)
        {
            outcome = "interrupted";
            await TryAsync(() => _backend.RetryAsync(job.Token, _timeProvider.GetUtcNow(), new JobError(job.Attempt, _timeProvider.GetUtcNow(), "Interrupted", "The worker shut down before the handler finished: " + ex.Message), refundAttempt: true, CancellationToken.None)).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            var now = _timeProvider.GetUtcNow();
            var error = ex is JobPayloadException
                ? new JobError(job.Attempt, now, "PayloadUnreadable", JobErrors.Truncate(ex.Message))
                : JobErrors.FromException(job.Attempt, now, ex);
            if (ex is JobPayloadException || job.Attempt >= job.MaxAttempts)
            {
                outcome = "dead";
                LogDead(_logger, ex, job.Id, job.Kind, _queue, job.Attempt);
                await TryAsync(() => _backend.FinishAsync(job.Token, JobState.Dead, error, now, now + _options.DeadRetention, CancellationToken.None)).ConfigureAwait(false);
            }
            else
            {
                outcome = "failed";
                var retry = (_registry.Find(job.Kind)?.Options.Retry ?? _options.Retry).GetDelay(job.Attempt);
                LogFailed(_logger, ex, job.Id, job.Kind, _queue, job.Attempt, job.MaxAttempts, retry);
                await TryAsync(() => _backend.RetryAsync(job.Token, now + retry, error, refundAttempt: false, CancellationToken.None)).ConfigureAwait(false);
            }
        }
        finally
        {
            activity?.SetTag("pgqueue.outcome", outcome);
            _metrics.Finished(_queue, outcome, stopwatch.Elapsed);
            Done(job, keepHeld);
        }
    }

    private void Done(ClaimedJob job, bool keepHeld)
    {
        if (!keepHeld)
        {
            Release(job.Token);
        }

        Interlocked.Decrement(ref _outstanding);
        Signal();
    }

    private void Signal()
    {
        foreach (var signal in _signals)
        {
            signal.Writer.TryWrite(true);
        }
    }

    private async Task TryAsync(Func<ValueTask<bool>> action)
    {
        try
        {
            if (!await action().ConfigureAwait(false))
            {
                LogStale(_logger, _queue);
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // The lease expires and the job is rescued; nothing is lost.
            LogWorkerError(_logger, ex, _queue);
        }
    }

    private List<JobToken> TakeAcks(int max)
    {
        var acks = new List<JobToken>();
        while (acks.Count < max && _acks.TryDequeue(out var token))
        {
            acks.Add(token);
        }

        return acks;
    }

    private void Forget(IReadOnlyList<JobToken> acks)
    {
        foreach (var ack in acks)
        {
            Release(ack);
        }
    }

    // Removes the entry of this attempt only: a newer claim of the same job keeps its own.
    private void Release(JobToken token)
    {
        if (_held.TryGetValue(token.Id, out var held) && held.Token == token && _held.TryRemove(KeyValuePair.Create(token.Id, held)))
        {
            held.Dispose();
        }
    }

    private async Task<bool> WaitForSignalAsync(Channel<bool> signal)
    {
        using var timeout = new CancellationTokenSource(_options.PollInterval, _timeProvider);
        try
        {
            await signal.Reader.ReadAsync(timeout.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private async Task DelayAsync(Channel<bool> signal, TimeSpan delay)
    {
        using var timeout = new CancellationTokenSource(delay, _timeProvider);
        try
        {
            while (!_stopping)
            {
                await signal.Reader.ReadAsync(timeout.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static Activity? StartActivity(ClaimedJob job)
    {
        if (!PgQueueMetrics.ActivitySource.HasListeners())
        {
            return null;
        }

        ActivityContext.TryParse(job.TraceParent, null, out var parent);
        var activity = PgQueueMetrics.ActivitySource.StartActivity("pgqueue.job " + job.Kind, ActivityKind.Consumer, parent);
        activity?.SetTag("pgqueue.queue", job.Queue);
        activity?.SetTag("pgqueue.job.id", job.Id);
        activity?.SetTag("pgqueue.job.attempt", job.Attempt);
        return activity;
    }

    [LoggerMessage(EventId = PgQueueEventIds.JobFailed, Level = LogLevel.Warning, Message = "Job {JobId} ({Kind}) on queue {Queue} failed attempt {Attempt} of {MaxAttempts}; retrying in {RetryIn}.")]
    private static partial void LogFailed(ILogger logger, Exception exception, long jobId, string kind, string queue, int attempt, int maxAttempts, TimeSpan retryIn);

    [LoggerMessage(EventId = PgQueueEventIds.JobDead, Level = LogLevel.Error, Message = "Job {JobId} ({Kind}) on queue {Queue} is dead after attempt {Attempt}.")]
    private static partial void LogDead(ILogger logger, Exception exception, long jobId, string kind, string queue, int attempt);

    [LoggerMessage(EventId = PgQueueEventIds.WorkerError, Level = LogLevel.Warning, Message = "A worker of queue {Queue} could not reach the job store; it backs off and retries.")]
    private static partial void LogWorkerError(ILogger logger, Exception exception, string queue);

    [LoggerMessage(EventId = PgQueueEventIds.LeaseLost, Level = LogLevel.Warning, Message = "Job {JobId} on queue {Queue} lost its lease; its handler is cancelled and another attempt owns it.")]
    private static partial void LogLeaseLost(ILogger logger, long jobId, string queue);

    [LoggerMessage(EventId = PgQueueEventIds.StaleCompletion, Level = LogLevel.Warning, Message = "A result for a job on queue {Queue} was refused: its lease token is stale.")]
    private static partial void LogStale(ILogger logger, string queue);

    [LoggerMessage(EventId = PgQueueEventIds.ShutdownTimedOut, Level = LogLevel.Warning, Message = "Queue {Queue}: {Count} jobs still running after the shutdown grace period; cancelling them.")]
    private static partial void LogShutdownTimedOut(ILogger logger, string queue, int count);

    [LoggerMessage(EventId = PgQueueEventIds.WorkersStopped, Level = LogLevel.Information, Message = "Queue {Queue} stopped; {Released} prefetched jobs returned unspent.")]
    private static partial void LogStopped(ILogger logger, string queue, int released);

    [LoggerMessage(EventId = PgQueueEventIds.JobSnoozedOrCancelled, Level = LogLevel.Debug, Message = "Job {JobId} on queue {Queue} {Outcome} by its handler.")]
    private static partial void LogSnoozedOrCancelled(ILogger logger, long jobId, string queue, string outcome);

    private sealed class HeldJob(JobToken token, CancellationToken hardStop) : IDisposable
    {
        private readonly CancellationTokenSource _cancel = CancellationTokenSource.CreateLinkedTokenSource(hardStop);

        public JobToken Token { get; } = token;

        public bool Lost { get; private set; }

        public CancellationToken CancellationToken => _cancel.Token;

        public void MarkLost()
        {
            Lost = true;
            try
            {
                _cancel.Cancel();
            }
            catch (ObjectDisposedException)
            {
            }
        }

        public void Dispose() => _cancel.Dispose();
    }
}
