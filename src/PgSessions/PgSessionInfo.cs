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

/// <summary>One tenant's sessions (<see cref="PgSessionManager.GetStatsAsync"/>).</summary>
/// <param name="TenantId">The tenant.</param>
/// <param name="Live">Sessions not expired.</param>
/// <param name="Expired">Expired sessions the cleanup has not removed yet (never loaded).</param>
/// <param name="BoundToUsers">Live sessions bound to a user.</param>
/// <param name="Users">Distinct users with a live session.</param>
/// <param name="DataBytes">The bytes of the sessions' data, live and expired.</param>
public sealed record PgSessionTenantStats(string TenantId, long Live, long Expired, long BoundToUsers, long Users, long DataBytes);
