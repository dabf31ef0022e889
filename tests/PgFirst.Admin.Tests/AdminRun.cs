using System.Text.Json;
using PgFirst.Admin;
using Spectre.Console;

namespace PgFirst.Admin.Tests;

/// <summary>One run of the tool in-process: its exit code, what it wrote and what it wrote as errors.</summary>
internal sealed record AdminRun(int ExitCode, string Output, string Error)
{
    public AdminExitCode Code => (AdminExitCode)ExitCode;

    public JsonElement Json => JsonDocument.Parse(Output).RootElement;

    // The tool against the test server: the connection comes from the environment the way an operator's would
    // (PGFIRST_POSTGRES), unless the arguments or the given environment say otherwise.
    public static async Task<AdminRun> RunAsync(string connectionString, IReadOnlyDictionary<string, string>? environment, CancellationToken cancellationToken, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(output),
        });
        console.Profile.Width = 200;
        var env = environment ?? new Dictionary<string, string> { ["PGFIRST_POSTGRES"] = connectionString };
        var code = await AdminApp.RunAsync(args, new AdminIO(console, output, error, name => env.GetValueOrDefault(name)), cancellationToken);
        return new AdminRun(code, output.ToString(), error.ToString());
    }

    public override string ToString() => $"exit {ExitCode}\n--- out\n{Output}\n--- err\n{Error}";
}
