namespace PgSessions;

/// <summary>
/// Configures the PgSessions store and its Redis twin. The cookie (name, path, <c>SameSite</c>, <c>Secure</c>,
/// <c>IsEssential</c>) and <c>IOTimeout</c> stay on ASP.NET Core's <c>SessionOptions</c>; the schema, data source and
/// tenant come from <see cref="PgFirst.Core.PgFirstOptions"/>.
/// </summary>
public sealed class PgSessionOptions
{
    /// <summary>The longest session key accepted, in UTF-16 code units.</summary>
    public const int MaxKeyLength = 256;

    /// <summary>
    /// Gets or sets how long a session lives without being used. <c>SessionOptions.IdleTimeout</c> is not used.
    /// Can be changed per session with <see cref="PgSessionExtensions.SetLifetime"/>.
    /// </summary>
    /// <value>The default is 20 minutes (as ASP.NET Core's). Must be between 1 second and 366 days.</value>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromMinutes(20);

    /// <summary>
    /// Gets or sets how long a session lives at most from its creation, however active (OWASP's "absolute timeout").
    /// Can be changed per session with <see cref="PgSessionExtensions.SetLifetime"/>.
    /// </summary>
    /// <value>The default is 12 hours. Must be between 1 second and 366 days.</value>
    public TimeSpan AbsoluteLifetime { get; set; } = TimeSpan.FromHours(12);

    /// <summary>
    /// Gets or sets how stale the last-seen time may get before a load writes it again (sliding the idle expiry).
    /// A session read on every request is written at most once per interval instead of on every request, and may
    /// expire up to one interval early.
    /// </summary>
    /// <value>The default is 1 minute. Must be between 0 (touch on every load) and the idle timeout.</value>
    public TimeSpan TouchInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Gets or sets the largest serialized session accepted (keys, values and framing); a <c>Set</c> that would
    /// exceed it throws <see cref="ArgumentException"/> and changes nothing.
    /// </summary>
    /// <value>The default is 1 MiB. Must be between 1 KiB and 64 MiB.</value>
    public int MaxSessionBytes { get; set; } = 1024 * 1024;

    /// <summary>
    /// Gets or sets nothing any more: a commit no longer retries. It sends this request's own changes, and the store
    /// applies them to the session as it is, so a concurrent commit can never make it fail or lose a change.
    /// </summary>
    /// <value>Ignored.</value>
    [Obsolete("Commits no longer retry: the store merges a request's changes into the session as it is. This setting has no effect.")]
    public int MaxCommitRetries { get; set; } = 5;

    /// <summary>
    /// Gets or sets when a session write is durable on PostgreSQL. <see cref="PgSessionDurability.Asynchronous"/> runs
    /// session writes (inserts and commits, not touches) with <c>synchronous_commit = off</c>: a PostgreSQL crash can
    /// lose the last fraction of a second of session changes, never corrupt or mix sessions. It is Redis's own default
    /// (<c>appendfsync everysec</c> with AOF, snapshots without) made explicit. The Redis backend ignores it.
    /// </summary>
    /// <value>The default is <see cref="PgSessionDurability.Synchronous"/>.</value>
    public PgSessionDurability CommitDurability { get; set; } = PgSessionDurability.Synchronous;

    /// <summary>
    /// Gets or sets a value indicating whether a request's session changes are committed just before its response
    /// starts (<c>HttpResponse.OnStarting</c>), instead of only after the response, where <c>SessionMiddleware</c> can
    /// merely log a failure. A commit that fails there (the store is down, or merged data would exceed
    /// <see cref="MaxSessionBytes"/>) fails the request with a 500 instead of answering 200 for a change that was not
    /// stored; and the client's next request sees the change. Changes made after the response started are committed
    /// at the end, as before.
    /// </summary>
    /// <value>The default is <see langword="true"/>.</value>
    public bool CommitBeforeResponse { get; set; } = true;

