namespace PgFirst.Benchmarks.Report;

/// <summary>One scenario at one concurrency: what the load runner measured.</summary>
/// <param name="Group">What is measured, e.g. "cache get 1 KiB" or "session read-only request".</param>
/// <param name="Variant">Who does it, e.g. "raw prepared SELECT", "PgCache", "Redis twin".</param>
/// <param name="Callers">Concurrent callers.</param>
/// <param name="OpsPerSecond">Operations per second over the measured period (for a queue, jobs per second).</param>
/// <param name="P50">Median latency, µs; 0 when the scenario measures no per-operation latency (a drain, a bulk call).</param>
/// <param name="P95">95th percentile latency, µs; 0 when not measured.</param>
/// <param name="P99">99th percentile latency, µs; 0 when not measured.</param>
/// <param name="Rounds">How many rounds measured this step; the figures above are the median round's.</param>
/// <param name="MinOpsPerSecond">The lowest ops/s of any round (the spread); 0 when not recorded.</param>
/// <param name="MaxOpsPerSecond">The highest ops/s of any round; 0 when not recorded.</param>
/// <param name="RoundOpsPerSecond">
/// Ops/s by round (index 0 is round 1; NaN where that round failed), so two variants can be compared round by round;
/// null when not recorded.
/// </param>
internal sealed record LoadResult(
    string Group,
    string Variant,
    int Callers,
    double OpsPerSecond,
    double P50,
    double P95,
    double P99,
    int Rounds = 1,
    double MinOpsPerSecond = 0,
    double MaxOpsPerSecond = 0,
    IReadOnlyList<double>? RoundOpsPerSecond = null)
{
    /// <summary>Gets a value indicating whether the spread over rounds was recorded (more than one round).</summary>
    public bool HasSpread => Rounds > 1 && MaxOpsPerSecond > 0;

    /// <summary>
    /// This result's ops/s ÷ <paramref name="other"/>'s. Where both were measured in the same two or more rounds, it is
    /// the median of the ratios taken within each round: the two variants of a round ran minutes apart at most, so a
    /// machine that drifts between rounds (the load here moves ±5-10 % from round to round) moves both sides of each
    /// ratio, where a ratio of the two medians can take its numerator and denominator from different rounds. Otherwise
    /// the ratio of the figures shown.
    /// </summary>
    public double RatioTo(LoadResult other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (RoundOpsPerSecond is { } mine && other.RoundOpsPerSecond is { } theirs)
        {
            var ratios = new List<double>();
            for (var round = 0; round < Math.Min(mine.Count, theirs.Count); round++)
            {
                if (mine[round] > 0 && theirs[round] > 0)
                {
                    ratios.Add(mine[round] / theirs[round]);
                }
            }

            if (ratios.Count >= 2)
            {
                ratios.Sort();
                return ratios.Count % 2 == 1 ? ratios[ratios.Count / 2] : (ratios[(ratios.Count / 2) - 1] + ratios[ratios.Count / 2]) / 2;
            }
        }

        return OpsPerSecond / other.OpsPerSecond;
    }
}

/// <summary>The machine's 1-minute load average just before and just after one group's steps in one round.</summary>
/// <param name="Group">The group.</param>
/// <param name="Round">The round, from 1.</param>
/// <param name="Before">The 1-minute load average before the group's first step.</param>
/// <param name="After">The 1-minute load average after its last step.</param>
internal sealed record GroupLoad(string Group, int Round, double Before, double After);

/// <summary>
/// A module variant that wraps a raw baseline: it runs that SQL and more, so it cannot be faster. A run in which it is
/// more than 5 % faster has a measurement fault (an order effect, a baseline doing extra work), and the report says so.
/// </summary>
/// <param name="Group">The group both variants belong to.</param>
/// <param name="Variant">The module variant.</param>
/// <param name="Baseline">The raw variant it wraps.</param>
internal sealed record LoadWrapper(string Group, string Variant, string Baseline);

