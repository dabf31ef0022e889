using Microsoft.Extensions.Logging;

namespace PgFirst.Core;

public sealed partial class PgMaintenanceRunner
{
    [LoggerMessage(PgFirstEventIds.MaintenanceTaskRan, LogLevel.Information, "Maintenance task {Task} removed {Rows} rows in {Batches} batches ({ElapsedMs:F1} ms)")]
    private static partial void LogTaskRan(ILogger logger, string task, long rows, int batches, double elapsedMs);

    [LoggerMessage(PgFirstEventIds.MaintenanceTaskSkipped, LogLevel.Debug, "Maintenance task {Task} skipped on this instance: {Outcome}")]
    private static partial void LogTaskSkipped(ILogger logger, string task, PgMaintenanceOutcome outcome);

    [LoggerMessage(PgFirstEventIds.MaintenanceTaskFailed, LogLevel.Error, "Maintenance task {Task} failed: {Reason}")]
    private static partial void LogTaskFailed(ILogger logger, Exception exception, string task, string reason);

    [LoggerMessage(PgFirstEventIds.MaintenanceTaskFailed, LogLevel.Error, "The maintenance loop failed; it goes on at the next interval")]
    private static partial void LogLoopError(ILogger logger, Exception exception);

    [LoggerMessage(PgFirstEventIds.MaintenanceDisabled, LogLevel.Information, "The PgFirst maintenance runner does not run in this instance: {Reason}")]
    private static partial void LogDisabled(ILogger logger, string reason);
}
