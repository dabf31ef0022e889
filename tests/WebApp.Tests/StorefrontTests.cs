using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using PgFirst.Testing;

namespace WebApp.Tests;

/// <summary>The catalog (cache), cart (session) and orders (queue) through the real pipeline, on both backends.</summary>
public partial class StorefrontTests(PostgresServer postgres, RedisServer redis) : PostgresTest(postgres)
{
    [GeneratedRegex("class=\"product-link\" href=\"/products/(\\d+)\">([^<]+)</a>")]
    private static partial Regex ProductLink();

    private static async Task<JsonElement> TotalsAsync(DemoClient client) => (await client.GetJsonAsync("/dashboard/data")).GetProperty("totals");

    [Theory]
    [InlineData(null)]
    [InlineData("Redis")]
    public async Task Catalog_ListsTheSeededProducts_AndServesTheSecondViewFromTheOutputCache(string? backend)
    {
        await using var app = DemoApp.Create(Server, redis, Schema, backend);
        using var client = app.Client();

        using var firstResponse = await client.Http.GetAsync("/", CancellationToken);
        var first = await DemoClient.BodyAsync(firstResponse);
        var afterFirst = await TotalsAsync(client);
        using var secondResponse = await client.Http.GetAsync("/", CancellationToken);
        var second = await DemoClient.BodyAsync(secondResponse);
        var afterSecond = await TotalsAsync(client);

        Assert.Equal(8, ProductLink().Count(first));
        Assert.Equal(first, second);
        Assert.Contains("Earl Grey tea", first, StringComparison.Ordinal);
        Assert.Contains($"<td id=\"backend-cache\">{backend ?? "PostgreSql"}</td>", first, StringComparison.Ordinal);

        // The first view rendered the page (and stored it); the second is the stored response: ASP.NET Core's output
        // cache says so with an Age header, and the cache saw one hit (the stored page), not the two of a rendering
        // (the id list and the multi-get of the products), and no miss.
        Assert.Null(firstResponse.Headers.Age);
        Assert.NotNull(secondResponse.Headers.Age);
        Assert.Equal(afterFirst.GetProperty("cacheMisses").GetInt64(), afterSecond.GetProperty("cacheMisses").GetInt64());
        Assert.Equal(1, afterSecond.GetProperty("cacheHits").GetInt64() - afterFirst.GetProperty("cacheHits").GetInt64());
    }

    // The cached page lives in the shared store: one instance renders it, the other serves it; an edit on either evicts
    // the pages that show the product (by tag) on both, and leaves the others' cached pages alone.
    [Theory]
    [InlineData(null)]
    [InlineData("Redis")]
    public async Task TwoInstances_ACachedPageIsServedByTheOther_UntilAnEditEvictsItByTag(string? backend)
    {
        await using var first = DemoApp.Create(Server, redis, Schema, backend, new Dictionary<string, string?> { ["Demo:InstanceName"] = "A" });
        await using var second = DemoApp.Create(Server, redis, Schema, backend, new Dictionary<string, string?> { ["Demo:InstanceName"] = "B" });
        using var editor = first.Client();
        using var visitor = second.Client();
        using var other = second.Client();

        using (var rendered = await editor.Http.GetAsync("/", CancellationToken))
        {
            Assert.Null(rendered.Headers.Age);
            Assert.Contains("instance A", await DemoClient.BodyAsync(rendered), StringComparison.Ordinal);
        }

        using (var served = await visitor.Http.GetAsync("/", CancellationToken))
        {
            // Rendered by A (its instance name in the header), served by B from the shared store.
            Assert.NotNull(served.Headers.Age);
            Assert.Contains("instance A", await DemoClient.BodyAsync(served), StringComparison.Ordinal);
        }

        // A product page's forms are bound to the browser's antiforgery cookie: the first view sets it (a response that
        // sets a cookie is never stored), the second is stored for this browser, the third is served from the store.
        await other.GetPageAsync("/products/5");
        await other.GetPageAsync("/products/5");
        using (var cachedOther = await other.Http.GetAsync("/products/5", CancellationToken))
        {
            Assert.NotNull(cachedOther.Headers.Age);
        }

        await editor.SignInAsync("alice");
        using var edited = await editor.PostFormAsync("/products/3", "/products/3/edit", ("name", "Ethiopia Guji"), ("priceCents", "1790"));
        Assert.Equal(HttpStatusCode.OK, edited.StatusCode);

        using (var after = await visitor.Http.GetAsync("/", CancellationToken))
        {
            var page = await DemoClient.BodyAsync(after);
            Assert.Null(after.Headers.Age);
            Assert.Contains("Ethiopia Guji", page, StringComparison.Ordinal);
            Assert.Contains("instance B", page, StringComparison.Ordinal);
        }

        using (var untouched = await other.Http.GetAsync("/products/5", CancellationToken))
        {
            Assert.NotNull(untouched.Headers.Age);
        }
    }

