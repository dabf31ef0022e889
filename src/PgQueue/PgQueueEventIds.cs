namespace PgQueue;

/// <summary>
/// The stable event ids of PgQueue log messages (range 4000–4999).
/// </summary>
public static class PgQueueEventIds
{
    /// <summary>A job's handler threw; the job is retried later.</summary>
    public const int JobFailed = 4001;

    /// <summary>A job ran out of attempts (or its payload could not be read) and went dead.</summary>
    public const int JobDead = 4002;

    /// <summary>A worker loop hit an error talking to the job store; it backs off and retries.</summary>
    public const int WorkerError = 4003;

    /// <summary>A running job's lease was lost (expired and claimed elsewhere); its cancellation token fires.</summary>
    public const int LeaseLost = 4004;

    /// <summary>A completion, failure or release was refused because its lease token was stale.</summary>
    public const int StaleCompletion = 4005;

    /// <summary>The notification listener lost its connection; workers poll until it is back.</summary>
    public const int ListenerError = 4006;

    /// <summary>Shutdown: handlers still running after the grace period were cancelled.</summary>
    public const int ShutdownTimedOut = 4007;

    /// <summary>A recurring job's occurrence was enqueued.</summary>
    public const int RecurringEnqueued = 4008;

    /// <summary>The workers started.</summary>
    public const int WorkersStarted = 4009;

    /// <summary>The workers stopped; prefetched jobs that never started were returned.</summary>
    public const int WorkersStopped = 4010;

    /// <summary>A job was snoozed or cancelled by its handler.</summary>
    public const int JobSnoozedOrCancelled = 4011;

    /// <summary>Jobs were rescued from expired leases or promoted from the schedule.</summary>
    public const int JobsPromoted = 4012;

    /// <summary>Workers poll without notifications: a transaction pooler and no direct listen connection.</summary>
    public const int PollOnly = 4013;
}
