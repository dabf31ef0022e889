using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using PgSessions;
using Xunit;

namespace PgFirst.Testing;

/// <summary>
/// The behaviour of PgSessions through a real ASP.NET Core pipeline (<c>app.UseSession()</c>, cookies, test server),
/// run against PostgreSQL and Redis alike. Time is a <see cref="FakeTimeProvider"/>: the store runs on the app clock.
/// </summary>
public abstract class SessionConformanceTests : IAsyncLifetime
{
    private const string CookieName = ".AspNetCore.Session";

    private readonly List<WebApplication> _apps = [];
    private readonly Dictionary<HttpClient, WebApplication> _appsByClient = [];

    // Every "instance" of the app shares one key ring, as production instances do (PersistKeysToPgFirst).
    private readonly EphemeralDataProtectionProvider _dataProtection = new();

    protected static CancellationToken CancellationToken => TestContext.Current.CancellationToken;

    protected FakeTimeProvider Time { get; } = new(new DateTimeOffset(2026, 11, 23, 12, 0, 0, TimeSpan.Zero));

    /// <summary>Gets the logs of every app instance of the test.</summary>
    protected CapturingLoggerProvider Logs { get; } = new();

    /// <summary>Registers the backend on this test's isolated place (schema, key prefix), through <paramref name="proxy"/> when given.</summary>
    protected abstract void ConfigureBackend(IServiceCollection services, TcpProxy? proxy);

    /// <summary>Returns how many commands the store's server received since the last call.</summary>
    protected abstract int TakeCommandCount();

    /// <summary>
    /// Like <see cref="TakeCommandCount"/>, but returns the commands the primary ran only (the others are taken and
    /// dropped). A load a standby answers first and finds due for a touch is touched on the primary: two commands, one
    /// of them on the primary. Backends without standbys count all.
    /// </summary>
    protected virtual int TakePrimaryCommandCount() => TakeCommandCount();

    /// <summary>The real server, for <see cref="TcpProxy"/>.</summary>
    protected abstract (string Host, int Port) ServerEndpoint { get; }

    public virtual ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public virtual async ValueTask DisposeAsync()
    {
        foreach (var app in _apps)
        {
            await app.DisposeAsync();
        }

        GC.SuppressFinalize(this);
    }

    /// <summary>Starts one app instance on the test's store.</summary>
    protected async Task<HttpClient> StartAppAsync(Action<PgSessionOptions>? configure = null, TcpProxy? proxy = null, bool kestrel = false)
    {
        var builder = WebApplication.CreateBuilder();
        if (kestrel)
        {
            builder.WebHost.UseKestrel().UseUrls("http://127.0.0.1:0");
        }
        else
        {
            builder.WebHost.UseTestServer();
        }

        builder.Logging.ClearProviders().AddProvider(Logs).SetMinimumLevel(LogLevel.Trace);
        builder.Services.AddSingleton<TimeProvider>(Time);
        builder.Services.AddSingleton<IDataProtectionProvider>(_dataProtection);
        builder.Services.AddSingleton<Gate>();
        ConfigureBackend(builder.Services, proxy);
        builder.Services.AddPgSessions(o =>
        {
            o.IdleTimeout = TimeSpan.FromMinutes(20);
            o.AbsoluteLifetime = TimeSpan.FromHours(2);
            o.TouchInterval = TimeSpan.FromMinutes(1);
            configure?.Invoke(o);
        });
        var app = builder.Build();
        app.Use(async (context, next) =>
        {
            try
            {
                await next(context);
            }
            catch (Exception ex) when (!context.Response.HasStarted)
            {
                context.Response.StatusCode = ex is ArgumentException ? 400 : 500;
                await context.Response.WriteAsync(ex.GetType().Name + ": " + ex.Message);
            }
        });
        app.UseSession();
        MapEndpoints(app);
        await app.StartAsync(CancellationToken);
        _apps.Add(app);
        var client = kestrel ? new HttpClient { BaseAddress = new Uri(app.Urls.First()) } : app.GetTestClient();
        _appsByClient[client] = app;
        return client;
    }

