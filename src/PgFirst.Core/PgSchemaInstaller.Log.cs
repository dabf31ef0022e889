using Microsoft.Extensions.Logging;

namespace PgFirst.Core;

public sealed partial class PgSchemaInstaller
{
    [LoggerMessage(PgFirstEventIds.SchemaApplying, LogLevel.Information, "Applying the PgFirst schema \"{Schema}\" (modules: {Modules})")]
    private static partial void LogApplying(ILogger logger, string schema, string modules);

    [LoggerMessage(PgFirstEventIds.SchemaScriptApplied, LogLevel.Information, "Applied {Script} to schema \"{Schema}\"")]
    private static partial void LogScriptApplied(ILogger logger, string script, string schema);

    [LoggerMessage(PgFirstEventIds.SchemaUpToDate, LogLevel.Information, "The PgFirst schema \"{Schema}\" is up to date")]
    private static partial void LogUpToDate(ILogger logger, string schema);

    [LoggerMessage(
        PgFirstEventIds.SchemaChecksumMismatch,
        LogLevel.Warning,
        "{Script} was applied to schema \"{Schema}\" with checksum {Recorded}, but the embedded script has {Embedded}: shipped scripts must never change; add a new numbered script instead")]
    private static partial void LogChecksumMismatch(ILogger logger, string script, string schema, string recorded, string embedded);

    [LoggerMessage(PgFirstEventIds.SchemaApplyFailed, LogLevel.Error, "Applying {Script} to schema \"{Schema}\" failed; the transaction was rolled back")]
    private static partial void LogApplyFailed(ILogger logger, Exception exception, string script, string schema);

    [LoggerMessage(PgFirstEventIds.ConnectFailed, LogLevel.Error, "Could not connect to PostgreSQL at {Host}:{Port}")]
    private static partial void LogConnectFailed(ILogger logger, Exception exception, string? host, int port);
}
