using System.Globalization;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using PgFirst.Benchmarks.Report;

namespace PgFirst.Benchmarks.Tests;

// The report is pure formatting: a synthetic run with round numbers, so every expected figure can be worked out by hand.
public partial class ReportWriterTests
{
    private const string ChartFolder = "benchmarks/charts";

    private const string Cache = "cache get 1 KiB";
    private const string Sessions = "session read-only request";
    private const string RateLimit = "rate limit, 1,000 partitions & <burst>";

    private const TargetKind Throughput = TargetKind.ThroughputAtLeast;
    private const TargetKind Cost = TargetKind.CostAtMost;

    private static readonly LoadRun Run = new(
        new DateTimeOffset(2026, 11, 23, 14, 5, 9, TimeSpan.FromHours(2)),
        TimeSpan.FromSeconds(754),
        [new("CPU", "2 × Intel Xeon"), new("OS", "Debian 13"), new("PostgreSQL", "17.6 | local")],
        [new("seconds per measurement", "5"), new("warm-up", "1 s")],
        [
            // Cache: raw, ours, Redis; 1, 8 and 32 callers, measured out of order.
            new(Cache, "raw prepared call of cache_get", 8, 20_000, 380, 700, 1_100),
            new(Cache, "PgCache", 8, 18_600, 410, 760, 1_210),
            new(Cache, "Redis twin", 8, 31_000, 240, 400, 650),
            new(Cache, "raw prepared call of cache_get", 1, 10_000, 95, 130, 180),
            new(Cache, "PgCache", 1, 9_300, 101, 140, 195),
            new(Cache, "Redis twin", 1, 13_604.4, 70, 90, 120),
            new(Cache, "raw prepared call of cache_get", 32, 24_000, 1_300, 2_400, 3_900),
            new(Cache, "PgCache", 32, 21_000, 1_500, 2_700, 4_400),
            new(Cache, "Redis twin", 32, 40_000, 800, 1_300, 2_000),

            // Sessions: raw, ours, Redis, a peer; no 32 (a quick run).
            new(Sessions, "raw prepared call of session_load", 1, 6_000, 160, 210, 300),
            new(Sessions, "PgSessions", 1, 5_400, 180, 240, 330),
            new(Sessions, "Redis twin", 1, 9_000, 110, 150, 210),
            new(Sessions, "stock DistributedSession + RedisCache", 1, 4_500, 220, 300, 420),
            new(Sessions, "raw prepared call of session_load", 8, 10_000, 790, 1_400, 2_100),
            new(Sessions, "PgSessions", 8, 8_490, 930, 1_600, 2_500),
            new(Sessions, "Redis twin", 8, 16_000, 500, 800, 1_200),
            new(Sessions, "stock DistributedSession + RedisCache", 8, 7_000, 1_100, 1_900, 2_900),

            // Rate limit: raw, two of ours (one with characters XML must escape), Redis; "store only" has no 8.
            new(RateLimit, "raw prepared call", 1, 5_000, 190, 260, 350),
            new(RateLimit, "store only", 1, 4_000, 240, 330, 450),
            new(RateLimit, "PgRateLimit <fixed window> & \"co\"", 1, 3_500, 280, 380, 520),
            new(RateLimit, "Redis twin", 1, 8_000, 120, 170, 240),
            new(RateLimit, "raw prepared call", 8, 11_900, 650, 1_200, 1_800),
            new(RateLimit, "PgRateLimit <fixed window> & \"co\"", 8, 10_000, 780, 1_400, 2_100),
            new(RateLimit, "Redis twin", 8, 19_000, 410, 700, 1_000),
        ]);

