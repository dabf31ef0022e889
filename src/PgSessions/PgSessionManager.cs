using Microsoft.Extensions.Logging;
using PgFirst.Core;
using PgSessions.Internal;

namespace PgSessions;

/// <summary>
/// Lists and revokes sessions of the current tenant: the "your active sessions" page and "sign out everywhere else".
/// A revoked session is refused on its very next request, on every instance (each request loads from the store).
/// </summary>
public sealed partial class PgSessionManager
{
    private readonly IPgSessionBackend _backend;
    private readonly ITenantContext _tenantContext;
    private readonly TimeProvider _timeProvider;
    private readonly PgSessionsMetrics _metrics;
    private readonly ILogger _logger;

    internal PgSessionManager(IPgSessionBackend backend, ITenantContext tenantContext, TimeProvider timeProvider, PgSessionsMetrics metrics, ILogger logger)
    {
        _backend = backend;
        _tenantContext = tenantContext;
        _timeProvider = timeProvider;
        _metrics = metrics;
        _logger = logger;
    }

    /// <summary>
    /// Initializes a new instance of the <see cref="PgSessionManager"/> class outside dependency injection (an
    /// operator's tool, a script): the sessions of <paramref name="tenantContext"/>'s tenant in
    /// <paramref name="backend"/>. Apps get one from <c>services.AddPgSessions(...)</c>.
    /// </summary>
    /// <param name="backend">The session store.</param>
    /// <param name="tenantContext">The tenant whose sessions are listed and revoked.</param>
    /// <param name="timeProvider">The clock, or <see langword="null"/> for the system clock.</param>
    /// <param name="logger">The logger, or <see langword="null"/> for none.</param>
    public PgSessionManager(IPgSessionBackend backend, ITenantContext tenantContext, TimeProvider? timeProvider = null, ILogger<PgSessionManager>? logger = null)
        : this(
            backend ?? throw new ArgumentNullException(nameof(backend)),
            tenantContext ?? throw new ArgumentNullException(nameof(tenantContext)),
            timeProvider ?? TimeProvider.System,
            new PgSessionsMetrics(null, "admin"),
            (ILogger?)logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance)
    {
    }

    /// <summary>
    /// Reads how many sessions the store holds (live, expired but not yet removed, bound to users), how many users
    /// they belong to and their data bytes: for this tenant, or with <paramref name="allTenants"/> for every tenant.
    /// </summary>
    /// <param name="allTenants">Whether to read every tenant rather than the current one.</param>
    /// <param name="cancellationToken">The token to cancel the query.</param>
    /// <returns>One row per tenant with sessions, biggest first.</returns>
    /// <exception cref="NotSupportedException">The backend does not report statistics (Redis).</exception>
    /// <exception cref="PgSessionException">The store failed.</exception>
    public async Task<IReadOnlyList<PgSessionTenantStats>> GetStatsAsync(bool allTenants = false, CancellationToken cancellationToken = default)
    {
        var tenantId = allTenants ? null : TenantId();
        return await Guard(() => _backend.GetStatsAsync(tenantId, _timeProvider.GetUtcNow(), cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>
    /// Lists the live sessions bound to a user (with <see cref="PgSessionExtensions.BindUserAsync"/>), newest first,
    /// with the device metadata captured when each was created.
    /// </summary>
    /// <param name="userId">The user.</param>
    /// <param name="cancellationToken">The token to cancel the query.</param>
    /// <returns>The sessions.</returns>
    /// <exception cref="ArgumentException"><paramref name="userId"/> is empty.</exception>
    /// <exception cref="PgSessionException">The store failed.</exception>
    public async Task<IReadOnlyList<PgSessionInfo>> ListSessionsAsync(string userId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(userId);
        var tenantId = TenantId();
        return await Guard(() => _backend.ListAsync(tenantId, userId, _timeProvider.GetUtcNow(), cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>
    /// Revokes one session by its public id (<c>ISession.Id</c>, <see cref="PgSessionInfo.SessionId"/>).
    /// </summary>
    /// <param name="sessionId">The session id.</param>
    /// <param name="cancellationToken">The token to cancel the operation.</param>
    /// <returns>Whether a session was revoked.</returns>
    /// <exception cref="ArgumentException"><paramref name="sessionId"/> is not a session id.</exception>
    /// <exception cref="PgSessionException">The store failed.</exception>
    public async Task<bool> RevokeAsync(string sessionId, CancellationToken cancellationToken = default)
    {
        var id = ParseSessionId(sessionId, nameof(sessionId));
        var tenantId = TenantId();
        var revoked = await Guard(() => _backend.RevokeAsync(tenantId, id, cancellationToken)).ConfigureAwait(false);
        Revoked(revoked ? 1 : 0);
        return revoked;
    }

    /// <summary>
    /// Revokes every session of a user, except optionally one (pass the caller's <c>HttpContext.Session.Id</c> for
    /// "sign out everywhere else").
    /// </summary>
    /// <param name="userId">The user.</param>
    /// <param name="exceptSessionId">The session to keep, or <see langword="null"/> to revoke all.</param>
    /// <param name="cancellationToken">The token to cancel the operation.</param>
    /// <returns>How many sessions were revoked.</returns>
    /// <exception cref="ArgumentException"><paramref name="userId"/> is empty, or <paramref name="exceptSessionId"/> is not a session id.</exception>
    /// <exception cref="PgSessionException">The store failed.</exception>
    public async Task<int> RevokeAllAsync(string userId, string? exceptSessionId = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(userId);
        Guid? except = exceptSessionId is null ? null : ParseSessionId(exceptSessionId, nameof(exceptSessionId));
        var tenantId = TenantId();
        var count = await Guard(() => _backend.RevokeAllAsync(tenantId, userId, except, cancellationToken)).ConfigureAwait(false);
        Revoked(count);
        return count;
    }

    private static Guid ParseSessionId(string sessionId, string paramName)
    {
        ArgumentNullException.ThrowIfNull(sessionId, paramName);
        return Guid.TryParse(sessionId, out var id)
            ? id
            : throw new ArgumentException("A session id is a GUID, as ISession.Id returns.", paramName);
    }

    private string TenantId()
    {
        var tenantId = _tenantContext.TenantId;
        PgTenantId.Validate(tenantId, nameof(ITenantContext.TenantId));
        return tenantId;
    }

    private void Revoked(int count)
    {
        if (count > 0)
        {
            _metrics.Revoked(count);
            LogRevoked(count);
        }
    }

    private static async Task<T> Guard<T>(Func<ValueTask<T>> operation)
    {
        try
        {
            return await operation().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException and not PgSessionException and not ArgumentException and not NotSupportedException)
        {
            throw new PgSessionException("The session store failed. See the inner exception.", ex);
        }
    }

    [LoggerMessage(PgSessionsEventIds.Revoked, LogLevel.Information, "Revoked {Count} session(s).")]
    private partial void LogRevoked(int count);
}
