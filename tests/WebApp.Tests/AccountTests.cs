using System.Net;
using System.Text.RegularExpressions;
using PgFirst.Testing;

namespace WebApp.Tests;

/// <summary>Sign-in, the sessions page with revoke, and the rate limits, on both backends.</summary>
public partial class AccountTests(PostgresServer postgres, RedisServer redis) : PostgresTest(postgres)
{
    [GeneratedRegex("<tr class=\"session-row( current)?\" data-session-id=\"([0-9a-f-]+)\"><td>([^<]*)</td><td>([^<]*)</td>")]
    private static partial Regex SessionRow();

    private static string? SessionCookie(HttpResponseMessage response) =>
        response.Headers.TryGetValues("Set-Cookie", out var cookies)
            ? cookies.Select(c => c.Split(';')[0]).FirstOrDefault(c => c.StartsWith(".AspNetCore.Session=", StringComparison.Ordinal))
            : null;

    [Theory]
    [InlineData(null)]
    [InlineData("Redis")]
    public async Task SignIn_GivesTheSessionANewKey_KeepsTheCart_AndTheOldCookieIsSignedOut(string? backend)
    {
        await using var app = DemoApp.Create(Server, redis, Schema, backend);
        using var client = app.Client();
        using var added = await client.PostFormAsync("/products/1", "/cart/items", ("productId", "1"), ("quantity", "1"));
        var anonymousCookie = SessionCookie(added);
        Assert.NotNull(anonymousCookie);

        using var signedIn = await client.PostFormAsync("/signin", "/signin", ("user", "alice"), ("password", "demo"), ("returnUrl", "/cart"));

        Assert.Equal(HttpStatusCode.Redirect, signedIn.StatusCode);
        Assert.Equal("/cart", signedIn.Headers.Location!.OriginalString);
        var newCookie = SessionCookie(signedIn);
        Assert.NotNull(newCookie);
        Assert.NotEqual(anonymousCookie, newCookie);
        Assert.Equal("alice", await client.SignedInUserAsync());
        Assert.Contains("<span id=\"cart-count\">1</span>", await client.GetPageAsync("/cart"), StringComparison.Ordinal);

        // Whoever held the pre-sign-in cookie (a fixation attempt) holds nothing now.
        using var attacker = app.Client();
        attacker.Http.DefaultRequestHeaders.Add("Cookie", anonymousCookie);
        var page = await attacker.GetPageAsync("/cart");
        Assert.DoesNotContain("nav-user", page, StringComparison.Ordinal);
        Assert.Contains("<span id=\"cart-count\">0</span>", page, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Redis")]
    public async Task SignIn_WrongPasswordOrUnknownUser_IsRefusedWithTheFormAgain_AndOpenRedirectsAreIgnored(string? backend)
    {
        await using var app = DemoApp.Create(Server, redis, Schema, backend);
        using var client = app.Client();

        using var wrong = await client.PostFormAsync("/signin", "/signin", ("user", "alice"), ("password", "nope"));
        using var unknown = await client.PostFormAsync("/signin", "/signin", ("user", "mallory"), ("password", "demo"));
        using var empty = await client.PostFormAsync("/signin", "/signin");
        foreach (var returnUrl in new[] { "//evil.example/", "/\\evil.example/", "/\t/evil.example/", "/\r\n/evil.example/", "https://evil.example/" })
        {
            var (_, form) = await client.GetAsync("/signin?returnUrl=" + Uri.EscapeDataString(returnUrl));
            Assert.Contains("name=\"returnUrl\" value=\"/\"", form, StringComparison.Ordinal);
            using var redirected = await client.PostFormAsync("/signin", "/signin", ("user", "carol"), ("password", "demo"), ("returnUrl", returnUrl));
            Assert.Equal(HttpStatusCode.Redirect, redirected.StatusCode);
            Assert.Equal("/", redirected.Headers.Location!.OriginalString);
        }

        using var local = await client.PostFormAsync("/signin", "/signin", ("user", "carol"), ("password", "demo"), ("returnUrl", "/cart?x=1"));
        Assert.Equal("/cart?x=1", local.Headers.Location!.OriginalString);
        using var external = await client.PostFormAsync("/signin", "/signin", ("user", "bob"), ("password", "demo"), ("returnUrl", "//evil.example/"));

        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.Contains("Unknown user or wrong password.", await DemoClient.BodyAsync(wrong), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Unauthorized, unknown.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, empty.StatusCode);
        Assert.Equal(HttpStatusCode.Redirect, external.StatusCode);
        Assert.Equal("/", external.Headers.Location!.OriginalString);
        Assert.Equal("bob", await client.SignedInUserAsync());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Redis")]
    public async Task SessionsPage_ListsDevices_RevokesOne_AndSignsOutEverywhereElse(string? backend)
    {
        await using var app = DemoApp.Create(Server, redis, Schema, backend);
        using var laptop = app.Client("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36");
        using var phone = app.Client("Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Version/18.0 Mobile/15E148 Safari/604.1");
        using var tablet = app.Client("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0");
        using var someoneElse = app.Client();
        await laptop.SignInAsync("alice");
        await phone.SignInAsync("alice");
        await tablet.SignInAsync("alice");
        await someoneElse.SignInAsync("bob");

        var rows = SessionRow().Matches(await laptop.GetPageAsync("/account/sessions")).ToList();

        Assert.Equal(3, rows.Count);
        Assert.Single(rows, r => r.Groups[1].Success);
        Assert.Equal(["Chrome on Linux", "Firefox on Windows", "Safari on iOS"], rows.Select(r => r.Groups[3].Value).Order(StringComparer.Ordinal));
        var phoneSession = rows.Single(r => r.Groups[3].Value == "Safari on iOS").Groups[2].Value;

        using var revoked = await laptop.PostFormAsync("/account/sessions", $"/account/sessions/{phoneSession}/revoke");
        Assert.Equal(HttpStatusCode.Redirect, revoked.StatusCode);
        Assert.Null(await phone.SignedInUserAsync());            // refused on its very next request
        Assert.Equal("alice", await tablet.SignedInUserAsync());
        Assert.Equal(2, SessionRow().Count(await laptop.GetPageAsync("/account/sessions")));

        // Bob cannot revoke Alice's sessions by id.
        var bobRows = SessionRow().Matches(await someoneElse.GetPageAsync("/account/sessions"));
        Assert.Single(bobRows);
        var laptopSession = SessionRow().Matches(await laptop.GetPageAsync("/account/sessions")).Single(r => r.Groups[1].Success).Groups[2].Value;
        using var foreign = await someoneElse.PostFormAsync("/account/sessions", $"/account/sessions/{laptopSession}/revoke");
        Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
        Assert.Equal("alice", await laptop.SignedInUserAsync());

        using var others = await laptop.PostFormAsync("/account/sessions", "/account/sessions/revoke-others");
        Assert.Equal(HttpStatusCode.Redirect, others.StatusCode);
        Assert.Null(await tablet.SignedInUserAsync());
        Assert.Equal("alice", await laptop.SignedInUserAsync());
        Assert.Equal("bob", await someoneElse.SignedInUserAsync());
        Assert.Single(SessionRow().Matches(await laptop.GetPageAsync("/account/sessions")));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Redis")]
    public async Task SessionsPage_And_SignOut_NeedASignedInUser(string? backend)
    {
        await using var app = DemoApp.Create(Server, redis, Schema, backend);
        using var client = app.Client();

        var (status, _) = await client.GetAsync("/account/sessions");
        Assert.Equal(HttpStatusCode.Redirect, status);
        await client.SignInAsync("carol");
        Assert.Equal("carol", await client.SignedInUserAsync());

        // Form posts without the antiforgery token change nothing (a cross-site form cannot sign anyone out).
        foreach (var action in new[] { "/signout", "/account/sessions/revoke-others", "/cart/clear", "/cart/checkout" })
        {
            using var forged = await client.Http.PostAsync(action, new FormUrlEncodedContent([]), CancellationToken);
            Assert.Equal(HttpStatusCode.BadRequest, forged.StatusCode);
        }

        Assert.Equal("carol", await client.SignedInUserAsync());
        using var signedOut = await client.PostFormAsync("/cart", "/signout");

        Assert.Equal(HttpStatusCode.Redirect, signedOut.StatusCode);
        Assert.Null(await client.SignedInUserAsync());
        Assert.Equal(HttpStatusCode.Redirect, (await client.GetAsync("/account/sessions")).Status);
        // Signing out removed the session from the store at once; the pages since wrote nothing, so none was stored.
        Assert.Equal(0, await StoredSessionCountAsync(backend));
    }

    private async Task<long> StoredSessionCountAsync(string? backend)
    {
        if (backend == "Redis")
        {
            var count = 0;
            foreach (var endpoint in redis.Connection.GetEndPoints())
            {
                await foreach (var _ in redis.Connection.GetServer(endpoint).KeysAsync(pattern: Schema + ":s:*"))
                {
                    count++;
                }
            }

            return count;
        }

        return await ScalarAsync<long>($"SELECT count(*) FROM \"{Schema}\".session");
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Redis")]
    public async Task Api_IsLimitedPerUser_WithRetryAfterAndRateLimitHeaders(string? backend)
    {
        await using var app = DemoApp.Create(Server, redis, Schema, backend, new Dictionary<string, string?> { ["Demo:ApiPermitLimit"] = "5", ["Demo:ApiWindow"] = "01:00:00" });
        using var alice = app.Client();
        using var bob = app.Client();
        await alice.SignInAsync("alice");
        await bob.SignInAsync("bob");

        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await alice.GetAsync("/api/products")).Status);
        }

        using var rejected = await alice.Http.GetAsync("/api/products", CancellationToken);

        Assert.Equal(HttpStatusCode.TooManyRequests, rejected.StatusCode);
        var retryAfter = int.Parse(rejected.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(retryAfter, 1, 3600);
        Assert.Equal("\"api\";q=5;w=3600", rejected.Headers.GetValues("RateLimit-Policy").Single());
        Assert.Equal($"\"api\";r=0;t={retryAfter}", rejected.Headers.GetValues("RateLimit").Single());
        Assert.Equal(HttpStatusCode.OK, (await bob.GetAsync("/api/products")).Status); // Bob has his own window
        Assert.Equal(HttpStatusCode.OK, (await alice.GetAsync("/")).Status);           // pages are not limited
        var totals = (await alice.GetJsonAsync("/dashboard/data")).GetProperty("totals");
        Assert.Equal(1, totals.GetProperty("rejected").GetInt64());
        Assert.True(totals.GetProperty("accepted").GetInt64() >= 6);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Redis")]
    public async Task SignIn_IsLimitedPerIpAddress(string? backend)
    {
        // An hour-long window: fixed windows are aligned to the clock, and a boundary inside the test would reset it.
        await using var app = DemoApp.Create(Server, redis, Schema, backend, new Dictionary<string, string?> { ["Demo:SignInPermitLimit"] = "3", ["Demo:SignInWindow"] = "01:00:00" });
        using var client = app.Client();

        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 4; i++)
        {
            using var response = await client.PostFormAsync("/signin", "/signin", ("user", "alice"), ("password", "wrong"));
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                Assert.True(response.Headers.RetryAfter is not null || response.Headers.Contains("Retry-After"));
            }
        }

        Assert.Equal([HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized, HttpStatusCode.TooManyRequests], statuses);
        using var rightPassword = await client.PostFormAsync("/signin", "/signin", ("user", "alice"), ("password", "demo"));
        Assert.Equal(HttpStatusCode.TooManyRequests, rightPassword.StatusCode);
        Assert.Null(await client.SignedInUserAsync());
    }
}
