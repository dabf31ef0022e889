using System.Globalization;
using System.Text;
using System.Xml;
using System.Xml.Linq;

namespace PgFirst.Benchmarks.Report;

/// <summary>
/// Standalone SVG 1.1 charts for the benchmark report: no external fonts, stylesheets or scripts, white background,
/// so they read the same in a browser, on GitHub (light or dark theme) and in an image viewer.
/// </summary>
/// <remarks>
/// The document is built with <see cref="System.Xml.Linq"/>, so text is escaped by construction; characters XML cannot
/// carry at all (control characters) are dropped. Every number is written with the invariant culture.
/// </remarks>
internal static class SvgChart
{
    private const double Width = 720;
    private const string Font = "sans-serif";
    private const string Ink = "#222222";
    private const string Muted = "#555555";
    private const string Grid = "#dddddd";
    private const double CharWidth = 0.6; // average advance of a sans-serif glyph, in ems: enough to lay out legends

    private static readonly XNamespace Svg = "http://www.w3.org/2000/svg";

    // Okabe–Ito, distinguishable with the common colour-vision deficiencies; its yellow is left out (unreadable on white).
    private static readonly string[] Palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#8C564B"];

    private static readonly (string Name, string Color)[] Percentiles = [("p50", "#9ECAE1"), ("p95", "#4292C6"), ("p99", "#08306B")];

