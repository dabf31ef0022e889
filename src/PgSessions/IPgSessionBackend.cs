namespace PgSessions;

/// <summary>
/// Where sessions live: PostgreSQL (the default) or Redis (<c>PgFirst.Redis</c>). The session logic (lazy touch,
/// commits that merge a concurrent request's changes, regeneration, limits, cookies) sits above this seam, so both
/// backends keep the same semantics. Every operation is one round trip.
/// </summary>
/// <remarks>
/// Sessions are addressed by the SHA-256 hash of the cookie's session key (<see cref="PgSessionRecord.KeyHash"/>); the
/// key itself never reaches the store. Times come from the application's <see cref="TimeProvider"/>, passed in, so
/// every backend runs on one clock.
/// </remarks>
public interface IPgSessionBackend
{
    /// <summary>
    /// Loads a live session (<c>expires_at &gt; now</c>) of the tenant and, when its last touch is older than
    /// <see cref="PgSessionLoadRequest.TouchInterval"/>, slides its idle expiry in the same round trip.
    /// </summary>
    /// <param name="request">What to load.</param>
    /// <param name="cancellationToken">The token to cancel the load.</param>
    /// <returns>The session as stored (after the touch), or <see langword="null"/> when none is live.</returns>
    ValueTask<PgSessionRecord?> LoadAsync(PgSessionLoadRequest request, CancellationToken cancellationToken);

    /// <summary>
    /// The synchronous twin of <see cref="LoadAsync"/>, for application code that reads the session without awaiting
    /// <c>ISession.LoadAsync</c> first (unless strict mode forbids it). Uses the client's synchronous I/O, never
    /// sync-over-async.
    /// </summary>
    /// <param name="request">What to load.</param>
    /// <returns>The session, or <see langword="null"/>.</returns>
    PgSessionRecord? Load(PgSessionLoadRequest request);

    /// <summary>
    /// Stores a new session with <see cref="PgSessionRecord.Version"/> 1.
    /// </summary>
    /// <param name="record">The session; its <see cref="PgSessionRecord.LastSeenAt"/> is the creation time.</param>
    /// <param name="cancellationToken">The token to cancel the write.</param>
    /// <returns>
    /// <see langword="true"/> when stored (replacing a dead session under the same key hash); <see langword="false"/>,
    /// changing nothing, when a session with that key hash is live at <see cref="PgSessionRecord.LastSeenAt"/>.
    /// </returns>
    ValueTask<bool> InsertAsync(PgSessionRecord record, CancellationToken cancellationToken);

    /// <summary>
    /// Writes a session if, and only if, it is live and still at <see cref="PgSessionUpdate.ExpectedVersion"/>;
    /// the version goes up by one, the session is touched, and its key hash may change (id regeneration).
    /// </summary>
    /// <param name="update">The write.</param>
    /// <param name="cancellationToken">The token to cancel the write.</param>
    /// <returns>The new version, or <see langword="null"/> when the session moved on, expired or was revoked.</returns>
    ValueTask<long?> UpdateAsync(PgSessionUpdate update, CancellationToken cancellationToken);

    /// <summary>
    /// Commits one request's changes to a stored session, atomically and in one round trip. When the session is still
    /// at <see cref="PgSessionUpdate.ExpectedVersion"/>, it is written as <paramref name="update"/> says; when another
    /// request committed first, <paramref name="changes"/> are applied to the session as it is now instead (keys this
    /// request did not touch keep the other request's values; a key both wrote gets this request's value), so no
    /// concurrent change is lost and nothing is left to retry. Either way the version goes up by one, the session is
    /// touched as for <see cref="UpdateAsync"/>, and its key hash may change (id regeneration).
    /// </summary>
    /// <param name="update">The session as this request would store it on top of the version it loaded.</param>
    /// <param name="changes">The request's own changes.</param>
    /// <param name="cancellationToken">The token to cancel the write.</param>
    /// <returns>What was done; nothing is written when the session ended or the merge would be too large.</returns>
    ValueTask<PgSessionCommitResult> CommitAsync(PgSessionUpdate update, PgSessionChanges changes, CancellationToken cancellationToken);

    /// <summary>
    /// Lists the live sessions bound to a user, newest first.
    /// </summary>
    /// <param name="tenantId">The tenant.</param>
    /// <param name="userId">The user.</param>
    /// <param name="now">The current time.</param>
    /// <param name="cancellationToken">The token to cancel the query.</param>
    /// <returns>The sessions.</returns>
    ValueTask<IReadOnlyList<PgSessionInfo>> ListAsync(string tenantId, string userId, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes one session by its public id.
    /// </summary>
    /// <param name="tenantId">The tenant.</param>
    /// <param name="sessionId">The public session id (<c>ISession.Id</c>).</param>
    /// <param name="cancellationToken">The token to cancel the write.</param>
    /// <returns>Whether a session was deleted.</returns>
    ValueTask<bool> RevokeAsync(string tenantId, Guid sessionId, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes every session bound to a user, except optionally one.
    /// </summary>
    /// <param name="tenantId">The tenant.</param>
    /// <param name="userId">The user.</param>
    /// <param name="exceptSessionId">A session to keep (the caller's own), or <see langword="null"/>.</param>
    /// <param name="cancellationToken">The token to cancel the write.</param>
    /// <returns>How many sessions were deleted.</returns>
    ValueTask<int> RevokeAllAsync(string tenantId, string userId, Guid? exceptSessionId, CancellationToken cancellationToken);

    /// <summary>
    /// Reads the store's size for an operator: live and expired sessions, those bound to a user, distinct users and
    /// data bytes, per tenant. The default implementation throws <see cref="NotSupportedException"/>: a backend that
    /// cannot count without scanning every key (Redis) need not offer it.
    /// </summary>
    /// <param name="tenantId">One tenant, or <see langword="null"/> for all.</param>
    /// <param name="now">The current time (what is expired).</param>
    /// <param name="cancellationToken">The token to cancel the query.</param>
    /// <returns>One row per tenant, biggest first.</returns>
    ValueTask<IReadOnlyList<PgSessionTenantStats>> GetStatsAsync(string? tenantId, DateTimeOffset now, CancellationToken cancellationToken) =>
        throw new NotSupportedException($"{GetType().Name} does not report session statistics.");

    /// <summary>
    /// Checks that the backend answers and its schema is in place (for the health check).
    /// </summary>
    /// <param name="cancellationToken">The token to cancel the check.</param>
    /// <returns>A task that completes when the backend answered.</returns>
    ValueTask PingAsync(CancellationToken cancellationToken);
}
