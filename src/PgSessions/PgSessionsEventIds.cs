namespace PgSessions;

/// <summary>
/// The stable event ids of PgSessions log messages (range 2000–2999).
/// </summary>
public static class PgSessionsEventIds
{
    /// <summary>Loading a session failed; the request sees a <see cref="PgSessionException"/>.</summary>
    public const int LoadFailed = 2001;

    /// <summary>Committing a session failed; its changes were not stored.</summary>
    public const int CommitFailed = 2002;

    /// <summary>A session was loaded synchronously because application code used it without <c>await LoadAsync()</c>.</summary>
    public const int SynchronousLoad = 2003;

    /// <summary>A concurrent request of the same session committed first; this request's changes were merged into the session as it was (nothing lost).</summary>
    public const int ConflictMerged = 2004;

    /// <summary>The session was revoked or expired while the request ran; its changes were discarded.</summary>
    public const int SessionEndedDuringRequest = 2005;

    /// <summary>A session's id was regenerated.</summary>
    public const int IdRegenerated = 2006;

    /// <summary>Sessions were revoked.</summary>
    public const int Revoked = 2007;

    /// <summary>A request carried a session cookie whose session is unknown, expired or revoked; a fresh session starts.</summary>
    public const int UnknownSession = 2008;

    /// <summary>The near cache lost its listen connection: it serves nothing from memory until it listens again.</summary>
    public const int NearCacheListenerLost = 2009;

    /// <summary>The near cache could not tell the other instances of a write; their copies end by their lifetime.</summary>
    public const int NearCacheNotifyFailed = 2010;
}
