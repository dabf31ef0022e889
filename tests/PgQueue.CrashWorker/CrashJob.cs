namespace PgQueue.CrashWorker;

// The payload the tests enqueue: {"number": 1, "hang": false} of kind "crash-job". A hanging job blocks its first
// attempt after recording its effect, so a kill is sure to land in the middle of it; later attempts run normally.
internal sealed record CrashJob(int Number, bool Hang)
{
    public const string Kind = "crash-job";

    // The PgQueue worker name, which the rescue of an expired lease writes into the job's error history.
    public static string WorkerName(int processId) => $"crash-worker:{processId}";
}
