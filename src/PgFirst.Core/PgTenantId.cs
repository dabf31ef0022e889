namespace PgFirst.Core;

/// <summary>
/// The rules for tenant ids, shared by every module.
/// </summary>
public static class PgTenantId
{
    /// <summary>The longest tenant id accepted, in characters.</summary>
    public const int MaxLength = 128;

    /// <summary>The rule, as shown in error messages.</summary>
    public const string Rule =
        "a tenant id is 1 to 128 characters of ASCII letters, digits, '-', '_', '.', ':' or '@'.";

    /// <summary>
    /// Returns whether <paramref name="tenantId"/> is a valid tenant id.
    /// </summary>
    /// <param name="tenantId">The candidate id.</param>
    /// <returns><see langword="true"/> when the id can be used.</returns>
    public static bool IsValid(string? tenantId)
    {
        if (string.IsNullOrEmpty(tenantId) || tenantId.Length > MaxLength)
        {
            return false;
        }

        foreach (var c in tenantId)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':' or '@'))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// Throws when <paramref name="tenantId"/> is not a valid tenant id.
    /// </summary>
    /// <param name="tenantId">The candidate id.</param>
    /// <param name="paramName">The parameter name for the exception.</param>
    /// <exception cref="ArgumentNullException"><paramref name="tenantId"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="tenantId"/> breaks <see cref="Rule"/>.</exception>
    public static void Validate(string? tenantId, string paramName)
    {
        ArgumentNullException.ThrowIfNull(tenantId, paramName);
        if (!IsValid(tenantId))
        {
            throw new ArgumentException($"'{Describe(tenantId)}' is not a valid tenant id: {Rule}", paramName);
        }
    }

    // Error messages must not echo megabytes or control characters back.
    private static string Describe(string tenantId)
    {
        var shown = tenantId.Length > 40 ? tenantId[..40] + "…" : tenantId;
        return new string(shown.Select(c => char.IsControl(c) ? '?' : c).ToArray());
    }
}
