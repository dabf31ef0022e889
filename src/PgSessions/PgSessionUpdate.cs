namespace PgSessions;

/// <summary>
/// A version-checked write asked of a <see cref="IPgSessionBackend"/>.
/// </summary>
public sealed class PgSessionUpdate
{
    /// <summary>Gets the key hash the session is stored under now.</summary>
    public required byte[] KeyHash { get; init; }

    /// <summary>Gets the key hash to store it under from now on: the same as <see cref="KeyHash"/> unless the id was regenerated.</summary>
    public required byte[] NewKeyHash { get; init; }

    /// <summary>Gets the tenant.</summary>
    public required string TenantId { get; init; }

    /// <summary>Gets the version the write was based on; the write fails if the stored one differs.</summary>
    public required long ExpectedVersion { get; init; }

    /// <summary>Gets the serialized session data.</summary>
    public required byte[] Data { get; init; }

    /// <summary>Gets the user to bind, or <see langword="null"/> for none.</summary>
    public string? UserId { get; init; }

    /// <summary>Gets the idle timeout.</summary>
    public TimeSpan IdleTimeout { get; init; }

    /// <summary>Gets the absolute expiry.</summary>
    public DateTimeOffset AbsoluteExpiresAt { get; init; }

    /// <summary>Gets the current time: the new last-seen time, and the time the session must still be live at.</summary>
    public DateTimeOffset Now { get; init; }

    /// <summary>
    /// Gets how stale the last-seen time may be before the write must move it to <see cref="Now"/>, as for loads; a
    /// backend may move it anyway (Redis does). PostgreSQL leaves a fresh last-seen (and so the indexed expiry)
    /// unchanged, which lets it update the row in place (HOT).
    /// </summary>
    /// <value>The default is zero: every write moves it.</value>
    public TimeSpan TouchInterval { get; init; }
}
