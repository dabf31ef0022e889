namespace PgQueue;

/// <summary>
/// A job as stored, for inspection and dashboards.
/// </summary>
public sealed record JobInfo
{
    /// <summary>Gets the job id.</summary>
    public required long Id { get; init; }

    /// <summary>Gets the queue.</summary>
    public required string Queue { get; init; }

    /// <summary>Gets the kind (the payload type's registered name).</summary>
    public required string Kind { get; init; }

    /// <summary>Gets the state.</summary>
    public required JobState State { get; init; }

    /// <summary>Gets the priority (higher runs first).</summary>
    public required int Priority { get; init; }

    /// <summary>Gets the attempts started so far.</summary>
    public required int Attempt { get; init; }

    /// <summary>Gets the attempts allowed.</summary>
    public required int MaxAttempts { get; init; }

    /// <summary>Gets the payload as JSON.</summary>
    public required string Payload { get; init; }

    /// <summary>Gets the unique key, if any.</summary>
    public string? UniqueKey { get; init; }

    /// <summary>Gets when the job was enqueued.</summary>
    public required DateTimeOffset EnqueuedAt { get; init; }

    /// <summary>Gets when a scheduled job becomes available, or when a running job's lease expires; <see langword="null"/> once finished.</summary>
    public DateTimeOffset? RunAt { get; init; }

    /// <summary>Gets when the last attempt started, if any.</summary>
    public DateTimeOffset? ClaimedAt { get; init; }

    /// <summary>Gets when the job finished (succeeded, cancelled or dead).</summary>
    public DateTimeOffset? FinishedAt { get; init; }

    /// <summary>Gets the worker of the current attempt while running.</summary>
    public string? ClaimedBy { get; init; }

    /// <summary>Gets the history of failed attempts, oldest first.</summary>
    public IReadOnlyList<JobError> Errors { get; init; } = [];
}