    // A signed-in visitor's pages carry their name and forms bound to them: never stored, never served from the cache.
    [Fact]
    public async Task SignedInPages_AreNeverOutputCached()
    {
        await using var app = DemoApp.Create(Server, redis, Schema);
        using var client = app.Client();
        await client.SignInAsync("bob");

        for (var i = 0; i < 2; i++)
        {
            using var catalog = await client.Http.GetAsync("/", CancellationToken);
            using var product = await client.Http.GetAsync("/products/2", CancellationToken);
            Assert.Null(catalog.Headers.Age);
            Assert.Null(product.Headers.Age);
            Assert.Contains("<span id=\"nav-user\">bob</span>", await DemoClient.BodyAsync(product), StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Redis")]
    public async Task EditingAProduct_RemovesItsCacheEntriesByTag_SoEveryPageShowsTheChange(string? backend)
    {
        await using var app = DemoApp.Create(Server, redis, Schema, backend);
        using var client = app.Client();
        await client.GetPageAsync("/");                  // listing and product 3 cached
        Assert.Contains("Ethiopia Yirgacheffe", await client.GetPageAsync("/products/3"), StringComparison.Ordinal);
        await client.SignInAsync("alice");

        using var edited = await client.PostFormAsync("/products/3", "/products/3/edit", ("name", "Ethiopia Guji"), ("priceCents", "1790"));

        var page = await DemoClient.BodyAsync(edited);
        Assert.Equal(HttpStatusCode.OK, edited.StatusCode);
        Assert.Contains("<h1 id=\"product-name\">Ethiopia Guji</h1>", page, StringComparison.Ordinal);
        Assert.Contains("€17.90", page, StringComparison.Ordinal);
        var listing = await client.GetPageAsync("/");
        Assert.Contains("Ethiopia Guji", listing, StringComparison.Ordinal);
        Assert.DoesNotContain("Ethiopia Yirgacheffe", listing, StringComparison.Ordinal);
        Assert.Contains("Earl Grey tea", listing, StringComparison.Ordinal);
    }

    // The demo runs with the near cache on: a product page read twice is served from memory the second time, and an
    // edit on another instance (another app on the same schema) reaches this one's copy through the store.
    [Theory]
    [InlineData(null)]
    [InlineData("Redis")]
    public async Task TwoInstances_AProductPageIsANearHit_AndAnEditOnTheOtherInstanceReachesIt(string? backend)
    {
        await using var first = DemoApp.Create(Server, redis, Schema, backend);
        await using var second = DemoApp.Create(Server, redis, Schema, backend);
        using var editor = first.Client();
        using var visitor = second.Client();
        Assert.Contains("Ethiopia Yirgacheffe", await editor.GetPageAsync("/products/3"), StringComparison.Ordinal);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        long nearHits;
        do
        {
            Assert.Contains("Ethiopia Yirgacheffe", await visitor.GetPageAsync("/products/3"), StringComparison.Ordinal);
            nearHits = (await visitor.GetJsonAsync("/dashboard/data")).GetProperty("totals").GetProperty("cacheNearHits").GetInt64();
        }
        while (nearHits == 0 && DateTime.UtcNow < deadline);

        Assert.True(nearHits > 0, "The second instance never served the product page from its near cache.");
        await editor.SignInAsync("alice");
        using var edited = await editor.PostFormAsync("/products/3", "/products/3/edit", ("name", "Ethiopia Guji"), ("priceCents", "1790"));
        Assert.Equal(HttpStatusCode.OK, edited.StatusCode);

        deadline = DateTime.UtcNow.AddSeconds(5);
        string page;
        while (!(page = await visitor.GetPageAsync("/products/3")).Contains("Ethiopia Guji", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20, TestContext.Current.CancellationToken);
        }

        Assert.Contains("Ethiopia Guji", page, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Redis")]
    public async Task EditingAProduct_RefusesBadInputAndAnonymousUsers_AndChangesNothing(string? backend)
    {
        await using var app = DemoApp.Create(Server, redis, Schema, backend);
        using var client = app.Client();

        using var anonymous = await client.PostFormAsync("/products/2", "/products/2/edit", ("name", "Hacked"), ("priceCents", "1"));
        Assert.Equal(HttpStatusCode.Redirect, anonymous.StatusCode);
        Assert.StartsWith("/signin?returnUrl=", anonymous.Headers.Location!.OriginalString, StringComparison.Ordinal);

        await client.SignInAsync("bob");
        using var zeroPrice = await client.PostFormAsync("/products/2", "/products/2/edit", ("name", "Sencha"), ("priceCents", "0"));
        using var emptyName = await client.PostFormAsync("/products/2", "/products/2/edit", ("name", "   "), ("priceCents", "100"));
        using var longName = await client.PostFormAsync("/products/2", "/products/2/edit", ("name", new string('x', 101)), ("priceCents", "100"));
        using var unknown = await client.PostFormAsync("/products/2", "/products/99/edit", ("name", "Nothing"), ("priceCents", "100"));
        using var noToken = await client.Http.PostAsync("/products/2/edit", new FormUrlEncodedContent([new("name", "Forged"), new("priceCents", "5")]), CancellationToken);

        Assert.Equal(HttpStatusCode.BadRequest, zeroPrice.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, emptyName.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, longName.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, noToken.StatusCode);
        var product = await client.GetPageAsync("/products/2");
        Assert.Contains("<h1 id=\"product-name\">Sencha</h1>", product, StringComparison.Ordinal);
        Assert.Contains("€12.50", product, StringComparison.Ordinal);
        Assert.Equal(1250, await ScalarAsync<int>($"SELECT price_cents FROM \"{Schema}\".shop_product WHERE id = 2"));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Redis")]
    public async Task UnknownProduct_Is404_OnThePageAndTheApi(string? backend)
    {
        await using var app = DemoApp.Create(Server, redis, Schema, backend);
        using var client = app.Client();

        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/products/999")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/products/abc")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/api/products/999")).Status);
        Assert.Equal("Sencha", (await client.GetJsonAsync("/api/products/2")).GetProperty("name").GetString());
        Assert.Equal(8, (await client.GetJsonAsync("/api/products")).GetArrayLength());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Redis")]
    public async Task Cart_KeptInTheSession_AddsMergesAndClears_AndRefusesBadLines(string? backend)
    {
        await using var app = DemoApp.Create(Server, redis, Schema, backend);
        using var client = app.Client();

        using var first = await client.PostFormAsync("/products/1", "/cart/items", ("productId", "1"), ("quantity", "2"));
        using var again = await client.PostFormAsync("/products/1", "/cart/items", ("productId", "1"), ("quantity", "3"));
        using var other = await client.PostFormAsync("/products/5", "/cart/items", ("productId", "5"), ("quantity", "1"));
        using var zero = await client.PostFormAsync("/products/5", "/cart/items", ("productId", "5"), ("quantity", "0"));
        using var tooMany = await client.PostFormAsync("/products/5", "/cart/items", ("productId", "5"), ("quantity", "100"));
        using var unknown = await client.PostFormAsync("/products/5", "/cart/items", ("productId", "77"), ("quantity", "1"));
        using var notANumber = await client.PostFormAsync("/products/5", "/cart/items", ("productId", "5"), ("quantity", "two"));

        Assert.Equal(HttpStatusCode.Redirect, first.StatusCode);
        Assert.Equal("/cart", first.Headers.Location!.OriginalString);
        Assert.Equal(HttpStatusCode.BadRequest, zero.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, tooMany.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, notANumber.StatusCode);
        var cart = await client.GetJsonAsync("/api/cart");
        Assert.Equal("""[{"productId":1,"quantity":5},{"productId":5,"quantity":1}]""", cart.GetRawText());
        var page = await client.GetPageAsync("/cart");
        Assert.Contains("<span id=\"cart-count\">6</span>", page, StringComparison.Ordinal);
        Assert.Contains("<td id=\"cart-total\">€58.50</td>", page, StringComparison.Ordinal); // 5 × 8.90 + 14.00

        using var cleared = await client.PostFormAsync("/cart", "/cart/clear");
        Assert.Equal(HttpStatusCode.Redirect, cleared.StatusCode);
        Assert.Equal("[]", (await client.GetJsonAsync("/api/cart")).GetRawText());
        Assert.Contains("id=\"cart-empty\"", await client.GetPageAsync("/cart"), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Redis")]
    public async Task Checkout_CommitsTheOrderAndItsJobs_TheHandlersRecordTheirOutcome_OnEitherBackend(string? backend)
    {
        await using var app = DemoApp.Create(Server, redis, Schema, backend);
        using var client = app.Client();
        using var added = await client.PostFormAsync("/products/4", "/cart/items", ("productId", "4"), ("quantity", "2"));

        using var anonymous = await client.PostFormAsync("/cart", "/cart/checkout");
        Assert.Equal(HttpStatusCode.Redirect, anonymous.StatusCode);
        Assert.StartsWith("/signin", anonymous.Headers.Location!.OriginalString, StringComparison.Ordinal);

        await client.SignInAsync("carol"); // the cart survives sign-in (same data, new session key)
        using var placed = await client.PostFormAsync("/cart", "/cart/checkout");
        Assert.Equal(HttpStatusCode.Redirect, placed.StatusCode);
        var location = placed.Headers.Location!.OriginalString;
        Assert.Matches("^/orders/\\d+$", location);
        var orderId = long.Parse(location["/orders/".Length..], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal("[]", (await client.GetJsonAsync("/api/cart")).GetRawText());

        var deadline = DateTime.UtcNow.AddSeconds(30);
        string page;
        do
        {
            await Task.Delay(100, CancellationToken);
            page = await client.GetPageAsync(location);
        }
        while (page.Contains(">pending<", StringComparison.Ordinal) && DateTime.UtcNow < deadline);

        Assert.Contains("<strong id=\"order-confirmed\">done</strong>", page, StringComparison.Ordinal);
        Assert.Contains("<strong id=\"order-invoiced\">done</strong>", page, StringComparison.Ordinal);
        Assert.Contains("€49.80", page, StringComparison.Ordinal);
        Assert.Equal(4980, await ScalarAsync<long>($"SELECT total_cents FROM \"{Schema}\".shop_order WHERE id = {orderId}"));
        var order = await client.GetJsonAsync($"/api/orders/{orderId}");
        Assert.True(order.GetProperty("confirmed").GetBoolean());

        using var other = app.Client();
        await other.SignInAsync("alice");
        Assert.Equal(HttpStatusCode.NotFound, (await other.GetAsync(location)).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await other.GetAsync($"/api/orders/{orderId}")).Status);

        using var empty = await client.PostFormAsync("/cart", "/cart/checkout");
        Assert.Equal(HttpStatusCode.BadRequest, empty.StatusCode);
    }

    [Fact]
    public async Task Checkout_OnPostgreSql_TheOrderAndItsJobsCommitTogether_OrNotAtAll()
    {
        await using var app = DemoApp.Create(Server, redis, Schema, settings: new Dictionary<string, string?> { ["PgQueue:RunWorkers"] = "false" });
        using var client = app.Client();
        await client.SignInAsync("alice");

        using var placed = await client.PostJsonAsync("/api/orders", """{"items":[{"productId":2,"quantity":1}]}""");
        Assert.Equal(HttpStatusCode.Created, placed.StatusCode);
        var body = JsonDocument.Parse(await DemoClient.BodyAsync(placed)).RootElement;
        Assert.True(body.GetProperty("transactional").GetBoolean());
        var orderId = body.GetProperty("orderId").GetInt64();
        Assert.Equal(2, await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".job WHERE payload->>'orderId' = '{orderId}'"));

        // When enqueueing a job fails inside the transaction (here a trigger refuses it), the order is rolled back too.
        await ExecuteAsync($"""
            CREATE FUNCTION "{Schema}".refuse_job() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'queue refused the job'; END $$;
            CREATE TRIGGER refuse_job BEFORE INSERT ON "{Schema}".job FOR EACH ROW EXECUTE FUNCTION "{Schema}".refuse_job();
            """);
        var ordersBefore = await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".shop_order");
        var failed = await Record.ExceptionAsync(async () =>
        {
            using var response = await client.PostJsonAsync("/api/orders", """{"items":[{"productId":2,"quantity":1}]}""");
            Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        });
        Assert.True(failed is null || failed.ToString().Contains("queue refused the job", StringComparison.Ordinal), failed?.ToString());
        Assert.Equal(ordersBefore, await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".shop_order"));
        await ExecuteAsync($"DROP TRIGGER refuse_job ON \"{Schema}\".job");

        // A line that fails validation (a product that does not exist) stops the order before anything is written.
        var jobsBefore = await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".job");
        using var bad = await client.PostJsonAsync("/api/orders", """{"items":[{"productId":2,"quantity":1},{"productId":404,"quantity":1}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal(ordersBefore, await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".shop_order"));
        Assert.Equal(jobsBefore, await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".job"));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Redis")]
    public async Task OrdersApi_RefusesAnonymousUsersBadLinesAndBrokenJson(string? backend)
    {
        await using var app = DemoApp.Create(Server, redis, Schema, backend);
        using var client = app.Client();

        using var anonymous = await client.PostJsonAsync("/api/orders", """{"items":[{"productId":1,"quantity":1}]}""");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        await client.SignInAsync("bob");
        using var noItems = await client.PostJsonAsync("/api/orders", """{"items":[]}""");
        using var zero = await client.PostJsonAsync("/api/orders", """{"items":[{"productId":1,"quantity":0}]}""");
        using var broken = await client.PostJsonAsync("/api/orders", """{"items":[{"productId":1,""");
        using var form = await client.Http.PostAsync("/api/orders", new FormUrlEncodedContent([new("items", "1")]), CancellationToken);
        var tooMany = string.Join(',', Enumerable.Range(0, 21).Select(_ => """{"productId":1,"quantity":1}"""));
        using var tooManyLines = await client.PostJsonAsync("/api/orders", $$"""{"items":[{{tooMany}}]}""");

        Assert.Equal(HttpStatusCode.BadRequest, noItems.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, zero.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, broken.StatusCode);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, form.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, tooManyLines.StatusCode);
        Assert.Equal(0, await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".shop_order WHERE user_id = 'bob'"));
    }
}
