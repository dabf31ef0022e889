using Spectre.Console;

namespace PgFirst.Admin;

/// <summary>Where <c>pgfirst-admin</c> writes and what environment it reads: the process's own, or a test's.</summary>
/// <param name="Console">The console tables and the live view render to.</param>
/// <param name="Out">Where JSON and plain lines go (the same stream as <paramref name="Console"/>).</param>
/// <param name="Error">Where errors go.</param>
/// <param name="Environment">Reads an environment variable.</param>
public sealed record AdminIO(IAnsiConsole Console, TextWriter Out, TextWriter Error, Func<string, string?> Environment)
{
    /// <summary>
    /// Gets the process's terminal and environment. Output to a pipe or a file is laid out for 160 columns (or
    /// <c>$COLUMNS</c>) rather than the 80 a console without a terminal reports, so tables stay one line per row.
    /// </summary>
    public static AdminIO System
    {
        get
        {
            var console = AnsiConsole.Console;
            if (global::System.Console.IsOutputRedirected)
            {
                console.Profile.Width = int.TryParse(global::System.Environment.GetEnvironmentVariable("COLUMNS"), out var columns) && columns is >= 40 and <= 1000 ? columns : 160;
            }

            return new(console, global::System.Console.Out, global::System.Console.Error, global::System.Environment.GetEnvironmentVariable);
        }
    }
}
