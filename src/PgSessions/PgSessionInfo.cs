namespace PgSessions;

/// <summary>
/// One of a user's sessions, for an "active sessions" page.
/// </summary>
/// <param name="SessionId">The public session id (<c>ISession.Id</c>), to revoke it by.</param>
/// <param name="UserId">The user.</param>
/// <param name="CreatedAt">When the session was created.</param>
/// <param name="LastSeenAt">When it was last seen (to within the touch interval).</param>
/// <param name="ExpiresAt">When it expires unless used again.</param>
/// <param name="AbsoluteExpiresAt">When it expires at the latest.</param>
/// <param name="ClientIp">The client IP address that created it, or <see langword="null"/>.</param>
/// <param name="UserAgent">The user agent that created it, or <see langword="null"/>.</param>
public sealed record PgSessionInfo(
    Guid SessionId,
    string UserId,
    DateTimeOffset CreatedAt,
    DateTimeOffset LastSeenAt,
    DateTimeOffset ExpiresAt,
    DateTimeOffset AbsoluteExpiresAt,
    string? ClientIp,
    string? UserAgent);
