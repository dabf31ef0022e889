namespace PgCache;

/// <summary>
/// Thrown when a cache operation fails in the store; the message names the operation and the reason. The inner
/// exception is the driver's.
/// </summary>
public sealed class PgCacheException : Exception
{
    /// <summary>Initializes a new instance of the <see cref="PgCacheException"/> class.</summary>
    public PgCacheException()
    {
    }

    /// <summary>Initializes a new instance of the <see cref="PgCacheException"/> class.</summary>
    /// <param name="message">The message.</param>
    public PgCacheException(string message)
        : base(message)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="PgCacheException"/> class.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public PgCacheException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Gets the operation that failed, e.g. <c>get</c> or <c>set_many</c>.</summary>
    public string? Operation { get; init; }
}

/// <summary>
/// Thrown when a cached entry cannot be read as JSON of the requested type. Nothing is returned in its place.
/// </summary>
public sealed class PgCacheJsonException : Exception
{
    /// <summary>Initializes a new instance of the <see cref="PgCacheJsonException"/> class.</summary>
    public PgCacheJsonException()
    {
    }

    /// <summary>Initializes a new instance of the <see cref="PgCacheJsonException"/> class.</summary>
    /// <param name="message">The message.</param>
    public PgCacheJsonException(string message)
        : base(message)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="PgCacheJsonException"/> class.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public PgCacheJsonException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Gets the key of the entry (kept out of the message, which may be logged).</summary>
    public string? Key { get; init; }

    /// <summary>Gets the type the entry was read as.</summary>
    public Type? TargetType { get; init; }
}
