using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Http;

namespace PgSessions.Internal;

// Writes the session cookie exactly as SessionMiddleware reads it (Data Protection purpose "SessionMiddleware",
// base64 without padding), so app.UseSession() keeps reading our cookies. The store writes the cookie itself, instead
// of through the middleware's tryEstablishSession callback, because a regenerated id must replace a cookie the
// middleware would otherwise write with the old key when the response starts.
internal sealed class SessionCookie(IDataProtectionProvider dataProtection, SessionOptions sessionOptions)
{
    private readonly IDataProtector _protector = dataProtection.CreateProtector("SessionMiddleware");

    public string Name => sessionOptions.Cookie.Name!;

    public string Protect(string sessionKey) =>
        Convert.ToBase64String(_protector.Protect(Encoding.UTF8.GetBytes(sessionKey))).TrimEnd('=');

    public void Write(HttpContext context, string sessionKey)
    {
        var response = context.Response;
        if (response.HasStarted)
        {
            throw new InvalidOperationException("The session cannot be established after the response has started.");
        }

        // Only one session cookie per response: drop one written earlier in this request (a regenerated id).
        var prefix = Name + "=";
        var existing = response.Headers.SetCookie;
        if (existing.Count > 0)
        {
            response.Headers.SetCookie = new(existing.Where(v => v is null || !v.StartsWith(prefix, StringComparison.Ordinal)).ToArray());
        }

        response.Cookies.Append(Name, Protect(sessionKey), sessionOptions.Cookie.Build(context));
        response.Headers.CacheControl = "no-cache,no-store";
        response.Headers.Pragma = "no-cache";
        response.Headers.Expires = "-1";
    }
}
