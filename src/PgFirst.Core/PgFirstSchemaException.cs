namespace PgFirst.Core;

/// <summary>
/// Thrown when the PgFirst schema cannot be applied, or is missing or incomplete at run time. The message says what to
/// do: which script to apply, or which server could not be reached.
/// </summary>
public sealed class PgFirstSchemaException : Exception
{
    /// <summary>Initializes a new instance of the <see cref="PgFirstSchemaException"/> class.</summary>
    public PgFirstSchemaException()
    {
    }

    /// <summary>Initializes a new instance of the <see cref="PgFirstSchemaException"/> class.</summary>
    /// <param name="message">The message.</param>
    public PgFirstSchemaException(string message)
        : base(message)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="PgFirstSchemaException"/> class.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public PgFirstSchemaException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>
    /// Gets the script the message asks to apply, when one is known.
    /// </summary>
    public PgSchemaScript? Script { get; init; }
}
