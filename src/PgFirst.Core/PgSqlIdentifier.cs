namespace PgFirst.Core;

/// <summary>
/// Quotes SQL identifiers for the statements the PgFirst packages render once per schema. Values are never rendered
/// into SQL; they are always parameters.
/// </summary>
public static class PgSqlIdentifier
{
    /// <summary>
    /// Returns <paramref name="name"/> as a double-quoted identifier, with embedded double quotes doubled.
    /// </summary>
    /// <param name="name">The identifier, e.g. a schema name.</param>
    /// <returns>The quoted identifier.</returns>
    /// <exception cref="ArgumentException"><paramref name="name"/> is null or empty.</exception>
    public static string Quote(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return "\"" + name.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
    }
}
