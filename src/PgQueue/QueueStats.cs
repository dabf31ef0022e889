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