    /// <summary>A line chart of throughput: x = concurrent callers as evenly spaced categories, y = ops/s from 0.</summary>
    /// <param name="title">The chart's title, usually the group.</param>
    /// <param name="callers">The x categories, in display order.</param>
    /// <param name="series">
    /// One line per variant; each list has one value per <paramref name="callers"/> entry, null when not measured.
    /// </param>
    /// <exception cref="ArgumentException">A series does not have one value per callers value.</exception>
    public static string Throughput(
        string title,
        IReadOnlyList<int> callers,
        IReadOnlyList<(string Variant, IReadOnlyList<double?> OpsPerSecond)> series)
    {
        ArgumentNullException.ThrowIfNull(title);
        ArgumentNullException.ThrowIfNull(callers);
        ArgumentNullException.ThrowIfNull(series);
        foreach (var (variant, ops) in series)
        {
            if (ops.Count != callers.Count)
            {
                throw new ArgumentException(
                    Invariant($"Series '{variant}' has {ops.Count} values for {callers.Count} callers values."),
                    nameof(series));
            }
        }

        const double left = 72, right = 24, top = 58, plotHeight = 200;
        var plotWidth = Width - left - right;
        var bottom = top + plotHeight;
        var legend = LegendLayout(series.Select(s => s.Variant).ToList(), plotWidth);
        var height = bottom + 62 + (legend.Rows * 18);

        var svg = Root(height, title + ": throughput");
        svg.Add(Text(left, 24, title, 15, "start", bold: true));
        svg.Add(Text(left, 42, "operations per second by concurrent callers (higher is better)", 12, "start", fill: Muted));

        var max = series.SelectMany(s => s.OpsPerSecond).Where(v => v is not null).Select(v => v!.Value).DefaultIfEmpty(0).Max();
        var (step, axisTop) = NiceScale(max);
        double Y(double value) => bottom - (value / axisTop * plotHeight);
        double X(int index) => left + ((index + 0.5) * plotWidth / Math.Max(1, callers.Count));

        for (var i = 0; i * step <= axisTop * (1 + 1e-9); i++)
        {
            var value = i * step;
            svg.Add(Line(left, Y(value), left + plotWidth, Y(value), i == 0 ? Muted : Grid));
            svg.Add(Text(left - 8, Y(value) + 4, Compact(value), 11, "end", fill: Muted));
        }

        svg.Add(Line(left, top, left, bottom, Muted));
        for (var i = 0; i < callers.Count; i++)
        {
            svg.Add(Line(X(i), bottom, X(i), bottom + 5, Muted));
            svg.Add(Text(X(i), bottom + 19, callers[i].ToString("N0", CultureInfo.InvariantCulture), 12, "middle"));
        }

        svg.Add(Text(left + (plotWidth / 2), bottom + 38, "concurrent callers", 12, "middle", fill: Muted));
        svg.Add(new XElement(
            Svg + "text",
            Attr("x", 18),
            Attr("y", top + (plotHeight / 2)),
            new XAttribute("transform", Invariant($"rotate(-90 18 {top + (plotHeight / 2):F1})")),
            TextAttributes(12, "middle", false, Muted),
            Clean("ops/s")));

        if (max <= 0)
        {
            svg.Add(Text(left + (plotWidth / 2), top + (plotHeight / 2), "no measurements", 13, "middle", fill: Muted));
        }

        for (var s = 0; s < series.Count; s++)
        {
            var (variant, ops) = series[s];
            var (color, dash) = Style(s);
            var group = new XElement(Svg + "g", new XElement(Svg + "title", Clean(variant)));

            // A missing point breaks the line rather than bridging the gap with a value nobody measured.
            var segment = new List<string>();
            void Flush()
            {
                if (segment.Count > 1)
                {
                    group.Add(new XElement(
                        Svg + "polyline",
                        new XAttribute("points", string.Join(' ', segment)),
                        new XAttribute("fill", "none"),
                        new XAttribute("stroke", color),
                        new XAttribute("stroke-width", "2"),
                        dash is null ? null : new XAttribute("stroke-dasharray", dash)));
                }

                segment.Clear();
            }

            for (var i = 0; i < ops.Count; i++)
            {
                if (ops[i] is not { } value)
                {
                    Flush();
                    continue;
                }

                segment.Add(Invariant($"{X(i):F1},{Y(value):F1}"));
                group.Add(new XElement(
                    Svg + "circle",
                    Attr("cx", X(i)),
                    Attr("cy", Y(value)),
                    new XAttribute("r", "3.5"),
                    new XAttribute("fill", color),
                    new XElement(Svg + "title", Clean(Invariant($"{variant}, {callers[i]:N0} callers: {value:N0} ops/s")))));
            }

            Flush();
            svg.Add(group);
        }

        var legendTop = bottom + 60;
        for (var s = 0; s < series.Count; s++)
        {
            var (color, dash) = Style(s);
            var x = left + (s % legend.Columns * legend.ColumnWidth);
            var y = legendTop + (s / legend.Columns * 18);
            svg.Add(new XElement(
                Svg + "line",
                Attr("x1", x),
                Attr("y1", y - 4),
                Attr("x2", x + 22),
                Attr("y2", y - 4),
                new XAttribute("stroke", color),
                new XAttribute("stroke-width", "2"),
                dash is null ? null : new XAttribute("stroke-dasharray", dash)));
            svg.Add(new XElement(
                Svg + "circle",
                Attr("cx", x + 11),
                Attr("cy", y - 4),
                new XAttribute("r", "3.5"),
                new XAttribute("fill", color)));
            svg.Add(LegendText(x + 30, y, series[s].Variant, legend.ColumnWidth - 34));
        }

        return Serialize(svg);
    }

