using Spectre.Console;

namespace PgFirst.Admin;

/// <summary>Where <c>pgfirst-admin</c> writes and what environment it reads: the process's own, or a test's.</summary>
/// <param name="Console">The console tables and the live view render to.</param>
/// <param name="Out">Where JSON and plain lines go (the same stream as <paramref name="Console"/>).</param>
/// <param name="Error">Where errors go.</param>
/// <param name="Environment">Reads an environment variable.</param>
public sealed record AdminIO(IAnsiConsole Console, TextWriter Out, TextWriter Error, Func<string, string?> Environment)
{
    /// <summary>Gets the process's terminal and environment.</summary>
    public static AdminIO System => new(AnsiConsole.Console, global::System.Console.Out, global::System.Console.Error, global::System.Environment.GetEnvironmentVariable);
}
