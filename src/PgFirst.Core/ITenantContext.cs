namespace PgFirst.Core;

/// <summary>
/// Resolves the tenant that the current operation belongs to. The cache and the session store make the tenant part
/// of every key, so one tenant never reads, overwrites or removes another's data.
/// </summary>
/// <remarks>
/// The default implementation, <see cref="PgTenantContext"/>, returns the tenant set with
/// <see cref="PgTenantContext.BeginScope(string)"/> and otherwise <see cref="PgFirstOptions.DefaultTenantId"/>.
/// Register your own (for example one reading a claim or the host name) to replace it; whatever it returns is
/// checked with <see cref="PgTenantId.Validate(string?, string)"/> before use.
/// </remarks>
public interface ITenantContext
{
    /// <summary>
    /// Gets the id of the current tenant; never <see langword="null"/>.
    /// </summary>
    string TenantId { get; }
}
