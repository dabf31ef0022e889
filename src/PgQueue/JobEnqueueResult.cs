namespace PgQueue;

/// <summary>
/// The outcome of enqueuing one job.
/// </summary>
/// <param name="Id">The new job's id; for a duplicate, the id of the job that holds the unique key, when it could be read (it may have finished meanwhile).</param>
/// <param name="Duplicate"><see langword="true"/> when nothing was enqueued because a pending or running job holds the same unique key.</param>
public readonly record struct JobEnqueueResult(long? Id, bool Duplicate)
{
    /// <summary>Returns a result for a newly enqueued job.</summary>
    /// <param name="id">The job's id.</param>
    /// <returns>The result.</returns>
    public static JobEnqueueResult Enqueued(long id) => new(id, false);
}

/// <summary>
/// The outcome of a bulk enqueue.
/// </summary>
/// <param name="Enqueued">How many jobs were enqueued.</param>
/// <param name="Duplicates">How many were skipped because their unique key was held (or repeated within the batch).</param>
public readonly record struct JobBatchEnqueueResult(int Enqueued, int Duplicates);