    private static readonly LoadTarget[] Targets =
    [
        new("cache get ≥ 85 % of raw", Cache, "PgCache", "raw prepared call of cache_get", [1, 8], 0.85, Throughput),
        new("session read ≥ 85 % of raw", Sessions, "PgSessions", "raw prepared call of session_load", [8], 0.85, Throughput),
        new("rate limit ≤ 1.3× a raw call", RateLimit, "PgRateLimit <fixed window> & \"co\"", "raw prepared call", [8], 1.3, Cost),
        new("rate-limit store ≤ 1.25× a raw call", RateLimit, "store only", "raw prepared call", [1, 8], 1.25, Cost),
        new("queue enqueue ≥ 80 % of raw", "job enqueue", "PgQueue", "raw prepared INSERT", [1, 8], 0.8, Throughput),
        new("session read ≥ 50 % of Redis", Sessions, "PgSessions", "Redis twin", [8, 32], 0.5, Throughput),
        new(
            "cache get with HybridCache ≥ 80 % of raw",
            Cache,
            "PgCache + HybridCache",
            "raw prepared call of cache_get",
            [8],
            0.8,
            Throughput),
    ];

    private static (string Markdown, List<(string File, string Svg)> Charts) WriteReport()
    {
        var charts = new List<(string File, string Svg)>();
        var markdown = ReportWriter.Write(Run, Targets, ChartFolder, (file, svg) => charts.Add((file, svg)));
        return (markdown, charts);
    }

    private static string Section(string markdown, string heading)
    {
        var start = markdown.IndexOf(heading + "\n", StringComparison.Ordinal);
        Assert.True(start >= 0, $"No section '{heading}'.");
        var level = heading[..(heading.IndexOf(' ', StringComparison.Ordinal) + 1)];
        var end = markdown.IndexOf("\n" + level, start + heading.Length, StringComparison.Ordinal);
        var nextHigher = level.Length > 3 ? markdown.IndexOf("\n## ", start + heading.Length, StringComparison.Ordinal) : -1;
        if (nextHigher >= 0 && (end < 0 || nextHigher < end))
        {
            end = nextHigher;
        }

        return end < 0 ? markdown[start..] : markdown[start..end];
    }

    private static string[] TargetRow(string markdown, string description)
    {
        var prefix = "| " + description.Replace("|", "\\|", StringComparison.Ordinal) + " |";
        var line = Assert.Single(Section(markdown, "## Targets").Split('\n'), l => l.StartsWith(prefix, StringComparison.Ordinal));
        return line.Trim('|').Split(" | ").Select(c => c.Trim()).ToArray();
    }

    [Theory]
    [InlineData("cache get ≥ 85 % of raw", "met")]
    [InlineData("session read ≥ 85 % of raw", "**not met**")]
    [InlineData("rate limit ≤ 1.3× a raw call", "met")]
    [InlineData("rate-limit store ≤ 1.25× a raw call", "met")]
    [InlineData("queue enqueue ≥ 80 % of raw", "not measured")]
    [InlineData("session read ≥ 50 % of Redis", "met")]
    [InlineData("cache get with HybridCache ≥ 80 % of raw", "not measured")]
    public void Write_Targets_VerdictFollowsUnroundedRatiosOfMeasuredCallers(string description, string verdict)
    {
        var (markdown, _) = WriteReport();

        Assert.Equal(verdict, TargetRow(markdown, description)[4]);
    }

    [Fact]
    public void Evaluate_RatioJustBelowThreshold_IsNotMetAndShowsTheDecimalThatFails()
    {
        // 8,490 ÷ 10,000 = 0.849: two decimals would print 0.85, the threshold itself.
        var outcome = ReportWriter.Evaluate(Targets[1], Run.Results);

        Assert.Equal(TargetVerdict.NotMet, outcome.Verdict);
        Assert.Equal("0.849 at 8", outcome.Measured);
    }

