namespace PgQueue;

/// <summary>
/// Per-job settings for <see cref="IJobQueue.EnqueueAsync{TPayload}(TPayload, JobOptions?, CancellationToken)"/>.
/// Anything left <see langword="null"/> comes from the payload type's registration (<c>AddHandler</c> or
/// <c>AddJob</c>) and then from <see cref="PgQueueOptions"/>.
/// </summary>
public sealed class JobOptions
{
    /// <summary>Gets or sets the queue. <value>The default is the queue registered for the payload type, else <see cref="PgQueueOptions.DefaultQueue"/>.</value></summary>
    public string? Queue { get; set; }

    /// <summary>
    /// Gets or sets the priority within the queue: higher runs first.
    /// <value>The default is the registered priority, else 0. Must fit a PostgreSQL <c>smallint</c>.</value>
    /// </summary>
    public int? Priority { get; set; }

    /// <summary>Gets or sets a delay before the job becomes available. Must not be negative; exclusive with <see cref="RunAt"/>.</summary>
    public TimeSpan? Delay { get; set; }

    /// <summary>Gets or sets the time the job becomes available; exclusive with <see cref="Delay"/>. A past time means now.</summary>
    public DateTimeOffset? RunAt { get; set; }

    /// <summary>Gets or sets how many attempts the job gets before it goes dead. <value>The default is the registered value, else <see cref="PgQueueOptions.DefaultMaxAttempts"/>.</value></summary>
    public int? MaxAttempts { get; set; }

    /// <summary>
    /// Gets or sets a deduplication key: while a job with this key is pending, scheduled or running, enqueuing
    /// another one with the same key does nothing and reports <see cref="JobEnqueueResult.Duplicate"/>. Keys are
    /// global across queues and kinds (prefix them yourself to scope them); at most 512 characters.
    /// </summary>
    public string? UniqueKey { get; set; }
}