    /// <summary>Grouped horizontal bars: p50, p95 and p99 latency in µs for each variant at one concurrency, with value labels.</summary>
    /// <param name="title">The chart's title, usually the group.</param>
    /// <param name="callers">The concurrency the latencies were measured at.</param>
    /// <param name="bars">One group of three bars per variant, in display order.</param>
    public static string Latency(string title, int callers, IReadOnlyList<(string Variant, double P50, double P95, double P99)> bars)
    {
        ArgumentNullException.ThrowIfNull(title);
        ArgumentNullException.ThrowIfNull(bars);

        const double left = 24, right = 96, top = 76, barHeight = 9, barGap = 2, nameHeight = 17, groupGap = 10;
        var plotWidth = Width - left - right;
        var groupHeight = nameHeight + (3 * (barHeight + barGap)) + groupGap;
        var bottom = top + Math.Max(1, bars.Count) * groupHeight;
        var height = bottom + 46;

        var svg = Root(height, title + ": latency");
        svg.Add(Text(left, 24, title, 15, "start", bold: true));
        var subtitle = Invariant($"latency at {callers:N0} concurrent {(callers == 1 ? "caller" : "callers")}, µs (lower is better)");
        svg.Add(Text(left, 42, subtitle, 12, "start", fill: Muted));

        // Percentile legend on its own line under the subtitle.
        for (var p = 0; p < Percentiles.Length; p++)
        {
            var x = left + (p * 64);
            svg.Add(new XElement(
                Svg + "rect",
                Attr("x", x),
                Attr("y", 53),
                Attr("width", 12),
                Attr("height", 10),
                new XAttribute("fill", Percentiles[p].Color)));
            svg.Add(Text(x + 17, 62, Percentiles[p].Name, 11, "start"));
        }

        var max = bars.SelectMany(b => new[] { b.P50, b.P95, b.P99 }).Where(double.IsFinite).DefaultIfEmpty(0).Max();
        var (step, axisTop) = NiceScale(max);
        double X(double value) => left + (Math.Clamp(value, 0, axisTop) / axisTop * plotWidth);

        for (var i = 0; i * step <= axisTop * (1 + 1e-9); i++)
        {
            var value = i * step;
            svg.Add(Line(X(value), top - 4, X(value), bottom, i == 0 ? Muted : Grid));
            svg.Add(Text(X(value), bottom + 16, value.ToString("#,0.##", CultureInfo.InvariantCulture), 11, "middle", fill: Muted));
        }

        svg.Add(Line(left, bottom, left + plotWidth, bottom, Muted));
        svg.Add(Text(left + (plotWidth / 2), bottom + 36, "latency, µs", 12, "middle", fill: Muted));

        if (bars.Count == 0)
        {
            svg.Add(Text(left + (plotWidth / 2), top + (groupHeight / 2), "no measurements", 13, "middle", fill: Muted));
        }

        for (var b = 0; b < bars.Count; b++)
        {
            var (variant, p50, p95, p99) = bars[b];
            var y = top + (b * groupHeight);
            var group = new XElement(Svg + "g", new XElement(Svg + "title", Clean(variant)));
            group.Add(LegendText(left + 2, y + 12, variant, plotWidth + right - 8, bold: true));
            double[] values = [p50, p95, p99];
            for (var p = 0; p < values.Length; p++)
            {
                var barTop = y + nameHeight + (p * (barHeight + barGap));
                var width = double.IsFinite(values[p]) ? X(values[p]) - left : 0;
                group.Add(new XElement(
                    Svg + "rect",
                    Attr("x", left),
                    Attr("y", barTop),
                    Attr("width", width),
                    Attr("height", barHeight),
                    new XAttribute("fill", Percentiles[p].Color)));
                var value = double.IsFinite(values[p]) ? values[p].ToString("N0", CultureInfo.InvariantCulture) : "n/a";
                var label = Percentiles[p].Name + " " + value;
                group.Add(Text(left + width + 4, barTop + barHeight - 1, label, 10, "start"));
            }

            svg.Add(group);
        }

        return Serialize(svg);
    }

    /// <summary>
    /// A "nice" axis for values from 0 to <paramref name="max"/>: a step of 1, 2, 2.5 or 5 × 10ⁿ and a top that is a
    /// whole number of steps.
    /// </summary>
    internal static (double Step, double Top) NiceScale(double max)
    {
        if (!double.IsFinite(max) || max <= 0)
        {
            return (0.2, 1);
        }

        var rough = max / 5;
        var magnitude = Math.Pow(10, Math.Floor(Math.Log10(rough)));
        var normalized = rough / magnitude;
        var step = normalized switch
        {
            <= 1 => 1,
            <= 2 => 2,
            <= 2.5 => 2.5,
            <= 5 => 5,
            _ => 10,
        } * magnitude;
        var top = Math.Ceiling((max / step) - 1e-9) * step;
        return (step, top);
    }

