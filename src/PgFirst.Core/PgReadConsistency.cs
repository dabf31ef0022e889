namespace PgFirst.Core;

/// <summary>
/// Where a module's reads may go when read replicas are configured (<see cref="PgFirstOptions.Replicas"/>). Writes
/// always go to the primary.
/// </summary>
public enum PgReadConsistency
{
    /// <summary>Every read goes to the primary: reads see every committed write.</summary>
    Strong = 0,

    /// <summary>
    /// A read goes to a standby whose measured replay lag is at most the module's maximum lag, else to the primary:
    /// a read may miss writes of the last moments (of any instance), never older ones.
    /// </summary>
    BoundedStaleness = 1,

    /// <summary>
    /// After this instance writes a key, its reads of that key go to a standby only once that standby has replayed
    /// the write, else to the primary; other keys read from any standby that is within the maximum lag. Writes of
    /// other instances are seen as under <see cref="BoundedStaleness"/>.
    /// </summary>
    ReadYourWrites = 2,
}
