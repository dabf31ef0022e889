using Npgsql;

namespace PgFirst.Core;

/// <summary>
/// One module's use of the read replicas: the router, the module's consistency level and largest lag. A module store
/// asks it where each read goes and tells it what it wrote (only read-your-writes needs that).
/// </summary>
/// <param name="Router">The router that samples the replicas.</param>
/// <param name="Module">The module's name, e.g. <c>pgcache</c> (a metric tag and the dashboard's "reads from").</param>
/// <param name="Consistency">The module's read consistency.</param>
/// <param name="MaxLag">The largest lag of a replica the module reads from.</param>
public sealed record PgReplicaReads(PgReplicaRouter Router, string Module, PgReadConsistency Consistency, TimeSpan MaxLag)
{
    /// <summary>
    /// Returns the replicas a module reads from, or <see langword="null"/> when it reads only from the primary (the
    /// consistency is <see cref="PgReadConsistency.Strong"/>, or no router or replica is configured).
    /// </summary>
    /// <param name="router">The router, or <see langword="null"/>.</param>
    /// <param name="module">The module's name.</param>
    /// <param name="consistency">The module's read consistency.</param>
    /// <param name="maxLag">The largest lag of a replica the module reads from.</param>
    /// <returns>The replica reads, or <see langword="null"/>.</returns>
    public static PgReplicaReads? For(PgReplicaRouter? router, string module, PgReadConsistency consistency, TimeSpan maxLag) =>
        consistency == PgReadConsistency.Strong || router is not { HasReplicas: true }
            ? null
            : new PgReplicaReads(router, module, consistency, maxLag);

    /// <summary>Returns the standby this read goes to, or <see langword="null"/> for the primary.</summary>
    /// <param name="key">The key read (unique within the module), or <see langword="null"/> for a read across keys.</param>
    /// <returns>The standby's data source, or <see langword="null"/>.</returns>
    public NpgsqlDataSource? Choose(string? key) =>
        Router.ChooseReplica(Module, Consistency, MaxLag, key is null || Consistency != PgReadConsistency.ReadYourWrites ? null : string.Concat(Module, "\0", key));

    /// <summary>Records who answered a read: the standby <see cref="Choose"/> returned, or <see langword="null"/> for the primary.</summary>
    /// <param name="replica">The standby's data source, or <see langword="null"/>.</param>
    public void Answered(NpgsqlDataSource? replica) => Router.RecordRead(Module, replica);

    /// <summary>Records that a write of <paramref name="key"/> returned (read-your-writes only).</summary>
    /// <param name="key">The key (unique within the module).</param>
    public void Wrote(string key)
    {
        if (Consistency == PgReadConsistency.ReadYourWrites)
        {
            Router.RecordWrite(string.Concat(Module, "\0", key));
        }
    }

    /// <summary>Records a write that may have changed any key of the module (read-your-writes only).</summary>
    public void WroteAny()
    {
        if (Consistency == PgReadConsistency.ReadYourWrites)
        {
            Router.RecordWriteToAll();
        }
    }
}
