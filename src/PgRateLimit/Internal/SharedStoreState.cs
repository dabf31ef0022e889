using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace PgRateLimit.Internal;

// What every limiter on one store instance shares about that store: the calls whose callers stopped waiting (their
// decision timed out) but which still run on it, and when a degraded decision was last logged.
internal sealed class SharedStoreState
{
    private static readonly ConditionalWeakTable<IPgRateLimitStore, SharedStoreState> ByStore = [];
    private static readonly long LogInterval = Stopwatch.Frequency;

    private int _overdue;
    private long _lastLogged = Stopwatch.GetTimestamp() - LogInterval;
    private long _unlogged;

    public static SharedStoreState For(IPgRateLimitStore store) => ByStore.GetValue(store, static _ => new SharedStoreState());

    private int _failing;

    public int OverdueCalls => Volatile.Read(ref _overdue);

    // Whether the last call on this store failed or timed out (until one succeeds): then a decision's wait for a new
    // connection counts against its timeout, so an outage does not make every decision wait ConnectTimeout.
    public bool Failing => Volatile.Read(ref _failing) != 0;

    public void CallSucceeded()
    {
        if (Volatile.Read(ref _failing) != 0)
        {
            Volatile.Write(ref _failing, 0);
        }
    }

    public void CallFailed() => Volatile.Write(ref _failing, 1);

    // Counts the call until it ends, however it ends; its error, if any, is observed here (its caller has gone).
    public void TrackOverdue(Task call)
    {
        Interlocked.Increment(ref _overdue);
        _ = call.ContinueWith(
            static (ended, state) =>
            {
                _ = ended.Exception;
                var shared = (SharedStoreState)state!;
                Interlocked.Decrement(ref shared._overdue);
                if (ended.IsCompletedSuccessfully)
                {
                    // A late answer is still an answer: the store works, only slowly.
                    shared.CallSucceeded();
                }
            },
            this,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    // One degraded decision per second per store is logged; the others are counted (metrics count every one) and the
    // next message says how many were not logged. An outage at thousands of requests a second must not flood the logs.
    public bool ShouldLogDegraded(out long unlogged)
    {
        var now = Stopwatch.GetTimestamp();
        var last = Volatile.Read(ref _lastLogged);
        if (now - last >= LogInterval && Interlocked.CompareExchange(ref _lastLogged, now, last) == last)
        {
            unlogged = Interlocked.Exchange(ref _unlogged, 0);
            return true;
        }

        Interlocked.Increment(ref _unlogged);
        unlogged = 0;
        return false;
    }
}
