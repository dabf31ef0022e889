namespace PgSessions;

/// <summary>
/// A session could not be loaded or committed: the store failed, or a commit kept losing races with concurrent
/// requests of the same session. The inner exception, when there is one, is the store's error.
/// </summary>
public sealed class PgSessionException : Exception
{
    /// <summary>Initializes a new instance of the <see cref="PgSessionException"/> class.</summary>
    public PgSessionException()
    {
    }

    /// <summary>Initializes a new instance of the <see cref="PgSessionException"/> class.</summary>
    /// <param name="message">The message.</param>
    public PgSessionException(string message)
        : base(message)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="PgSessionException"/> class.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The store's error.</param>
    public PgSessionException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
