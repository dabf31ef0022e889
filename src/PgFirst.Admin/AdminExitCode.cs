namespace PgFirst.Admin;

/// <summary>The exit codes of <c>pgfirst-admin</c>, stable for scripts.</summary>
public enum AdminExitCode
{
    /// <summary>The command did what it was asked (or <c>monitor</c> was quit).</summary>
    Ok = 0,

    /// <summary>The server could not be reached, or a statement failed.</summary>
    Failed = 1,

    /// <summary>The command line is wrong (unknown command, missing or conflicting options, bad values).</summary>
    Usage = 2,

    /// <summary>The schema is missing, lacks a module's tables, or is not up to date (<c>schema verify</c>).</summary>
    SchemaNotReady = 3,

    /// <summary>What was asked for does not exist (a job, a cache entry, a session, a counter).</summary>
    NotFound = 4,

    /// <summary>A destructive command ran without <c>--yes</c>: it printed what it would do and changed nothing.</summary>
    NotConfirmed = 5,

    /// <summary>The command was interrupted (Ctrl-C) before it finished; what a bulk command did so far stays done.</summary>
    Interrupted = 130,
}
