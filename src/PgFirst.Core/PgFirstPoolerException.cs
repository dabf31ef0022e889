namespace PgFirst.Core;

/// <summary>
/// Thrown when a statement failed in a way that only a transaction pooler between the app and PostgreSQL explains
/// (a prepared statement that the server connection does not have, or has with another shape), or when a data source's
/// settings are unsafe behind one. The message names the setting to change; PgFirst never retries such a statement,
/// since a retry could run a statement that another client prepared under the same name.
/// </summary>
public sealed class PgFirstPoolerException : Exception
{
    /// <summary>Initializes a new instance of the <see cref="PgFirstPoolerException"/> class.</summary>
    public PgFirstPoolerException()
    {
    }

    /// <summary>Initializes a new instance of the <see cref="PgFirstPoolerException"/> class.</summary>
    /// <param name="message">The message.</param>
    public PgFirstPoolerException(string message)
        : base(message)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="PgFirstPoolerException"/> class.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public PgFirstPoolerException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
