namespace PgSessions;

/// <summary>
/// A load asked of a <see cref="IPgSessionBackend"/>.
/// </summary>
/// <param name="KeyHash">The SHA-256 hash of the session key (32 bytes).</param>
/// <param name="TenantId">The tenant; a session of another tenant is not found.</param>
/// <param name="Now">The current time.</param>
/// <param name="TouchInterval">Slide the idle expiry only when the last touch is at least this old.</param>
public readonly record struct PgSessionLoadRequest(byte[] KeyHash, string TenantId, DateTimeOffset Now, TimeSpan TouchInterval);
