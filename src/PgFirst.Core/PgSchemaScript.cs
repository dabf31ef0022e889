namespace PgFirst.Core;

/// <summary>
/// One numbered, forward-only script of a module's <c>sql/</c> folder, as embedded in the module's assembly.
/// </summary>
public sealed class PgSchemaScript
{
    internal PgSchemaScript(string module, int version, string fileName, string template, string checksum)
    {
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

    /// <summary>Gets the SHA-256 of <see cref="Template"/> (line endings normalized), recorded when applied.</summary>
    public string Checksum { get; }

    /// <summary>
    /// Returns the script with every <c>{schema}</c> token replaced by the quoted schema name.
    /// </summary>
    /// <param name="schemaName">The unquoted schema name.</param>
    /// <returns>The SQL to run.</returns>
    public string Render(string schemaName)
    {
        ArgumentNullException.ThrowIfNull(schemaName);
        return Template.Replace("{schema}", Internal.PgIdentifier.Quote(schemaName), StringComparison.Ordinal);
    }

    /// <inheritdoc />
    public override string ToString() => SourcePath;
}
