namespace PgQueue;

/// <summary>
/// Options of PgQueue: defaults for jobs, and how this process's workers claim, lease and finish them.
/// </summary>
public sealed class PgQueueOptions
{
    /// <summary>Gets or sets the queue of jobs whose type names none. <value>The default is <c>default</c>.</value></summary>
    public string DefaultQueue { get; set; } = "default";

    /// <summary>Gets or sets the attempts a job gets unless its registration or <see cref="JobOptions"/> say otherwise. <value>The default is 20.</value></summary>
    public int DefaultMaxAttempts { get; set; } = 20;

    /// <summary>Gets or sets the back-off of failed jobs whose handler registration sets none.</summary>
    public JobRetryPolicy Retry { get; set; } = new();

    /// <summary>
    /// Gets or sets a value indicating whether this process runs workers. Turn it off in processes that only enqueue.
    /// <value>The default is <see langword="true"/> (workers run for every queue that has a handler).</value>
    /// </summary>
    public bool RunWorkers { get; set; } = true;

    /// <summary>
    /// Gets the per-queue worker settings, by queue name. A queue that has handlers but no entry uses
    /// <see cref="DefaultConcurrency"/> and <see cref="DefaultPrefetch"/>.
    /// </summary>
    public IDictionary<string, PgQueueWorkerOptions> Queues { get; } = new Dictionary<string, PgQueueWorkerOptions>(StringComparer.Ordinal);

    /// <summary>Gets or sets how many jobs of one queue run at once in this process. <value>The default is 8.</value></summary>
    public int DefaultConcurrency { get; set; } = 8;

    /// <summary>
    /// Gets or sets how many jobs beyond the running ones a worker claims ahead into memory, so a finished handler
    /// starts the next job without a round trip. Prefetched jobs hold leases and are returned, without spending an
    /// attempt, on shutdown. <value>The default is 64.</value>
    /// </summary>
    public int DefaultPrefetch { get; set; } = 64;

    /// <summary>
    /// Gets or sets how long a claimed job stays leased without a heartbeat. After a worker dies, its jobs become
    /// available again within about <see cref="PollInterval"/> of this. <value>The default is 30 seconds.</value>
    /// </summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Gets or sets how often a worker renews the leases of the jobs it holds. <value>The default is 10 seconds; less than <see cref="LeaseDuration"/>.</value></summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Gets or sets how often an idle worker looks for work without being notified, and how often scheduled jobs and
    /// expired leases are promoted. <value>The default is 1 second.</value>
    /// </summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Gets or sets a value indicating whether workers LISTEN for enqueue notifications (and producers NOTIFY).
    /// Off, workers poll every <see cref="PollInterval"/>. Behind a transaction pooler
    /// (<c>PgFirst:Pooler=Transaction</c>) workers LISTEN on <c>PgFirst:ListenConnectionString</c>, and poll without it.
    /// <value>The default is <see langword="true"/>.</value>
    /// </summary>
    public bool UseNotifications { get; set; } = true;

    /// <summary>
    /// Gets or sets the window in which a producer sends at most one notification per queue (plus one trailing
    /// notification at its end), so a burst of enqueues never becomes a burst of NOTIFYs.
    /// <value>The default is 5 milliseconds.</value>
    /// </summary>
    public TimeSpan NotifyDebounce { get; set; } = TimeSpan.FromMilliseconds(5);

