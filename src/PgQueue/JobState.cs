namespace PgQueue;

/// <summary>
/// The states of a job. The numeric values are stored in the database and never change.
/// </summary>
public enum JobState
{
    /// <summary>Waiting for a worker.</summary>
    Available = 0,

    /// <summary>Claimed by a worker that holds its lease.</summary>
    Running = 1,

    /// <summary>Waiting for its time: delayed, retrying after a failure, or snoozed.</summary>
    Scheduled = 2,

    /// <summary>Handled successfully; kept until its retention ends.</summary>
    Succeeded = 3,

    /// <summary>Cancelled by its handler or through <see cref="JobQueueManager.CancelAsync"/>.</summary>
    Cancelled = 4,

    /// <summary>Out of attempts, or its payload could not be read: the dead-letter state. Requeue it with <see cref="JobQueueManager.RequeueAsync"/>.</summary>
    Dead = 5,
}
