namespace PgFirst.Core;

/// <summary>
/// Configures the maintenance runner: the hosted service that calls each module's expiry-cleanup function
/// on one app instance at a time.
/// </summary>
/// <remarks>
/// Turn it off (<see cref="Enabled"/> = <see langword="false"/>) when the same functions are scheduled in the
/// database with pg_cron; <c>sql/README.md</c> shows how.
/// </remarks>
public sealed class PgMaintenanceOptions
{
    /// <summary>
    /// Gets or sets a value indicating whether the maintenance runner runs in this app instance.
    /// </summary>
    /// <value>The default is <see langword="true"/>.</value>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// Gets or sets the interval between two runs of every cleanup task, across all app instances.
    /// </summary>
    /// <value>The default is 1 minute. Must be between 1 second and 1 day.</value>
    public TimeSpan Interval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Gets or sets the random spread added to each wait, as a fraction of <see cref="Interval"/>, so that
    /// instances started together do not wake together.
    /// </summary>
    /// <value>The default is 0.2 (each wait lasts between 1 and 1.2 intervals). Must be between 0 and 1.</value>
    public double Jitter { get; set; } = 0.2;

    /// <summary>
    /// Gets or sets the most rows one call of a cleanup function removes.
    /// </summary>
    /// <value>The default is 1000. Must be between 1 and 100000.</value>
    public int BatchSize { get; set; } = 1000;

    /// <summary>
    /// Gets or sets the most batches one run of a task removes, all in one short transaction; what is left waits for
    /// the next run.
    /// </summary>
    /// <value>The default is 10. Must be between 1 and 1000.</value>
    public int MaxBatchesPerRun { get; set; } = 10;
}
