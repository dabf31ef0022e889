using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace PgFirst.Topology.Tests;

// The outcomes of one module's operations during a failover run, each stamped on the run's clock when it ended, and
// the outage they show: from the first operation that failed after the crash to the first that succeeded after that.
internal sealed class ModuleProbe(string name, Stopwatch clock)
{
    private readonly ConcurrentQueue<(TimeSpan At, bool Ok, TimeSpan Took)> _outcomes = new();
    private int _successes;
    private int _failures;

    public string Name { get; } = name;

    public int Successes => Volatile.Read(ref _successes);

    public int Failures => Volatile.Read(ref _failures);

    public void Succeeded(TimeSpan took = default)
    {
        Interlocked.Increment(ref _successes);
        _outcomes.Enqueue((clock.Elapsed, true, took));
    }

    public void Failed(TimeSpan took = default)
    {
        Interlocked.Increment(ref _failures);
        _outcomes.Enqueue((clock.Elapsed, false, took));
    }

    // Whether an operation that ended after `since` succeeded.
    public bool SucceededSince(TimeSpan since) => _outcomes.Any(o => o.Ok && o.At > since);

    // The first failure at or after the crash, and the first success after both that failure and the moment the old
    // primary was gone (so on the new primary). A module that saw no failure (idle workers) is out from the crash.
    public Outage Measure(TimeSpan crashedAt, TimeSpan goneAt)
    {
        var outcomes = _outcomes.Where(o => o.At >= crashedAt).OrderBy(o => o.At).ToList();
        var failed = outcomes.FindIndex(o => !o.Ok);
        TimeSpan? firstFailure = failed < 0 ? null : outcomes[failed].At;
        var after = firstFailure is { } f && f > goneAt ? f : goneAt;
        var recovered = outcomes.FindIndex(o => o.Ok && o.At > after);
        return new Outage(Name, firstFailure, recovered < 0 ? null : outcomes[recovered].At, crashedAt);
    }

    // The operations that ended after `from`: how many, how many took longer than `slow` or failed, and the longest.
    public Aftermath After(TimeSpan from, TimeSpan slow)
    {
        var outcomes = _outcomes.Where(o => o.At > from).ToList();
        return new Aftermath(
            Name,
            outcomes.Count,
            outcomes.Count(o => !o.Ok || o.Took > slow),
            outcomes.Count == 0 ? TimeSpan.Zero : outcomes.Max(o => o.Took),
            slow);
    }
}

// One module's outage: FirstFailure and Recovered on the run's clock, null when there was none.
internal sealed record Outage(string Module, TimeSpan? FirstFailure, TimeSpan? Recovered, TimeSpan CrashedAt)
{
    // From the first failure (or the crash, if none was seen) to the first success on the new primary; null when
    // nothing recovered.
    public TimeSpan? Duration => Recovered - (FirstFailure ?? CrashedAt);

    public override string ToString() => (FirstFailure, Recovered) switch
    {
        (null, null) => $"{Module}: no failure seen and no success on the new primary, NEVER RECOVERED",
        (null, { } recovered) => $"{Module}: no failure seen; first success on the new primary {Seconds(recovered - CrashedAt)} after the crash",
        ({ } failed, null) => $"{Module}: first failure {Seconds(failed - CrashedAt)} after the crash, NEVER RECOVERED",
        ({ } failed, { } recovered) => $"{Module}: outage {Seconds(recovered - failed)} (first failure {Seconds(failed - CrashedAt)} after the crash, first success after it {Seconds(recovered - CrashedAt)} after the crash)",
    };

    public static string Seconds(TimeSpan? span) => span is { } s ? s.TotalSeconds.ToString("0.000' s'", CultureInfo.InvariantCulture) : "-";
}

// What a module's operations looked like once it had recovered: with a dead host that hangs rather than refuses, the
// outage ends but opens that try that host again (every Host Recheck Seconds) wait for Timeout.
internal sealed record Aftermath(string Module, int Operations, int SlowOrFailed, TimeSpan Longest, TimeSpan Slow)
{
    public override string ToString() =>
        $"{Module}: {SlowOrFailed} of {Operations} operations failed or took over {Slow.TotalMilliseconds:0} ms, the longest {Outage.Seconds(Longest)}";
}
