using System.Globalization;
using System.Text;

namespace PgFirst.Benchmarks.Report;

/// <summary>What a variant is, judged by its name; decides which ratios a group's table shows.</summary>
internal enum VariantRole
{
    /// <summary>A PgFirst module doing the work (PgCache, PgSessions, a store alone…).</summary>
    Ours,

    /// <summary>The same SQL through raw Npgsql: the honest PostgreSQL baseline ("raw …").</summary>
    Raw,

    /// <summary>The module's Redis mode ("Redis twin", "Redis …").</summary>
    Redis,

    /// <summary>A library people would otherwise use ("stock …", Hangfire).</summary>
    Peer,
}

/// <summary>The outcome of one target.</summary>
internal enum TargetVerdict
{
    /// <summary>Every concurrency of the target that was measured passes (at least one was measured).</summary>
    Met,

    /// <summary>At least one measured concurrency fails.</summary>
    NotMet,

    /// <summary>None of the target's concurrencies has both its rows in the run.</summary>
    NotMeasured,
}

/// <summary>A target judged against a run.</summary>
/// <param name="Target">The target.</param>
/// <param name="Verdict">Met, not met or not measured.</param>
/// <param name="Measured">
/// The figures as the report shows them, e.g. "0.93 at 1, 0.93 at 8", "31,250 ops/s at 1", "1.84 ms at 8" or
/// "not measured at 32".
/// </param>
internal sealed record TargetOutcome(LoadTarget Target, TargetVerdict Verdict, string Measured);

/// <summary>A module variant measured faster than the raw SQL it wraps by more than <see cref="ReportWriter.FaultMargin"/>.</summary>
/// <param name="Wrapper">The module and its raw baseline.</param>
/// <param name="Callers">The concurrency.</param>
/// <param name="Ratio">Module ops/s ÷ raw ops/s (above 1 + the margin).</param>
internal sealed record MeasurementFault(LoadWrapper Wrapper, int Callers, double Ratio);

