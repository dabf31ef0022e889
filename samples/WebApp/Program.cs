using System.Text.Json;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using PgFirst.Core;
using PgQueue;
using PgRateLimit;
using PgSessions;
using WebApp;

var builder = WebApplication.CreateBuilder(args);

// One NpgsqlDataSource for the app and for PgFirst; ./pgfirst demo sets ConnectionStrings__Postgres.
var postgres = builder.Configuration.GetConnectionString("Postgres");
var printSchema = args.Contains("--print-schema");
if (string.IsNullOrWhiteSpace(postgres))
{
    if (!printSchema)
    {
        throw new InvalidOperationException(
            "ConnectionStrings:Postgres is not set. Run ./pgfirst demo (it starts PostgreSQL and sets it), or set " +
            "ConnectionStrings__Postgres to an Npgsql connection string.");
    }

    postgres = "Host=unused"; // --print-schema renders SQL and never connects.
}

var settings = builder.Configuration.GetSection("Demo").Get<DemoSettings>() ?? new DemoSettings();
settings.Validate();
builder.Services.AddSingleton(settings);
builder.Services.AddNpgsqlDataSource(postgres);

// Backend per module comes from configuration: PgFirst__Backend=Redis, or PgFirst__CacheBackend=Redis, ...
var pgFirst = builder.Services.AddPgFirst(builder.Configuration.GetSection("PgFirst"));
var pgFirstOptions = builder.Configuration.GetSection("PgFirst").Get<PgFirstOptions>() ?? new PgFirstOptions();
builder.Services.AddPgCache(builder.Configuration.GetSection("PgCache"));
builder.Services.AddPgSessions(builder.Configuration.GetSection("PgSessions"));

// Output caching on PgCache's store (PostgreSQL, or Redis in Redis mode): a page cached by one instance is served by
// every instance, and an edit evicts it everywhere by tag.
builder.Services.AddPgOutputCache(o => o.AddPolicy(PageCachePolicy.Name, p => p.Expire(TimeSpan.FromMinutes(5)).AddPolicy<PageCachePolicy>()));

// SignalR scaled out on PostgreSQL LISTEN/NOTIFY (or Microsoft's Redis backplane when PgFirst:Backend is Redis), so
// a page open on one instance hears of an edit made on another. NOTIFY channels are per database; the backplane's
// channel carries a hash of the PgFirst schema, so two demos (or test runs) on one database never hear each other.
var signalR = builder.Services.AddSignalR();
if (pgFirstOptions.Backend == PgFirstBackend.Redis)
{
    signalR.AddStackExchangeRedis(builder.Configuration.GetConnectionString("Redis") ?? string.Empty, o =>
        o.Configuration.ChannelPrefix = StackExchange.Redis.RedisChannel.Literal((builder.Configuration["PgFirst:Redis:KeyPrefix"] ?? "pgfirst:") + "signalr:"));
}
else
{
    signalR.AddPgFirst();
}
builder.Services.AddPgRateLimiting();
builder.Services.AddRateLimiter(o =>
{
    o.UsePgRejectionResponse(); // 429 with Retry-After and the RateLimit / RateLimit-Policy headers
    o.AddPgFixedWindowLimiter("api", p =>
    {
        p.PermitLimit = settings.ApiPermitLimit;
        p.Window = settings.ApiWindow;
        p.PartitionKey = PgRateLimitPartition.ByUserOrIp;
    });
    o.AddPgFixedWindowLimiter("signin", p =>
    {
        p.PermitLimit = settings.SignInPermitLimit;
        p.Window = settings.SignInWindow;
        p.PartitionKey = PgRateLimitPartition.ByIp;
    });
});
builder.Services.AddPgQueue(builder.Configuration.GetSection("PgQueue"))
    .AddHandler<SendOrderConfirmation, SendOrderConfirmationHandler>()
    .AddHandler<RenderInvoice, RenderInvoiceHandler>(o => o.Queue = "invoices")
    .AddHandler<LoadJob, LoadJobHandler>(o => { o.Queue = "load"; o.MaxAttempts = 1; });