    /// <summary>An axis label: 0, 500, 5k, 12.5k, 1.5M.</summary>
    internal static string Compact(double value) => value switch
    {
        >= 1_000_000 => (value / 1_000_000).ToString("0.##", CultureInfo.InvariantCulture) + "M",
        >= 1_000 => (value / 1_000).ToString("0.##", CultureInfo.InvariantCulture) + "k",
        _ => value.ToString("0.##", CultureInfo.InvariantCulture),
    };

    private static (int Columns, double ColumnWidth, int Rows) LegendLayout(List<string> names, double width)
    {
        var twoColumns = names.Count > 1 && names.All(n => TextWidth(n, 12) + 34 <= width / 2);
        var columns = twoColumns ? 2 : 1;
        return (columns, width / columns, (names.Count + columns - 1) / columns);
    }

    private static (string Color, string? Dash) Style(int index) =>
        (Palette[index % Palette.Length], index / Palette.Length % 2 == 1 ? "6 3" : null);

    private static XElement Root(double height, string label) =>
        new(
            Svg + "svg",
            new XAttribute("version", "1.1"),
            Attr("width", Width),
            Attr("height", height),
            new XAttribute("viewBox", Invariant($"0 0 {Width:F0} {height:F0}")),
            new XAttribute("role", "img"),
            new XAttribute("aria-label", Clean(label)),
            new XElement(Svg + "title", Clean(label)),
            new XElement(Svg + "rect", Attr("width", Width), Attr("height", height), new XAttribute("fill", "#ffffff")));

    private static XElement Line(double x1, double y1, double x2, double y2, string stroke) =>
        new(
            Svg + "line",
            Attr("x1", x1),
            Attr("y1", y1),
            Attr("x2", x2),
            Attr("y2", y2),
            new XAttribute("stroke", stroke),
            new XAttribute("stroke-width", "1"));

    private static XElement Text(double x, double y, string text, double size, string anchor, bool bold = false, string fill = Ink) =>
        new(Svg + "text", Attr("x", x), Attr("y", y), TextAttributes(size, anchor, bold, fill), Clean(text));

    // A name too long for its room is shortened on screen; the full name stays in the element's <title>.
    private static XElement LegendText(double x, double y, string text, double room, bool bold = false)
    {
        const double size = 12;
        var fits = Math.Max(4, (int)(room / (size * CharWidth)));
        if (text.Length <= fits)
        {
            return Text(x, y, text, size, "start", bold);
        }

        var shown = text[..(fits - 1)].TrimEnd() + "…";
        return new XElement(
            Svg + "text",
            Attr("x", x),
            Attr("y", y),
            TextAttributes(size, "start", bold, Ink),
            new XElement(Svg + "title", Clean(text)),
            Clean(shown));
    }

    private static XAttribute[] TextAttributes(double size, string anchor, bool bold, string fill) =>
    [
        new("font-family", Font),
        Attr("font-size", size),
        new("text-anchor", anchor),
        new("fill", fill),
        .. bold ? new[] { new XAttribute("font-weight", "bold") } : [],
    ];

    private static double TextWidth(string text, double size) => text.Length * size * CharWidth;

    private static XAttribute Attr(string name, double value) => new(name, Invariant($"{value:0.#}"));

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    // XML 1.0 cannot carry most control characters even escaped; a variant name is not worth a broken chart.
    private static string Clean(string text)
    {
        var builder = new StringBuilder(text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            if (i + 1 < text.Length && XmlConvert.IsXmlSurrogatePair(text[i + 1], text[i]))
            {
                builder.Append(text, i, 2);
                i++;
            }
            else if (XmlConvert.IsXmlChar(text[i]))
            {
                builder.Append(text[i]);
            }
        }

        return builder.ToString();
    }

    private static string Serialize(XElement svg)
    {
        var settings = new XmlWriterSettings { OmitXmlDeclaration = true, Indent = true, IndentChars = "  ", NewLineChars = "\n" };
        var text = new StringBuilder("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n");
        using (var writer = XmlWriter.Create(text, settings))
        {
            svg.Save(writer);
        }

        return text.Append('\n').ToString();
    }
}
