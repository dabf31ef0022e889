namespace PgQueue;

/// <summary>
/// A job store: PostgreSQL (<see cref="PostgresJobQueueBackend"/>) or Redis Streams (in PgFirst.Redis). The queue,
/// the workers and the manager sit on top of it; applications use those, not this.
/// </summary>
/// <remarks>
/// Every operation on a claimed job carries its <see cref="JobToken"/>, and a store refuses one whose lease token is
/// not the job's current one. Times come from the caller's clock.
/// </remarks>
public interface IJobQueueBackend
{
    /// <summary>Gets the backend's name for metrics and logs: <c>postgresql</c> or <c>redis</c>.</summary>
    string Name { get; }

    /// <summary>Enqueues one job, or reports the holder of its unique key.</summary>
    /// <param name="request">The job.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The result.</returns>
    ValueTask<JobEnqueueResult> EnqueueAsync(JobEnqueueRequest request, CancellationToken cancellationToken);

    /// <summary>Enqueues many jobs in as few round trips as the store allows.</summary>
    /// <param name="requests">The jobs.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>How many were enqueued and how many were duplicates.</returns>
    ValueTask<JobBatchEnqueueResult> EnqueueManyAsync(IReadOnlyList<JobEnqueueRequest> requests, CancellationToken cancellationToken);

    /// <summary>
    /// Finishes the successes in <see cref="JobClaimRequest.Succeeded"/> (if any), then claims up to
    /// <see cref="JobClaimRequest.Count"/> available jobs of the queue, highest priority first, leased until
    /// <see cref="JobClaimRequest.LeaseExpiresAt"/>; both in one round trip where the store allows.
    /// </summary>
    /// <param name="request">The claim.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The claimed jobs, with incremented attempt and a new lease token.</returns>
    ValueTask<IReadOnlyList<ClaimedJob>> ClaimAsync(JobClaimRequest request, CancellationToken cancellationToken);

    /// <summary>Finishes jobs as succeeded, kept until <paramref name="deleteAfter"/>.</summary>
    /// <param name="jobs">The jobs and their lease tokens.</param>
    /// <param name="now">The finish time.</param>
    /// <param name="deleteAfter">When the finished rows may be deleted.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>How many were finished; the rest had stale tokens.</returns>
    ValueTask<int> CompleteAsync(IReadOnlyList<JobToken> jobs, DateTimeOffset now, DateTimeOffset deleteAfter, CancellationToken cancellationToken);

    /// <summary>Schedules a claimed job to run again at <paramref name="runAt"/>.</summary>
    /// <param name="job">The job and its lease token.</param>
    /// <param name="runAt">When it becomes available again.</param>
    /// <param name="jobError">The error to append to its history, or <see langword="null"/> for a snooze.</param>
    /// <param name="refundAttempt"><see langword="true"/> to give the attempt back (a snooze).</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns><see langword="false"/> when the token was stale.</returns>
    ValueTask<bool> RetryAsync(JobToken job, DateTimeOffset runAt, JobError? jobError, bool refundAttempt, CancellationToken cancellationToken);

    /// <summary>Finishes a claimed job as <see cref="JobState.Cancelled"/> or <see cref="JobState.Dead"/>.</summary>
    /// <param name="job">The job and its lease token.</param>
    /// <param name="state">Cancelled or dead.</param>
    /// <param name="jobError">The error (or reason) to append to its history.</param>
    /// <param name="now">The finish time.</param>
    /// <param name="deleteAfter">When the finished row may be deleted.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns><see langword="false"/> when the token was stale.</returns>
    ValueTask<bool> FinishAsync(JobToken job, JobState state, JobError jobError, DateTimeOffset now, DateTimeOffset deleteAfter, CancellationToken cancellationToken);

    /// <summary>Extends the leases of running jobs to <paramref name="leaseExpiresAt"/>.</summary>
    /// <param name="jobs">The jobs and their lease tokens.</param>
    /// <param name="leaseExpiresAt">The new expiry.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The jobs whose lease was lost (stale token or gone).</returns>
    ValueTask<IReadOnlyList<JobToken>> ExtendLeasesAsync(IReadOnlyList<JobToken> jobs, DateTimeOffset leaseExpiresAt, CancellationToken cancellationToken);

