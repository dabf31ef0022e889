namespace PgFirst.Core;

/// <summary>
/// One numbered, forward-only script of a module's <c>sql/</c> folder, as embedded in the module's assembly.
/// </summary>
public sealed class PgSchemaScript
{
    internal PgSchemaScript(string module, int version, string fileName, string template, string checksum, IReadOnlyDictionary<string, string>? tokens = null)
    {
        Tokens = tokens ?? new Dictionary<string, string>();
        Module = module;
        Version = version;
        FileName = fileName;
        Template = template;
        Checksum = checksum;
    }

    /// <summary>Gets the module the script belongs to, e.g. <c>pgcache</c>.</summary>
    public string Module { get; }

    /// <summary>Gets the version, from the file name's number (<c>001_…</c> is version 1).</summary>
    public int Version { get; }

    /// <summary>Gets the file name, e.g. <c>001_cache_entry.sql</c>.</summary>
    public string FileName { get; }

    /// <summary>Gets the path of the script in the repository, e.g. <c>sql/pgcache/001_cache_entry.sql</c>.</summary>
    public string SourcePath => $"sql/{Module}/{FileName}";

    /// <summary>Gets the script text with its <c>{schema}</c> tokens.</summary>
    public string Template { get; }

    /// <summary>
    /// Gets the tokens besides <c>{schema}</c> that <see cref="Render"/> replaces, such as a table's durability.
    /// They are choices of the deployment, so they are not part of <see cref="Checksum"/>.
    /// </summary>
    public IReadOnlyDictionary<string, string> Tokens { get; }

    /// <summary>Gets the SHA-256 of <see cref="Template"/> (line endings normalized), recorded when applied.</summary>
    public string Checksum { get; }

    /// <summary>
    /// Returns the script with every <c>{schema}</c> token replaced by the quoted schema name, and every other token
    /// of <see cref="Tokens"/> by its value.
    /// </summary>
    /// <param name="schemaName">The unquoted schema name.</param>
    /// <returns>The SQL to run.</returns>
    public string Render(string schemaName)
    {
        ArgumentNullException.ThrowIfNull(schemaName);
        var sql = Template;
        foreach (var (token, value) in Tokens)
        {
            sql = sql.Replace(token, value, StringComparison.Ordinal);
        }

        return sql.Replace("{schema}", PgSqlIdentifier.Quote(schemaName), StringComparison.Ordinal);
    }

    internal PgSchemaScript WithTokens(IReadOnlyDictionary<string, string> tokens) =>
        new(Module, Version, FileName, Template, Checksum, tokens);

    /// <inheritdoc />
    public override string ToString() => SourcePath;
}
