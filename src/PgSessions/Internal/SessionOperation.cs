namespace PgSessions.Internal;

// One change a request made to its session, kept so that its commit can send this request's own net changes
// (PgSessionChanges), which the store applies to the session as it is when another request committed first.
internal enum SessionOperationKind
{
    Set,
    Remove,
    Clear,
    BindUser,
    SetLifetime,
    Regenerate,
}

internal readonly record struct SessionOperation(
    SessionOperationKind Kind,
    string? Key = null,
    byte[]? Value = null,
    TimeSpan? IdleTimeout = null,
    TimeSpan? AbsoluteLifetime = null);
