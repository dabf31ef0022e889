namespace PgFirst.Core;

/// <summary>
/// Configures the read replicas (streaming standbys) PgFirst may read from, and how it measures how far behind they are.
/// Bound from <c>PgFirst:Replicas</c>.
/// </summary>
public sealed class PgReplicaOptions
{
    /// <summary>
    /// Gets or sets an Npgsql connection string to the standbys. Several are listed in <c>Host</c>
    /// (<c>Host=standby1,standby2:5433</c>); PgFirst opens a small pool to each and measures each one's lag.
    /// </summary>
    /// <value>The default is <see langword="null"/>: no replicas, every read goes to the primary.</value>
    public string? ConnectionString { get; set; }

    /// <summary>
    /// Gets or sets how often the replay position of every standby is compared with the primary's WAL position.
    /// A write of this instance becomes readable on a standby at the first sample after the standby replayed it.
    /// </summary>
    /// <value>The default is 200 milliseconds. Between 10 milliseconds and 1 minute.</value>
    public TimeSpan SampleInterval { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Gets or sets the replay lag above which the replica health check reports Degraded.</summary>
    /// <value>The default is 10 seconds.</value>
    public TimeSpan DegradedLag { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Gets or sets how many keys written by this instance are remembered for <see cref="PgReadConsistency.ReadYourWrites"/>
    /// until every standby has replayed them. Past it, the next reads of every key wait for the standbys to catch up.
    /// </summary>
    /// <value>The default is 100,000.</value>
    public int MaxTrackedWrites { get; set; } = 100_000;
}
