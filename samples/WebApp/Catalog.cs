using Microsoft.AspNetCore.OutputCaching;
using PgCache;

namespace WebApp;

// The catalog reads through the distributed cache: a product page is one GetOrSetJsonAsync, a listing page one
// multi-get of every product on it. Each entry carries the tags "catalog" and "product:{id}", so editing a product
// removes its entries by tag (on every app instance at once, since the cache is shared), evicts the cached pages that show
// it, and tells the pages open on every instance.
public sealed class Catalog(IPgDistributedCache cache, DemoShop shop, IOutputCacheStore pages, LiveUpdates live)
{
    private static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(10);

    public static string ProductKey(int id) => "product:" + id.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static PgCacheEntryOptions EntryOptions(params string[] tags) =>
        new() { AbsoluteExpirationRelativeToNow = Lifetime, Tags = tags };

    public Task<Product> GetProductAsync(int id, CancellationToken cancellationToken) =>
        cache.GetOrSetJsonAsync(ProductKey(id), ct => shop.LoadProductAsync(id, ct), EntryOptions("catalog", ProductKey(id)), ShopJson.Default.Product, cancellationToken);

    public async Task<IReadOnlyList<Product>> ListProductsAsync(CancellationToken cancellationToken)
    {
        var ids = await cache.GetOrSetJsonAsync("catalog:ids", shop.ListProductIdsAsync, EntryOptions("catalog"), ShopJson.Default.Int32Array, cancellationToken);
        var cached = await cache.GetManyAsync(ids.Select(ProductKey), cancellationToken);
        var products = new Dictionary<int, Product>(ids.Length);
        var missing = new List<int>();
        foreach (var id in ids)
        {
            if (cached.TryGetValue(ProductKey(id), out var bytes)
                && System.Text.Json.JsonSerializer.Deserialize(bytes, ShopJson.Default.Product) is { } product)
            {
                products[id] = product;
            }
            else
            {
                missing.Add(id);
            }
        }

        if (missing.Count > 0)
        {
            // One query for every miss; each entry is written with its own product tag.
            foreach (var product in await shop.LoadProductsAsync(missing, cancellationToken))
            {
                products[product.Id] = product;
                await cache.SetJsonAsync(ProductKey(product.Id), product, EntryOptions("catalog", ProductKey(product.Id)), ShopJson.Default.Product, cancellationToken);
            }
        }

        return [.. ids.Where(products.ContainsKey).Select(id => products[id])];
    }

    public async Task<bool> UpdateProductAsync(int id, string name, int priceCents, CancellationToken cancellationToken)
    {
        if (!await shop.UpdateProductAsync(id, name, priceCents, cancellationToken))
        {
            return false;
        }

        await cache.RemoveByTagAsync(ProductKey(id), cancellationToken);
        await pages.EvictByTagAsync(PageCachePolicy.ProductTag(id), cancellationToken);
        await pages.EvictByTagAsync(PageCachePolicy.CatalogTag, cancellationToken);
        await live.ProductChangedAsync(await GetProductAsync(id, cancellationToken));
        return true;
    }
}