/// <summary>Renders a <see cref="LoadRun"/> as the benchmark report (BENCHMARKS.md) and its charts.</summary>
/// <remarks>
/// Everything is formatted with the invariant culture, so the report is the same on every machine. Ratios and absolute
/// figures are compared with thresholds unrounded; where two decimals would show a failing ratio as the threshold itself
/// (0.849 as 0.85), the report shows as many decimals as it takes to tell. If a run holds the same group, variant and
/// callers twice, the first is reported. A result whose p50, p95 and p99 are all 0 measured no per-operation latency (a
/// batch scenario: a queue drain, a bulk call): the report shows its throughput only and leaves it out of latency charts.
/// </remarks>
internal static class ReportWriter
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>How much faster than its raw baseline a wrapper may measure before the run is flagged: 5 %.</summary>
    public const double FaultMargin = 0.05;

    /// <summary>Writes the report.</summary>
    /// <param name="run">The run to report.</param>
    /// <param name="targets">The targets to judge, in display order.</param>
    /// <param name="chartFolder">
    /// Where the charts live relative to the report, e.g. "benchmarks/charts"; links are "{chartFolder}/{fileName}".
    /// </param>
    /// <param name="writeChart">Called once per chart with its file name (e.g. "cache-get-1-kib.svg") and its SVG text.</param>
    /// <param name="wrappers">
    /// The module variants that wrap a raw baseline, checked for measurement faults; <see langword="null"/> or empty: the
    /// run is not checked, and the report says so.
    /// </param>
    /// <param name="headline">The lines of the headline table (PostgreSQL ÷ Redis); <see langword="null"/> or empty: no table.</param>
    /// <returns>The report's Markdown.</returns>
    public static string Write(
        LoadRun run,
        IReadOnlyList<LoadTarget> targets,
        string chartFolder,
        Action<string, string> writeChart,
        IReadOnlyList<LoadWrapper>? wrappers = null,
        IReadOnlyList<HeadlineRow>? headline = null)
    {
        ArgumentNullException.ThrowIfNull(run);
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(chartFolder);
        ArgumentNullException.ThrowIfNull(writeChart);

        wrappers ??= [];
        var groups = Groups(run.Results);
        var comparisons = Comparisons(wrappers, run.Results).ToList();
        var faults = Faults(comparisons);
        var md = new StringBuilder();
        WriteIntroduction(md, run, groups);
        WriteVerdict(md, wrappers, comparisons.Count, faults);
        if (headline is { Count: > 0 })
        {
            WriteHeadline(md, groups, headline);
        }

        WritePairs(md, "Machine and versions", run.Machine);
        WritePairs(md, "Settings", run.Settings);
        WriteTargets(md, run, targets);
        if (run.Findings is { Count: > 0 } findings)
        {
            WritePairs(md, "Correctness measured in this run", findings);
        }

        if (run.Growth is { Count: > 0 } growth)
        {
            WritePairs(md, "Cost as the work grows", growth);
        }

        if (run.Allocations is { Count: > 0 } allocations)
        {
            WriteAllocations(md, allocations);
        }

        if (run.Loads is { Count: > 0 } loads)
        {
            WriteLoads(md, loads);
        }

        WriteResults(md, groups, chartFolder.TrimEnd('/'), writeChart, faults);
        return md.ToString();
    }

    /// <summary>
    /// The measurement faults of a run: every wrapper and concurrency at which the module did more than
    /// 1 + <see cref="FaultMargin"/> times its raw baseline's ops/s.
    /// </summary>
    public static IReadOnlyList<MeasurementFault> FindFaults(IReadOnlyList<LoadWrapper> wrappers, IReadOnlyList<LoadResult> results)
    {
        ArgumentNullException.ThrowIfNull(wrappers);
        ArgumentNullException.ThrowIfNull(results);
        return Faults(Comparisons(wrappers, results));
    }

    private static List<MeasurementFault> Faults(IEnumerable<(LoadWrapper Wrapper, int Callers, double Ratio)> comparisons) =>
        comparisons.Where(c => c.Ratio > 1 + FaultMargin).Select(c => new MeasurementFault(c.Wrapper, c.Callers, c.Ratio)).ToList();

    // Every wrapper at every concurrency where both it and its baseline were measured (the first row of each, as the
    // tables show).
    private static IEnumerable<(LoadWrapper Wrapper, int Callers, double Ratio)> Comparisons(IReadOnlyList<LoadWrapper> wrappers, IReadOnlyList<LoadResult> results)
    {
        foreach (var wrapper in wrappers)
        {
            var variant = results.Where(r => r.Group == wrapper.Group && r.Variant == wrapper.Variant).DistinctBy(r => r.Callers);
            foreach (var row in variant.OrderBy(r => r.Callers))
            {
                if (results.FirstOrDefault(r => r.Group == wrapper.Group && r.Variant == wrapper.Baseline && r.Callers == row.Callers) is { } baseline)
                {
                    yield return (wrapper, row.Callers, row.RatioTo(baseline));
                }
            }
        }
    }

    private static void WriteVerdict(StringBuilder md, IReadOnlyList<LoadWrapper> wrappers, int compared, List<MeasurementFault> faults)
    {
        md.Append("## Verdict\n\n");
        if (wrappers.Count == 0)
        {
            md.Append("This run was not checked for measurement faults: no module was paired with the raw SQL it wraps.\n\n");
            return;
        }

        if (compared == 0)
        {
            md.Append(Invariant, $"This run was not checked for measurement faults: none of the {wrappers.Count} pairs of a module and the raw SQL it wraps was measured.\n\n");
            return;
        }

        var pairs = Format($"{compared} {Plural(compared, "comparison", "comparisons")}");
        if (faults.Count == 0)
        {
            md.Append(Invariant, $"**No measurement fault.** In each of the {pairs} of a module with the raw SQL it wraps (same group, same concurrency), ");
            md.Append("the module was at most 5 % faster, as it must be: a module runs that SQL and more, so a ratio above 1 can only be noise, and above 1.05 a fault of the measurement.\n\n");
            return;
        }

        md.Append(Invariant, $"**Measurement fault.** In {faults.Count} of the {pairs} of a module with the raw SQL it wraps, the module was more than 5 % faster than that SQL, ");
        md.Append("which it cannot be: the baseline did more work, or the order of the steps favoured the module. Until the cause is found, no ratio in this report can be trusted, including those that look bad.\n\n");
        md.Append("| group | module | raw baseline | callers | module ÷ raw |\n| --- | --- | --- | ---: | ---: |\n");
        foreach (var fault in faults)
        {
            md.Append(Invariant, $"| {Cell(fault.Wrapper.Group)} | {Cell(fault.Wrapper.Variant)} | {Cell(fault.Wrapper.Baseline)} | {fault.Callers:N0} | {Ratio(fault.Ratio, 2)} |\n");
        }

        md.Append('\n');
    }

    private static void WriteHeadline(StringBuilder md, IReadOnlyList<Group> groups, IReadOnlyList<HeadlineRow> headline)
    {
        md.Append("## Headline: PostgreSQL ÷ Redis\n\n");
        md.Append(
            "Each line divides the operations per second of a PgFirst module on PostgreSQL by those of a Redis variant of the " +
            "same scenario in this run: the module's own Redis mode (“Redis twin”) or, where the line names it, the stock " +
            "Microsoft client a team would otherwise run (“stock …”). Above 1, PostgreSQL does more; below 1, Redis does. " +
            "Within 5 % either way counts as on par.\n\n");
        var byName = groups.ToDictionary(g => g.Name, StringComparer.Ordinal);
        var callers = headline
            .Select(h => byName.GetValueOrDefault(h.Group))
            .OfType<Group>()
            .SelectMany(g => g.Callers)
            .Distinct()
            .Order()
            .ToList();
        md.Append("| operation | PostgreSQL ÷ Redis |");
        foreach (var count in callers)
        {
            md.Append(Invariant, $" {count:N0} {Plural(count, "caller", "callers")} |");
        }

        md.Append(" in plain words |\n| --- | --- |");
        md.Append(string.Concat(Enumerable.Repeat(" ---: |", callers.Count)));
        md.Append(" --- |\n");
        foreach (var row in headline)
        {
            var group = byName.GetValueOrDefault(row.Group);
            var ratios = callers
                .Select(c => (Callers: c, Ratio: group?.Find(row.Variant, c) is { } n && group.Find(row.Versus, c) is { } d ? n.RatioTo(d) : (double?)null))
                .ToList();
            md.Append(Invariant, $"| {Cell(row.Operation)} | {Cell(row.Variant)} ÷ {Cell(row.Versus)} |");
            foreach (var (_, ratio) in ratios)
            {
                md.Append(ratio is { } r ? Format($" {Ratio(r, 2)} |") : " — |");
            }

            var words = HeadlineWords(ratios.Where(r => r.Ratio is not null).Select(r => (r.Callers, r.Ratio!.Value)).ToList());
            md.Append(Invariant, $" {Cell(row.Note is null ? words : words + ". " + row.Note)} |\n");
        }

        md.Append('\n');
    }

    /// <summary>
    /// A headline line in plain words: where PostgreSQL is faster (ratio ≥ 1.05), on par (within 5 %) and slower, with
    /// by how much, e.g. "PostgreSQL is faster at 1 caller (1.20 ×); Redis is faster at 8 and 32 callers (1.80 × and
    /// 2.50 × PostgreSQL)".
    /// </summary>
    public static string HeadlineWords(IReadOnlyList<(int Callers, double Ratio)> ratios)
    {
        ArgumentNullException.ThrowIfNull(ratios);
        if (ratios.Count == 0)
        {
            return "Not measured in this run";
        }

        var wins = ratios.Where(r => r.Ratio >= 1 + FaultMargin).ToList();
        var par = ratios.Where(r => r.Ratio > 1 - FaultMargin && r.Ratio < 1 + FaultMargin).ToList();
        var losses = ratios.Where(r => r.Ratio <= 1 - FaultMargin).ToList();
        var parts = new List<string>();
        if (wins.Count > 0)
        {
            parts.Add(Format($"PostgreSQL is faster at {CallersList(wins)} ({string.Join(" and ", wins.Select(w => Ratio(w.Ratio, 2) + " ×"))})"));
        }

        if (par.Count > 0)
        {
            parts.Add(Format($"on par at {CallersList(par)}"));
        }

        if (losses.Count > 0)
        {
            parts.Add(Format($"Redis is faster at {CallersList(losses)} ({string.Join(" and ", losses.Select(l => Ratio(1 / l.Ratio, 2) + " ×"))} PostgreSQL)"));
        }

        var text = string.Join("; ", parts);
        return char.ToUpperInvariant(text[0]) + text[1..];
    }

    private static string CallersList(List<(int Callers, double Ratio)> rows) =>
        List(rows.Select(r => r.Callers).ToList()) + " " + Plural(rows[^1].Callers, "caller", "callers");

    private static void WriteAllocations(StringBuilder md, IReadOnlyList<AllocationResult> allocations)
    {
        md.Append("## Allocations per operation\n\n");
        md.Append(
            "Bytes allocated per operation by BenchmarkDotNet's memory diagnoser (in process, 1 caller, the same operations " +
            "the load scenarios time), with each module beside the raw Npgsql call doing the same SQL: “over raw” is what the " +
            "module allocates beyond it, the returned value included in both. The mean time is BenchmarkDotNet's, from the " +
            "same short run: a check on the figures, not a benchmark of its own.\n\n");
        md.Append("| scenario | variant | bytes / operation | over raw | mean µs |\n| --- | --- | ---: | ---: | ---: |\n");
        foreach (var group in allocations.GroupBy(a => a.Group))
        {
            var raw = group.FirstOrDefault(a => RoleOf(a.Variant) == VariantRole.Raw);
            foreach (var row in group)
            {
                var over = raw is null || ReferenceEquals(row, raw) || RoleOf(row.Variant) != VariantRole.Ours
                    ? "—"
                    : Format($"{row.BytesPerOperation - raw.BytesPerOperation:+#,0;−#,0;0}");
                md.Append(Invariant, $"| {Cell(group.Key)} | {Cell(row.Variant)} | {row.BytesPerOperation:N0} | {over} | {row.MeanMicroseconds:N1} |\n");
            }
        }

        md.Append('\n');
    }

    private static void WriteLoads(StringBuilder md, IReadOnlyList<GroupLoad> loads)
    {
        md.Append("## Machine load by scenario\n\n");
        md.Append(
            "The machine's 1-minute load average just before each scenario's first step and just after its last, per round " +
            "(on 2 cores, above 2 means work was waiting for a core: the client, the servers and anything else running).\n\n");
        var rounds = loads.Select(l => l.Round).Distinct().Order().ToList();
        md.Append("| scenario |");
        foreach (var round in rounds)
        {
            md.Append(Invariant, $" round {round} |");
        }

        md.Append("\n| --- |");
        md.Append(string.Concat(Enumerable.Repeat(" ---: |", rounds.Count)));
        md.Append('\n');
        foreach (var group in loads.Select(l => l.Group).Distinct())
        {
            md.Append(Invariant, $"| {Cell(group)} |");
            foreach (var round in rounds)
            {
                md.Append(loads.FirstOrDefault(l => l.Group == group && l.Round == round) is { } load
                    ? Format($" {load.Before:F2} → {load.After:F2} |")
                    : " — |");
            }

            md.Append('\n');
        }

        md.Append('\n');
    }

    /// <summary>Judges one target against a run's results.</summary>
    /// <exception cref="ArgumentException">A ratio target has no baseline, or an absolute one has one.</exception>
    public static TargetOutcome Evaluate(LoadTarget target, IReadOnlyList<LoadResult> results)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(results);
        if (target.IsAbsolute != (target.Baseline is null))
        {
            throw new ArgumentException(
                target.IsAbsolute ? $"The absolute target “{target.Description}” has a baseline." : $"The ratio target “{target.Description}” has no baseline.",
                nameof(target));
        }

        var rows = results.Where(r => r.Group == target.Group).ToList();
        if (rows.Count == 0)
        {
            return new(target, TargetVerdict.NotMeasured, "group not in this run");
        }

        foreach (var variant in target.Baseline is null ? [target.Variant] : new[] { target.Variant, target.Baseline })
        {
            if (!rows.Any(r => r.Variant == variant))
            {
                return new(target, TargetVerdict.NotMeasured, Format($"“{variant}” not in this run"));
            }
        }

        var parts = new List<string>();
        var measured = 0;
        var failed = 0;
        foreach (var callers in target.Callers.Distinct().Order())
        {
            var variant = rows.FirstOrDefault(r => r.Variant == target.Variant && r.Callers == callers);
            var baseline = rows.FirstOrDefault(r => r.Variant == target.Baseline && r.Callers == callers);
            if (variant is null || (target.Baseline is not null && baseline is null))
            {
                parts.Add(Format($"not measured at {callers}"));
                continue;
            }

            if (target.Kind is TargetKind.AbsoluteP50AtMost or TargetKind.AbsoluteP99AtMost && !HasLatency(variant))
            {
                parts.Add(Format($"no latency measured at {callers}"));
                continue;
            }

            var figure = target.Kind switch
            {
                TargetKind.ThroughputAtLeast => variant.RatioTo(baseline!),
                TargetKind.CostAtMost => baseline!.RatioTo(variant),
                TargetKind.AbsoluteThroughputAtLeast => variant.OpsPerSecond,
                TargetKind.AbsoluteP99AtMost => variant.P99,
                _ => variant.P50,
            };
            measured++;
            if (!Passes(target, figure))
            {
                failed++;
            }

            parts.Add(Format($"{TargetFigure(target, figure)} at {callers}"));
        }

        var verdict = measured == 0 ? TargetVerdict.NotMeasured : failed == 0 ? TargetVerdict.Met : TargetVerdict.NotMet;
        return new(target, verdict, parts.Count == 0 ? "no concurrencies named" : string.Join(", ", parts));
    }

    /// <summary>The role a variant plays, from its name.</summary>
    public static VariantRole RoleOf(string variant)
    {
        ArgumentNullException.ThrowIfNull(variant);
        if (variant.StartsWith("raw ", StringComparison.OrdinalIgnoreCase))
        {
            return VariantRole.Raw;
        }

        // "Redis twin" included.
        if (variant.StartsWith("Redis", StringComparison.OrdinalIgnoreCase))
        {
            return VariantRole.Redis;
        }

        if (variant.StartsWith("stock ", StringComparison.OrdinalIgnoreCase)
            || variant.Contains("Hangfire", StringComparison.OrdinalIgnoreCase))
        {
            return VariantRole.Peer;
        }

        return VariantRole.Ours;
    }

    /// <summary>
    /// A file-name-safe slug of a group name: lowercase ASCII letters and digits separated by single '-'
    /// ("rate limit, 1,000 partitions" → "rate-limit-1-000-partitions"). Accents are dropped ("é" → "e"), any other
    /// character separates words, and a name with nothing usable gives "group".
    /// </summary>
    public static string Slug(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var slug = new StringBuilder(name.Length);
        var pendingDash = false;
        foreach (var c in name.Normalize(NormalizationForm.FormD))
        {
            if (CharUnicodeInfo.GetUnicodeCategory(c) == UnicodeCategory.NonSpacingMark)
            {
                continue;
            }

            var lower = char.ToLowerInvariant(c);
            if (lower is (>= 'a' and <= 'z') or (>= '0' and <= '9'))
            {
                if (pendingDash && slug.Length > 0)
                {
                    slug.Append('-');
                }

                slug.Append(lower);
                pendingDash = false;
            }
            else
            {
                pendingDash = true;
            }
        }

        return slug.Length == 0 ? "group" : slug.ToString();
    }

    private static void WriteIntroduction(StringBuilder md, LoadRun run, IReadOnlyList<Group> groups)
    {
        var callers = groups.SelectMany(g => g.Callers).Distinct().Order().ToList();
        var started = run.StartedAt.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", Invariant);
        md.Append("# PgFirst benchmarks\n\n");
        md.Append(Invariant, $"This is one run of the PgFirst load runner, started {started} (UTC) and {Duration(run.Duration)} long. ");
        md.Append(Invariant, $"It measured {groups.Count} {Plural(groups.Count, "scenario", "scenarios")}, each with ");
        md.Append(callers.Count == 0 ? "no callers" : Format($"{List(callers)} concurrent {Plural(callers[^1], "caller", "callers")}"));
        md.Append(
            ", recording operations per second and latency percentiles (p50 / p95 / p99, µs) for every variant: the PgFirst " +
            "module itself, the same SQL through raw Npgsql (“raw …”, the honest baseline), the module's Redis twin, and " +
            "peer libraries (“stock …”, Hangfire) where there is one. ");
        md.Append(
            "The figures are from a single run on a small, noisy 2-core machine (by default PostgreSQL, Redis and the load " +
            "generator all run on it), so absolute numbers say little about your hardware: read the ratios between variants " +
            "within this run. ");
        md.Append(
            "To reproduce, run `./pgfirst bench` (the full run that writes this file and its charts) or " +
            "`./pgfirst bench --quick` (a few minutes; it skips the larger concurrencies).\n\n");
    }

    private static void WritePairs(StringBuilder md, string title, IReadOnlyList<KeyValuePair<string, string>> pairs)
    {
        md.Append(Invariant, $"## {title}\n\n");
        if (pairs.Count == 0)
        {
            md.Append("Not recorded.\n\n");
            return;
        }

        md.Append("| | |\n| --- | --- |\n");
        foreach (var (key, value) in pairs)
        {
            md.Append(Invariant, $"| {Cell(key)} | {Cell(value)} |\n");
        }

        md.Append('\n');
    }

    private static void WriteTargets(StringBuilder md, LoadRun run, IReadOnlyList<LoadTarget> targets)
    {
        md.Append("## Targets\n\n");
        md.Append(
            "Each target comes from its module's issue and compares two variants of one group at the concurrencies it names. " +
            "Throughput targets show variant ops/s ÷ baseline ops/s (`0.93 at 8`: 93 % of the baseline's throughput with " +
            "8 callers); cost targets show baseline ops/s ÷ variant ops/s (`1.19× at 8`: one operation costs 1.19 of the " +
            "baseline's). Absolute targets judge one variant's own figure: its ops/s (`31,250 ops/s at 1`) or its median " +
            "latency (`1.84 ms at 8`). A target is met only if every named concurrency that was measured passes; figures are " +
            "compared unrounded, and shown with more decimals where fewer would hide which side of the threshold they fall on.\n\n");
        if (targets.Count == 0)
        {
            md.Append("No targets were given.\n\n");
            return;
        }

        md.Append("| target | compares | measured | threshold | verdict |\n| --- | --- | --- | --- | --- |\n");
        foreach (var target in targets)
        {
            var outcome = Evaluate(target, run.Results);
            var compares = target.Kind switch
            {
                TargetKind.ThroughputAtLeast => Format($"{target.Variant} ÷ {target.Baseline} ({target.Group})"),
                TargetKind.CostAtMost => Format($"{target.Baseline} ÷ {target.Variant} ({target.Group})"),
                TargetKind.AbsoluteThroughputAtLeast => Format($"{target.Variant} ops/s ({target.Group})"),
                TargetKind.AbsoluteP99AtMost => Format($"{target.Variant} p99 latency ({target.Group})"),
                _ => Format($"{target.Variant} p50 latency ({target.Group})"),
            };
            var verdict = outcome.Verdict switch
            {
                TargetVerdict.Met => "met",
                TargetVerdict.NotMet => "**not met**",
                _ => "not measured",
            };
            md.Append(
                Invariant,
                $"| {Cell(target.Description)} | {Cell(compares)} | {Cell(outcome.Measured)} | {Threshold(target)} | {verdict} |\n");
        }

        md.Append('\n');
    }

    private static void WriteResults(StringBuilder md, IReadOnlyList<Group> groups, string chartFolder, Action<string, string> writeChart, IReadOnlyList<MeasurementFault> faults)
    {
        md.Append("## Results\n\n");
        if (groups.Count == 0)
        {
            md.Append("The run has no results.\n\n");
            return;
        }

        md.Append(
            "Per scenario: a throughput chart; a table with, per variant and concurrency, operations per second and below it " +
            "p50 / p95 / p99 latency in µs (— where not measured; “no latency” for a batch timed as a whole, such as a queue " +
            "drain, where ops/s are jobs per second and callers are workers); where the step ran in more than one round, the " +
            "figures are its median round's and the range in brackets is the lowest to the highest ops/s over the rounds; the " +
            "ratios of ops/s between variants (above 1: the first does more operations per second; where both ran in the " +
            "same rounds, the median of the ratios taken within each round, so drift between rounds does not enter a ratio; " +
            "“fault” marks a module more than 5 % faster than the raw SQL it wraps; the verdict, targets and headline use " +
            "the same ratios); and a latency chart where latency was measured.\n\n");

        var usedFiles = new HashSet<string>(StringComparer.Ordinal);
        foreach (var group in groups)
        {
            var slug = UniqueSlug(group.Name, usedFiles);
            var throughputFile = slug + ".svg";
            var latencyFile = slug + "-latency.svg";

            writeChart(
                throughputFile,
                SvgChart.Throughput(
                    group.Name,
                    group.Callers,
                    group.Variants
                        .Select(v => (v, (IReadOnlyList<double?>)group.Callers.Select(c => group.Find(v, c)?.OpsPerSecond).ToList()))
                        .ToList()));

            md.Append(Invariant, $"### {Text(group.Name)}\n\n");
            md.Append(Invariant, $"![{AltText(group.Name)}: throughput by concurrent callers]({Link(chartFolder, throughputFile)})\n\n");

            AppendCallersHeader(md, "variant", group.Callers);
            foreach (var variant in group.Variants)
            {
                md.Append(Invariant, $"| {Cell(variant)} |");
                foreach (var callers in group.Callers)
                {
                    md.Append(group.Find(variant, callers) switch
                    {
                        null => " — |",
                        { } r when !HasLatency(r) => Format($" {r.OpsPerSecond:N0} ops/s{Spread(r)}<br>no latency |"),
                        { } r => Format($" {r.OpsPerSecond:N0} ops/s{Spread(r)}<br>{r.P50:N0} / {r.P95:N0} / {r.P99:N0} µs |"),
                    });
                }

                md.Append('\n');
            }

            md.Append('\n');
            WriteRatios(md, group, faults);

            var latencyCallers = group.Callers.Contains(8) ? 8 : group.Callers[^1];
            var measuredAt = group.Variants.Select(v => group.Find(v, latencyCallers)).OfType<LoadResult>().ToList();
            var bars = measuredAt.Where(HasLatency).Select(r => (r.Variant, r.P50, r.P95, r.P99)).ToList();
            if (bars.Count == 0)
            {
                md.Append("No latency chart: this scenario times each batch as a whole, not operation by operation.\n\n");
                continue;
            }

            writeChart(latencyFile, SvgChart.Latency(group.Name, latencyCallers, bars));
            var at = Format($"{latencyCallers} {Plural(latencyCallers, "caller", "callers")}");
            md.Append(Invariant, $"![{AltText(group.Name)}: latency at {at}]({Link(chartFolder, latencyFile)})\n\n");
            var missing = group.Variants.Where(v => group.Find(v, latencyCallers) is null).ToList();
            if (missing.Count > 0)
            {
                md.Append(Invariant, $"Not measured at {at}, so not in the latency chart: {Text(string.Join(", ", missing))}.\n\n");
            }

            var batches = measuredAt.Where(r => !HasLatency(r)).Select(r => r.Variant).ToList();
            if (batches.Count > 0)
            {
                md.Append(Invariant, $"Timed as a whole batch, so not in the latency chart: {Text(string.Join(", ", batches))}.\n\n");
            }
        }
    }

    private static string Spread(LoadResult r) =>
        r.HasSpread ? Format($"<br>({r.MinOpsPerSecond:N0}–{r.MaxOpsPerSecond:N0})") : "";

    private static void WriteRatios(StringBuilder md, Group group, IReadOnlyList<MeasurementFault> faults)
    {
        var ours = group.Variants.Where(v => RoleOf(v) == VariantRole.Ours).ToList();
        var rows = new List<(string Label, string Numerator, string Denominator)>();
        (VariantRole Role, string Kind)[] kinds =
            [(VariantRole.Raw, "ours ÷ raw"), (VariantRole.Redis, "PostgreSQL ÷ Redis"), (VariantRole.Peer, "ours ÷ peer")];
        foreach (var (role, kind) in kinds)
        {
            foreach (var numerator in ours)
            {
                foreach (var denominator in group.Variants.Where(v => RoleOf(v) == role))
                {
                    if (group.Callers.Any(c => group.Find(numerator, c) is not null && group.Find(denominator, c) is not null))
                    {
                        rows.Add((kind, numerator, denominator));
                    }
                }
            }
        }

        if (rows.Count == 0)
        {
            md.Append("No ratios: this scenario has no PgFirst variant measured alongside a raw, Redis or peer variant.\n\n");
            return;
        }

        AppendCallersHeader(md, "ratio of ops/s", group.Callers);
        foreach (var (label, numerator, denominator) in rows)
        {
            md.Append(Invariant, $"| {label}: {Cell(numerator)} ÷ {Cell(denominator)} |");
            foreach (var callers in group.Callers)
            {
                var fault = faults.Any(f => f.Wrapper.Group == group.Name && f.Wrapper.Variant == numerator && f.Wrapper.Baseline == denominator && f.Callers == callers);
                md.Append(group.Find(numerator, callers) is { } n && group.Find(denominator, callers) is { } d
                    ? Format($" {Ratio(n.RatioTo(d), 2)}{(fault ? " **fault**" : "")} |")
                    : " — |");
            }

            md.Append('\n');
        }

        md.Append('\n');
    }

    private static List<Group> Groups(IReadOnlyList<LoadResult> results)
    {
        var groups = new List<Group>();
        foreach (var result in results)
        {
            var group = groups.Find(g => g.Name == result.Group);
            if (group is null)
            {
                group = new Group(result.Group);
                groups.Add(group);
            }

            group.Add(result);
        }

        foreach (var group in groups)
        {
            group.Callers.Sort();
        }

        return groups;
    }

    private static string UniqueSlug(string name, HashSet<string> usedFiles)
    {
        var slug = Slug(name);
        var candidate = slug;
        for (var n = 2; usedFiles.Contains(candidate + ".svg") || usedFiles.Contains(candidate + "-latency.svg"); n++)
        {
            candidate = Format($"{slug}-{n}");
        }

        usedFiles.Add(candidate + ".svg");
        usedFiles.Add(candidate + "-latency.svg");
        return candidate;
    }

    private static bool Passes(LoadTarget target, double figure) =>
        target.Kind is TargetKind.ThroughputAtLeast or TargetKind.AbsoluteThroughputAtLeast ? figure >= target.Threshold : figure <= target.Threshold;

    private static bool HasLatency(LoadResult result) => result.P50 > 0 || result.P95 > 0 || result.P99 > 0;

    // Ratios with two decimals, ops/s whole, latency in ms with two decimals: unless the rounded figure would land on the
    // other side of the threshold than the real one, then with as many more decimals as it takes.
    private static string TargetFigure(LoadTarget target, double figure)
    {
        var (scale, decimals, format, unit) = target.Kind switch
        {
            TargetKind.ThroughputAtLeast => (1.0, 2, "F", ""),
            TargetKind.CostAtMost => (1.0, 2, "F", "×"),
            TargetKind.AbsoluteThroughputAtLeast => (1.0, 0, "N", " ops/s"),
            _ => (1_000.0, 2, "N", " ms"),
        };
        if (!double.IsFinite(figure))
        {
            return (double.IsNaN(figure) ? "n/a" : "∞") + unit;
        }

        var passes = Passes(target, figure);
        for (; decimals < 15; decimals++)
        {
            var text = (figure / scale).ToString(format + decimals.ToString(Invariant), Invariant);
            if (Passes(target, double.Parse(text, NumberStyles.Number, Invariant) * scale) == passes)
            {
                return text + unit;
            }
        }

        return (figure / scale).ToString("R", Invariant) + unit;
    }

    private static string Ratio(double ratio, int decimals) =>
        double.IsFinite(ratio) ? ratio.ToString("F" + decimals.ToString(Invariant), Invariant) : double.IsNaN(ratio) ? "n/a" : "∞";

    private static string Threshold(LoadTarget target) => target.Kind switch
    {
        TargetKind.ThroughputAtLeast => "≥ " + target.Threshold.ToString("0.00##", Invariant),
        TargetKind.CostAtMost => "≤ " + target.Threshold.ToString("0.00##", Invariant) + "×",
        TargetKind.AbsoluteThroughputAtLeast => "≥ " + target.Threshold.ToString("#,0.##", Invariant) + " ops/s",
        _ => "≤ " + (target.Threshold / 1_000).ToString("#,0.###", Invariant) + " ms",
    };

    private static string Duration(TimeSpan duration) => duration switch
    {
        { TotalHours: >= 1 } => Format($"{(int)duration.TotalHours} h {duration.Minutes:00} min"),
        { TotalMinutes: >= 1 } => Format($"{duration.Minutes} min {duration.Seconds:00} s"),
        _ => Format($"{duration.TotalSeconds:0} s"),
    };

    private static string List(List<int> values) => values.Count switch
    {
        1 => values[0].ToString("N0", Invariant),
        _ => string.Join(", ", values.Take(values.Count - 1).Select(v => v.ToString("N0", Invariant)))
            + " and " + values[^1].ToString("N0", Invariant),
    };

    private static string Plural(int count, string one, string many) => count == 1 ? one : many;

    private static string Link(string folder, string file) => folder.Length == 0 ? file : folder + "/" + file;

    // Names are text, not markup: "<fixed window>" would otherwise vanish as an HTML tag on GitHub.
    private static string Text(string text) => text
        .Replace("\r", "", StringComparison.Ordinal)
        .Replace("\n", " ", StringComparison.Ordinal)
        .Replace("<", "\\<", StringComparison.Ordinal)
        .Replace(">", "\\>", StringComparison.Ordinal);

    // A table cell holds one line and no unescaped pipe.
    private static string Cell(string text) => Text(text).Replace("|", "\\|", StringComparison.Ordinal);

    private static string AltText(string text) =>
        Cell(text).Replace("[", "(", StringComparison.Ordinal).Replace("]", ")", StringComparison.Ordinal);

    private static string Format(FormattableString text) => text.ToString(Invariant);

    private sealed class Group(string name)
    {
        private readonly Dictionary<(string Variant, int Callers), LoadResult> _results = [];

        public string Name { get; } = name;

        public List<string> Variants { get; } = [];

        public List<int> Callers { get; } = [];

        public void Add(LoadResult result)
        {
            if (!Variants.Contains(result.Variant))
            {
                Variants.Add(result.Variant);
            }

            if (!Callers.Contains(result.Callers))
            {
                Callers.Add(result.Callers);
            }

            _results.TryAdd((result.Variant, result.Callers), result);
        }

        public LoadResult? Find(string variant, int callers) => _results.GetValueOrDefault((variant, callers));
    }

    // The header of a table with one right-aligned column per concurrency.
    private static void AppendCallersHeader(StringBuilder md, string firstColumn, List<int> callers)
    {
        md.Append(Invariant, $"| {firstColumn} |");
        foreach (var count in callers)
        {
            md.Append(Invariant, $" {count:N0} {Plural(count, "caller", "callers")} |");
        }

        md.Append("\n| --- |");
        md.Append(string.Concat(Enumerable.Repeat(" ---: |", callers.Count)));
        md.Append('\n');
    }
}
