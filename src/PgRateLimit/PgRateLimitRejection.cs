using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.RateLimiting;

namespace PgRateLimit;

/// <summary>
/// A ready <see cref="RateLimiterOptions.OnRejected"/>: 429 with <c>Retry-After</c> and the IETF <c>RateLimit</c> /
/// <c>RateLimit-Policy</c> headers (draft-ietf-httpapi-ratelimit-headers).
/// </summary>
public static class PgRateLimitRejection
{
    /// <summary>
    /// Writes the rejection: status 429, <c>Retry-After</c> in whole seconds (rounded up), and
    /// <c>RateLimit-Policy: "policy";q=limit;w=window</c> and <c>RateLimit: "policy";r=0;t=reset</c>.
    /// </summary>
    /// <param name="context">The rejection context.</param>
    /// <param name="cancellationToken">The request's token.</param>
    /// <returns>A task that completes when the headers and body are written.</returns>
    public static ValueTask OnRejected(OnRejectedContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var response = context.HttpContext.Response;
        response.StatusCode = StatusCodes.Status429TooManyRequests;
        var lease = context.Lease;
        var retryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out var ra) ? ra : (TimeSpan?)null;
        if (retryAfter is { } wait)
        {
            response.Headers.RetryAfter = Seconds(wait);
        }

        if (lease.TryGetMetadata(PgRateLimitMetadata.Policy, out var policy) && policy is not null
            && lease.TryGetMetadata(PgRateLimitMetadata.Limit, out var limit)
            && lease.TryGetMetadata(PgRateLimitMetadata.Window, out var window))
        {
            response.Headers["RateLimit-Policy"] = $"\"{policy}\";q={limit};w={Seconds(window)}";
            response.Headers["RateLimit"] = $"\"{policy}\";r=0;t={Seconds(retryAfter ?? TimeSpan.Zero)}";
        }

        response.ContentType = "text/plain; charset=utf-8";
        return new ValueTask(response.WriteAsync("Too many requests. Retry after the time in the Retry-After header.", cancellationToken));
    }

    private static string Seconds(TimeSpan value) =>
        ((long)Math.Ceiling(Math.Max(0, value.TotalSeconds))).ToString(CultureInfo.InvariantCulture);
}