builder.Services.AddSingleton(sp => new DemoShop(sp.GetRequiredService<IOptions<PgFirstOptions>>().Value.SchemaName, sp.GetRequiredService<Npgsql.NpgsqlDataSource>()));
builder.Services.AddHostedService<DemoShopStartup>();
builder.Services.AddSingleton<Catalog>();
builder.Services.AddSingleton<OrderService>();
builder.Services.AddSingleton<LiveUpdates>();
builder.Services.AddSingleton<DashboardWatchers>();
builder.Services.AddSingleton<DashboardSnapshot>();
builder.Services.AddHostedService<DashboardPusher>();
builder.Services.AddSingleton<DashboardMetrics>();
builder.Services.AddHostedService(sp => sp.GetRequiredService<DashboardMetrics>());
builder.Services.AddAntiforgery(o => o.Cookie.Name = PageCachePolicy.AntiforgeryCookie);

// The Data Protection key ring (it protects the session and antiforgery cookies) lives in PostgreSQL, so every instance
// reads every cookie.
builder.Services.AddDataProtection().PersistKeysToPgFirst();
var health = builder.Services.AddHealthChecks().AddPgFirstPostgres(tags: ["ready"]).AddPgCache(tags: ["ready"]).AddPgSessions(tags: ["ready"]).AddPgRateLimit(tags: ["ready"]).AddPgQueue(tags: ["ready"]);
if (pgFirstOptions.Backend != PgFirstBackend.Redis)
{
    health.AddPgSignalR<ShopHub>(tags: ["ready"]);
}

if (pgFirstOptions.Replicas.ConnectionString is not null)
{
    // Degraded, not unhealthy, when a standby lags or is gone: its reads go to the primary.
    health.AddPgFirstReplicas(tags: ["ready"]);
}
if (pgFirstOptions.UsesRedis)
{
    var redis = builder.Configuration.GetConnectionString("Redis");
    pgFirst.AddRedis(o =>
    {
        o.Configuration = redis;
        o.KeyPrefix = builder.Configuration["PgFirst:Redis:KeyPrefix"] is { Length: > 0 } prefix ? prefix : o.KeyPrefix;
    });
    health.AddPgFirstRedis(tags: ["ready"]);
}

var app = builder.Build();

if (printSchema)
{
    // ./pgfirst schema: the full, idempotent SQL for a DBA to review and apply by hand.
    Console.Out.Write(app.Services.GetRequiredService<PgSchemaInstaller>().GenerateScript());
    return;
}

app.UseStaticFiles();
app.UseSession();
app.Use((context, next) => DemoUsers.LoadUserAsync(context, next));
app.UseOutputCache();
app.UseRateLimiter();
app.UseAntiforgery();

// Only a path on this site: "/x", never "//host", "/\\host" or a control character (browsers drop tabs and newlines,
// so "/<tab>/host" would become "//host"), the rule of ASP.NET's IsLocalUrl.
static string LocalUrl(string? url) =>
    url is { Length: > 0 } && url[0] == '/' && (url.Length == 1 || (url[1] != '/' && url[1] != '\\')) && !url.Any(char.IsControl) ? url : "/";

static IResult SeeOther(string url) => Results.Redirect(url, permanent: false, preserveMethod: false);

static IResult SignInFirst(HttpContext context) =>
    SeeOther("/signin?returnUrl=" + Uri.EscapeDataString(context.Request.Path + context.Request.QueryString));

// Every HTML form carries an antiforgery token and every form POST checks it, whether or not it binds form fields
// (minimal APIs validate on their own only for endpoints that bind the form).
var forms = app.MapGroup(string.Empty).AddEndpointFilter(async (invocation, next) =>
{
    var http = invocation.HttpContext;
    if (!await http.RequestServices.GetRequiredService<IAntiforgery>().IsRequestValidAsync(http))
    {
        return Pages.Page(http, "Form expired", "<h1>This form has expired</h1><p class=\"error\" id=\"error\">Go back, reload the page and try again.</p>", StatusCodes.Status400BadRequest);
    }

    return await next(invocation);
});

