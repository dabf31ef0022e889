namespace PgSessions.Internal;

// One change a request made to its session, kept so that a commit that lost a race can replay exactly this
// request's changes on the newer version instead of overwriting the other request's.
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
