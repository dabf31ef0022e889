using System.Globalization;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace PgFirst.Core;

/// <summary>
/// The schema scripts of one PgFirst module, read from the <c>sql/&lt;module&gt;/NNN_name.sql</c> files that the
/// module's assembly embeds under the logical names <c>PgFirst.Sql.&lt;module&gt;.NNN_name.sql</c>.
/// </summary>
public sealed partial class PgSchemaModule
{
    private const string ResourceRoot = "PgFirst.Sql.";

    private static readonly Lazy<PgSchemaModule> CoreModule = new(() => FromAssembly("pgfirst", typeof(PgSchemaModule).Assembly));

    private PgSchemaModule(string name, IReadOnlyList<PgSchemaScript> scripts)
    {
        Name = name;
        Scripts = scripts;
    }

    /// <summary>
    /// Gets the core module (<c>sql/pgfirst</c>): the version and maintenance bookkeeping tables, always applied first.
    /// </summary>
    public static PgSchemaModule Core => CoreModule.Value;

    /// <summary>Gets the module name, which is also its folder under <c>sql/</c>.</summary>
    public string Name { get; }

    /// <summary>Gets the scripts in apply order (ascending version).</summary>
    public IReadOnlyList<PgSchemaScript> Scripts { get; }

    /// <summary>
    /// Reads the scripts of module <paramref name="name"/> embedded in <paramref name="assembly"/>.
    /// </summary>
    /// <param name="name">The module name, e.g. <c>pgcache</c>: lower-case letters, digits and underscores.</param>
    /// <param name="assembly">The assembly that embeds the scripts.</param>
    /// <returns>The module.</returns>
    /// <exception cref="ArgumentException">The name is invalid.</exception>
    /// <exception cref="InvalidOperationException">
    /// The assembly embeds no script for the module, a script is misnamed, or two scripts share a version.
    /// </exception>
    public static PgSchemaModule FromAssembly(string name, Assembly assembly)
    {
        ArgumentNullException.ThrowIfNull(assembly);
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (!ModuleNameRegex().IsMatch(name))
        {
            throw new ArgumentException($"'{name}' is not a valid module name: use lower-case letters, digits and '_'.", nameof(name));
        }

        var prefix = ResourceRoot + name + ".";
        var scripts = new List<PgSchemaScript>();
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith(prefix, StringComparison.Ordinal)))
        {
            var fileName = resource[prefix.Length..];
            var match = ScriptNameRegex().Match(fileName);
            if (!match.Success)
            {
                throw new InvalidOperationException(
                    $"Embedded script '{resource}' is misnamed: scripts are named NNN_description.sql (three digits, lower-case).");
            }

            using var stream = assembly.GetManifestResourceStream(resource)
                ?? throw new InvalidOperationException($"Embedded script '{resource}' could not be read.");
            using var reader = new StreamReader(stream, Encoding.UTF8);
            var template = reader.ReadToEnd().Replace("\r\n", "\n", StringComparison.Ordinal);
            var checksum = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(template)));
            var version = int.Parse(match.Groups["version"].Value, NumberStyles.None, CultureInfo.InvariantCulture);
            scripts.Add(new PgSchemaScript(name, version, fileName, template, checksum));
        }

        if (scripts.Count == 0)
        {
            throw new InvalidOperationException(
                $"Assembly {assembly.GetName().Name} embeds no script for module '{name}' (expected resources named '{prefix}NNN_name.sql').");
        }

        scripts.Sort((a, b) => a.Version.CompareTo(b.Version));
        for (var i = 1; i < scripts.Count; i++)
        {
            if (scripts[i].Version == scripts[i - 1].Version)
            {
                throw new InvalidOperationException(
                    $"Scripts {scripts[i - 1].SourcePath} and {scripts[i].SourcePath} share version {scripts[i].Version}.");
            }
        }

        return new PgSchemaModule(name, scripts);
    }

    /// <summary>
    /// Returns a copy of this module whose scripts replace each token of <paramref name="tokens"/> (e.g.
    /// <c>{cache_persistence}</c>) with its value when rendered.
    /// </summary>
    /// <param name="tokens">The tokens and their values; each token must be written <c>{name}</c>.</param>
    /// <returns>The module with tokens.</returns>
    /// <exception cref="ArgumentException">A token is <c>{schema}</c> or not written in braces.</exception>
    public PgSchemaModule WithTokens(IReadOnlyDictionary<string, string> tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        foreach (var token in tokens.Keys)
        {
            if (token == "{schema}" || token.Length < 3 || token[0] != '{' || token[^1] != '}')
            {
                throw new ArgumentException($"'{token}' is not a valid token: write it in braces, and {{schema}} is reserved.", nameof(tokens));
            }
        }

        var copy = new Dictionary<string, string>(tokens, StringComparer.Ordinal);
        return new PgSchemaModule(Name, Scripts.Select(s => s.WithTokens(copy)).ToList());
    }

    /// <summary>
    /// Finds the script that creates <paramref name="objectName"/> (a table, view or function name, unqualified).
    /// </summary>
    /// <param name="objectName">The unqualified object name, e.g. <c>cache_entry</c>.</param>
    /// <returns>The first script that mentions <c>{schema}.objectName</c>, or <see langword="null"/>.</returns>
    public PgSchemaScript? FindScriptDefining(string objectName)
    {
        ArgumentNullException.ThrowIfNull(objectName);
        var token = "{schema}." + objectName;
        return Scripts.FirstOrDefault(s => ContainsWord(s.Template, token));
    }

    /// <inheritdoc />
    public override string ToString() => $"sql/{Name} ({Scripts.Count} scripts)";

    private static bool ContainsWord(string text, string token)
    {
        var index = 0;
        while ((index = text.IndexOf(token, index, StringComparison.Ordinal)) >= 0)
        {
            var end = index + token.Length;
            if (end == text.Length || !(char.IsAsciiLetterOrDigit(text[end]) || text[end] == '_'))
            {
                return true;
            }

            index = end;
        }

        return false;
    }

    [GeneratedRegex("^[a-z][a-z0-9_]{0,62}$", RegexOptions.CultureInvariant)]
    private static partial Regex ModuleNameRegex();

    [GeneratedRegex(@"^(?<version>\d{3})_[a-z0-9_]+\.sql$", RegexOptions.CultureInvariant)]
    private static partial Regex ScriptNameRegex();
}