/// <summary>What BenchmarkDotNet's memory diagnoser measured for one operation, at 1 caller.</summary>
/// <param name="Group">The group, as the load scenarios name it.</param>
/// <param name="Variant">The variant.</param>
/// <param name="BytesPerOperation">Bytes allocated per operation (every thread of the process, as the diagnoser counts).</param>
/// <param name="MeanMicroseconds">The mean time of one operation, µs, in the same run.</param>
internal sealed record AllocationResult(string Group, string Variant, long BytesPerOperation, double MeanMicroseconds);

/// <summary>A line of the headline table: one PostgreSQL variant against one Redis variant of the same group.</summary>
/// <param name="Operation">The operation in plain words, e.g. "cache get, 1 KiB".</param>
/// <param name="Group">The group.</param>
/// <param name="Variant">The PostgreSQL variant (the numerator).</param>
/// <param name="Versus">The Redis variant (the denominator): the Redis twin or the stock Microsoft client.</param>
/// <param name="Note">What changes the answer, e.g. "the near cache: a hit costs no round trip"; optional.</param>
internal sealed record HeadlineRow(string Operation, string Group, string Variant, string Versus, string? Note = null);

/// <summary>A whole run: where and how it ran, and every result, in the order measured.</summary>
internal sealed record LoadRun(
    DateTimeOffset StartedAt,
    TimeSpan Duration,
    IReadOnlyList<KeyValuePair<string, string>> Machine,
    IReadOnlyList<KeyValuePair<string, string>> Settings,
    IReadOnlyList<LoadResult> Results,
    IReadOnlyList<KeyValuePair<string, string>>? Findings = null,
    IReadOnlyList<GroupLoad>? Loads = null,
    IReadOnlyList<AllocationResult>? Allocations = null,
    IReadOnlyList<KeyValuePair<string, string>>? Growth = null);

/// <summary>How a target compares a variant with its baseline, or with an absolute figure.</summary>
internal enum TargetKind
{
    /// <summary>Variant ops/s ÷ baseline ops/s must be at least the threshold (e.g. ours ≥ 0.85 of raw).</summary>
    ThroughputAtLeast,

    /// <summary>Baseline ops/s ÷ variant ops/s (the variant's cost in baseline units) must be at most the threshold (e.g. ≤ 1.3× a raw SELECT).</summary>
    CostAtMost,

    /// <summary>The variant's ops/s must be at least the threshold (e.g. ≥ 30,000 jobs/s); no baseline.</summary>
    AbsoluteThroughputAtLeast,

    /// <summary>The variant's p50 latency, µs, must be at most the threshold (e.g. ≤ 5,000 µs); no baseline.</summary>
    AbsoluteP50AtMost,

    /// <summary>The variant's p99 latency, µs, must be at most the threshold (e.g. ≤ 20,000 µs); no baseline.</summary>
    AbsoluteP99AtMost,
}

/// <summary>A target from a module issue: a ratio within one group, or an absolute figure, at given concurrencies.</summary>
/// <param name="Description">What the target says, e.g. "cache get ≥ 85 % of raw".</param>
/// <param name="Group">The group the variants belong to.</param>
/// <param name="Variant">The measured variant.</param>
/// <param name="Baseline">The baseline variant of a ratio target; <see langword="null"/> for an absolute one.</param>
/// <param name="Callers">The concurrencies the target is judged at (every measured one of these must pass).</param>
/// <param name="Threshold">The threshold: a ratio, ops/s, or µs, as <paramref name="Kind"/> says.</param>
/// <param name="Kind">How the figure is formed and compared.</param>
internal sealed record LoadTarget(string Description, string Group, string Variant, string? Baseline, IReadOnlyList<int> Callers, double Threshold, TargetKind Kind)
{
    /// <summary>Gets a value indicating whether the target compares the variant with a fixed figure rather than a baseline.</summary>
    public bool IsAbsolute => Kind is TargetKind.AbsoluteThroughputAtLeast or TargetKind.AbsoluteP50AtMost or TargetKind.AbsoluteP99AtMost;
}
