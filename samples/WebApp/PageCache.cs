using Microsoft.AspNetCore.OutputCaching;

namespace WebApp;

// The catalog and product pages are output-cached (PgFirst.OutputCaching: the responses live in PgCache's table, or
// Redis in Redis mode, shared by every instance). The policy "page" is ASP.NET Core's default one (GET and HEAD, 200
// only, never for a signed-in user or a response that sets a cookie) plus this: tags that let an edit evict exactly the
// pages it changes, and a cache key that varies by what the page shows of the visitor (the cart count, and the
// antiforgery cookie on a product page, to which its form tokens are bound; the catalog has no form for an anonymous
// visitor, so one entry serves them all).
public sealed class PageCachePolicy : IOutputCachePolicy
{
    public const string Name = "page";
    public const string CatalogTag = "catalog-page";
    public const string AntiforgeryCookie = "pgfirst.demo.af";

    public static string ProductTag(int id) => "product:" + id.ToString(System.Globalization.CultureInfo.InvariantCulture);

    ValueTask IOutputCachePolicy.CacheRequestAsync(OutputCacheContext context, CancellationToken cancellation)
    {
        var http = context.HttpContext;
        if (http.Request.RouteValues.TryGetValue("id", out var id) && int.TryParse(id?.ToString(), System.Globalization.CultureInfo.InvariantCulture, out var productId))
        {
            context.Tags.Add(ProductTag(productId));

            // A product page has forms (add to cart) whose tokens are bound to this browser's antiforgery cookie.
            context.CacheVaryByRules.VaryByValues["af"] = http.Request.Cookies[AntiforgeryCookie] ?? string.Empty;
        }
        else
        {
            context.Tags.Add(CatalogTag);
        }

        context.CacheVaryByRules.VaryByValues["cart"] = Cart.Count(http.Session).ToString(System.Globalization.CultureInfo.InvariantCulture);
        return ValueTask.CompletedTask;
    }

    ValueTask IOutputCachePolicy.ServeFromCacheAsync(OutputCacheContext context, CancellationToken cancellation) => ValueTask.CompletedTask;

    ValueTask IOutputCachePolicy.ServeResponseAsync(OutputCacheContext context, CancellationToken cancellation) => ValueTask.CompletedTask;
}
