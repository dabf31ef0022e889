using Npgsql;

namespace PgQueue;

/// <summary>
/// What a handler knows about the job it runs, and how it ends it other than by returning or throwing.
/// </summary>
public sealed class JobContext
{
    private readonly Func<NpgsqlTransaction, CancellationToken, ValueTask>? _completeInTransaction;

    internal JobContext(ClaimedJob job, Func<NpgsqlTransaction, CancellationToken, ValueTask>? completeInTransaction)
    {
        Id = job.Id;
        Queue = job.Queue;
        Kind = job.Kind;
        Attempt = job.Attempt;
        MaxAttempts = job.MaxAttempts;
        EnqueuedAt = job.EnqueuedAt;
        Errors = job.Errors;
        LeaseToken = job.Lease;
        _completeInTransaction = completeInTransaction;
    }

    /// <summary>Gets the job id.</summary>
    public long Id { get; }

    /// <summary>Gets the queue.</summary>
    public string Queue { get; }

    /// <summary>Gets the kind.</summary>
    public string Kind { get; }

    /// <summary>Gets this attempt's number (1 for the first).</summary>
    public int Attempt { get; }

    /// <summary>Gets the attempts allowed.</summary>
    public int MaxAttempts { get; }

    /// <summary>Gets when the job was enqueued.</summary>
    public DateTimeOffset EnqueuedAt { get; }

    /// <summary>Gets the errors of earlier attempts, oldest first.</summary>
    public IReadOnlyList<JobError> Errors { get; }

    /// <summary>Gets this attempt's lease token.</summary>
    public long LeaseToken { get; }

    internal TimeSpan? SnoozeDelay { get; private set; }

    internal string? CancelReason { get; private set; }

    internal bool CompletedInTransaction { get; private set; }

    /// <summary>
    /// Asks for the job to run again after <paramref name="delay"/> without spending an attempt (a rate-limited API,
    /// a resource not ready yet). Takes effect when the handler returns.
    /// </summary>
    /// <param name="delay">The delay; must be positive and at most 365 days.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="delay"/> is not positive or too long.</exception>
    public void Snooze(TimeSpan delay)
    {
        if (delay <= TimeSpan.Zero || delay > TimeSpan.FromDays(365))
        {
            throw new ArgumentOutOfRangeException(nameof(delay), delay, "A snooze must be positive and at most 365 days.");
        }

        SnoozeDelay = delay;
        CancelReason = null;
    }

    /// <summary>
    /// Asks for the job to end as <see cref="JobState.Cancelled"/> without retrying. Takes effect when the handler returns.
    /// </summary>
    /// <param name="reason">Why; kept in the job's error history.</param>
    public void Cancel(string reason)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
        CancelReason = reason;
        SnoozeDelay = null;
    }

    /// <summary>
    /// Completes the job inside <paramref name="transaction"/>: the job is finished if and only if the transaction
    /// commits, so the handler's database work happens exactly once even when a worker dies mid-job. Call it after
    /// the work and before committing. PostgreSQL backend only.
    /// </summary>
    /// <param name="transaction">An open transaction on the job store's database.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes when the completion is part of the transaction.</returns>
    /// <exception cref="JobLeaseLostException">This attempt lost its lease; let it propagate so the transaction rolls back.</exception>
    /// <exception cref="NotSupportedException">The queue runs on Redis.</exception>
    public async ValueTask CompleteAsync(NpgsqlTransaction transaction, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        if (_completeInTransaction is null)
        {
            throw new NotSupportedException("Completing a job inside a database transaction needs the PostgreSQL backend.");
        }

        await _completeInTransaction(transaction, cancellationToken).ConfigureAwait(false);
        CompletedInTransaction = true;
    }
}
