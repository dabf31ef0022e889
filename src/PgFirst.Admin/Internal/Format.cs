using System.Globalization;

namespace PgFirst.Admin.Internal;

// How values look in tables: invariant, short, and the same in every command.
internal static class Format
{
    private static readonly string[] Units = ["B", "KiB", "MiB", "GiB", "TiB"];

    public static string Bytes(long bytes)
    {
        double value = bytes;
        var unit = 0;
        while (value >= 1024 && unit < Units.Length - 1)
        {
            value /= 1024;
            unit++;
        }

        return unit == 0 ? string.Create(CultureInfo.InvariantCulture, $"{bytes} B") : string.Create(CultureInfo.InvariantCulture, $"{value:0.0} {Units[unit]}");
    }

    public static string Count(long count) => count.ToString("N0", CultureInfo.InvariantCulture);

    // A depth count capped at cap (the queue's capped index counts): "10,000+" when it reached the cap.
    public static string Capped(long count, int cap) => count >= cap ? $"{Count(cap)}+" : Count(count);

    public static string Time(DateTimeOffset? time) => time is { } t ? t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture) : "-";

    public static string Duration(TimeSpan? duration)
    {
        if (duration is not { } d)
        {
            return "-";
        }

        if (d < TimeSpan.Zero)
        {
            d = TimeSpan.Zero;
        }

        return d.TotalSeconds < 1 ? string.Create(CultureInfo.InvariantCulture, $"{d.TotalMilliseconds:0} ms")
            : d.TotalMinutes < 1 ? string.Create(CultureInfo.InvariantCulture, $"{d.TotalSeconds:0.0} s")
            : d.TotalHours < 1 ? string.Create(CultureInfo.InvariantCulture, $"{(int)d.TotalMinutes}m {d.Seconds:00}s")
            : d.TotalDays < 1 ? string.Create(CultureInfo.InvariantCulture, $"{(int)d.TotalHours}h {d.Minutes:00}m")
            : string.Create(CultureInfo.InvariantCulture, $"{(int)d.TotalDays}d {d.Hours:00}h");
    }

    // A window the user gave ("15m", "1h"): in the largest whole unit.
    public static string Window(TimeSpan window) =>
        window.TotalDays >= 1 && window.TotalDays % 1 == 0 ? string.Create(CultureInfo.InvariantCulture, $"{window.TotalDays:0}d")
        : window.TotalHours >= 1 && window.TotalHours % 1 == 0 ? string.Create(CultureInfo.InvariantCulture, $"{window.TotalHours:0}h")
        : window.TotalMinutes % 1 == 0 ? string.Create(CultureInfo.InvariantCulture, $"{window.TotalMinutes:0}m")
        : Duration(window);

    public static string Rate(double perSecond) => string.Create(CultureInfo.InvariantCulture, $"{perSecond:0.#}/s");

    // "15m", "2h", "7d", "90s": a positive span of at most 10 years.
    public static TimeSpan ParseSpan(string text, string option)
    {
        var trimmed = text.Trim();
        if (trimmed.Length >= 2
            && double.TryParse(trimmed[..^1], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number)
            && number > 0)
        {
            TimeSpan? span = char.ToLowerInvariant(trimmed[^1]) switch
            {
                's' => TimeSpan.FromSeconds(number),
                'm' => TimeSpan.FromMinutes(number),
                'h' => TimeSpan.FromHours(number),
                'd' => TimeSpan.FromDays(number),
                _ => null,
            };
            if (span is { } value && value <= TimeSpan.FromDays(3653))
            {
                return value;
            }
        }

        throw AdminException.Usage($"{option} '{text}' is not a duration: write a number and a unit, s, m, h or d (\"15m\", \"7d\").");
    }

    // An instant ("2026-12-01", "2026-12-01T12:00:00Z") or a span ago ("7d").
    public static DateTimeOffset ParseInstant(string text, string option, DateTimeOffset now)
    {
        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var instant))
        {
            return instant;
        }

        try
        {
            return now - ParseSpan(text, option);
        }
        catch (AdminException)
        {
            throw AdminException.Usage($"{option} '{text}' is neither a time (\"2026-12-01T00:00:00Z\") nor a span ago (\"7d\").");
        }
    }
}
