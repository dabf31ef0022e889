using Microsoft.AspNetCore.Http;
using PgSessions.Internal;

namespace PgSessions;

/// <summary>
/// What a PgSessions session can do beyond <see cref="ISession"/>: regenerate its id, bind a user, change its lifetime.
/// </summary>
public static class PgSessionExtensions
{
    /// <summary>
    /// Gives the session a new key (a new cookie) and keeps its data, id and user; the old cookie stops working at once
    /// on every instance. Call it on sign-in (and privilege changes) to defeat session fixation.
    /// </summary>
    /// <param name="session">The request's session (<c>HttpContext.Session</c>).</param>
    /// <param name="cancellationToken">The token to cancel the operation.</param>
    /// <returns>A task that completes when the stored session moved to the new key.</returns>
    /// <exception cref="InvalidOperationException">The session is not a PgSessions session, or the response has started.</exception>
    /// <exception cref="PgSessionException">The store failed.</exception>
    public static Task RegenerateIdAsync(this ISession session, CancellationToken cancellationToken = default) =>
        AsPgSession(session).RegenerateIdAsync(cancellationToken);

    /// <summary>
    /// Binds the session to a user (or unbinds it with <see langword="null"/>), so it is listed by
    /// <see cref="PgSessionManager.ListSessionsAsync"/> and revoked by <see cref="PgSessionManager.RevokeAllAsync"/>.
    /// Stored at once, together with any change made so far in this request.
    /// </summary>
    /// <param name="session">The request's session.</param>
    /// <param name="userId">The user id (1 to 256 characters), or <see langword="null"/>.</param>
    /// <param name="cancellationToken">The token to cancel the operation.</param>
    /// <returns>A task that completes when the binding is stored.</returns>
    /// <exception cref="ArgumentException"><paramref name="userId"/> is empty or too long.</exception>
    /// <exception cref="InvalidOperationException">The session is not a PgSessions session, or the response has started.</exception>
    /// <exception cref="PgSessionException">The store failed.</exception>
    public static Task BindUserAsync(this ISession session, string? userId, CancellationToken cancellationToken = default) =>
        AsPgSession(session).BindUserAsync(userId, cancellationToken);

    /// <summary>
    /// Gets the user the session is bound to, or <see langword="null"/>.
    /// </summary>
    /// <param name="session">The request's session (loaded).</param>
    /// <returns>The user id.</returns>
    public static string? GetUserId(this ISession session) => AsPgSession(session).UserId;

    /// <summary>
    /// Changes this session's idle timeout and/or absolute lifetime (counted from its creation), stored with the
    /// session's next commit. <see langword="null"/> keeps a value.
    /// </summary>
    /// <param name="session">The request's session.</param>
    /// <param name="idleTimeout">The new idle timeout, or <see langword="null"/>.</param>
    /// <param name="absoluteLifetime">The new absolute lifetime from creation, or <see langword="null"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException">A value is under 1 second or over 366 days.</exception>
    public static void SetLifetime(this ISession session, TimeSpan? idleTimeout, TimeSpan? absoluteLifetime) =>
        AsPgSession(session).SetLifetime(idleTimeout, absoluteLifetime);

    private static PgSession AsPgSession(ISession session)
    {
        ArgumentNullException.ThrowIfNull(session);
        return session as PgSession ?? throw new InvalidOperationException(
            $"The session is a {session.GetType().Name}, not a PgSessions session: call services.AddPgSessions() and app.UseSession().");
    }
}