    /// <summary>
    /// Gets or sets a value indicating whether reading or writing a session that was not loaded with
    /// <c>await session.LoadAsync()</c> throws <see cref="InvalidOperationException"/>, instead of loading it with
    /// blocking I/O. Turn it on to find every synchronous load during development.
    /// </summary>
    /// <value>The default is <see langword="false"/>: a synchronous access loads synchronously, logs a warning (event 2003) and counts it.</value>
    public bool RequireAsyncLoad { get; set; }

    /// <summary>
    /// Gets or sets whether session loads may read from a read replica (<c>PgFirst:Replicas</c>). A replica answers
    /// only a session it finds with no touch due; a miss or a due touch is loaded on the primary. Writes always go to
    /// the primary.
    /// </summary>
    /// <value>
    /// The default is <see cref="PgFirst.Core.PgReadConsistency.Strong"/> (the primary). With
    /// <see cref="PgFirst.Core.PgReadConsistency.ReadYourWrites"/>, the instance that wrote a session reads it back as
    /// written; a request that lands on another instance may see it up to <see cref="MaxReplicaLag"/> old, and a revoked
    /// session may stay usable there for as long: keep Strong unless the load balancer is sticky.
    /// </value>
    public PgFirst.Core.PgReadConsistency ReadConsistency { get; set; } = PgFirst.Core.PgReadConsistency.Strong;

    /// <summary>Gets or sets the largest replay lag of a replica that session loads may read from.</summary>
    /// <value>The default is 1 second. Must be positive.</value>
    public TimeSpan MaxReplicaLag { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Gets the near cache: session loads served from this instance's memory while nothing changed, so a read-only
    /// request costs no round trip. Off by default.
    /// </summary>
    public PgSessionNearCacheOptions NearCache { get; } = new();
}

/// <summary>
/// The session near cache (<see cref="PgSessionOptions.NearCache"/>): a loaded session is kept in memory and served
/// again without a round trip for at most <see cref="MaxStaleness"/>, unless a write or a revocation on any instance
/// with the near cache on drops it first, through LISTEN/NOTIFY (typically within tens of milliseconds).
/// </summary>
/// <remarks>
/// <para>
/// The bound: a session revoked, ended or changed on another instance can still be served from this instance's memory
/// for at most <see cref="MaxStaleness"/> after this instance loaded it, whatever happens to the notifications (a lost
/// listen connection, an instance that wrote without the near cache, a crash between commit and notify). While the
/// listen connection is down nothing is served from memory. This instance's own writes and revocations take effect
/// here at once. A copy is served only while its idle and absolute expiry have not passed and no touch is due, so
/// idle timeouts slide exactly as without it.
/// </para>
/// <para>
/// PostgreSQL only: it listens on one connection (<c>PgFirst:ListenConnectionString</c> behind a transaction pooler).
/// </para>
/// </remarks>
public sealed class PgSessionNearCacheOptions
{
    /// <summary>The shortest <see cref="MaxStaleness"/> accepted.</summary>
    public static readonly TimeSpan MinStaleness = TimeSpan.FromMilliseconds(100);

    /// <summary>The longest <see cref="MaxStaleness"/> accepted.</summary>
    public static readonly TimeSpan MaxStalenessLimit = TimeSpan.FromMinutes(5);

    /// <summary>Gets or sets a value indicating whether session loads are served from memory.</summary>
    /// <value>The default is <see langword="false"/>.</value>
    public bool Enabled { get; set; }

    /// <summary>Gets or sets how long a loaded session may be served from memory at most: the revocation bound.</summary>
    /// <value>The default is 5 seconds. Must be between 100 milliseconds and 5 minutes.</value>
    public TimeSpan MaxStaleness { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Gets or sets how many sessions the near cache holds at most; a load past it is not kept.</summary>
    /// <value>The default is 100,000. Must be between 1 and 10,000,000.</value>
    public int MaxEntries { get; set; } = 100_000;
}
