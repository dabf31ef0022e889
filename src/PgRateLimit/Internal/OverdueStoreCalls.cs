using System.Runtime.CompilerServices;

namespace PgRateLimit.Internal;

// The store calls whose callers stopped waiting (their decision timed out) but which still run on the store. Shared by
// every limiter on one store instance, so the cap bounds what all of them add to a store that is already too slow.
internal sealed class OverdueStoreCalls
{
    private static readonly ConditionalWeakTable<IPgRateLimitStore, OverdueStoreCalls> ByStore = [];

    private int _count;

    public static OverdueStoreCalls For(IPgRateLimitStore store) => ByStore.GetValue(store, static _ => new OverdueStoreCalls());

    public int Count => Volatile.Read(ref _count);

    // Counts the call until it ends, however it ends; its error, if any, is observed here (its caller has gone).
    public void Track(Task call)
    {
        Interlocked.Increment(ref _count);
        _ = call.ContinueWith(
            static (ended, state) =>
            {
                _ = ended.Exception;
                Interlocked.Decrement(ref ((OverdueStoreCalls)state!)._count);
            },
            this,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }
}
