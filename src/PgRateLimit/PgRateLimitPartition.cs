using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace PgRateLimit;

/// <summary>
/// Ready partition-key selectors for <see cref="PgFixedWindowRateLimiterOptions.PartitionKey"/>. The policy name is
/// added by PgRateLimit itself, so the same key under two policies never shares a counter.
/// </summary>
public static class PgRateLimitPartition
{
    private const int MaxStoredLength = 256;

    /// <summary>Partitions by the signed-in user's name (or name identifier claim); anonymous requests share <c>user:</c>.</summary>
    /// <param name="context">The request.</param>
    /// <returns>The partition key.</returns>
    public static string ByUser(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var user = context.User;
        return "user:" + (user.Identity?.IsAuthenticated == true
            ? user.Identity.Name ?? user.FindFirstValue(ClaimTypes.NameIdentifier) ?? string.Empty
            : string.Empty);
    }

    /// <summary>Partitions by the client IP address (behind a proxy, add the forwarded-headers middleware first).</summary>
    /// <param name="context">The request.</param>
    /// <returns>The partition key.</returns>
    public static string ByIp(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return "ip:" + (context.Connection.RemoteIpAddress?.ToString() ?? "unknown");
    }

    /// <summary>Partitions by user when signed in, else by IP address.</summary>
    /// <param name="context">The request.</param>
    /// <returns>The partition key.</returns>
    public static string ByUserOrIp(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.User.Identity?.IsAuthenticated == true ? ByUser(context) : ByIp(context);
    }

    /// <summary>Partitions by a request header, such as an API key; requests without it share one partition.</summary>
    /// <param name="headerName">The header.</param>
    /// <returns>The selector.</returns>
    public static Func<HttpContext, string> ByHeader(string headerName)
    {
        ArgumentException.ThrowIfNullOrEmpty(headerName);
        return context => "header:" + context.Request.Headers[headerName].ToString();
    }

    // Keys are stored as given up to 256 characters; longer ones (or ones with U+0000) by their SHA-256, so any key fits.
    internal static string Normalize(string key) =>
        key.Length <= MaxStoredLength && !key.Contains('\0', StringComparison.Ordinal)
            ? key
            : "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));
}
