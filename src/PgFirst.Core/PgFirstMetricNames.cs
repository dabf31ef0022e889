namespace PgFirst.Core;

/// <summary>
/// The names of PgFirst meters, instruments and tags, shared so dashboards and tests use one spelling.
/// Each package has one <see cref="System.Diagnostics.Metrics.Meter"/> named after it.
/// </summary>
public static class PgFirstMetricNames
{
    /// <summary>The meter of PgFirst.Core.</summary>
    public const string CoreMeter = "PgFirst.Core";

    /// <summary>The meter of PgCache.</summary>
    public const string CacheMeter = "PgCache";

    /// <summary>The meter of PgSessions.</summary>
    public const string SessionsMeter = "PgSessions";

    /// <summary>The meter of PgRateLimit.</summary>
    public const string RateLimitMeter = "PgRateLimit";

    /// <summary>The meter of PgQueue.</summary>
    public const string QueueMeter = "PgQueue";

    /// <summary>Counter of maintenance task runs, tagged with <see cref="TaskTag"/> and <see cref="OutcomeTag"/>.</summary>
    public const string MaintenanceRuns = "pgfirst.maintenance.runs";

    /// <summary>Counter of rows removed by cleanup functions, tagged with <see cref="TaskTag"/> and <see cref="ModuleTag"/>.</summary>
    public const string MaintenanceRowsRemoved = "pgfirst.maintenance.rows_removed";

    /// <summary>Histogram of the duration of maintenance task runs that this instance led, in seconds.</summary>
    public const string MaintenanceDuration = "pgfirst.maintenance.duration";

    /// <summary>The tag naming a maintenance task.</summary>
    public const string TaskTag = "pgfirst.task";

    /// <summary>The tag naming a module (<c>pgcache</c>, <c>pgsessions</c>, …).</summary>
    public const string ModuleTag = "pgfirst.module";

    /// <summary>The tag carrying an outcome: <c>ran</c>, <c>not_leader</c>, <c>not_due</c> or <c>failed</c>.</summary>
    public const string OutcomeTag = "pgfirst.outcome";

    /// <summary>The tag carrying the backend: <c>postgresql</c> or <c>redis</c>.</summary>
    public const string BackendTag = "pgfirst.backend";

    /// <summary>Gauge of each read replica's replay lag in seconds, tagged with <see cref="ReplicaTag"/>.</summary>
    public const string ReplicaLag = "pgfirst.replica.lag";

    /// <summary>Counter of reads routed by a consistency level, tagged with <see cref="ModuleTag"/> and <see cref="ReplicaTargetTag"/>.</summary>
    public const string ReplicaReads = "pgfirst.replica.reads";

    /// <summary>The tag naming a read replica (its host).</summary>
    public const string ReplicaTag = "pgfirst.replica";

    /// <summary>The tag saying where a routed read went: <c>replica</c> or <c>primary</c>.</summary>
    public const string ReplicaTargetTag = "pgfirst.read_target";
}
