namespace PgQueue;

/// <summary>
/// The depth of one queue by state. Each count is exact up to the cap it was read with and then reported as the cap
/// with <see cref="Capped"/> set: PgQueue never runs an unbounded <c>count(*)</c> over a queue.
/// </summary>
/// <param name="Queue">The queue.</param>
/// <param name="Available">Jobs waiting for a worker.</param>
/// <param name="Scheduled">Jobs waiting for their time (delayed, retrying, snoozed).</param>
/// <param name="Running">Jobs a worker holds a lease on.</param>
/// <param name="Dead">Dead jobs still retained.</param>
/// <param name="Cap">The cap each count was read with.</param>
public sealed record QueueStats(string Queue, long Available, long Scheduled, long Running, long Dead, int Cap)
{
    /// <summary>Gets a value indicating whether any count reached the cap (the true figure is at least that).</summary>
    public bool Capped => Available >= Cap || Scheduled >= Cap || Running >= Cap || Dead >= Cap;
}

/// <summary>One queue's recent activity (<see cref="IJobQueueBackend.GetActivityAsync"/>).</summary>
/// <param name="Queue">The queue.</param>
/// <param name="OldestWaitingSince">When the oldest job that is due (available) became due, or <see langword="null"/> when none waits.</param>
/// <param name="Succeeded">Jobs that succeeded in the window and are still kept (SucceededRetention), or <see langword="null"/> when not counted.</param>
/// <param name="Cancelled">Jobs cancelled in the window, or <see langword="null"/> when not counted.</param>
/// <param name="Dead">Jobs that died in the window, or <see langword="null"/> when not counted.</param>
public sealed record QueueActivity(string Queue, DateTimeOffset? OldestWaitingSince, long? Succeeded, long? Cancelled, long? Dead);

/// <summary>A queue's depth and activity together (<see cref="JobQueueManager.GetOverviewAsync"/>).</summary>
/// <param name="Depth">The jobs by state, each count exact up to its cap.</param>
/// <param name="Activity">The oldest waiting job and the jobs finished in the window.</param>
/// <param name="Window">The window of <see cref="QueueActivity"/>'s counts, or <see langword="null"/> when they were not counted.</param>
/// <param name="OldestWaitingAge">How long the oldest due job has waited, or <see langword="null"/> when none waits.</param>
public sealed record QueueOverview(QueueStats Depth, QueueActivity Activity, TimeSpan? Window, TimeSpan? OldestWaitingAge)
{
    /// <summary>Gets the jobs finished (succeeded as far as kept, cancelled, dead) per minute over the window, or <see langword="null"/> when not counted.</summary>
    public double? FinishedPerMinute => Window is { } window
        ? (Activity.Succeeded + Activity.Cancelled + Activity.Dead) / Math.Max(window.TotalMinutes, 1e-9)
        : null;
}