// ---- Pages ----

app.MapGet("/", async (HttpContext context, Catalog catalog, IOptions<PgFirstOptions> options) =>
    Pages.Catalog(context, await catalog.ListProductsAsync(context.RequestAborted), options.Value)).CacheOutput(PageCachePolicy.Name);

app.MapGet("/products/{id:int}", async (HttpContext context, Catalog catalog, int id) =>
{
    try
    {
        return Pages.Product(context, await catalog.GetProductAsync(id, context.RequestAborted));
    }
    catch (ProductNotFoundException)
    {
        return Pages.Page(context, "Not found", "<h1>No such product</h1>", StatusCodes.Status404NotFound);
    }
}).CacheOutput(PageCachePolicy.Name);

forms.MapPost("/products/{id:int}/edit", async (HttpContext context, Catalog catalog, int id, [FromForm] string? name, [FromForm] int? priceCents) =>
{
    if (context.CurrentUser() is null)
    {
        return SignInFirst(context);
    }

    name = name?.Trim();
    if (string.IsNullOrEmpty(name) || name.Length > 100 || priceCents is not (> 0 and <= 10_000_000))
    {
        return Pages.Page(context, "Invalid product", "<h1>Invalid product</h1><p class=\"error\" id=\"error\">A name is 1 to 100 characters and a price 1 to 10000000 cents.</p>", StatusCodes.Status400BadRequest);
    }

    if (!await catalog.UpdateProductAsync(id, name, priceCents.Value, context.RequestAborted))
    {
        return Pages.Page(context, "Not found", "<h1>No such product</h1>", StatusCodes.Status404NotFound);
    }

    return Pages.Product(context, await catalog.GetProductAsync(id, context.RequestAborted), "Saved. Its cache entries and cached pages were removed by the tag product:" + id + ", and pages open on every instance were told.");
});

app.MapGet("/cart", async (HttpContext context, Catalog catalog) => Pages.Cart(context, await CartLinesAsync(context, catalog)));

forms.MapPost("/cart/items", async (HttpContext context, Catalog catalog, [FromForm] int productId, [FromForm] int quantity) =>
{
    if (quantity is < 1 or > OrderService.MaxQuantity)
    {
        return Pages.Cart(context, await CartLinesAsync(context, catalog), $"Quantities are 1 to {OrderService.MaxQuantity}.", StatusCodes.Status400BadRequest);
    }

    try
    {
        await catalog.GetProductAsync(productId, context.RequestAborted);
        Cart.Add(context.Session, productId, quantity);
    }
    catch (ProductNotFoundException)
    {
        return Pages.Cart(context, await CartLinesAsync(context, catalog), "That product does not exist.", StatusCodes.Status404NotFound);
    }
    catch (ArgumentException error)
    {
        return Pages.Cart(context, await CartLinesAsync(context, catalog), error.Message, StatusCodes.Status400BadRequest);
    }

    return SeeOther("/cart");
});

forms.MapPost("/cart/clear", (HttpContext context) =>
{
    Cart.Save(context.Session, []);
    return SeeOther("/cart");
});

forms.MapPost("/cart/checkout", async (HttpContext context, Catalog catalog, OrderService orders) =>
{
    if (context.CurrentUser() is not { } user)
    {
        return SignInFirst(context);
    }

    try
    {
        var (orderId, _) = await orders.PlaceAsync(user, Cart.Get(context.Session), context.RequestAborted);
        Cart.Save(context.Session, []);
        return SeeOther("/orders/" + orderId);
    }
    catch (Exception error) when (error is ArgumentException or ProductNotFoundException)
    {
        return Pages.Cart(context, await CartLinesAsync(context, catalog), error.Message, StatusCodes.Status400BadRequest);
    }
});

app.MapGet("/orders/{id:long}", async (HttpContext context, DemoShop shop, OrderService orders, long id) =>
    context.CurrentUser() is not { } user ? SignInFirst(context)
    : await shop.GetOrderAsync(id, context.RequestAborted) is { } order && order.UserId == user ? Pages.Order(context, order, orders.Transactional)
    : Pages.Page(context, "Not found", "<h1>No such order</h1>", StatusCodes.Status404NotFound));

