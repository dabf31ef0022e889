using Microsoft.Extensions.Logging;

namespace PgSessions;

/// <content>The store's log messages (event ids 2000–2999). Never logs session keys, ids or data.</content>
public sealed partial class PgSessionStore
{
    [LoggerMessage(PgSessionsEventIds.LoadFailed, LogLevel.Error, "Loading a session failed.")]
    internal partial void LogLoadFailed(Exception exception);

    [LoggerMessage(PgSessionsEventIds.CommitFailed, LogLevel.Error, "Committing a session failed; its changes were not stored.")]
    internal partial void LogCommitFailed(Exception exception);

    [LoggerMessage(PgSessionsEventIds.SynchronousLoad, LogLevel.Warning, "A session was loaded with blocking I/O because it was used before 'await HttpContext.Session.LoadAsync()'. Load it asynchronously first, or set PgSessions:RequireAsyncLoad to find every such place.")]
    internal partial void LogSynchronousLoad();

    [LoggerMessage(PgSessionsEventIds.ConflictMerged, LogLevel.Debug, "A concurrent request changed the session first; this request's {OperationCount} changes were merged into it as version {Version}.")]
    internal partial void LogConflictMerged(int operationCount, long version);

    [LoggerMessage(PgSessionsEventIds.SessionEndedDuringRequest, LogLevel.Information, "The session was revoked or expired while the request ran; its {OperationCount} changes were discarded.")]
    internal partial void LogSessionEnded(int operationCount);

    [LoggerMessage(PgSessionsEventIds.IdRegenerated, LogLevel.Debug, "The session's key was regenerated.")]
    internal partial void LogIdRegenerated();

    [LoggerMessage(PgSessionsEventIds.UnknownSession, LogLevel.Debug, "The request's session cookie names no live session (unknown, expired or revoked); a fresh session starts.")]
    internal partial void LogUnknownSession();
}
