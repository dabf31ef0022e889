using System.Text.RegularExpressions;
using Npgsql;

namespace PgFirst.Core;

/// <summary>
/// Turns PostgreSQL errors that mean "the PgFirst schema is not there" into messages that name the script to apply.
/// Modules call it from their catch blocks; anything else passes through unchanged.
/// </summary>
public static partial class PgSchemaErrors
{
    /// <summary>
    /// Returns a <see cref="PgFirstSchemaException"/> when <paramref name="exception"/> reports a missing schema,
    /// table, column or function of <paramref name="module"/>; otherwise <see langword="null"/>.
    /// </summary>
    /// <param name="exception">The error PostgreSQL returned.</param>
    /// <param name="module">The module whose statement failed.</param>
    /// <param name="schemaName">The schema the module is configured with.</param>
    /// <returns>The translated exception, or <see langword="null"/> when the error is about something else.</returns>
    public static PgFirstSchemaException? TryTranslate(PostgresException exception, PgSchemaModule module, string schemaName)
    {
        ArgumentNullException.ThrowIfNull(exception);
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(schemaName);

        string what;
        PgSchemaScript? script;
        switch (exception.SqlState)
        {
            case PostgresErrorCodes.InvalidSchemaName:
                what = $"schema \"{schemaName}\"";
                script = module.Scripts[0];
                break;
            case PostgresErrorCodes.UndefinedTable:
                var table = LastQuotedName(exception.MessageText);
                what = $"table {schemaName}.{table}";
                script = table is null ? module.Scripts[0] : module.FindScriptDefining(table) ?? module.Scripts[0];
                break;
            case PostgresErrorCodes.UndefinedFunction:
                var function = FunctionName().Match(exception.MessageText) is { Success: true } m ? m.Groups["name"].Value : null;
                what = $"function {schemaName}.{function}";
                script = function is null ? module.Scripts[^1] : module.FindScriptDefining(function) ?? module.Scripts[^1];
                break;
            case PostgresErrorCodes.UndefinedColumn:
                what = "a column this version of the library needs";
                script = module.Scripts[^1];
                break;
            default:
                return null;
        }

        return new PgFirstSchemaException(
            $"PgFirst {module.Name}: {what} does not exist ({exception.SqlState}: {exception.MessageText}). " +
            $"Apply {script.SourcePath} and the {module.Name} scripts before it to schema \"{schemaName}\": " +
            "set PgFirst:ApplySchemaOnStartup=true, or have a DBA run the output of PgSchemaInstaller.GenerateScript() " +
            "(./pgfirst schema).",
            exception)
        {
            Script = script,
        };
    }

    private static string? LastQuotedName(string message)
    {
        var match = QuotedName().Match(message);
        if (!match.Success)
        {
            return null;
        }

        var name = match.Groups["name"].Value;
        var dot = name.LastIndexOf('.');
        return dot >= 0 ? name[(dot + 1)..] : name;
    }

    [GeneratedRegex("\"(?<name>[^\"]+)\"", RegexOptions.CultureInvariant)]
    private static partial Regex QuotedName();

    [GeneratedRegex(@"function (?:[\w""]+\.)?""?(?<name>\w+)""?\(", RegexOptions.CultureInvariant)]
    private static partial Regex FunctionName();
}