    /// <summary>Gets or sets how long shutdown waits for running handlers before cancelling them. <value>The default is 15 seconds.</value></summary>
    public TimeSpan ShutdownGracePeriod { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Gets or sets how long succeeded jobs are kept in <c>job_finished</c> for inspection. Zero deletes a job in the
    /// statement that acknowledges it, whether the worker acknowledges it in a batch or the handler completes it in
    /// its own transaction (<see cref="JobContext.CompleteAsync(Npgsql.NpgsqlTransaction, CancellationToken)"/>).
    /// That is the cheapest path: keeping a history costs a row insert per job (about 30 % of drain throughput in the
    /// benchmark). Metrics and traces record succeeded jobs either way.
    /// <value>The default is zero (not kept).</value>
    /// </summary>
    public TimeSpan SucceededRetention { get; set; }

    /// <summary>
    /// Gets or sets whether <see cref="JobQueueManager"/>'s queue statistics and lists of finished jobs may be read
    /// from a read replica (<c>PgFirst:Replicas</c>), which takes a dashboard's polling off the primary. Everything the
    /// workers do, and reading or changing one job, stays on the primary.
    /// <value>
    /// The default is <see cref="PgFirst.Core.PgReadConsistency.Strong"/> (the primary). Only Strong and
    /// <see cref="PgFirst.Core.PgReadConsistency.BoundedStaleness"/> (within <see cref="MaxReplicaLag"/>) are accepted.
    /// </value>
    /// </summary>
    public PgFirst.Core.PgReadConsistency StatsReadConsistency { get; set; } = PgFirst.Core.PgReadConsistency.Strong;

    /// <summary>Gets or sets the largest replay lag of a replica the statistics may be read from. <value>The default is 1 second.</value></summary>
    public TimeSpan MaxReplicaLag { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Gets or sets how long cancelled jobs are kept. <value>The default is 7 days.</value></summary>
    public TimeSpan CancelledRetention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Gets or sets how long dead jobs are kept for inspection and requeue. <value>The default is 14 days.</value></summary>
    public TimeSpan DeadRetention { get; set; } = TimeSpan.FromDays(14);

    /// <summary>Gets or sets the largest serialized payload accepted, in bytes. <value>The default is 1 MiB.</value></summary>
    public int MaxPayloadBytes { get; set; } = 1024 * 1024;

    /// <summary>
    /// Gets or sets a value indicating whether claims and their batched acknowledgements wait for a durable commit.
    /// When off (the default) those transactions alone run with <c>synchronous_commit = off</c>: a database crash can
    /// forget the last few hundred milliseconds of them, which at worst runs those jobs again (delivery is at least
    /// once anyway). Enqueues, failures and <see cref="JobContext.CompleteAsync(Npgsql.NpgsqlTransaction, CancellationToken)"/>
    /// are always durable. <value>The default is <see langword="false"/>.</value>
    /// </summary>
    public bool DurableClaims { get; set; }

    /// <summary>Gets or sets the most jobs one claim takes. <value>The default is 256.</value></summary>
    public int MaxClaimBatch { get; set; } = 256;

    /// <summary>Gets or sets the serializer options of payloads. <value>The default is <see cref="System.Text.Json.JsonSerializerDefaults.Web"/>.</value></summary>
    public System.Text.Json.JsonSerializerOptions SerializerOptions { get; set; } = new(System.Text.Json.JsonSerializerDefaults.Web);

    /// <summary>Gets or sets this worker's name in job rows and logs. <value>The default is the machine name and process id.</value></summary>
    public string? WorkerName { get; set; }

    internal PgQueueWorkerOptions GetQueue(string queue) =>
        Queues.TryGetValue(queue, out var options) ? options : new PgQueueWorkerOptions { Concurrency = DefaultConcurrency, Prefetch = DefaultPrefetch };
}

/// <summary>
/// Worker settings of one queue in this process.
/// </summary>
public sealed class PgQueueWorkerOptions
{
    /// <summary>Gets or sets how many jobs run at once. <value>The default is 8; 0 runs no worker for the queue here.</value></summary>
    public int Concurrency { get; set; } = 8;

    /// <summary>Gets or sets how many jobs are claimed ahead into memory. <value>The default is 64.</value></summary>
    public int Prefetch { get; set; } = 64;
}

/// <summary>
/// Settings of one payload type: where its jobs go and how they retry.
/// </summary>
public sealed class JobTypeOptions
{
    /// <summary>Gets or sets the stored kind name. <value>The default is the payload type's full name.</value></summary>
    public string? Kind { get; set; }

    /// <summary>Gets or sets the queue. <value>The default is <see cref="PgQueueOptions.DefaultQueue"/>.</value></summary>
    public string? Queue { get; set; }

    /// <summary>Gets or sets the default priority. <value>The default is 0.</value></summary>
    public int Priority { get; set; }

    /// <summary>Gets or sets the attempts allowed. <value>The default is <see cref="PgQueueOptions.DefaultMaxAttempts"/>.</value></summary>
    public int? MaxAttempts { get; set; }

    /// <summary>Gets or sets the back-off. <value>The default is <see cref="PgQueueOptions.Retry"/>.</value></summary>
    public JobRetryPolicy? Retry { get; set; }
}
