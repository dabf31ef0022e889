namespace PgQueue;

/// <summary>
/// Inspection and repair: read a job, list dead ones, requeue or cancel, and read queue depths for dashboards.
/// Registered by <c>services.AddPgQueue(...)</c>.
/// </summary>
public sealed class JobQueueManager
{
    private readonly IJobQueueBackend _backend;
    private readonly PgQueueOptions _options;
    private readonly TimeProvider _timeProvider;

    /// <summary>Initializes a new instance of the <see cref="JobQueueManager"/> class.</summary>
    /// <param name="backend">The job store.</param>
    /// <param name="options">The options.</param>
    /// <param name="timeProvider">The clock.</param>
    public JobQueueManager(IJobQueueBackend backend, PgQueueOptions options, TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _backend = backend;
        _options = options;
        _timeProvider = timeProvider;
    }

    /// <summary>Reads one job in any state.</summary>
    /// <param name="id">The job id.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The job, or <see langword="null"/> when unknown or removed by retention.</returns>
    public ValueTask<JobInfo?> GetJobAsync(long id, CancellationToken cancellationToken = default) => _backend.GetJobAsync(id, cancellationToken);

    /// <summary>Lists dead jobs, newest first, with their error history.</summary>
    /// <param name="queue">A queue, or <see langword="null"/> for all.</param>
    /// <param name="limit">The most to return (1 to 1000).</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The dead jobs.</returns>
    public ValueTask<IReadOnlyList<JobInfo>> ListDeadAsync(string? queue = null, int limit = 100, CancellationToken cancellationToken = default) =>
        ListAsync(queue, JobState.Dead, limit, cancellationToken);

