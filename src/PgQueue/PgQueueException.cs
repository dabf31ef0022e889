namespace PgQueue;

/// <summary>
/// Thrown when PgQueue cannot do what was asked of it, such as a job store that cannot be reached.
/// </summary>
public class PgQueueException : Exception
{
    /// <summary>Initializes a new instance of the <see cref="PgQueueException"/> class.</summary>
    public PgQueueException()
    {
    }

    /// <summary>Initializes a new instance of the <see cref="PgQueueException"/> class.</summary>
    /// <param name="message">The message.</param>
    public PgQueueException(string message)
        : base(message)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="PgQueueException"/> class.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public PgQueueException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// Thrown by <see cref="JobContext.CompleteAsync(Npgsql.NpgsqlTransaction, CancellationToken)"/> when this attempt no
/// longer holds the job's lease (it expired and another worker claimed the job, or the job was cancelled). Let it
/// propagate so the transaction rolls back: the other attempt does the work, exactly once.
/// </summary>
public sealed class JobLeaseLostException : PgQueueException
{
    /// <summary>Initializes a new instance of the <see cref="JobLeaseLostException"/> class.</summary>
    public JobLeaseLostException()
    {
    }

    /// <summary>Initializes a new instance of the <see cref="JobLeaseLostException"/> class.</summary>
    /// <param name="message">The message.</param>
    public JobLeaseLostException(string message)
        : base(message)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="JobLeaseLostException"/> class.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public JobLeaseLostException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