    /// <summary>Returns claimed jobs that never started to the queue, giving their attempt back (graceful shutdown).</summary>
    /// <param name="jobs">The jobs and their lease tokens.</param>
    /// <param name="now">The time they become available.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>How many were returned.</returns>
    ValueTask<int> ReleaseAsync(IReadOnlyList<JobToken> jobs, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Makes due scheduled jobs and jobs with expired leases available.</summary>
    /// <param name="now">The time.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The queues that got work, with how many jobs each.</returns>
    ValueTask<IReadOnlyList<KeyValuePair<string, int>>> PromoteAsync(DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Sends a wake-up for each queue to the workers of every process.</summary>
    /// <param name="queues">The queues.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes when sent.</returns>
    ValueTask NotifyAsync(IReadOnlyCollection<string> queues, CancellationToken cancellationToken);

    /// <summary>
    /// Gets a value indicating whether <see cref="ListenAsync"/> can hear wake-ups on this store's connections; when
    /// <see langword="false"/> (behind a transaction pooler without a direct listen connection) workers only poll.
    /// </summary>
    bool CanListen => true;

    /// <summary>
    /// Listens for wake-ups until <paramref name="cancellationToken"/> fires, calling <paramref name="onWake"/> with
    /// each queue, and <paramref name="onConnected"/> after each (re)connection (wake-ups may have been missed before it).
    /// Returns only on cancellation; throws when the connection fails (the caller reconnects).
    /// </summary>
    /// <param name="onWake">Called with a queue name.</param>
    /// <param name="onConnected">Called when listening starts.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes on cancellation.</returns>
    Task ListenAsync(Action<string> onWake, Action onConnected, CancellationToken cancellationToken);

    /// <summary>Reads one job, wherever it is.</summary>
    /// <param name="id">The job id.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The job, or <see langword="null"/> when unknown (or deleted by retention).</returns>
    ValueTask<JobInfo?> GetJobAsync(long id, CancellationToken cancellationToken);

    /// <summary>Lists finished jobs of a state, newest first.</summary>
    /// <param name="queue">The queue, or <see langword="null"/> for all.</param>
    /// <param name="state">Dead, cancelled or succeeded.</param>
    /// <param name="limit">The most to return.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The jobs.</returns>
    ValueTask<IReadOnlyList<JobInfo>> ListFinishedAsync(string? queue, JobState state, int limit, CancellationToken cancellationToken);

    /// <summary>Moves a dead or cancelled job back to its queue with fresh attempts.</summary>
    /// <param name="id">The job id.</param>
    /// <param name="now">The time it becomes available.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns><see langword="true"/> when requeued; <see langword="false"/> when not dead/cancelled, or its unique key is held by another job.</returns>
    ValueTask<bool> RequeueAsync(long id, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Cancels a job that is available or scheduled (a running one is left to finish).</summary>
    /// <param name="id">The job id.</param>
    /// <param name="now">The time.</param>
    /// <param name="deleteAfter">When the finished row may be deleted.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns><see langword="true"/> when cancelled.</returns>
    ValueTask<bool> CancelAsync(long id, DateTimeOffset now, DateTimeOffset deleteAfter, CancellationToken cancellationToken);

    /// <summary>Reads each queue's depth by state, each count capped at <paramref name="cap"/>.</summary>
    /// <param name="queues">The queues.</param>
    /// <param name="cap">The cap.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>One entry per queue, in order.</returns>
    ValueTask<IReadOnlyList<QueueStats>> GetStatsAsync(IReadOnlyList<string> queues, int cap, CancellationToken cancellationToken);

    /// <summary>Creates or updates a recurring job's definition; keeps its schedule when cron and time zone are unchanged.</summary>
    /// <param name="definition">The definition.</param>
    /// <param name="nextRunAt">Its next occurrence, used when the definition is new or its schedule changed.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes when stored.</returns>
    ValueTask UpsertRecurringAsync(RecurringJobDefinition definition, DateTimeOffset nextRunAt, CancellationToken cancellationToken);

    /// <summary>
    /// Enqueues one job for each recurring definition that is due at <paramref name="now"/> and moves it to the
    /// occurrence <paramref name="nextOccurrence"/> returns, atomically, so each occurrence fires once across all instances.
    /// </summary>
    /// <param name="now">The time.</param>
    /// <param name="nextOccurrence">Returns a definition's next occurrence after a time.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The names of the definitions that fired.</returns>
    ValueTask<IReadOnlyList<string>> RunDueRecurringAsync(DateTimeOffset now, Func<RecurringJobDefinition, DateTimeOffset, DateTimeOffset> nextOccurrence, CancellationToken cancellationToken);

    /// <summary>Deletes finished jobs past their retention, at most <paramref name="batchSize"/>.</summary>
    /// <param name="batchSize">The most to delete.</param>
    /// <param name="now">The time.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>How many were deleted.</returns>
    ValueTask<int> DeleteFinishedAsync(int batchSize, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Lists every queue with a job in any state, for an operator. The default implementation throws <see cref="NotSupportedException"/>.</summary>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The queue names, in ordinal order.</returns>
    ValueTask<IReadOnlyList<string>> ListQueuesAsync(CancellationToken cancellationToken) =>
        throw new NotSupportedException($"{GetType().Name} does not list queues.");

    /// <summary>
    /// Reads each queue's activity: how long its oldest due job has waited (a few index probes per queue) and, when
    /// <paramref name="since"/> is given, the jobs that finished since then by state (succeeded ones only as far as
    /// <c>SucceededRetention</c> keeps them; this part reads the finished jobs of the window, which has no index of
    /// its own). The default implementation throws <see cref="NotSupportedException"/>.
    /// </summary>
    /// <param name="queues">The queues.</param>
    /// <param name="now">The current time (what is due).</param>
    /// <param name="since">The start of the window, or <see langword="null"/> to skip the finished counts.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>One entry per queue, in order.</returns>
    ValueTask<IReadOnlyList<QueueActivity>> GetActivityAsync(IReadOnlyList<string> queues, DateTimeOffset now, DateTimeOffset? since, CancellationToken cancellationToken) =>
        throw new NotSupportedException($"{GetType().Name} does not report queue activity.");

    /// <summary>
    /// Lists the ids of a queue's dead jobs that died at or before <paramref name="diedAtOrBefore"/>, newest first,
    /// after the position <paramref name="after"/> (keyset paging on the dead-job index, so a page never returns a
    /// job twice and jobs that die later are not reached). The default implementation throws <see cref="NotSupportedException"/>.
    /// </summary>
    /// <param name="queue">The queue.</param>
    /// <param name="diedAtOrBefore">The newest death to include.</param>
    /// <param name="after">The last (finished_at, id) of the previous page, or <see langword="null"/> for the first page.</param>
    /// <param name="limit">The page size.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The page: each job's id and when it died.</returns>
    ValueTask<IReadOnlyList<(long Id, DateTimeOffset DiedAt)>> ListDeadPageAsync(string queue, DateTimeOffset diedAtOrBefore, (DateTimeOffset DiedAt, long Id)? after, int limit, CancellationToken cancellationToken) =>
        throw new NotSupportedException($"{GetType().Name} does not page dead jobs.");

    /// <summary>
    /// Counts the finished jobs (succeeded, cancelled, dead) that finished before <paramref name="finishedBefore"/>.
    /// The default implementation throws <see cref="NotSupportedException"/>.
    /// </summary>
    /// <param name="finishedBefore">The cut-off.</param>
    /// <param name="queue">A queue, or <see langword="null"/> for all.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>How many there are.</returns>
    ValueTask<long> CountFinishedBeforeAsync(DateTimeOffset finishedBefore, string? queue, CancellationToken cancellationToken) =>
        throw new NotSupportedException($"{GetType().Name} does not count finished jobs.");

    /// <summary>
    /// Deletes, among the finished jobs whose ids are in [<paramref name="fromId"/>, <paramref name="toId"/>), those
    /// that finished before <paramref name="finishedBefore"/>, whatever their retention: one short statement on a
    /// primary-key range, so a purge walks a large table in bounded steps. The default implementation throws
    /// <see cref="NotSupportedException"/>.
    /// </summary>
    /// <param name="finishedBefore">The cut-off.</param>
    /// <param name="queue">A queue, or <see langword="null"/> for all.</param>
    /// <param name="fromId">The first id of the range.</param>
    /// <param name="toId">The id after the range.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>How many were deleted.</returns>
    ValueTask<long> PurgeFinishedRangeAsync(DateTimeOffset finishedBefore, string? queue, long fromId, long toId, CancellationToken cancellationToken) =>
        throw new NotSupportedException($"{GetType().Name} does not purge finished jobs.");

    /// <summary>Reads the smallest and largest id of the finished jobs from <paramref name="fromId"/> on, or <see langword="null"/> when there is none. The default implementation throws <see cref="NotSupportedException"/>.</summary>
    /// <param name="fromId">The smallest id to consider.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The id range.</returns>
    ValueTask<(long First, long Last)?> GetFinishedIdRangeAsync(long fromId, CancellationToken cancellationToken) =>
        throw new NotSupportedException($"{GetType().Name} does not purge finished jobs.");

    /// <summary>Checks the store answers and its schema is there.</summary>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes when it answered.</returns>
    ValueTask PingAsync(CancellationToken cancellationToken);
}

/// <summary>A claimed job and the lease token of its current attempt.</summary>
/// <param name="Id">The job id.</param>
/// <param name="Lease">The lease token.</param>
public readonly record struct JobToken(long Id, long Lease);

/// <summary>A job to enqueue, validated and serialized.</summary>
public sealed record JobEnqueueRequest
{
    /// <summary>Gets the queue.</summary>
    public required string Queue { get; init; }

    /// <summary>Gets the kind.</summary>
    public required string Kind { get; init; }

    /// <summary>Gets the JSON payload.</summary>
    public required string Payload { get; init; }

    /// <summary>Gets the priority.</summary>
    public short Priority { get; init; }

    /// <summary>Gets when the job becomes available.</summary>
    public required DateTimeOffset RunAt { get; init; }

    /// <summary>Gets a value indicating whether the job is delayed (<see cref="RunAt"/> is after <see cref="EnqueuedAt"/>).</summary>
    public bool Delayed => RunAt > EnqueuedAt;

    /// <summary>Gets the attempts allowed.</summary>
    public required int MaxAttempts { get; init; }

    /// <summary>Gets the unique key, if any.</summary>
    public string? UniqueKey { get; init; }

    /// <summary>Gets the enqueue time.</summary>
    public required DateTimeOffset EnqueuedAt { get; init; }

    /// <summary>Gets the W3C trace parent of the enqueuing activity, if any.</summary>
    public string? TraceParent { get; init; }

    /// <summary>Gets a value indicating whether the store should notify the queue's workers (the producer's debouncer decides).</summary>
    public bool Notify { get; init; }
}

/// <summary>A claim of available jobs.</summary>
public sealed record JobClaimRequest
{
    /// <summary>Gets the queue.</summary>
    public required string Queue { get; init; }

    /// <summary>Gets the most jobs to claim (zero: only finish <see cref="Succeeded"/>).</summary>
    public required int Count { get; init; }

    /// <summary>Gets the worker name.</summary>
    public required string Worker { get; init; }

    /// <summary>Gets the claim time.</summary>
    public required DateTimeOffset Now { get; init; }

    /// <summary>Gets the lease expiry of claimed jobs.</summary>
    public required DateTimeOffset LeaseExpiresAt { get; init; }

    /// <summary>Gets succeeded jobs to finish first, in the same round trip.</summary>
    public IReadOnlyList<JobToken> Succeeded { get; init; } = [];

    /// <summary>Gets when the succeeded jobs may be deleted.</summary>
    public DateTimeOffset SucceededDeleteAfter { get; init; }

    /// <summary>
    /// Gets a value indicating whether the store may commit this claim (and its acknowledgements) without waiting for
    /// durable storage: losing it in a crash only makes its jobs run again, which at-least-once delivery allows.
    /// </summary>
    public bool AsynchronousCommit { get; init; }
}

/// <summary>A job claimed by a worker.</summary>
public sealed record ClaimedJob
{
    /// <summary>Gets the job id.</summary>
    public required long Id { get; init; }

    /// <summary>Gets this attempt's lease token.</summary>
    public required long Lease { get; init; }

    /// <summary>Gets the queue.</summary>
    public required string Queue { get; init; }

    /// <summary>Gets the kind.</summary>
    public required string Kind { get; init; }

    /// <summary>Gets the JSON payload.</summary>
    public required string Payload { get; init; }

    /// <summary>Gets this attempt's number (1-based).</summary>
    public required int Attempt { get; init; }

    /// <summary>Gets the attempts allowed.</summary>
    public required int MaxAttempts { get; init; }

    /// <summary>Gets when the job was enqueued.</summary>
    public required DateTimeOffset EnqueuedAt { get; init; }

    /// <summary>Gets when it became available (its run-at when it was scheduled), for enqueue-to-start latency.</summary>
    public DateTimeOffset AvailableAt { get; init; }

    /// <summary>Gets the trace parent recorded at enqueue.</summary>
    public string? TraceParent { get; init; }

    /// <summary>Gets the history of failed attempts.</summary>
    public IReadOnlyList<JobError> Errors { get; init; } = [];

    /// <summary>Gets the token of this attempt.</summary>
    public JobToken Token => new(Id, Lease);
}

/// <summary>A recurring job: a payload enqueued at each occurrence of a cron expression.</summary>
public sealed record RecurringJobDefinition
{
    /// <summary>Gets the unique name.</summary>
    public required string Name { get; init; }

    /// <summary>Gets the cron expression (5 fields, or 6 with seconds).</summary>
    public required string Cron { get; init; }

    /// <summary>Gets the IANA or Windows time zone id the expression is read in.</summary>
    public required string TimeZone { get; init; }

    /// <summary>Gets the queue.</summary>
    public required string Queue { get; init; }

    /// <summary>Gets the kind.</summary>
    public required string Kind { get; init; }

    /// <summary>Gets the JSON payload.</summary>
    public required string Payload { get; init; }

    /// <summary>Gets the priority.</summary>
    public short Priority { get; init; }

    /// <summary>Gets the attempts allowed.</summary>
    public required int MaxAttempts { get; init; }
}
