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
    /// Reads each queue's depth by state, how long its oldest due job has waited, and how many jobs finished over the
    /// last <paramref name="window"/> (succeeded jobs as far as <see cref="PgQueueOptions.SucceededRetention"/> keeps them).
    /// </summary>
    /// <param name="queues">The queues, or <see langword="null"/> for every queue with a job.</param>
    /// <param name="window">The activity window (1 minute to 1 day).</param>
    /// <param name="cap">The cap of each depth count (1 to 1,000,000).</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>One entry per queue.</returns>
    /// <exception cref="NotSupportedException">The backend does not report activity.</exception>
    public async ValueTask<IReadOnlyList<QueueOverview>> GetOverviewAsync(IReadOnlyList<string>? queues, TimeSpan window, int cap = 10_000, CancellationToken cancellationToken = default)
    {
        if (window < TimeSpan.FromMinutes(1) || window > TimeSpan.FromDays(1))
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
    /// Moves every dead job of a queue back to it with fresh attempts (<see cref="RequeueAsync"/> one by one, newest
    /// first). A job whose unique key another job holds again stays dead and is counted as skipped.
    /// </summary>
    /// <param name="queue">The queue.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>How many were requeued, and how many stayed dead.</returns>
    public async ValueTask<(int Requeued, int Skipped)> RequeueDeadAsync(string queue, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(queue);
        var seen = new HashSet<long>();
        int requeued = 0, skipped = 0;
        while (true)
        {
            var page = await _backend.ListFinishedAsync(queue, JobState.Dead, 1000, cancellationToken).ConfigureAwait(false);
            var fresh = page.Where(j => seen.Add(j.Id)).ToList();
            if (fresh.Count == 0)
            {
                return (requeued, skipped);
            }

            foreach (var job in fresh)
            {
                if (await RequeueAsync(job.Id, cancellationToken).ConfigureAwait(false))
                {
                    requeued++;
                }
                else
                {
                    skipped++;
                }
            }
        }
    }

    /// <summary>
    /// Deletes finished jobs (succeeded, cancelled, dead) that finished before a time, whatever their retention; with
    /// <paramref name="dryRun"/>, counts them and deletes nothing.
    /// </summary>
    /// <param name="finishedBefore">The cut-off.</param>
    /// <param name="queue">A queue, or <see langword="null"/> for all.</param>
    /// <param name="dryRun">Whether to count only.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>How many were (or would be) deleted.</returns>
    /// <exception cref="NotSupportedException">The backend cannot purge.</exception>
    public ValueTask<long> PurgeFinishedAsync(DateTimeOffset finishedBefore, string? queue = null, bool dryRun = false, CancellationToken cancellationToken = default) =>
        _backend.PurgeFinishedAsync(finishedBefore, queue, dryRun, cancellationToken);

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