    /// <summary>Lists finished jobs of one state (succeeded, cancelled or dead), newest first.</summary>
    /// <param name="queue">A queue, or <see langword="null"/> for all.</param>
    /// <param name="state">The state.</param>
    /// <param name="limit">The most to return (1 to 1000).</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The jobs.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The state is not a finished one, or the limit is out of range.</exception>
    public ValueTask<IReadOnlyList<JobInfo>> ListAsync(string? queue, JobState state, int limit = 100, CancellationToken cancellationToken = default)
    {
        if (state is not (JobState.Succeeded or JobState.Cancelled or JobState.Dead))
        {
            throw new ArgumentOutOfRangeException(nameof(state), state, "Only finished states (Succeeded, Cancelled, Dead) can be listed.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(limit, 1000);
        return _backend.ListFinishedAsync(queue, state, limit, cancellationToken);
    }

    /// <summary>Moves a dead or cancelled job back to its queue with fresh attempts; its error history is kept.</summary>
    /// <param name="id">The job id.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns><see langword="true"/> when requeued; <see langword="false"/> when it is not dead or cancelled, or another job holds its unique key.</returns>
    public ValueTask<bool> RequeueAsync(long id, CancellationToken cancellationToken = default) =>
        _backend.RequeueAsync(id, _timeProvider.GetUtcNow(), cancellationToken);

    /// <summary>Cancels a job that has not started (available or scheduled). A running job is left to finish.</summary>
    /// <param name="id">The job id.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns><see langword="true"/> when cancelled.</returns>
    public ValueTask<bool> CancelAsync(long id, CancellationToken cancellationToken = default)
    {
        var now = _timeProvider.GetUtcNow();
        return _backend.CancelAsync(id, now, now + _options.CancelledRetention, cancellationToken);
    }

    /// <summary>Reads the depth of each queue by state, each count exact up to <paramref name="cap"/>.</summary>
    /// <param name="queues">The queues.</param>
    /// <param name="cap">The cap of each count (1 to 1,000,000).</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>One entry per queue, in order.</returns>
    public ValueTask<IReadOnlyList<QueueStats>> GetStatsAsync(IReadOnlyList<string> queues, int cap = 10_000, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queues);
        ArgumentOutOfRangeException.ThrowIfLessThan(cap, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(cap, 1_000_000);
        return _backend.GetStatsAsync(queues, cap, cancellationToken);
    }

    /// <summary>Lists every queue that has a job in any state.</summary>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The queue names, in ordinal order.</returns>
    /// <exception cref="NotSupportedException">The backend cannot list queues.</exception>
    public ValueTask<IReadOnlyList<string>> ListQueuesAsync(CancellationToken cancellationToken = default) => _backend.ListQueuesAsync(cancellationToken);

    /// <summary>
    /// Reads each queue's depth by state and how long its oldest due job has waited (index probes only) and, with a
    /// <paramref name="window"/>, how many jobs finished over it (succeeded jobs as far as
    /// <see cref="PgQueueOptions.SucceededRetention"/> keeps them; this reads the window's finished jobs).
    /// </summary>
    /// <param name="queues">The queues, or <see langword="null"/> for every queue with a job (which reads every job's queue name once).</param>
    /// <param name="window">The window of the finished counts (1 minute to 1 day), or <see langword="null"/> to skip them.</param>
    /// <param name="cap">The cap of each depth count (1 to 1,000,000).</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>One entry per queue.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The window or the cap is out of range.</exception>
    /// <exception cref="NotSupportedException">The backend does not report activity.</exception>
    public async ValueTask<IReadOnlyList<QueueOverview>> GetOverviewAsync(IReadOnlyList<string>? queues, TimeSpan? window, int cap = 10_000, CancellationToken cancellationToken = default)
    {
        if (window is { } w && (w < TimeSpan.FromMinutes(1) || w > TimeSpan.FromDays(1)))
        {
            throw new ArgumentOutOfRangeException(nameof(window), window, "The activity window is between 1 minute and 1 day.");
        }

        queues ??= await _backend.ListQueuesAsync(cancellationToken).ConfigureAwait(false);
        var depth = await GetStatsAsync(queues, cap, cancellationToken).ConfigureAwait(false);
        var now = _timeProvider.GetUtcNow();
        var activity = await _backend.GetActivityAsync(queues, now, now - window, cancellationToken).ConfigureAwait(false);
        var overview = new List<QueueOverview>(queues.Count);
        for (var i = 0; i < depth.Count; i++)
        {
            var waiting = activity[i].OldestWaitingSince is { } since ? now - since : (TimeSpan?)null;
            overview.Add(new QueueOverview(depth[i], activity[i], window, waiting < TimeSpan.Zero ? TimeSpan.Zero : waiting));
        }

        return overview;
    }

    /// <summary>
    /// Moves every job of a queue that was dead when the call began back to the queue with fresh attempts
    /// (<see cref="RequeueAsync"/> one by one, newest first, paging by position so each dead job is tried once). A job
    /// whose unique key another job holds again stays dead and is counted as skipped; a job that dies again during
    /// the call is not tried a second time.
    /// </summary>
    /// <param name="queue">The queue.</param>
    /// <param name="batchSize">The dead jobs read per page (1 to 1,000).</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>How many were requeued, and how many stayed dead.</returns>
    /// <exception cref="NotSupportedException">The backend cannot page dead jobs.</exception>
    public async ValueTask<(int Requeued, int Skipped)> RequeueDeadAsync(string queue, int batchSize = 1000, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(queue);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(batchSize, 1000);
        var startedAt = _timeProvider.GetUtcNow();
        (DateTimeOffset, long)? after = null;
        int requeued = 0, skipped = 0;
        while (true)
        {
            var page = await _backend.ListDeadPageAsync(queue, startedAt, after, batchSize, cancellationToken).ConfigureAwait(false);
            foreach (var (id, _) in page)
            {
                if (await RequeueAsync(id, cancellationToken).ConfigureAwait(false))
                {
                    requeued++;
                }
                else
                {
                    skipped++;
                }
            }

            if (page.Count < batchSize)
            {
                return (requeued, skipped);
            }

            after = (page[^1].DiedAt, page[^1].Id);
        }
    }

    /// <summary>Counts the finished jobs (succeeded, cancelled, dead) that finished before a time: what <see cref="PurgeFinishedAsync"/> would delete.</summary>
    /// <param name="finishedBefore">The cut-off.</param>
    /// <param name="queue">A queue, or <see langword="null"/> for all.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>How many there are.</returns>
    /// <exception cref="NotSupportedException">The backend cannot count them.</exception>
    public ValueTask<long> CountFinishedBeforeAsync(DateTimeOffset finishedBefore, string? queue = null, CancellationToken cancellationToken = default) =>
        _backend.CountFinishedBeforeAsync(finishedBefore, queue, cancellationToken);

    /// <summary>
    /// Deletes the finished jobs (succeeded, cancelled, dead) that finished before a time, whatever their retention,
    /// walking the finished jobs' ids in ranges of <paramref name="batchSize"/> so that each statement is short (no
    /// long lock, no burst of WAL for a replica to catch up on).
    /// </summary>
    /// <param name="finishedBefore">The cut-off.</param>
    /// <param name="queue">A queue, or <see langword="null"/> for all.</param>
    /// <param name="batchSize">The ids per statement (100 to 1,000,000).</param>
    /// <param name="cancellationToken">The cancellation token; a cancelled purge keeps what it deleted so far.</param>
    /// <returns>How many were deleted.</returns>
    /// <exception cref="NotSupportedException">The backend cannot purge.</exception>
    public async ValueTask<long> PurgeFinishedAsync(DateTimeOffset finishedBefore, string? queue = null, int batchSize = 10_000, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 100);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(batchSize, 1_000_000);
        // Ranges of ids, each deleted by one statement; empty stretches (ids of jobs not kept) are skipped over.
        long deleted = 0;
        var next = long.MinValue;
        while (await _backend.GetFinishedIdRangeAsync(next, cancellationToken).ConfigureAwait(false) is var (from, last))
        {
            var to = from > long.MaxValue - batchSize ? long.MaxValue : from + batchSize;
            deleted += await _backend.PurgeFinishedRangeAsync(finishedBefore, queue, from, to, cancellationToken).ConfigureAwait(false);
            if (to > last)
            {
                break;
            }

            next = to;
        }

        return deleted;
    }

    /// <summary>Deletes finished jobs past their retention, at most <paramref name="batchSize"/> (the maintenance runner does this on PostgreSQL).</summary>
    /// <param name="batchSize">The most to delete.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>How many were deleted.</returns>
    public ValueTask<int> DeleteFinishedAsync(int batchSize = 1000, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        return _backend.DeleteFinishedAsync(batchSize, _timeProvider.GetUtcNow(), cancellationToken);
    }
}