    private static void MapEndpoints(WebApplication app)
    {
        app.MapGet("/get/{key}", async (HttpContext c, string key) =>
        {
            await c.Session.LoadAsync();
            return c.Session.GetString(key) ?? "<none>";
        });
        app.MapGet("/sync-get/{key}", (HttpContext c, string key) => c.Session.GetString(key) ?? "<none>");
        app.MapGet("/noop", () => "noop");
        app.MapGet("/id", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            return c.Session.Id;
        });
        app.MapGet("/keys", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            return string.Join(",", c.Session.Keys.Order(StringComparer.Ordinal));
        });
        app.MapPost("/set/{key}", async (HttpContext c, string key, string value) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString(key, value);
            return "ok";
        });
        app.MapPost("/set-bytes", async (HttpContext c, string key, int size) =>
        {
            await c.Session.LoadAsync();
            c.Session.Set(key, new byte[size]);
            return "ok";
        });
        app.MapPost("/set-long-key", async (HttpContext c, int length) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString(new string('k', length), "v");
            return "ok";
        });
        app.MapPost("/set-null", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            c.Session.Set("k", null!);
            return "ok";
        });
        app.MapPost("/remove/{key}", async (HttpContext c, string key) =>
        {
            await c.Session.LoadAsync();
            c.Session.Remove(key);
            return "ok";
        });
        app.MapPost("/clear", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            c.Session.Clear();
            return "ok";
        });
        app.MapPost("/gated-set/{key}", async (HttpContext c, Gate gate, string key, string value, string name) =>
        {
            await c.Session.LoadAsync();
            await gate.ArriveAndWaitAsync(name);
            c.Session.SetString(key, value);
            return "ok";
        });
        app.MapPost("/gated-set-bytes", async (HttpContext c, Gate gate, string key, int size, string name) =>
        {
            await c.Session.LoadAsync();
            await gate.ArriveAndWaitAsync(name);
            c.Session.Set(key, new byte[size]);
            return "ok";
        });
        app.MapPost("/slow-set/{key}", async (HttpContext c, string key, string value) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString(key, value);
            await Task.Delay(20);
            return "ok";
        });
        app.MapPost("/slow-set-two/{key}", async (HttpContext c, string key, string value) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString(key, value);
            c.Session.SetString("shared", value);
            await Task.Delay(20);
            return "ok";
        });
        app.MapPost("/signin/{user}", async (HttpContext c, string user) =>
        {
            await c.Session.LoadAsync();
            await c.Session.RegenerateIdAsync();
            await c.Session.BindUserAsync(user);
            return c.Session.Id;
        });
        app.MapGet("/whoami", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            return c.Session.GetUserId() ?? "<anonymous>";
        });
        app.MapPost("/lifetime", async (HttpContext c, int idleMinutes) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetLifetime(TimeSpan.FromMinutes(idleMinutes), null);
            return "ok";
        });
        app.MapGet("/sessions/{user}", async (PgSessionManager manager, string user) =>
            string.Join("\n", (await manager.ListSessionsAsync(user)).Select(s => $"{s.SessionId}|{s.ClientIp}|{s.UserAgent}|{s.CreatedAt:O}|{s.LastSeenAt:O}")));
        app.MapPost("/revoke/{id}", async (PgSessionManager manager, string id) => (await manager.RevokeAsync(id)).ToString());
        app.MapPost("/revoke-others", async (HttpContext c, PgSessionManager manager) =>
        {
            await c.Session.LoadAsync();
            return (await manager.RevokeAllAsync(c.Session.GetUserId()!, c.Session.Id)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        });
    }

    // ---- basics ----

    [Fact]
    public async Task SetGetRemoveClear_AcrossRequests_BehaveAsTheStockSession()
    {
        var client = await StartAppAsync();
        var browser = new Browser(client);

        await browser.PostAsync("/set/a?value=1");
        await browser.PostAsync("/set/b?value=2");
        await browser.PostAsync("/set/c?value=3");
        Assert.Equal("1", await browser.GetAsync("/get/a"));
        Assert.Equal("a,b,c", await browser.GetAsync("/keys"));

        await browser.PostAsync("/remove/b");
        Assert.Equal("<none>", await browser.GetAsync("/get/b"));
        Assert.Equal("a,c", await browser.GetAsync("/keys"));

        await browser.PostAsync("/set/a?value=one");
        Assert.Equal("one", await browser.GetAsync("/get/a"));

        await browser.PostAsync("/clear");
        Assert.Equal("", await browser.GetAsync("/keys"));
    }

    [Fact]
    public async Task SessionId_IsStableOnceStored_AndSessionsAreIsolated()
    {
        var client = await StartAppAsync();
        var alice = new Browser(client);
        var bob = new Browser(client);

        await alice.PostAsync("/set/who?value=alice");
        await bob.PostAsync("/set/who?value=bob");

        var id = await alice.GetAsync("/id");
        Assert.Equal(id, await alice.GetAsync("/id"));
        Assert.NotEqual(id, await bob.GetAsync("/id"));
        Assert.Equal("alice", await alice.GetAsync("/get/who"));
        Assert.Equal("bob", await bob.GetAsync("/get/who"));
    }

    [Fact]
    public async Task NewSession_ThatStoresNothing_CostsNothingAndSetsNoCookie()
    {
        var client = await StartAppAsync();
        var browser = new Browser(client);
        TakeCommandCount();

        Assert.Equal("<none>", await browser.GetAsync("/get/a"));
        await browser.PostAsync("/remove/a");
        await browser.PostAsync("/clear");

        Assert.Equal(0, TakeCommandCount());
        Assert.Null(browser.Cookie);
    }

    [Fact]
    public async Task ReadOnlyRequest_IssuesExactlyOneCommand_AndARequestThatNeverTouchesTheSessionNone()
    {
        var client = await StartAppAsync();
        var browser = new Browser(client);
        await browser.PostAsync("/set/a?value=1");
        await browser.GetAsync("/get/a"); // warms the connection's prepared statement
        TakeCommandCount();

        Assert.Equal("1", await browser.GetAsync("/get/a"));
        Assert.Equal(1, TakeCommandCount());

        Assert.Equal("noop", await browser.GetAsync("/noop"));
        Assert.Equal(0, TakeCommandCount());

        // Past the touch interval the load also slides the expiry: still one command on the primary (a standby that
        // read the session first saw the touch due and passed the load on).
        Time.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal("1", await browser.GetAsync("/get/a"));
        Assert.Equal(1, TakePrimaryCommandCount());
    }

    [Fact]
    public async Task ModifyingRequest_IssuesOneLoadAndOneWrite()
    {
        var client = await StartAppAsync();
        var browser = new Browser(client);
        await browser.PostAsync("/set/a?value=1");
        await browser.PostAsync("/set/a?value=1"); // warms the prepared statements (PostgreSQL) or the script cache (Redis)
        TakeCommandCount();

        await browser.PostAsync("/set/a?value=2");

        Assert.Equal(2, TakeCommandCount());
    }

    // ---- lifetimes ----

    [Fact]
    public async Task IdleTimeout_ExpiresAnUnusedSession_AndUseSlidesIt()
    {
        var client = await StartAppAsync(o => o.IdleTimeout = TimeSpan.FromMinutes(10));
        var browser = new Browser(client);
        await browser.PostAsync("/set/a?value=1");

        Time.Advance(TimeSpan.FromMinutes(8));
        Assert.Equal("1", await browser.GetAsync("/get/a"));
        Time.Advance(TimeSpan.FromMinutes(8)); // 16 min after creation, 8 after last use
        Assert.Equal("1", await browser.GetAsync("/get/a"));

        Time.Advance(TimeSpan.FromMinutes(10) + TimeSpan.FromSeconds(1));
        Assert.Equal("<none>", await browser.GetAsync("/get/a"));
    }

    [Fact]
    public async Task AbsoluteLifetime_EndsAnActiveSession()
    {
        var client = await StartAppAsync(o =>
        {
            o.IdleTimeout = TimeSpan.FromMinutes(20);
            o.AbsoluteLifetime = TimeSpan.FromMinutes(30);
        });
        var browser = new Browser(client);
        await browser.PostAsync("/set/a?value=1");

        for (var minute = 10; minute < 30; minute += 10)
        {
            Time.Advance(TimeSpan.FromMinutes(10));
            Assert.Equal("1", await browser.GetAsync("/get/a"));
        }

        Time.Advance(TimeSpan.FromMinutes(10)); // 30 min: absolute expiry, though used 10 min ago
        Assert.Equal("<none>", await browser.GetAsync("/get/a"));
    }

    [Fact]
    public async Task SetLifetime_OverridesTheIdleTimeoutOfOneSession()
    {
        var client = await StartAppAsync(o => o.IdleTimeout = TimeSpan.FromMinutes(20));
        var shortLived = new Browser(client);
        var ordinary = new Browser(client);
        await shortLived.PostAsync("/set/a?value=1");
        await shortLived.PostAsync("/lifetime?idleMinutes=2");
        await ordinary.PostAsync("/set/a?value=1");

        Time.Advance(TimeSpan.FromMinutes(3));

        Assert.Equal("<none>", await shortLived.GetAsync("/get/a"));
        Assert.Equal("1", await ordinary.GetAsync("/get/a"));
    }

    // ---- concurrency ----

    [Fact]
    public async Task ConcurrentRequests_WritingDifferentKeys_BothPersist()
    {
        var client = await StartAppAsync();
        var browser = new Browser(client);
        await browser.PostAsync("/set/base?value=0");
        var gate = GateOf(client);

        var first = browser.PostAsync("/gated-set/x?value=1&name=first");
        var second = browser.PostAsync("/gated-set/y?value=2&name=second");
        await gate.WaitForAsync("first", "second"); // both loaded the same version
        gate.Release("first");
        await first;
        gate.Release("second");
        await second;

        Assert.Equal("base,x,y", await browser.GetAsync("/keys"));
        Assert.Equal(1, Logs.Entries.Count(e => e.EventId.Id == PgSessionsEventIds.ConflictMerged));
    }

    [Fact]
    public async Task ConcurrentRequests_WritingTheSameKey_LastCommitWins()
    {
        var client = await StartAppAsync();
        var browser = new Browser(client);
        await browser.PostAsync("/set/k?value=0");
        var gate = GateOf(client);

        var first = browser.PostAsync("/gated-set/k?value=first&name=first");
        var second = browser.PostAsync("/gated-set/k?value=second&name=second");
        await gate.WaitForAsync("first", "second");
        gate.Release("first");
        await first;
        gate.Release("second");
        await second;

        Assert.Equal("second", await browser.GetAsync("/get/k"));
    }

    // The single-page-app pattern: one request creates the session, then N requests of that cookie run at once, each
    // loading, setting its own key and taking 20 ms more; every one answers 200 and every key must be kept.
    [Theory]
    [InlineData(8)]
    [InlineData(32)]
    [InlineData(64)]
    public async Task ManyConcurrentRequests_OnTwoInstances_EachWritingItsOwnKey_LoseNoWrite(int requests) =>
        await ConcurrentOwnKeysAsync(requests, kestrel: false);

    [Theory]
    [InlineData(32)]
    public async Task ManyConcurrentRequests_ThroughKestrelAndHttpClient_LoseNoWrite(int requests) =>
        await ConcurrentOwnKeysAsync(requests, kestrel: true);

    private async Task ConcurrentOwnKeysAsync(int requests, bool kestrel)
    {
        var one = await StartAppAsync(kestrel: kestrel);
        var two = await StartAppAsync(kestrel: kestrel);
        var browser = new Browser(one);
        await browser.PostAsync("/set/base?value=0");

        await Task.WhenAll(Enumerable.Range(0, requests).Select(i => Task.Run(
            () => new Browser(i % 2 == 0 ? one : two) { Cookie = browser.Cookie }.PostAsync($"/slow-set/k{i:D2}?value={i}"),
            CancellationToken)));

        var expected = "base," + string.Join(",", Enumerable.Range(0, requests).Select(i => $"k{i:D2}"));
        Assert.Equal(expected, await browser.GetAsync("/keys"));
    }

    [Fact]
    public async Task ManyConcurrentRequests_WritingTheSameKey_OneWholeValueWins_AndNoOtherKeyIsLost()
    {
        var one = await StartAppAsync();
        var two = await StartAppAsync();
        var browser = new Browser(one);
        await browser.PostAsync("/set/base?value=0");

        await Task.WhenAll(Enumerable.Range(0, 16).Select(i => Task.Run(
            () => new Browser(i % 2 == 0 ? one : two) { Cookie = browser.Cookie }.PostAsync($"/slow-set-two/k{i:D2}?value=value-{i}"),
            CancellationToken)));

        Assert.Equal("base," + string.Join(",", Enumerable.Range(0, 16).Select(i => $"k{i:D2}")) + ",shared", await browser.GetAsync("/keys"));
        var shared = await browser.GetAsync("/get/shared");
        Assert.Contains(shared, Enumerable.Range(0, 16).Select(i => $"value-{i}"));
    }

    [Fact]
    public async Task MergedSessionOverTheLimit_FailsTheRequest_AndStoresNoneOfItsChanges()
    {
        // Through Kestrel: a commit that fails just before the response starts makes the server answer 500.
        var (browser, refused) = await TwoRequestsMergedOverTheLimitAsync(await StartAppAsync(o => o.MaxSessionBytes = 4096, kestrel: true));

        Assert.Equal(HttpStatusCode.InternalServerError, refused);
        Assert.Equal("a,base", await browser.GetAsync("/keys"));
        var failure = Assert.Single(Logs.Entries, e => e.EventId.Id == PgSessionsEventIds.CommitFailed);
        Assert.Equal(LogLevel.Error, failure.Level);
        Assert.Contains("MaxSessionBytes", failure.Exception!.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CommitBeforeResponseOff_MergedSessionOverTheLimit_AnswersButIsLoggedAndStoresNothing()
    {
        var (browser, answered) = await TwoRequestsMergedOverTheLimitAsync(await StartAppAsync(o =>
        {
            o.MaxSessionBytes = 4096;
            o.CommitBeforeResponse = false;
        }));

        Assert.Equal(HttpStatusCode.OK, answered);
        Assert.Equal("a,base", await browser.GetAsync("/keys"));
        Assert.Contains(Logs.Entries, e => e.EventId.Id == PgSessionsEventIds.CommitFailed && e.Level == LogLevel.Error);
    }

    // Two requests of one session (limit 4096 bytes) load the same version; each sets 2,500 bytes under its own key,
    // which fits alone. The first commits; the second's merge would exceed the limit. Returns the second's status.
    private async Task<(Browser Browser, HttpStatusCode Second)> TwoRequestsMergedOverTheLimitAsync(HttpClient client)
    {
        var browser = new Browser(client);
        await browser.PostAsync("/set/base?value=0");
        var gate = GateOf(client);
        var first = browser.SendAsync(HttpMethod.Post, "/gated-set-bytes?key=a&size=2500&name=first");
        var second = browser.SendAsync(HttpMethod.Post, "/gated-set-bytes?key=b&size=2500&name=second");
        await gate.WaitForAsync("first", "second");
        gate.Release("first");
        Assert.Equal(HttpStatusCode.OK, (await first).Status);
        gate.Release("second");
        return (browser, (await second).Status);
    }

    // ---- security and lifecycle ----

    [Fact]
    public async Task RegenerateId_KeepsTheData_AndTheOldCookieStopsWorking()
    {
        var client = await StartAppAsync();
        var browser = new Browser(client);
        await browser.PostAsync("/set/cart?value=3-items");
        var oldCookie = browser.Cookie!;
        var sessionId = await browser.GetAsync("/id");

        await browser.PostAsync("/signin/alice");

        Assert.Single(browser.LastSetCookies, c => c.StartsWith(CookieName + "=", StringComparison.Ordinal));
        Assert.NotEqual(oldCookie, browser.Cookie);
        Assert.Equal("3-items", await browser.GetAsync("/get/cart"));
        Assert.Equal("alice", await browser.GetAsync("/whoami"));
        Assert.Equal(sessionId, await browser.GetAsync("/id"));

        var attacker = new Browser(client) { Cookie = oldCookie };
        Assert.Equal("<none>", await attacker.GetAsync("/get/cart"));
        Assert.Equal("<anonymous>", await attacker.GetAsync("/whoami"));
    }

    [Fact]
    public async Task RegenerateId_OnANewSession_WritesOneCookieWithTheNewKey()
    {
        var client = await StartAppAsync();
        var browser = new Browser(client);

        var id = await browser.PostAsync("/signin/alice");

        Assert.Single(browser.LastSetCookies, c => c.StartsWith(CookieName + "=", StringComparison.Ordinal));
        Assert.Equal("alice", await browser.GetAsync("/whoami"));
        Assert.Equal(id, await browser.GetAsync("/id"));
    }

    [Fact]
    public async Task ListSessions_ShowsAUsersLiveSessionsWithDeviceMetadata()
    {
        var client = await StartAppAsync();
        var laptop = new Browser(client, "Laptop/1.0");
        var phone = new Browser(client, "Phone/2.0");
        var other = new Browser(client, "Other/3.0");
        var laptopId = await laptop.PostAsync("/signin/alice");
        Time.Advance(TimeSpan.FromSeconds(5));
        var phoneId = await phone.PostAsync("/signin/alice");
        await other.PostAsync("/signin/bob");

        var rows = (await laptop.GetAsync("/sessions/alice")).Split('\n').Select(r => r.Split('|')).ToList();

        Assert.Equal([phoneId, laptopId], rows.Select(r => r[0]));
        Assert.Equal(["Phone/2.0", "Laptop/1.0"], rows.Select(r => r[2]));
        Assert.Equal(Time.GetUtcNow(), DateTimeOffset.Parse(rows[0][3], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(Time.GetUtcNow() - TimeSpan.FromSeconds(5), DateTimeOffset.Parse(rows[1][3], System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task Revoke_RefusesTheSessionOnItsNextRequest_OnEveryInstance()
    {
        var one = await StartAppAsync();
        var two = await StartAppAsync();
        var victim = new Browser(one);
        var id = await victim.PostAsync("/signin/alice");
        await victim.PostAsync("/set/cart?value=full");

        Assert.Equal("True", await new Browser(two).PostAsync($"/revoke/{id}"));

        Assert.Equal("<none>", await victim.With(one).GetAsync("/get/cart"));
        Assert.Equal("<anonymous>", await victim.With(two).GetAsync("/whoami"));
        Assert.Equal("False", await new Browser(two).PostAsync($"/revoke/{id}"));
        Assert.Equal("", await new Browser(two).GetAsync("/sessions/alice"));
    }

    [Fact]
    public async Task RevokedSession_WritingAgain_StartsAFreshSessionUnderANewKey()
    {
        var client = await StartAppAsync();
        var browser = new Browser(client);
        var id = await browser.PostAsync("/signin/alice");
        var revokedCookie = browser.Cookie;
        await new Browser(client).PostAsync($"/revoke/{id}");

        await browser.PostAsync("/set/a?value=1");

        Assert.NotEqual(revokedCookie, browser.Cookie);
        Assert.Equal("1", await browser.GetAsync("/get/a"));
        Assert.NotEqual(id, await browser.GetAsync("/id"));
        Assert.Equal("<none>", await new Browser(client) { Cookie = revokedCookie }.GetAsync("/get/a"));
    }

    [Fact]
    public async Task RevokeAllButCurrent_SignsOutEveryOtherSessionOfTheUser()
    {
        var client = await StartAppAsync();
        var current = new Browser(client);
        var others = new[] { new Browser(client), new Browser(client) };
        var bob = new Browser(client);
        var currentId = await current.PostAsync("/signin/alice");
        foreach (var browser in others)
        {
            await browser.PostAsync("/signin/alice");
        }

        await bob.PostAsync("/signin/bob");

        Assert.Equal("2", await current.PostAsync("/revoke-others"));

        Assert.Equal("alice", await current.GetAsync("/whoami"));
        foreach (var browser in others)
        {
            Assert.Equal("<anonymous>", await browser.GetAsync("/whoami"));
        }

        Assert.Equal("bob", await bob.GetAsync("/whoami"));
        Assert.Equal(currentId, (await current.GetAsync("/sessions/alice")).Split('|')[0]);
    }

    [Theory]
    [InlineData("garbage")]
    [InlineData("")]
    [InlineData("%%%")]
    [InlineData("Q2ZESjhBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB")]
    public async Task MalformedCookie_GivesAFreshEmptySession_NotAnErrorPage(string cookie)
    {
        var client = await StartAppAsync();
        var browser = new Browser(client) { Cookie = cookie };

        Assert.Equal("<none>", await browser.GetAsync("/get/a"));
        await browser.PostAsync("/set/a?value=1");
        Assert.Equal("1", await browser.GetAsync("/get/a"));
    }

    [Fact]
    public async Task TamperedCookie_GivesAFreshEmptySession()
    {
        var client = await StartAppAsync();
        var browser = new Browser(client);
        await browser.PostAsync("/set/a?value=1");
        var cookie = browser.Cookie!;
        var tampered = cookie[..10] + (cookie[10] == 'A' ? 'B' : 'A') + cookie[11..];

        Assert.Equal("<none>", await new Browser(client) { Cookie = tampered }.GetAsync("/get/a"));
        Assert.Equal("1", await browser.GetAsync("/get/a"));
    }

    [Fact]
    public async Task ValidCookieOfAnUnknownSession_GivesAFreshSession_AndANewKeyOnWrite()
    {
        var client = await StartAppAsync();
        var protector = _dataProtection.CreateProtector("SessionMiddleware");
        var unknownKey = Guid.NewGuid().ToString();
        var cookie = Convert.ToBase64String(protector.Protect(Encoding.UTF8.GetBytes(unknownKey))).TrimEnd('=');
        var browser = new Browser(client) { Cookie = cookie };

        Assert.Equal("<none>", await browser.GetAsync("/get/a"));
        await browser.PostAsync("/set/a?value=1");

        Assert.NotEqual(cookie, browser.Cookie);
        var newKey = Encoding.UTF8.GetString(protector.Unprotect(Convert.FromBase64String(Pad(Uri.UnescapeDataString(browser.Cookie!)))));
        Assert.True(Guid.TryParse(newKey, out _), newKey);
        Assert.NotEqual(unknownKey, newKey);
        Assert.Equal("1", await browser.GetAsync("/get/a"));
    }

    [Fact]
    public async Task ExpiredSessionCookie_GivesAFreshEmptySession()
    {
        var client = await StartAppAsync(o => o.IdleTimeout = TimeSpan.FromMinutes(5));
        var browser = new Browser(client);
        await browser.PostAsync("/set/a?value=1");
        var oldId = await browser.GetAsync("/id");

        Time.Advance(TimeSpan.FromMinutes(6));

        Assert.Equal("<none>", await browser.GetAsync("/get/a"));
        Assert.NotEqual(oldId, await browser.GetAsync("/id"));
    }

    // ---- bad input ----

    [Fact]
    public async Task OversizedValue_IsRejectedClearly_AndChangesNothing()
    {
        var client = await StartAppAsync(o => o.MaxSessionBytes = 4096);
        var browser = new Browser(client);
        await browser.PostAsync("/set/a?value=1");

        var response = await browser.SendAsync(HttpMethod.Post, "/set-bytes?key=a&size=5000");

        Assert.Equal(HttpStatusCode.BadRequest, response.Status);
        Assert.Contains("MaxSessionBytes", response.Body, StringComparison.Ordinal);
        Assert.Equal("1", await browser.GetAsync("/get/a"));
        Assert.Equal("ok", await browser.PostAsync("/set-bytes?key=b&size=3000"));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(PgSessionOptions.MaxKeyLength + 1)]
    public async Task EmptyOrOversizedKey_IsRejectedClearly(int length)
    {
        var client = await StartAppAsync();
        var browser = new Browser(client);

        var response = await browser.SendAsync(HttpMethod.Post, $"/set-long-key?length={length}");

        Assert.Equal(HttpStatusCode.BadRequest, response.Status);
        Assert.Contains("session key", response.Body, StringComparison.Ordinal);
        Assert.Null(browser.Cookie);
    }

    [Fact]
    public async Task NullValue_IsRejected()
    {
        var client = await StartAppAsync();
        var response = await new Browser(client).SendAsync(HttpMethod.Post, "/set-null");

        Assert.Equal(HttpStatusCode.BadRequest, response.Status);
        Assert.Contains("ArgumentNullException", response.Body, StringComparison.Ordinal);
    }

    // ---- synchronous access ----

    [Fact]
    public async Task SynchronousAccess_LoadsWithBlockingIo_AndLogsIt()
    {
        var client = await StartAppAsync();
        var browser = new Browser(client);
        await browser.PostAsync("/set/a?value=1");

        Assert.Equal("1", await browser.GetAsync("/sync-get/a"));
        Assert.Contains(Logs.Entries, e => e.EventId.Id == PgSessionsEventIds.SynchronousLoad && e.Level == LogLevel.Warning);
    }

    [Fact]
    public async Task SynchronousAccess_InStrictMode_Throws()
    {
        var client = await StartAppAsync(o => o.RequireAsyncLoad = true);
        var browser = new Browser(client);
        await browser.PostAsync("/set/a?value=1");

        var response = await browser.SendAsync(HttpMethod.Get, "/sync-get/a");

        Assert.Equal(HttpStatusCode.InternalServerError, response.Status);
        Assert.Contains("LoadAsync", response.Body, StringComparison.Ordinal);
        Assert.Equal("1", await browser.GetAsync("/get/a"));
    }

    // ---- failures ----

    [Fact]
    public async Task StoreDown_LoadFailsWithAClearError_CommitFailureIsLogged_AndRecoveryNeedsNoRestart()
    {
        await using var proxy = new TcpProxy(ServerEndpoint.Host, ServerEndpoint.Port);
        var client = await StartAppAsync(proxy: proxy);
        var browser = new Browser(client);
        await browser.PostAsync("/set/a?value=1");

        proxy.GoDown();
        var down = await browser.SendAsync(HttpMethod.Get, "/get/a");
        Assert.Equal(HttpStatusCode.InternalServerError, down.Status);
        Assert.Contains(nameof(PgSessionException), down.Body, StringComparison.Ordinal);
        Assert.Contains(Logs.Entries, e => e.EventId.Id == PgSessionsEventIds.LoadFailed && e.Level == LogLevel.Error);

        proxy.ComeBack();
        await WaitUntilBackAsync(browser);
        Assert.Equal("1", await browser.GetAsync("/get/a"));
    }

    [Fact]
    public async Task StoreDownAtCommit_FailsTheRequest_AndIsLoggedAsAnError()
    {
        await using var proxy = new TcpProxy(ServerEndpoint.Host, ServerEndpoint.Port);
        var client = await StartAppAsync(proxy: proxy, kestrel: true);
        var browser = new Browser(client);
        await browser.PostAsync("/set/a?value=1");
        var gate = GateOf(client);

        var request = browser.SendAsync(HttpMethod.Post, "/gated-set/a?value=2&name=w");
        await gate.WaitForAsync("w");
        proxy.GoDown();
        gate.Release("w");

        Assert.Equal(HttpStatusCode.InternalServerError, (await request).Status);
        Assert.Contains(Logs.Entries, e => e.EventId.Id == PgSessionsEventIds.CommitFailed && e.Level == LogLevel.Error);
        proxy.ComeBack();
        await WaitUntilBackAsync(browser);
        Assert.Equal("1", await browser.GetAsync("/get/a"));
    }

    // A client may need a moment to notice its server is back (Redis reconnects on its heartbeat); no app restart.
    private static async Task WaitUntilBackAsync(Browser browser)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((await browser.SendAsync(HttpMethod.Get, "/get/a")).Status != HttpStatusCode.OK)
        {
            Assert.True(DateTime.UtcNow < deadline, "The store did not come back within 30 s.");
            await Task.Delay(200, CancellationToken);
        }
    }

    private static string Pad(string text) => (text.Length % 4) switch
    {
        2 => text + "==",
        3 => text + "=",
        _ => text,
    };

    private Gate GateOf(HttpClient client) => _appsByClient[client].Services.GetRequiredService<Gate>();

    /// <summary>Lets a test hold requests after they loaded their session, then release them one by one.</summary>
    protected sealed class Gate
    {
        private readonly Dictionary<string, (TaskCompletionSource Arrived, TaskCompletionSource Released)> _points = [];

        private (TaskCompletionSource Arrived, TaskCompletionSource Released) Point(string name)
        {
            lock (_points)
            {
                if (!_points.TryGetValue(name, out var point))
                {
                    point = (new(TaskCreationOptions.RunContinuationsAsynchronously), new(TaskCreationOptions.RunContinuationsAsynchronously));
                    _points[name] = point;
                }

                return point;
            }
        }

        public async Task ArriveAndWaitAsync(string name)
        {
            var point = Point(name);
            point.Arrived.TrySetResult();
            await point.Released.Task.WaitAsync(TimeSpan.FromSeconds(30));
        }

        public Task WaitForAsync(params string[] names) =>
            Task.WhenAll(names.Select(n => Point(n).Arrived.Task)).WaitAsync(TimeSpan.FromSeconds(30));

        public void Release(string name) => Point(name).Released.TrySetResult();
    }

    /// <summary>A client that keeps the session cookie, as a browser does.</summary>
    protected sealed class Browser(HttpClient client, string? userAgent = null)
    {
        private HttpClient _client = client;

        public string? Cookie { get; set; }

        public IReadOnlyList<string> LastSetCookies { get; private set; } = [];

        public Browser With(HttpClient other)
        {
            _client = other;
            return this;
        }

        public async Task<string> GetAsync(string path) => await OkAsync(HttpMethod.Get, path);

        public async Task<string> PostAsync(string path) => await OkAsync(HttpMethod.Post, path);

        public async Task<(HttpStatusCode Status, string Body)> SendAsync(HttpMethod method, string path)
        {
            using var request = new HttpRequestMessage(method, path);
            if (Cookie is not null)
            {
                request.Headers.Add("Cookie", $"{CookieName}={Cookie}");
            }

            if (userAgent is not null)
            {
                request.Headers.UserAgent.ParseAdd(userAgent);
            }

            using var response = await _client.SendAsync(request, CancellationToken);
            LastSetCookies = response.Headers.TryGetValues("Set-Cookie", out var values) ? values.ToList() : [];
            foreach (var value in LastSetCookies)
            {
                if (value.StartsWith(CookieName + "=", StringComparison.Ordinal))
                {
                    Cookie = value[(CookieName.Length + 1)..value.IndexOf(';', StringComparison.Ordinal)];
                }
            }

            return (response.StatusCode, await response.Content.ReadAsStringAsync(CancellationToken));
        }

        private async Task<string> OkAsync(HttpMethod method, string path)
        {
            var (status, body) = await SendAsync(method, path);
            Assert.True(status == HttpStatusCode.OK, $"{method} {path} answered {(int)status}: {body}");
            return body;
        }
    }
}
