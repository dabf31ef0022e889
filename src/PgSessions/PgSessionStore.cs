using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Session;
using Microsoft.Extensions.Logging;
using PgFirst.Core;
using PgSessions.Internal;

namespace PgSessions;

/// <summary>
/// The <see cref="ISessionStore"/> that <c>AddPgSessions</c> puts under <c>app.UseSession()</c> in place of the
/// distributed-cache store. Its sessions behave as ASP.NET Core's for application code, and also: load in one round
/// trip with a lazy sliding touch, never store an empty new session, never write an unmodified one, merge concurrent
/// writes of different keys instead of losing one, and expire by idle and absolute timeouts.
/// </summary>
/// <remarks>
/// Call <c>await HttpContext.Session.LoadAsync()</c> before using the session, as with the stock store; a session used
/// without it loads with blocking I/O (logged, event 2003) or, with <see cref="PgSessionOptions.RequireAsyncLoad"/>,
/// throws. Same-key writes of concurrent requests are last-writer-wins.
/// </remarks>
public sealed partial class PgSessionStore : ISessionStore
{
    private readonly IHttpContextAccessor _httpContextAccessor;
    private readonly ITenantContext _tenantContext;
    private readonly ILogger _logger;

    internal PgSessionStore(
        IPgSessionBackend backend,
        PgSessionOptions options,
        SessionCookie cookie,
        IHttpContextAccessor httpContextAccessor,
        ITenantContext tenantContext,
        TimeProvider timeProvider,
        PgSessionsMetrics metrics,
        ILogger logger)
    {
        Backend = backend;
        Options = options;
        Cookie = cookie;
        _httpContextAccessor = httpContextAccessor;
        _tenantContext = tenantContext;
        TimeProvider = timeProvider;
        Metrics = metrics;
        _logger = logger;
    }

    internal IPgSessionBackend Backend { get; }

    internal PgSessionOptions Options { get; }

    internal SessionCookie Cookie { get; }

    internal TimeProvider TimeProvider { get; }

    internal PgSessionsMetrics Metrics { get; }

    internal HttpContext? HttpContext => _httpContextAccessor.HttpContext;

    /// <inheritdoc />
    /// <remarks>Does no I/O: the session loads on <c>LoadAsync</c> or first use. <paramref name="idleTimeout"/> is ignored in favour of <see cref="PgSessionOptions.IdleTimeout"/>.</remarks>
    public ISession Create(string sessionKey, TimeSpan idleTimeout, TimeSpan ioTimeout, Func<bool> tryEstablishSession, bool isNewSessionKey)
    {
        ArgumentException.ThrowIfNullOrEmpty(sessionKey);
        ArgumentNullException.ThrowIfNull(tryEstablishSession);
        if (sessionKey.Length > PgSessionOptions.MaxKeyLength)
        {
            throw new ArgumentException($"A session key is at most {PgSessionOptions.MaxKeyLength} characters.", nameof(sessionKey));
        }

        var tenantId = _tenantContext.TenantId;
        PgTenantId.Validate(tenantId, nameof(ITenantContext.TenantId));
        return new PgSession(this, sessionKey, tenantId, ioTimeout, isNewSessionKey);
    }

    internal DateTimeOffset Now()
    {
        // PostgreSQL keeps microseconds; truncating here keeps what the app holds equal to what the store holds.
        var now = TimeProvider.GetUtcNow();
        return now.AddTicks(-(now.Ticks % TimeSpan.TicksPerMicrosecond));
    }
}
