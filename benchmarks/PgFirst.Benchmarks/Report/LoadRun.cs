namespace PgFirst.Benchmarks.Report;

/// <summary>One scenario at one concurrency: what the load runner measured.</summary>
/// <param name="Group">What is measured, e.g. "cache get 1 KiB" or "session read-only request".</param>
/// <param name="Variant">Who does it, e.g. "raw prepared SELECT", "PgCache", "Redis twin".</param>
/// <param name="Callers">Concurrent callers.</param>
/// <param name="OpsPerSecond">Operations per second over the measured period (for a queue, jobs per second).</param>
/// <param name="P50">Median latency, µs; 0 when the scenario measures no per-operation latency (a drain, a bulk call).</param>
/// <param name="P95">95th percentile latency, µs; 0 when not measured.</param>
/// <param name="P99">99th percentile latency, µs; 0 when not measured.</param>
internal sealed record LoadResult(string Group, string Variant, int Callers, double OpsPerSecond, double P50, double P95, double P99);

/// <summary>A whole run: where and how it ran, and every result, in the order measured.</summary>
internal sealed record LoadRun(
    DateTimeOffset StartedAt,
    TimeSpan Duration,
    IReadOnlyList<KeyValuePair<string, string>> Machine,
    IReadOnlyList<KeyValuePair<string, string>> Settings,
    IReadOnlyList<LoadResult> Results,
    IReadOnlyList<KeyValuePair<string, string>>? Findings = null);

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
