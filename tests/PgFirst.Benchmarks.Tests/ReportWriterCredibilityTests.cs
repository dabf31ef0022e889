using PgFirst.Benchmarks.Report;

namespace PgFirst.Benchmarks.Tests;

// The parts of the report that make it believable (issue 18): the fault flag, the spread, the machine load and the
// headline table. Synthetic runs with round numbers, so every expected figure can be worked out by hand.
public partial class ReportWriterTests
{
    private static readonly LoadWrapper[] Wrappers =
    [
        new(Cache, "PgCache", "raw prepared call of cache_get"),
        new(Sessions, "PgSessions", "raw prepared call of session_load"),
    ];

    // The run above, with PgCache 1.10 × its raw baseline at 8 callers: what the committed reports once showed.
    private static LoadRun FaultyRun() => Run with
    {
        Results = Run.Results
            .Select(r => r.Group == Cache && r.Variant == "PgCache" && r.Callers == 8 ? r with { OpsPerSecond = 22_000 } : r)
            .ToList(),
    };

    [Fact]
    public void FindFaults_WrapperFasterThanItsRawBaselineByMoreThanFivePercent_IsAFault_AndFiveExactlyIsNot()
    {
        var faults = ReportWriter.FindFaults(Wrappers, FaultyRun().Results);

        var fault = Assert.Single(faults);
        Assert.Equal((Wrappers[0], 8), (fault.Wrapper, fault.Callers));
        Assert.Equal(1.1, fault.Ratio, 6);

        // 10,500 ÷ 10,000 = 1.05: noise, not a fault; 10,501 is one.
        LoadResult[] edge = [new(Cache, "raw prepared call of cache_get", 1, 10_000, 1, 1, 1), new(Cache, "PgCache", 1, 10_500, 1, 1, 1)];
        Assert.Empty(ReportWriter.FindFaults(Wrappers, edge));
        Assert.Single(ReportWriter.FindFaults(Wrappers, [edge[0], edge[1] with { OpsPerSecond = 10_501 }]));
    }

    [Fact]
    public void FindFaults_WithRoundFigures_JudgesTheMedianOfRatiosWithinRounds_NotTheRatioOfMedians()
    {
        // Round by round the module is at 0.95, 1.02 and 0.98 of its baseline (median 0.98): no fault. The machine ran
        // 10 % faster in round 2, so the medians (10,200 over 10,000) come from different rounds and say 1.02; with a
        // slower baseline round 3 they would say 1.07 and flag a fault the rounds do not show.
        var raw = new LoadResult(Cache, "raw prepared call of cache_get", 1, 10_000, 1, 1, 1, 3, 9_000, 11_000, [11_000, 10_000, 9_000]);
        var ours = new LoadResult(Cache, "PgCache", 1, 10_200, 1, 1, 1, 3, 8_820, 10_450, [10_450, 10_200, 8_820]);
        var skewed = raw with { OpsPerSecond = 9_500, RoundOpsPerSecond = [11_000, 10_000, 9_500] };

        Assert.Equal(0.98, ours.RatioTo(raw), 6);
        Assert.Empty(ReportWriter.FindFaults(Wrappers, [raw, ours]));
        Assert.Equal(10_200 / 9_500.0, (ours with { RoundOpsPerSecond = null }).RatioTo(skewed), 6);
        Assert.Single(ReportWriter.FindFaults(Wrappers, [skewed, ours with { RoundOpsPerSecond = null }]));
        Assert.Empty(ReportWriter.FindFaults(Wrappers, [skewed, ours]));

        // A round that failed on one side (NaN) is left out; with fewer than two shared rounds the shown figures decide.
        var gappy = ours with { RoundOpsPerSecond = [double.NaN, 10_200, 8_820] };
        Assert.Equal((1.02 + 0.98) / 2, gappy.RatioTo(raw), 6);
        Assert.Equal(10_200 / 10_000.0, (ours with { RoundOpsPerSecond = [double.NaN, double.NaN, 8_820] }).RatioTo(raw), 6);
    }

