namespace PgSessions;

/// <summary>
/// One request's own changes to its session, sent with its <see cref="PgSessionUpdate"/> so that a backend can apply
/// them to the session as it is now when another request committed first (<see cref="IPgSessionBackend.CommitAsync"/>):
/// the write of a concurrent request is never replaced by this one's copy of the older version.
/// </summary>
public sealed class PgSessionChanges
{
    /// <summary>
    /// Gets a value indicating whether the request cleared the session. The session then becomes
    /// <see cref="PgSessionUpdate.Data"/>, which holds nothing but what the request set after clearing it.
    /// </summary>
    public bool Cleared { get; init; }

    /// <summary>
    /// Gets the keys the request set or removed (each once, ordinal), with the value it left: the new value, or
    /// <see langword="null"/> when the key was removed. Empty when <see cref="Cleared"/>.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, byte[]?>> Items { get; init; } = [];

    /// <summary>
    /// Gets a value indicating whether the request bound (or unbound) a user: the session's user becomes
    /// <see cref="PgSessionUpdate.UserId"/>. Otherwise the stored user is kept.
    /// </summary>
    public bool BindsUser { get; init; }

    /// <summary>Gets the idle timeout the request set, or <see langword="null"/> to keep the stored one.</summary>
    public TimeSpan? IdleTimeout { get; init; }

    /// <summary>
    /// Gets the absolute lifetime the request set, counted from the session's creation, or <see langword="null"/> to
    /// keep the stored absolute expiry.
    /// </summary>
    public TimeSpan? AbsoluteLifetime { get; init; }

    /// <summary>
    /// Gets the largest serialized session the write may leave; a merge that would exceed it writes nothing and reports
    /// <see cref="PgSessionCommitStatus.TooLarge"/>.
    /// </summary>
    /// <value>The default is <see cref="int.MaxValue"/>.</value>
    public int MaxDataBytes { get; init; } = int.MaxValue;
}

/// <summary>What <see cref="IPgSessionBackend.CommitAsync"/> did.</summary>
public enum PgSessionCommitStatus
{
    /// <summary>The session was still at the expected version and is now stored as sent.</summary>
    Written,

    /// <summary>
    /// Another request had committed first; this request's changes were applied to the session as it was, and
    /// <see cref="PgSessionCommitResult.Session"/> is the session as now stored.
    /// </summary>
    Merged,

    /// <summary>No live session is stored under the key hash in the tenant (revoked, expired or moved to a new key): nothing was written, nothing brought back.</summary>
    Ended,

    /// <summary>The merged session would exceed <see cref="PgSessionChanges.MaxDataBytes"/>: nothing was written.</summary>
    TooLarge,
}

/// <summary>The outcome of <see cref="IPgSessionBackend.CommitAsync"/>.</summary>
public sealed class PgSessionCommitResult
{
    /// <summary>Gets what the commit did.</summary>
    public required PgSessionCommitStatus Status { get; init; }

    /// <summary>Gets the session's new version when <see cref="Status"/> is <see cref="PgSessionCommitStatus.Written"/> or <see cref="PgSessionCommitStatus.Merged"/>.</summary>
    public long Version { get; init; }

    /// <summary>Gets the session as now stored when <see cref="Status"/> is <see cref="PgSessionCommitStatus.Merged"/>.</summary>
    public PgSessionRecord? Session { get; init; }

    /// <summary>Gets the size of the merged data that was refused when <see cref="Status"/> is <see cref="PgSessionCommitStatus.TooLarge"/>.</summary>
    public int DataBytes { get; init; }
}

/// <summary>When a session write is durable (<see cref="PgSessionOptions.CommitDurability"/>).</summary>
public enum PgSessionDurability
{
    /// <summary>A write is acknowledged once PostgreSQL has flushed it to disk (and to synchronous standbys, if any).</summary>
    Synchronous,

    /// <summary>
    /// Session writes only run with <c>synchronous_commit = off</c>: acknowledged before the WAL is flushed, so a
    /// PostgreSQL crash can lose the last fraction of a second of session changes (up to three times
    /// <c>wal_writer_delay</c>, 200 ms by default). Never a corrupt or mixed session: what survives is a whole, earlier
    /// commit. Other writes of the application keep their own setting. Redis keeps its server's persistence settings.
    /// </summary>
    Asynchronous,
}