app.MapGet("/signin", (HttpContext context, string? returnUrl) => Pages.SignIn(context, LocalUrl(returnUrl)));

forms.MapPost("/signin", async (HttpContext context, [FromForm] string? user, [FromForm] string? password, [FromForm] string? returnUrl) =>
{
    if (!DemoUsers.TryValidate(user, password))
    {
        return Pages.SignIn(context, LocalUrl(returnUrl), "Unknown user or wrong password.", StatusCodes.Status401Unauthorized);
    }

    // A new session key on sign-in (the data, the cart among it, is kept) defeats session fixation; binding the user
    // lists the session under them and lets them revoke it.
    await context.Session.RegenerateIdAsync(context.RequestAborted);
    await context.Session.BindUserAsync(user, context.RequestAborted);
    return SeeOther(LocalUrl(returnUrl));
}).RequireRateLimiting("signin");

// Signing out ends the session on the server: its row (or Redis keys) goes now, not at the idle timeout, and the
// cookie now names no session, so the next request starts a fresh one that is stored only if something is written.
forms.MapPost("/signout", async (HttpContext context, PgSessionManager sessions) =>
{
    await sessions.RevokeAsync(context.Session.Id, context.RequestAborted);
    return SeeOther("/");
});

app.MapGet("/account/sessions", async (HttpContext context, PgSessionManager sessions) =>
    context.CurrentUser() is not { } user ? SignInFirst(context) : Pages.Sessions(context, await sessions.ListSessionsAsync(user, context.RequestAborted)));

forms.MapPost("/account/sessions/{sessionId:guid}/revoke", async (HttpContext context, PgSessionManager sessions, Guid sessionId) =>
{
    if (context.CurrentUser() is not { } user)
    {
        return SignInFirst(context);
    }

    // Only the user's own sessions: the id alone must never be enough to sign someone else out.
    var own = await sessions.ListSessionsAsync(user, context.RequestAborted);
    if (!own.Any(s => s.SessionId == sessionId))
    {
        return Pages.Page(context, "Not found", "<h1>No such session</h1>", StatusCodes.Status404NotFound);
    }

    await sessions.RevokeAsync(sessionId.ToString(), context.RequestAborted);
    return SeeOther("/account/sessions");
});

forms.MapPost("/account/sessions/revoke-others", async (HttpContext context, PgSessionManager sessions) =>
{
    if (context.CurrentUser() is not { } user)
    {
        return SignInFirst(context);
    }

    await sessions.RevokeAllAsync(user, context.Session.Id, context.RequestAborted);
    return SeeOther("/account/sessions");
});

app.MapGet("/dashboard", (HttpContext context, IOptions<PgFirstOptions> options) => Pages.Dashboard(context, options.Value, settings));

app.MapGet("/dashboard/data", async (HttpContext context, DashboardSnapshot snapshot) => Results.Json(await snapshot.BuildAsync(context.RequestAborted)));

app.MapHub<ShopHub>(ShopHub.Path);

// The dashboard's actions: for a signed-in user, with a JSON body (a cross-site form cannot send one, and anything else
// is refused with 415 before the handler runs).
app.MapPost("/dashboard/load", async (HttpContext context, IJobQueue queue, [FromBody] LoadRequest request) =>
{
    if (context.CurrentUser() is null)
    {
        return Results.Json(new { error = "Sign in first." }, statusCode: StatusCodes.Status401Unauthorized);
    }

    var count = request.Count ?? settings.LoadJobCount;
    if (count is < 1 or > DemoSettings.MaxLoadJobCount)
    {
        return Results.BadRequest(new { error = $"count must be 1 to {DemoSettings.MaxLoadJobCount}." });
    }

    var result = await queue.EnqueueManyAsync(Enumerable.Range(1, count).Select(n => new LoadJob(n, n % settings.FlakyEvery == 0)), cancellationToken: context.RequestAborted);
    return Results.Json(new { enqueued = result.Enqueued });
});

