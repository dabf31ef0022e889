using Microsoft.Extensions.Options;

namespace PgFirst.Core;

/// <summary>
/// The default <see cref="ITenantContext"/>: the tenant of the innermost <see cref="BeginScope(string)"/> on the
/// current async flow, otherwise the configured default tenant.
/// </summary>
public sealed class PgTenantContext : ITenantContext
{
    private static readonly AsyncLocal<string?> Current = new();

    private readonly string _defaultTenantId;

    /// <summary>
    /// Initializes a new instance of the <see cref="PgTenantContext"/> class.
    /// </summary>
    /// <param name="options">The PgFirst options that carry the default tenant id.</param>
    public PgTenantContext(IOptions<PgFirstOptions> options)
        : this(options?.Value.DefaultTenantId ?? throw new ArgumentNullException(nameof(options)))
    {
    }

    /// <summary>
    /// Initializes a new instance of the <see cref="PgTenantContext"/> class with an explicit default tenant.
    /// </summary>
    /// <param name="defaultTenantId">The tenant used outside any scope.</param>
    /// <exception cref="ArgumentException"><paramref name="defaultTenantId"/> is not a valid tenant id.</exception>
    public PgTenantContext(string defaultTenantId)
    {
        PgTenantId.Validate(defaultTenantId, nameof(defaultTenantId));
        _defaultTenantId = defaultTenantId;
    }

    /// <inheritdoc />
    public string TenantId => Current.Value ?? _defaultTenantId;

    /// <summary>
    /// Makes <paramref name="tenantId"/> the current tenant until the returned scope is disposed; scopes nest and
    /// flow across <see langword="await"/>.
    /// </summary>
    /// <param name="tenantId">The tenant id.</param>
    /// <returns>A scope that restores the previous tenant when disposed.</returns>
    /// <exception cref="ArgumentException"><paramref name="tenantId"/> is not a valid tenant id.</exception>
    public static IDisposable BeginScope(string tenantId)
    {
        PgTenantId.Validate(tenantId, nameof(tenantId));
        var scope = new Scope(Current.Value);
        Current.Value = tenantId;
        return scope;
    }

    private sealed class Scope(string? previous) : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (!_disposed)
            {
                _disposed = true;
                Current.Value = previous;
            }
        }
    }
}
