namespace PgSessions;

/// <summary>
/// A session as a <see cref="IPgSessionBackend"/> stores it.
/// </summary>
public sealed class PgSessionRecord
{
    /// <summary>Gets the SHA-256 hash of the session key (32 bytes): the store's address of the session.</summary>
    public required byte[] KeyHash { get; init; }

    /// <summary>Gets the tenant.</summary>
    public required string TenantId { get; init; }

    /// <summary>Gets the public session id (<c>ISession.Id</c>), safe to show and to revoke by.</summary>
    public required Guid SessionId { get; init; }

    /// <summary>Gets the user the session is bound to, or <see langword="null"/>.</summary>
    public string? UserId { get; init; }

    /// <summary>Gets the version, 1 when created and one more per write.</summary>
    public long Version { get; init; }

    /// <summary>Gets the serialized session data.</summary>
    public required byte[] Data { get; init; }

    /// <summary>Gets when the session was created.</summary>
    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>Gets when the session was last touched (loaded past the touch interval, or written).</summary>
    public DateTimeOffset LastSeenAt { get; init; }

    /// <summary>Gets the idle timeout of this session.</summary>
    public TimeSpan IdleTimeout { get; init; }

    /// <summary>Gets the absolute expiry of this session.</summary>
    public DateTimeOffset AbsoluteExpiresAt { get; init; }

    /// <summary>Gets the effective expiry: the earlier of <see cref="LastSeenAt"/> + <see cref="IdleTimeout"/> and <see cref="AbsoluteExpiresAt"/>.</summary>
    public DateTimeOffset ExpiresAt => LastSeenAt + IdleTimeout < AbsoluteExpiresAt ? LastSeenAt + IdleTimeout : AbsoluteExpiresAt;

    /// <summary>Gets the client IP address that created the session, or <see langword="null"/>.</summary>
    public string? ClientIp { get; init; }

    /// <summary>Gets the user agent that created the session, or <see langword="null"/>.</summary>
    public string? UserAgent { get; init; }
}