    [Fact]
    public void Write_Findings_AreAListedSectionBeforeTheResults_AndAbsentWhenThereAreNone()
    {
        var withFindings = Run with { Findings = [new("session contended: stock", "5 of 9 committed keys lost"), new("session contended: PgSessions", "0 of 9 committed keys lost")] };

        var markdown = ReportWriter.Write(withFindings, Targets, ChartFolder, (_, _) => { });

        var findings = Section(markdown, "## Correctness measured in this run");
        Assert.Contains("| session contended: stock | 5 of 9 committed keys lost |", findings, StringComparison.Ordinal);
        Assert.Contains("| session contended: PgSessions | 0 of 9 committed keys lost |", findings, StringComparison.Ordinal);
        Assert.True(
            markdown.IndexOf("## Correctness measured in this run", StringComparison.Ordinal) < markdown.IndexOf("## Results", StringComparison.Ordinal),
            "The findings come before the results.");
        Assert.DoesNotContain("Correctness measured in this run", WriteReport().Markdown, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_ThroughputTarget_ShowsVariantOverBaselineWithTwoDecimals()
    {
        var (markdown, _) = WriteReport();

        var row = TargetRow(markdown, "cache get ≥ 85 % of raw");

        Assert.Equal("PgCache ÷ raw prepared call of cache_get (cache get 1 KiB)", row[1]);
        Assert.Equal("0.93 at 1, 0.93 at 8", row[2]);
        Assert.Equal("≥ 0.85", row[3]);
    }

    [Fact]
    public void Write_CostTarget_ShowsBaselineOverVariantAsMultiple()
    {
        var (markdown, _) = WriteReport();

        // 11,900 ÷ 10,000.
        var row = TargetRow(markdown, "rate limit ≤ 1.3× a raw call");

        Assert.Equal("1.19× at 8", row[2]);
        Assert.Equal("≤ 1.30×", row[3]);
    }

    [Fact]
    public void Evaluate_CostExactlyAtThreshold_IsMetAndUnmeasuredCallersAreNamed()
    {
        // 5,000 ÷ 4,000 = 1.25 exactly at 1 caller; "store only" has no 8-caller row.
        var outcome = ReportWriter.Evaluate(Targets[3], Run.Results);

        Assert.Equal(TargetVerdict.Met, outcome.Verdict);
        Assert.Equal("1.25× at 1, not measured at 8", outcome.Measured);
    }

    [Fact]
    public void Evaluate_PartlyMeasuredTarget_JudgesTheMeasuredCallersAndNamesTheRest()
    {
        var outcome = ReportWriter.Evaluate(Targets[5], Run.Results);

        Assert.Equal(TargetVerdict.Met, outcome.Verdict);
        Assert.Equal("0.53 at 8, not measured at 32", outcome.Measured);
    }

    [Fact]
    public void Evaluate_AbsentGroupOrVariant_IsNotMeasuredAndSaysWhy()
    {
        var group = ReportWriter.Evaluate(Targets[4], Run.Results);
        var variant = ReportWriter.Evaluate(Targets[6], Run.Results);

        Assert.Equal((TargetVerdict.NotMeasured, "group not in this run"), (group.Verdict, group.Measured));
        Assert.Equal((TargetVerdict.NotMeasured, "“PgCache + HybridCache” not in this run"), (variant.Verdict, variant.Measured));
    }

    [Fact]
    public void Evaluate_OneMeasuredCallerFails_IsNotMetEvenIfAnotherPasses()
    {
        var target = new LoadTarget(
            "cache get ≥ 92 % of raw", Cache, "PgCache", "raw prepared call of cache_get", [1, 8, 32], 0.92, Throughput);

        var outcome = ReportWriter.Evaluate(target, Run.Results);

        // 0.93, 0.93, then 21,000 ÷ 24,000 = 0.875.
        Assert.Equal(TargetVerdict.NotMet, outcome.Verdict);
        Assert.Equal("0.93 at 1, 0.93 at 8, 0.88 at 32", outcome.Measured);
    }

    [Fact]
    public void Write_Charts_AreWellFormedSvgNamingEveryVariant()
    {
        var (_, charts) = WriteReport();

        Assert.Equal(6, charts.Count);
        foreach (var (file, svg) in charts)
        {
            var document = XDocument.Parse(svg);
            Assert.Equal("svg", document.Root!.Name.LocalName);
            Assert.Equal("http://www.w3.org/2000/svg", document.Root.Name.NamespaceName);
            Assert.Equal("1.1", (string?)document.Root.Attribute("version"));

            // The latency chart shows the variants measured at 8 callers; "store only" has no such row.
            var latency = file.EndsWith("-latency.svg", StringComparison.Ordinal);
            var slug = latency ? file[..^"-latency.svg".Length] : file[..^".svg".Length];
            var group = Assert.Single(Run.Results.Select(r => r.Group).Distinct(), g => ReportWriter.Slug(g) == slug);
            var texts = document.Descendants().Where(e => e.Name.LocalName is "text" or "title").Select(e => e.Value).ToList();
            var variants = Run.Results.Where(r => r.Group == group && (!latency || r.Callers == 8)).Select(r => r.Variant).Distinct();

            foreach (var variant in variants)
            {
                Assert.Contains(variant, texts);
            }
        }
    }

    [Fact]
    public void Write_ChartLinks_AreTheFilesPassedToWriteChart()
    {
        var (markdown, charts) = WriteReport();

        var links = ChartLink().Matches(markdown).Select(m => m.Groups["path"].Value).ToList();

        Assert.Equal(charts.Select(c => ChartFolder + "/" + c.File), links);
        Assert.Equal(charts.Count, charts.Select(c => c.File).Distinct().Count());
        Assert.Equal(
            ["cache-get-1-kib.svg", "cache-get-1-kib-latency.svg", "session-read-only-request.svg", "session-read-only-request-latency.svg",
             "rate-limit-1-000-partitions-burst.svg", "rate-limit-1-000-partitions-burst-latency.svg"],
            charts.Select(c => c.File));
    }

    [Theory]
    [InlineData("cache get 1 KiB", "cache-get-1-kib")]
    [InlineData("rate limit, 1,000 partitions", "rate-limit-1-000-partitions")]
    [InlineData("  Session: modifying request (Redis) ", "session-modifying-request-redis")]
    [InlineData("Café crème / µs", "cafe-creme-s")]
    [InlineData("日本", "group")]
    public void Slug_AnyName_IsLowercaseAsciiDashSeparated(string name, string expected)
    {
        var slug = ReportWriter.Slug(name);

        Assert.Equal(expected, slug);
        Assert.Equal(slug, ReportWriter.Slug(name));
        Assert.Matches("^[a-z0-9]+(-[a-z0-9]+)*$", slug);
    }

    [Fact]
    public void Write_GroupsWhoseSlugsCollide_GetDistinctChartFiles()
    {
        var run = Run with { Results = [new("Cache get", "PgCache", 1, 1, 1, 1, 1), new("cache: GET", "PgCache", 1, 1, 1, 1, 1)] };
        var files = new List<string>();

        ReportWriter.Write(run, [], ChartFolder, (file, _) => files.Add(file));

        Assert.Equal(["cache-get.svg", "cache-get-latency.svg", "cache-get-2.svg", "cache-get-2-latency.svg"], files);
    }

    [Fact]
    public void Write_UnderGermanCulture_FormatsNumbersInvariantly()
    {
        var original = CultureInfo.CurrentCulture;
        var originalUi = CultureInfo.CurrentUICulture;
        try
        {
            CultureInfo.CurrentCulture = CultureInfo.CurrentUICulture = CultureInfo.GetCultureInfo("de-DE");
            // The test means something only if the culture differs (not so under invariant globalization).
            Assert.Equal("1.234,5", 1234.5.ToString("N1", CultureInfo.CurrentCulture));

            var (markdown, charts) = WriteReport();

            Assert.Contains("| 13,604 ops/s<br>70 / 90 / 120 µs |", markdown, StringComparison.Ordinal);
            Assert.Contains("0.93 at 1, 0.93 at 8", markdown, StringComparison.Ordinal);
            Assert.Contains("≤ 1.30×", markdown, StringComparison.Ordinal);
            Assert.DoesNotContain("13.604", markdown, StringComparison.Ordinal);
            Assert.DoesNotContain("0,93", markdown, StringComparison.Ordinal);
            foreach (var (_, svg) in charts)
            {
                var root = XDocument.Parse(svg).Root!;
                var coordinates = root.Descendants().Attributes()
                    .Where(a => a.Name.LocalName is "x" or "y" or "width" or "height" or "cx" or "cy");
                foreach (var attribute in coordinates)
                {
                    Assert.True(
                        double.TryParse(attribute.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out _),
                        $"{attribute} is not an invariant number.");
                }

            }

            var cacheLatency = XDocument.Parse(charts.Single(c => c.File == "cache-get-1-kib-latency.svg").Svg).Root!;
            Assert.Contains(cacheLatency.Descendants(), e => e.Name.LocalName == "text" && e.Value == "p99 1,210");
        }
        finally
        {
            CultureInfo.CurrentCulture = original;
            CultureInfo.CurrentUICulture = originalUi;
        }
    }

    [Fact]
    public void Write_Results_SortCallersKeepVariantOrderAndMarkGaps()
    {
        var (markdown, _) = WriteReport();

        var cache = Section(markdown, "### " + Cache).Split('\n');
        var rateLimit = Section(markdown, "### rate limit, 1,000 partitions & \\<burst\\>").Split('\n');

        Assert.Contains("| variant | 1 caller | 8 callers | 32 callers |", cache);
        Assert.Contains(
            "| PgCache | 9,300 ops/s<br>101 / 140 / 195 µs | 18,600 ops/s<br>410 / 760 / 1,210 µs"
            + " | 21,000 ops/s<br>1,500 / 2,700 / 4,400 µs |",
            cache);
        Assert.True(
            Array.FindIndex(cache, l => l.StartsWith("| raw prepared call of cache_get |", StringComparison.Ordinal))
            < Array.FindIndex(cache, l => l.StartsWith("| PgCache |", StringComparison.Ordinal)));
        Assert.Contains("| store only | 4,000 ops/s<br>240 / 330 / 450 µs | — |", rateLimit);
    }

    [Fact]
    public void Write_Ratios_PairOursWithRawRedisAndPeersOnlyWherePartnersExist()
    {
        var (markdown, _) = WriteReport();

        var cache = Section(markdown, "### " + Cache);
        var sessions = Section(markdown, "### " + Sessions);
        var rateLimit = Section(markdown, "### rate limit, 1,000 partitions & \\<burst\\>");

        Assert.Contains("| ours ÷ raw: PgCache ÷ raw prepared call of cache_get | 0.93 | 0.93 | 0.88 |", cache, StringComparison.Ordinal);
        Assert.Contains("| PostgreSQL ÷ Redis: PgCache ÷ Redis twin | 0.68 | 0.60 | 0.53 |", cache, StringComparison.Ordinal);
        Assert.DoesNotContain("ours ÷ peer", cache, StringComparison.Ordinal);
        Assert.Contains(
            "| ours ÷ peer: PgSessions ÷ stock DistributedSession + RedisCache | 1.20 | 1.21 |", sessions, StringComparison.Ordinal);
        Assert.Contains("| ours ÷ raw: store only ÷ raw prepared call | 0.80 | — |", rateLimit, StringComparison.Ordinal);
        Assert.DoesNotContain("÷ raw prepared call of session_load ÷", sessions, StringComparison.Ordinal);
        Assert.DoesNotContain(": Redis twin ÷", markdown, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("raw prepared SELECT", "Raw")]
    [InlineData("RAW upsert", "Raw")]
    [InlineData("Redis twin", "Redis")]
    [InlineData("Redis Lua script", "Redis")]
    [InlineData("stock DistributedSession + RedisCache", "Peer")]
    [InlineData("Hangfire.PostgreSql", "Peer")]
    [InlineData("PgCache", "Ours")]
    [InlineData("rawest", "Ours")]
    public void RoleOf_VariantName_FollowsTheNamingConvention(string variant, string role) =>
        Assert.Equal(Enum.Parse<VariantRole>(role), ReportWriter.RoleOf(variant));

    [Fact]
    public void Write_Header_StatesUtcStartDurationAndHowToReproduce()
    {
        var (markdown, _) = WriteReport();

        Assert.StartsWith("# PgFirst benchmarks\n\n", markdown, StringComparison.Ordinal);
        Assert.Contains("started 2026-11-23T12:05:09Z (UTC) and 12 min 34 s long", markdown, StringComparison.Ordinal);
        Assert.Contains("1, 8 and 32 concurrent callers", markdown, StringComparison.Ordinal);
        Assert.Contains("`./pgfirst bench`", markdown, StringComparison.Ordinal);
        Assert.Contains("`./pgfirst bench --quick`", markdown, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_MachineAndSettings_AreTablesInRunOrderWithPipesEscaped()
    {
        var (markdown, _) = WriteReport();

        Assert.Contains(
            "## Machine and versions\n\n| | |\n| --- | --- |\n"
            + "| CPU | 2 × Intel Xeon |\n| OS | Debian 13 |\n| PostgreSQL | 17.6 \\| local |\n",
            markdown,
            StringComparison.Ordinal);
        Assert.Contains(
            "## Settings\n\n| | |\n| --- | --- |\n| seconds per measurement | 5 |\n| warm-up | 1 s |\n",
            markdown,
            StringComparison.Ordinal);
    }

    [Fact]
    public void Latency_UsesEightCallersWhenMeasuredElseTheLargest()
    {
        var run = Run with
        {
            Results =
            [
                new("g", "PgCache", 1, 100, 10, 20, 30),
                new("g", "PgCache", 32, 400, 40, 50, 60),
                new("h", "PgCache", 8, 1, 1, 1, 1),
                new("h", "PgCache", 32, 1, 1, 1, 1),
            ],
        };
        var charts = new Dictionary<string, string>();

        var markdown = ReportWriter.Write(run, [], "", (file, svg) => charts.Add(file, svg));

        Assert.Contains("![g: latency at 32 callers](g-latency.svg)", markdown, StringComparison.Ordinal);
        Assert.Contains("![h: latency at 8 callers](h-latency.svg)", markdown, StringComparison.Ordinal);
        Assert.Contains("latency at 32 concurrent callers", XDocument.Parse(charts["g-latency.svg"]).Root!.Value, StringComparison.Ordinal);
    }

    [Fact]
    public void Throughput_MissingPoint_BreaksTheLineAndEscapesNames()
    {
        var svg = SvgChart.Throughput("a <b> & c", [1, 8, 32], [("x & <y>", [1_000, null, 3_000]), ("z", [500, 700, 900])]);

        var root = XDocument.Parse(svg).Root!;

        var lines = root.Descendants().Where(e => e.Name.LocalName == "polyline").ToList();
        Assert.Single(lines); // "x & <y>" has no two adjacent points; "z" is one line of three
        Assert.Equal(5, root.Descendants().Count(e => e.Name.LocalName == "circle" && e.Elements().Any()));
        Assert.Contains(root.Descendants(), e => e.Name.LocalName == "text" && e.Value == "x & <y>");
        Assert.Contains(root.Descendants(), e => e.Name.LocalName == "text" && e.Value == "a <b> & c");
        Assert.Contains(root.Descendants(), e => e.Name.LocalName == "text" && e.Value == "1k"); // nice ticks: 0, 1k, 2k, 3k
    }

    [Fact]
    public void Throughput_SeriesOfWrongLength_Throws() =>
        Assert.Throws<ArgumentException>(() => SvgChart.Throughput("t", [1, 8], [("x", [1.0])]));

    [Theory]
    [InlineData(13_604, 5_000, 15_000)]
    [InlineData(40_000, 10_000, 40_000)]
    [InlineData(0.7, 0.2, 0.8)]
    [InlineData(0, 0.2, 1)]
    public void NiceScale_Max_RoundsUpToAWholeNumberOfNiceSteps(double max, double step, double top)
    {
        var scale = SvgChart.NiceScale(max);

        Assert.Equal(step, scale.Step, 9);
        Assert.Equal(top, scale.Top, 9);
    }

    // Queue groups: a drain (batches timed as a whole, so no latency), a bulk enqueue (one peer with per-call latency),
    // and the enqueue-to-start latency.
    private const string Drain = "queue drain";
    private const string Bulk = "queue bulk enqueue 20,000";
    private const string Latency = "queue enqueue→start latency, light load";

    private static readonly LoadRun QueueRun = Run with
    {
        Results =
        [
            new(Drain, "raw batch SKIP LOCKED", 8, 40_000, 0, 0, 0),
            new(Drain, "PgQueue", 8, 10_000, 0, 0, 0),
            new(Drain, "Redis twin", 8, 20_000, 0, 0, 0),
            new(Drain, "Hangfire.PostgreSql", 8, 80, 0, 0, 0),
            new(Bulk, "raw unnest INSERT", 1, 40_000, 0, 0, 0),
            new(Bulk, "PgQueue", 1, 31_250, 0, 0, 0),
            new(Bulk, "Hangfire.PostgreSql, 1,000 one by one", 1, 500, 1_900, 3_100, 4_000),
            new(Latency, "PgQueue", 8, 66, 1_840, 3_950, 7_020),
            new(Latency, "Redis twin", 8, 66, 5_000.4, 9_000, 12_000),
        ],
    };

    private static LoadTarget Absolute(string variant, string group, int callers, double threshold, TargetKind kind) =>
        new($"{variant} {kind} {threshold}", group, variant, null, [callers], threshold, kind);

    [Fact]
    public void Evaluate_AbsoluteThroughput_ComparesTheVariantsOwnOpsPerSecond()
    {
        var outcome = ReportWriter.Evaluate(Absolute("PgQueue", Bulk, 1, 30_000, TargetKind.AbsoluteThroughputAtLeast), QueueRun.Results);

        Assert.Equal(TargetVerdict.Met, outcome.Verdict);
        Assert.Equal("31,250 ops/s at 1", outcome.Measured);
    }

    [Fact]
    public void Evaluate_AbsoluteThroughputJustBelowThreshold_IsNotMetAndShowsTheDecimalThatFails()
    {
        var results = new[] { new LoadResult(Bulk, "PgQueue", 1, 29_999.6, 0, 0, 0) };

        var outcome = ReportWriter.Evaluate(Absolute("PgQueue", Bulk, 1, 30_000, TargetKind.AbsoluteThroughputAtLeast), results);

        Assert.Equal(TargetVerdict.NotMet, outcome.Verdict);
        Assert.Equal("29,999.6 ops/s at 1", outcome.Measured);
    }

    [Fact]
    public void Evaluate_AbsoluteP50_ShowsMillisecondsWithTheDecimalsThatDecide()
    {
        var met = ReportWriter.Evaluate(Absolute("PgQueue", Latency, 8, 5_000, TargetKind.AbsoluteP50AtMost), QueueRun.Results);
        var notMet = ReportWriter.Evaluate(Absolute("Redis twin", Latency, 8, 5_000, TargetKind.AbsoluteP50AtMost), QueueRun.Results);

        Assert.Equal((TargetVerdict.Met, "1.84 ms at 8"), (met.Verdict, met.Measured));

        // 5,000.4 µs: "5.00" and "5.000" would read as the threshold itself.
        Assert.Equal((TargetVerdict.NotMet, "5.0004 ms at 8"), (notMet.Verdict, notMet.Measured));
    }

    [Fact]
    public void Evaluate_AbsoluteP50OfABatchTimedAsAWhole_IsNotMeasured()
    {
        var outcome = ReportWriter.Evaluate(Absolute("PgQueue", Drain, 8, 5_000, TargetKind.AbsoluteP50AtMost), QueueRun.Results);

        Assert.Equal((TargetVerdict.NotMeasured, "no latency measured at 8"), (outcome.Verdict, outcome.Measured));
    }

    [Fact]
    public void Evaluate_BaselineThatDoesNotFitTheKind_Throws()
    {
        var ratioWithoutBaseline = new LoadTarget("r", Drain, "PgQueue", null, [8], 0.5, TargetKind.ThroughputAtLeast);
        var absoluteWithBaseline = new LoadTarget("a", Drain, "PgQueue", "raw batch SKIP LOCKED", [8], 1_000, TargetKind.AbsoluteThroughputAtLeast);

        Assert.Throws<ArgumentException>(() => ReportWriter.Evaluate(ratioWithoutBaseline, QueueRun.Results));
        Assert.Throws<ArgumentException>(() => ReportWriter.Evaluate(absoluteWithBaseline, QueueRun.Results));
    }

    [Fact]
    public void Write_AbsoluteTargets_AreRowsOfTheTargetsTable()
    {
        LoadTarget[] targets =
        [
            new("queue drain ≥ 50 % of raw", Drain, "PgQueue", "raw batch SKIP LOCKED", [8], 0.5, Throughput),
            new("bulk enqueue ≥ 30,000 jobs/s", Bulk, "PgQueue", null, [1], 30_000, TargetKind.AbsoluteThroughputAtLeast),
            new("enqueue→start p50 ≤ 5 ms", Latency, "PgQueue", null, [8], 5_000, TargetKind.AbsoluteP50AtMost),
        ];

        var markdown = ReportWriter.Write(QueueRun, targets, ChartFolder, (_, _) => { });

        Assert.Equal(["queue drain ≥ 50 % of raw", "PgQueue ÷ raw batch SKIP LOCKED (queue drain)", "0.25 at 8", "≥ 0.50", "**not met**"], TargetRow(markdown, "queue drain ≥ 50 % of raw"));
        Assert.Equal(["bulk enqueue ≥ 30,000 jobs/s", "PgQueue ops/s (queue bulk enqueue 20,000)", "31,250 ops/s at 1", "≥ 30,000 ops/s", "met"], TargetRow(markdown, "bulk enqueue ≥ 30,000 jobs/s"));
        Assert.Equal(["enqueue→start p50 ≤ 5 ms", "PgQueue p50 latency (queue enqueue→start latency, light load)", "1.84 ms at 8", "≤ 5 ms", "met"], TargetRow(markdown, "enqueue→start p50 ≤ 5 ms"));
    }

    [Fact]
    public void Write_BatchTimedAsAWhole_ShowsThroughputOnlyAndNoLatencyChart()
    {
        var charts = new List<string>();

        var markdown = ReportWriter.Write(QueueRun, [], ChartFolder, (file, _) => charts.Add(file));

        var drain = Section(markdown, "### " + Drain).Split('\n');
        Assert.Contains("| PgQueue | 10,000 ops/s<br>no latency |", drain);
        Assert.Contains("| PostgreSQL ÷ Redis: PgQueue ÷ Redis twin | 0.50 |", drain);
        Assert.Contains("| ours ÷ raw: PgQueue ÷ raw batch SKIP LOCKED | 0.25 |", drain);
        Assert.Contains("| ours ÷ peer: PgQueue ÷ Hangfire.PostgreSql | 125.00 |", drain);
        Assert.Contains("No latency chart: this scenario times each batch as a whole, not operation by operation.", drain);
        Assert.Contains("queue-drain.svg", charts);
        Assert.DoesNotContain("queue-drain-latency.svg", charts);
        Assert.DoesNotContain("queue-drain-latency.svg", markdown, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_GroupMixingBatchesAndTimedCalls_ChartsTheLatencyOfTheTimedOnly()
    {
        var charts = new Dictionary<string, string>();

        var markdown = ReportWriter.Write(QueueRun, [], ChartFolder, charts.Add);

        var bulk = Section(markdown, "### " + Bulk);
        var latency = XDocument.Parse(charts["queue-bulk-enqueue-20-000-latency.svg"]).Root!;
        var texts = latency.Descendants().Where(e => e.Name.LocalName == "text").Select(e => e.Value).ToList();
        Assert.Contains("Hangfire.PostgreSql, 1,000 one by one", texts);
        Assert.DoesNotContain("PgQueue", texts);
        Assert.Contains("Timed as a whole batch, so not in the latency chart: raw unnest INSERT, PgQueue.", bulk, StringComparison.Ordinal);
        Assert.Contains("| Hangfire.PostgreSql, 1,000 one by one | 500 ops/s<br>1,900 / 3,100 / 4,000 µs |", bulk, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"!\[[^\]]*\]\((?<path>[^)]+\.svg)\)")]
    private static partial Regex ChartLink();
}
