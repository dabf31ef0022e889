namespace PgFirst.Core;

/// <summary>
/// What happened to one maintenance task in one run.
/// </summary>
public enum PgMaintenanceOutcome
{
    /// <summary>This instance was the leader and ran the cleanup function.</summary>
    Ran,

    /// <summary>Another instance held the task's lock.</summary>
    NotLeader,

    /// <summary>An instance ran the task less than half an interval ago.</summary>
    NotDue,

    /// <summary>The task failed; see <see cref="PgMaintenanceTaskResult.Error"/>.</summary>
    Failed,
}

/// <summary>
/// The outcome of one task in one run of the <see cref="PgMaintenanceRunner"/>.
/// </summary>
/// <param name="Task">The task name (<c>module.function</c>).</param>
/// <param name="Outcome">What happened.</param>
/// <param name="RowsRemoved">The rows the cleanup function removed.</param>
/// <param name="Batches">The calls made to the cleanup function.</param>
/// <param name="Error">The error when <paramref name="Outcome"/> is <see cref="PgMaintenanceOutcome.Failed"/>.</param>
public sealed record PgMaintenanceTaskResult(string Task, PgMaintenanceOutcome Outcome, long RowsRemoved, int Batches, Exception? Error);

/// <summary>
/// The outcome of one <see cref="PgMaintenanceRunner.RunOnceAsync"/> call.
/// </summary>
/// <param name="Tasks">One result per registered task, in registration order.</param>
public sealed record PgMaintenanceRunResult(IReadOnlyList<PgMaintenanceTaskResult> Tasks)
{
    /// <summary>Gets the rows removed by all tasks.</summary>
    public long RowsRemoved => Tasks.Sum(t => t.RowsRemoved);
}
