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
