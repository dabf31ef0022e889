using System.Globalization;
using System.Text;

namespace PgFirst.Topology.Tests;

// What one failover run measured, and what survived on the promoted standby. Times are on the run's clock.
internal sealed record FailoverReport
{
    public required FailoverSettings Settings { get; init; }

    public required TimeSpan CrashedAt { get; init; }

    // When pg_ctl stop -m immediate returned: the old primary's processes are gone.
    public required TimeSpan CrashReturnedAt { get; init; }

    // When pg_ctl promote -w returned: the standby accepts writes.
    public required TimeSpan PromotedAt { get; init; }

    public required IReadOnlyList<Outage> Outages { get; init; }

    // The load's operations once every module had recovered.
    public required IReadOnlyList<Aftermath> Aftermath { get; init; }

    // When the queue's LISTEN was first seen on the new primary, or null if never within the run.
    public required TimeSpan? ListenerBackAt { get; init; }

    public required IReadOnlyDictionary<string, (int Successes, int Failures)> Operations { get; init; }

    public required IReadOnlyList<string> Errors { get; init; }

    // Null for a run with a hanging primary, which reports the outage only.
    public required Markers? Markers { get; init; }

    // Loads that found no session the same caller had just inserted (its insert committed on a host that is gone).
    public required int SessionsNotFound { get; init; }

    public required QueueOutcome? Queue { get; init; }

    public bool EveryModuleRecovered => Outages.All(o => o.Recovered is not null);

    // From the first failure of any module to the moment the last one recovered.
    public TimeSpan? Overall =>
        EveryModuleRecovered && Outages.Any(o => o.FirstFailure is not null)
            ? Outages.Max(o => o.Recovered!.Value) - Outages.Where(o => o.FirstFailure is not null).Min(o => o.FirstFailure!.Value)
            : EveryModuleRecovered ? TimeSpan.Zero : null;

    public override string ToString()
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Failover: {Settings}");
        text.AppendLine(CultureInfo.InvariantCulture, $"  crash (pg_ctl stop -m immediate) returned after {Outage.Seconds(CrashReturnedAt - CrashedAt)}; standby promoted {Outage.Seconds(PromotedAt - CrashedAt)} after the crash began");
        foreach (var outage in Outages)
        {
            var (ok, failed) = Operations[outage.Module];
            text.AppendLine(CultureInfo.InvariantCulture, $"  {outage} [{ok} ok, {failed} failed]");
        }

        text.AppendLine("  after every module recovered: " + string.Join("; ", Aftermath));
        text.AppendLine(CultureInfo.InvariantCulture, $"  overall outage {Outage.Seconds(Overall)}; the queue's LISTEN back on the new primary {(ListenerBackAt is { } l ? Outage.Seconds(l - CrashedAt) + " after the crash" : "NEVER")}");
        text.AppendLine(CultureInfo.InvariantCulture, $"  rate limiter: {Operations["rate limiter"].Successes} decisions by the store, {Operations["rate limiter"].Failures} degraded (fail-open)");
        if (Markers is not null)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  {Markers}");
        }

        text.AppendLine(CultureInfo.InvariantCulture, $"  sessions: {SessionsNotFound} loads right after an insert found nothing");
        if (Queue is not null)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  {Queue}");
        }

        text.AppendLine("  errors seen: " + (Errors.Count == 0 ? "none" : string.Join("; ", Errors)));
        return text.ToString();
    }
}

internal sealed record Markers
{
    public required int CacheWritten { get; init; }

    public required int CacheSurvived { get; init; }

    public required long RateLimitCountBefore { get; init; }

    public required long RateLimitCountAfter { get; init; }

    // The marker's day-long window ended during the run, so its count started again for that reason alone.
    public required bool RateLimitWindowEnded { get; init; }

    public required int SessionsBefore { get; init; }

    public required int SessionsSurvived { get; init; }

    public required IReadOnlyDictionary<string, string> TablePersistence { get; init; }

    // The marker counted 5 before the crash and 1 more after it: 1 means its counter was gone.
    public bool RateLimitCounterSurvived => RateLimitCountAfter == RateLimitCountBefore + 1;

    public override string ToString() =>
        $"written before the crash, there after it: cache entries {CacheSurvived} of {CacheWritten}; rate-limit count " +
        $"{RateLimitCountBefore} before, {RateLimitCountAfter} after one more permit{(RateLimitWindowEnded ? " (its window ended meanwhile)" : string.Empty)}; " +
        $"sessions (the last acknowledged before the crash) {SessionsSurvived} of {SessionsBefore}. Tables: {string.Join(", ", TablePersistence.Select(t => $"{t.Key} {t.Value}"))}";
}

internal sealed record QueueOutcome
{
    // Enqueues that returned (committed) / that threw (in doubt).
    public required int Enqueued { get; init; }

    public required int EnqueueFailed { get; init; }

    // Committed jobs with an effect on the new primary.
    public required int Ran { get; init; }

    // Committed jobs with no effect on the new primary once the queue drained: their job rows never reached it.
    public required IReadOnlyList<int> Lost { get; init; }

    // Jobs with more than one effect row: never expected, effect and completion share one transaction.
    public required IReadOnlyList<int> DuplicateEffects { get; init; }

    public required int InDoubtRan { get; init; }

    // Effects of jobs the test never enqueued: never expected.
    public required int StrayEffects { get; init; }

    // Jobs whose handler saw its commit return more than once: the first run's completion did not reach the new
    // primary, so the job ran again there. The effect of the first run is gone with the old primary.
    public required IReadOnlyList<int> CommittedRunsTwice { get; init; }

    public required int HandlerCommits { get; init; }

    // Finished jobs that did not succeed (dead or cancelled).
    public required long NotSucceeded { get; init; }

    public required bool Drained { get; init; }

    public override string ToString() =>
        $"queue: {Enqueued} enqueues committed ({EnqueueFailed} failed, in doubt: {InDoubtRan} of them ran anyway); {Ran} of {Enqueued} committed jobs ran, " +
        $"{Lost.Count} lost{List(Lost)}; {CommittedRunsTwice.Count} ran twice{List(CommittedRunsTwice)}; {DuplicateEffects.Count} with a duplicate effect; " +
        $"{StrayEffects} stray effects; {HandlerCommits} handler commits; {NotSucceeded} dead or cancelled; drained: {Drained}";

    private static string List(IReadOnlyList<int> numbers) =>
        numbers.Count == 0 ? string.Empty : $" (numbers {string.Join(", ", numbers.Take(10))}{(numbers.Count > 10 ? ", …" : string.Empty)})";
}