    [Fact]
    public void Write_Fault_IsTheVerdictAtTheTop_ListsTheStep_AndMarksTheRatio()
    {
        var markdown = ReportWriter.Write(FaultyRun(), Targets, ChartFolder, (_, _) => { }, Wrappers);

        var verdict = Section(markdown, "## Verdict");
        Assert.Contains("**Measurement fault.** In 1 of the 5 comparisons", verdict, StringComparison.Ordinal);
        Assert.Contains("| cache get 1 KiB | PgCache | raw prepared call of cache_get | 8 | 1.10 |", verdict, StringComparison.Ordinal);
        Assert.True(markdown.IndexOf("## Verdict", StringComparison.Ordinal) < markdown.IndexOf("## Machine and versions", StringComparison.Ordinal));
        var ratios = Section(markdown, "### cache get 1 KiB");
        Assert.Contains("| ours ÷ raw: PgCache ÷ raw prepared call of cache_get | 0.93 | 1.10 **fault** | 0.88 |", ratios, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_NoFault_SaysSoWithTheNumberOfComparisons_AndAnUncheckedRunSaysItWasNotChecked()
    {
        var clean = ReportWriter.Write(Run, Targets, ChartFolder, (_, _) => { }, Wrappers);
        var unchecked_ = ReportWriter.Write(Run, Targets, ChartFolder, (_, _) => { });

        // Cache: 1, 8, 32; sessions: 1, 8.
        Assert.Contains("**No measurement fault.** In each of the 5 comparisons", Section(clean, "## Verdict"), StringComparison.Ordinal);
        Assert.DoesNotContain("**fault**", clean, StringComparison.Ordinal);
        Assert.Contains("was not checked for measurement faults", Section(unchecked_, "## Verdict"), StringComparison.Ordinal);
        Assert.Contains(
            "none of the 1 pairs",
            Section(ReportWriter.Write(Run, Targets, ChartFolder, (_, _) => { }, [new("job enqueue", "PgQueue", "raw INSERT")]), "## Verdict"),
            StringComparison.Ordinal);
    }

    [Fact]
    public void Write_ResultWithRounds_ShowsTheLowestToHighestOpsBesideTheMedian_AndASingleRoundShowsNone()
    {
        var run = Run with
        {
            Results = Run.Results.Select(r => r.Group == Cache && r.Variant == "PgCache" && r.Callers == 8 ? r with { Rounds = 3, MinOpsPerSecond = 17_250, MaxOpsPerSecond = 19_900 } : r).ToList(),
        };

        var markdown = ReportWriter.Write(run, Targets, ChartFolder, (_, _) => { });

        var row = Assert.Single(Section(markdown, "### cache get 1 KiB").Split('\n'), l => l.StartsWith("| PgCache |", StringComparison.Ordinal));
        Assert.Equal("| PgCache | 9,300 ops/s<br>101 / 140 / 195 µs | 18,600 ops/s<br>(17,250–19,900)<br>410 / 760 / 1,210 µs | 21,000 ops/s<br>1,500 / 2,700 / 4,400 µs |", row);
    }

    [Fact]
    public void Write_Loads_AreATableOfBeforeAndAfterPerRound_AndAbsentWithoutLoads()
    {
        var run = Run with { Loads = [new(Cache, 1, 0.5, 1.875), new(Sessions, 1, 1.9, 2.25), new(Cache, 2, 1.0, 2.0)] };

        var loads = Section(ReportWriter.Write(run, Targets, ChartFolder, (_, _) => { }), "## Machine load by scenario");

        Assert.Contains("| scenario | round 1 | round 2 |", loads, StringComparison.Ordinal);
        Assert.Contains("| cache get 1 KiB | 0.50 → 1.88 | 1.00 → 2.00 |", loads, StringComparison.Ordinal);
        Assert.Contains("| session read-only request | 1.90 → 2.25 | — |", loads, StringComparison.Ordinal);
        Assert.DoesNotContain("Machine load by scenario", WriteReport().Markdown, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_Headline_DividesPostgresByRedisPerCallers_InPlainWords_WithTheNote()
    {
        HeadlineRow[] headline =
        [
            new("cache get", Cache, "PgCache", "Redis twin", "The near cache changes this"),
            new("session read", Sessions, "PgSessions", "stock DistributedSession + RedisCache"),
            new("queue", "job enqueue", "PgQueue", "Redis twin"),
        ];

        var markdown = ReportWriter.Write(Run, Targets, ChartFolder, (_, _) => { }, Wrappers, headline);

        var table = Section(markdown, "## Headline: PostgreSQL ÷ Redis");
        Assert.Contains("| operation | PostgreSQL ÷ Redis | 1 caller | 8 callers | 32 callers | in plain words |", table, StringComparison.Ordinal);

        // 9,300 ÷ 13,604.4 = 0.68, 18,600 ÷ 31,000 = 0.60, 21,000 ÷ 40,000 = 0.53: Redis does 1.46, 1.67 and 1.90 ×.
        Assert.Contains(
            "| cache get | PgCache ÷ Redis twin | 0.68 | 0.60 | 0.53 | Redis is faster at 1, 8 and 32 callers (1.46 × and 1.67 × and 1.90 × PostgreSQL). The near cache changes this |",
            table,
            StringComparison.Ordinal);

        // 5,400 ÷ 4,500 = 1.20; 8,490 ÷ 7,000 = 1.21; no 32.
        Assert.Contains(
            "| session read | PgSessions ÷ stock DistributedSession + RedisCache | 1.20 | 1.21 | — | PostgreSQL is faster at 1 and 8 callers (1.20 × and 1.21 ×) |",
            table,
            StringComparison.Ordinal);
        Assert.Contains("| queue | PgQueue ÷ Redis twin | — | — | — | Not measured in this run |", table, StringComparison.Ordinal);
        Assert.True(markdown.IndexOf("## Headline", StringComparison.Ordinal) < markdown.IndexOf("## Targets", StringComparison.Ordinal));
    }

    [Fact]
    public void HeadlineWords_WithinFivePercent_IsOnPar()
    {
        Assert.Equal(
            "PostgreSQL is faster at 1 caller (1.05 ×); on par at 8 callers; Redis is faster at 32 callers (2.00 × PostgreSQL)",
            ReportWriter.HeadlineWords([(1, 1.05), (8, 0.96), (32, 0.5)]));
    }

    [Fact]
    public void Write_Allocations_ShowBytesPerOperationAndWhatTheModuleAddsOverRaw()
    {
        var run = Run with
        {
            Allocations =
            [
                new(Cache, "raw prepared SELECT", 1_650, 61.24),
                new(Cache, "PgCache", 2_274, 63.5),
                new(Cache, "PgCache, buffer path", 1_200, 60),
                new(Cache, "Redis twin", 1_900, 70),
                new(Sessions, "PgSessions", 9_000, 120),
            ],
        };

        var section = Section(ReportWriter.Write(run, Targets, ChartFolder, (_, _) => { }), "## Allocations per operation");

        Assert.Contains("| cache get 1 KiB | raw prepared SELECT | 1,650 | — | 61.2 |", section, StringComparison.Ordinal);
        Assert.Contains("| cache get 1 KiB | PgCache | 2,274 | +624 | 63.5 |", section, StringComparison.Ordinal);
        Assert.Contains("| cache get 1 KiB | PgCache, buffer path | 1,200 | −450 | 60.0 |", section, StringComparison.Ordinal);

        // Redis is not a module over this SQL, and a group without a raw row has nothing to subtract.
        Assert.Contains("| cache get 1 KiB | Redis twin | 1,900 | — | 70.0 |", section, StringComparison.Ordinal);
        Assert.Contains("| session read-only request | PgSessions | 9,000 | — | 120.0 |", section, StringComparison.Ordinal);
        Assert.DoesNotContain("## Allocations per operation", WriteReport().Markdown, StringComparison.Ordinal);
    }
}
