using System.Text.RegularExpressions;

namespace PgFirst.Core.Internal;

internal static partial class PgIdentifier
{
    // Lower-case, unquoted-safe names only: what a DBA can type without quotes and what fits NAMEDATALEN.
    public const string SchemaNamePattern = "^[a-z_][a-z0-9_]{0,62}$";

    public static bool IsValidSchemaName(string? name) => name is not null && SchemaNameRegex().IsMatch(name);

    [GeneratedRegex(SchemaNamePattern, RegexOptions.CultureInvariant)]
    private static partial Regex SchemaNameRegex();
}