app.MapPost("/dashboard/requeue", async (HttpContext context, JobQueueManager jobs, [FromBody] RequeueRequest request) =>
    context.CurrentUser() is null ? Results.Json(new { error = "Sign in first." }, statusCode: StatusCodes.Status401Unauthorized)
    : await jobs.RequeueAsync(request.Id, context.RequestAborted) ? Results.Json(new { requeued = request.Id })
    : Results.NotFound(new { error = $"Job {request.Id} is not dead." }));

// ---- JSON API, limited per user (or per IP address when anonymous) ----

var api = app.MapGroup("/api").RequireRateLimiting("api");

api.MapGet("/products", (Catalog catalog, CancellationToken ct) => catalog.ListProductsAsync(ct));

api.MapGet("/products/{id:int}", async (Catalog catalog, int id, CancellationToken ct) =>
{
    try
    {
        return Results.Json(await catalog.GetProductAsync(id, ct), ShopJson.Default.Product);
    }
    catch (ProductNotFoundException error)
    {
        return Results.NotFound(new { error = error.Message });
    }
});

api.MapGet("/cart", (HttpContext context) => Results.Json(Cart.Get(context.Session), ShopJson.Default.ListCartLine));

api.MapPost("/orders", async (HttpContext context, OrderService orders, [FromBody] PlaceOrderRequest request) =>
{
    if (context.CurrentUser() is not { } user)
    {
        return Results.Json(new { error = "Sign in first." }, statusCode: StatusCodes.Status401Unauthorized);
    }

    try
    {
        var (orderId, transactional) = await orders.PlaceAsync(user, request.Items ?? [], context.RequestAborted);
        return Results.Created($"/api/orders/{orderId}", new { orderId, transactional });
    }
    catch (Exception error) when (error is ArgumentException or ProductNotFoundException)
    {
        return Results.BadRequest(new { error = error.Message });
    }
});

api.MapGet("/orders/{id:long}", async (HttpContext context, DemoShop shop, long id) =>
    context.CurrentUser() is not { } user ? Results.Json(new { error = "Sign in first." }, statusCode: StatusCodes.Status401Unauthorized)
    : await shop.GetOrderAsync(id, context.RequestAborted) is { } order && order.UserId == user
        ? Results.Json(new { order.Id, order.Lines, total = order.TotalCents, confirmed = order.ConfirmedAt is not null, invoiced = order.InvoicedAt is not null })
        : Results.NotFound(new { error = $"No order {id}." }));

app.MapHealthChecks("/health", new HealthCheckOptions { ResponseWriter = WriteHealthJson });
app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false, ResponseWriter = WriteHealthJson });
app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = c => c.Tags.Contains("ready"), ResponseWriter = WriteHealthJson });

await app.RunAsync();

static async Task<IReadOnlyList<(Product Product, int Quantity)>> CartLinesAsync(HttpContext context, Catalog catalog)
{
    var lines = new List<(Product, int)>();
    foreach (var line in Cart.Get(context.Session))
    {
        try
        {
            lines.Add((await catalog.GetProductAsync(line.ProductId, context.RequestAborted), line.Quantity));
        }
        catch (ProductNotFoundException)
        {
            // a product removed since it was added: left out of the page, refused at checkout
        }
    }

    return lines;
}

static Task WriteHealthJson(HttpContext context, HealthReport report)
{
    context.Response.ContentType = "application/json";
    return context.Response.WriteAsync(JsonSerializer.Serialize(new
    {
        status = report.Status.ToString(),
        checks = report.Entries.ToDictionary(e => e.Key, e => new { status = e.Value.Status.ToString(), description = e.Value.Description }),
    }));
}

/// <summary>The demo app's entry point, visible to the integration tests.</summary>
public partial class Program;

namespace WebApp
{
    public sealed record LoadRequest(int? Count);

    public sealed record RequeueRequest(long Id);

    public sealed record PlaceOrderRequest(IReadOnlyList<CartLine>? Items);
}
