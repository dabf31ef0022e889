using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Antiforgery;
using PgFirst.Core;
using PgSessions;

namespace WebApp;

// Server-rendered pages: plain HTML with encoded values, an antiforgery token in every form, one stylesheet.
public static class Pages
{
    private static readonly HtmlEncoder Encoder = HtmlEncoder.Create(System.Text.Unicode.UnicodeRanges.All);

    public static string H(string? value) => Encoder.Encode(value ?? string.Empty);

    private static string Time(DateTimeOffset value) => value.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture);

    public static string Form(HttpContext context, string action, string inner, string? id = null, string? cssClass = null)
    {
        var tokens = context.RequestServices.GetRequiredService<IAntiforgery>().GetAndStoreTokens(context);
        return $"""<form method="post" action="{H(action)}"{(id is null ? "" : $" id=\"{id}\"")}{(cssClass is null ? "" : $" class=\"{cssClass}\"")}><input type="hidden" name="{H(tokens.FormFieldName)}" value="{H(tokens.RequestToken)}">{inner}</form>""";
    }

    public static IResult Page(HttpContext context, string title, string body, int statusCode = 200, string? head = null)
    {
        var user = context.CurrentUser();
        var instance = context.RequestServices.GetRequiredService<DemoSettings>().InstanceName;
        var account = user is null
            ? """<a id="nav-signin" href="/signin">Sign in</a>"""
            : $"""<a id="nav-sessions" href="/account/sessions">Sessions</a> <span id="nav-user">{H(user)}</span> {Form(context, "/signout", """<button id="signout" type="submit" class="link">Sign out</button>""", cssClass: "inline")}""";
        var html = $"""
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>{H(title)} · PgFirst demo</title><link rel="stylesheet" href="/site.css">{head}</head>
            <body>
            <header><a class="brand" href="/">PgFirst <span>coffee &amp; tea</span></a>
            <nav><a id="nav-catalog" href="/">Catalog</a> <a id="nav-cart" href="/cart">Cart (<span id="cart-count">{WebApp.Cart.Count(context.Session)}</span>)</a>
            <a id="nav-dashboard" href="/dashboard">Dashboard</a> {account} <span id="instance" class="note">instance {H(instance)}</span></nav></header>
            <main>
            {body}
            </main>
            <footer>A demo of PgFirst: cache, sessions, rate limiting and job queue on PostgreSQL (or Redis, by configuration).
            <a href="/health/ready">/health/ready</a></footer>
            </body></html>
            """;
        return Results.Content(html, "text/html; charset=utf-8", Encoding.UTF8, statusCode);
    }

    // The minimal SignalR client and the handler that applies product edits to the page.
    private const string LiveScripts = """<script src="/live.js" defer></script><script src="/shop.js" defer></script>""";

    public static string BackendTable(PgFirstOptions options) =>
        $"""<table id="backends"><thead><tr><th>Module</th><th>Backend</th></tr></thead><tbody>{string.Concat(Enum.GetValues<PgFirstModule>().Select(m => $"<tr><td>{m}</td><td id=\"backend-{m.ToString().ToLowerInvariant()}\">{options.GetBackend(m)}</td></tr>"))}</tbody></table>""";

    public static IResult Catalog(HttpContext context, IReadOnlyList<Product> products, PgFirstOptions options)
    {
        var cards = string.Concat(products.Select(p => $"""
            <article class="product" data-product-id="{p.Id}"><h2><a class="product-link" href="/products/{p.Id}">{H(p.Name)}</a></h2>
            <p>{H(p.Description)}</p><p class="price">{H(p.Price)}</p></article>
            """));
        return Page(context, "Catalog", $"""
            <h1>Catalog</h1>
            <p class="note">The listing is one multi-get from the distributed cache (misses read from the shop's table and cached
            with the tags <code>catalog</code> and <code>product:&lt;id&gt;</code>), and the page itself is output-cached for
            anonymous visitors (tag <code>catalog-page</code>). An edit on any instance updates this page live (SignalR).</p>
            <p class="message" id="live-note" hidden></p>
            <section id="catalog" class="grid">{cards}</section>
            <h2>Running on</h2>{BackendTable(options)}
            """, head: LiveScripts);
    }

    public static IResult Product(HttpContext context, Product product, string? message = null)
    {
        var edit = context.CurrentUser() is null
            ? """<p class="note">Sign in to edit the product (editing removes its cache entries by tag).</p>"""
            : Form(context, $"/products/{product.Id}/edit", $"""
                <h2>Edit</h2>
                <label>Name <input id="edit-name" name="name" maxlength="100" required value="{H(product.Name)}"></label>
                <label>Price in cents <input id="edit-price" name="priceCents" type="number" min="1" max="10000000" required value="{product.PriceCents}"></label>
                <button id="edit-submit" type="submit">Save</button>
                """, id: "edit-product");
        return Page(context, product.Name, $"""
            {(message is null ? "" : $"<p class=\"message\" id=\"message\">{H(message)}</p>")}
            <p class="message" id="live-note" hidden></p>
            <article class="product-page" data-product-id="{product.Id}">
            <h1 id="product-name">{H(product.Name)}</h1>
            <p>{H(product.Description)}</p>
            <p class="price" id="product-price">{H(product.Price)}</p>
            </article>
            {Form(context, "/cart/items", $"""
                <input type="hidden" name="productId" value="{product.Id}">
                <label>Quantity <input id="quantity" name="quantity" type="number" min="1" max="{OrderService.MaxQuantity}" value="1" required></label>
                <button id="add-to-cart" type="submit">Add to cart</button>
                """, id: "add-to-cart-form")}
            {edit}
            """, head: LiveScripts);
    }

    public static IResult Cart(HttpContext context, IReadOnlyList<(Product Product, int Quantity)> lines, string? error = null, int statusCode = 200)
    {
        var rows = string.Concat(lines.Select(l => $"""<tr class="cart-line" data-product-id="{l.Product.Id}"><td>{H(l.Product.Name)}</td><td class="quantity">{l.Quantity}</td><td>{H(l.Product.Price)}</td><td>{H(WebApp.Product.FormatPrice((long)l.Product.PriceCents * l.Quantity))}</td></tr>"""));
        var total = lines.Sum(l => (long)l.Product.PriceCents * l.Quantity);
        var actions = lines.Count == 0
            ? """<p id="cart-empty">Your cart is empty. <a href="/">Browse the catalog</a>.</p>"""
            : (context.CurrentUser() is null
                ? """<p><a href="/signin?returnUrl=%2Fcart">Sign in</a> to place the order (your cart is kept).</p>"""
                : Form(context, "/cart/checkout", """<button id="place-order" type="submit">Place order</button>""", id: "checkout"))
              + Form(context, "/cart/clear", """<button id="clear-cart" type="submit" class="secondary">Empty the cart</button>""");
        return Page(context, "Cart", $"""
            <h1>Cart</h1>
            {(error is null ? "" : $"<p class=\"error\" id=\"error\">{H(error)}</p>")}
            <p class="note">Kept in your session (PgSessions): one round trip to load, written only when it changes.</p>
            <table id="cart-lines"><thead><tr><th>Product</th><th>Quantity</th><th>Price</th><th>Subtotal</th></tr></thead>
            <tbody>{rows}</tbody><tfoot><tr><td colspan="3">Total</td><td id="cart-total">{H(WebApp.Product.FormatPrice(total))}</td></tr></tfoot></table>
            {actions}
            """, statusCode);
    }

    public static IResult SignIn(HttpContext context, string? returnUrl, string? error = null, int statusCode = 200)
    {
        var options = string.Concat(DemoUsers.All.Select(u => $"<option value=\"{u}\">{u}</option>"));
        return Page(context, "Sign in", $"""
            <h1>Sign in</h1>
            {(error is null ? "" : $"<p class=\"error\" id=\"error\">{H(error)}</p>")}
            <p class="note">Demo users: {string.Join(", ", DemoUsers.All)}; the password is <code>{DemoUsers.Password}</code>.
            Signing in gives the session a new id (against fixation) and binds it to the user. The form is limited per IP address.</p>
            {Form(context, "/signin", $"""
                <input type="hidden" name="returnUrl" value="{H(returnUrl)}">
                <label>User <select id="signin-user" name="user">{options}</select></label>
                <label>Password <input id="signin-password" name="password" type="password" required></label>
                <button id="signin-submit" type="submit">Sign in</button>
                """, id: "signin-form")}
            """, statusCode);
    }

    public static IResult Order(HttpContext context, Order order, bool transactional)
    {
        static string Status(DateTimeOffset? at) => at is null ? "pending" : "done";
        var pending = order.ConfirmedAt is null || order.InvoicedAt is null;
        var rows = string.Concat(order.Lines.Select(l => $"<tr><td>{H(l.Name)}</td><td>{l.Quantity}</td><td>{H(WebApp.Product.FormatPrice((long)l.PriceCents * l.Quantity))}</td></tr>"));
        return Page(context, $"Order {order.Id}", $"""
            <h1>Order <span id="order-id">{order.Id}</span></h1>
            <p>Placed {Time(order.PlacedAt)} by {H(order.UserId)}. {(transactional
                ? "The order row and its two follow-up jobs were committed in one transaction (PostgreSQL queue)"
                : "The order row was committed, then its two follow-up jobs were enqueued on Redis (no shared transaction)")};
            the jobs' handlers record their outcome here.</p>
            <table><thead><tr><th>Product</th><th>Quantity</th><th>Subtotal</th></tr></thead><tbody>{rows}</tbody>
            <tfoot><tr><td colspan="2">Total</td><td>{H(WebApp.Product.FormatPrice(order.TotalCents))}</td></tr></tfoot></table>
            <ul><li>Confirmation e-mail: <strong id="order-confirmed">{Status(order.ConfirmedAt)}</strong></li>
            <li>Invoice: <strong id="order-invoiced">{Status(order.InvoicedAt)}</strong></li></ul>
            <p><a href="/dashboard">Watch the jobs on the dashboard</a></p>
            """, head: pending ? """<meta http-equiv="refresh" content="2">""" : null);
    }

    public static IResult Sessions(HttpContext context, IReadOnlyList<PgSessionInfo> sessions)
    {
        var current = context.Session.Id;
        var rows = string.Concat(sessions.Select(s =>
        {
            var id = s.SessionId.ToString();
            var isCurrent = string.Equals(id, current, StringComparison.OrdinalIgnoreCase);
            var action = isCurrent
                ? "<em>this browser</em>"
                : Form(context, $"/account/sessions/{id}/revoke", """<button type="submit" class="revoke">Revoke</button>""", cssClass: "inline");
            return $"""<tr class="session-row{(isCurrent ? " current" : "")}" data-session-id="{id}"><td>{H(Device(s.UserAgent))}</td><td>{H(s.ClientIp ?? "unknown")}</td><td>{Time(s.CreatedAt)}</td><td>{Time(s.LastSeenAt)}</td><td>{action}</td></tr>""";
        }));
        return Page(context, "Your sessions", $"""
            <h1>Your active sessions</h1>
            <p class="note">Listed from the session store by user id. A revoked session is refused on its very next request, on
            every app instance. Last seen is exact to within the touch interval.</p>
            <table id="sessions"><thead><tr><th>Device</th><th>IP address</th><th>Signed in</th><th>Last seen</th><th></th></tr></thead><tbody>{rows}</tbody></table>
            {Form(context, "/account/sessions/revoke-others", """<button id="revoke-others" type="submit">Sign out everywhere else</button>""")}
            """);
    }

    public static string Device(string? userAgent)
    {
        if (string.IsNullOrEmpty(userAgent))
        {
            return "Unknown device";
        }

        var browser = userAgent.Contains("Edg/", StringComparison.Ordinal) ? "Edge"
            : userAgent.Contains("Chrome/", StringComparison.Ordinal) ? (userAgent.Contains("Headless", StringComparison.Ordinal) ? "Headless Chrome" : "Chrome")
            : userAgent.Contains("Firefox/", StringComparison.Ordinal) ? "Firefox"
            : userAgent.Contains("Safari/", StringComparison.Ordinal) ? "Safari"
            : userAgent.Split('/')[0];
        var os = userAgent.Contains("Windows", StringComparison.Ordinal) ? "Windows"
            : userAgent.Contains("Android", StringComparison.Ordinal) ? "Android"
            : userAgent.Contains("iPhone", StringComparison.Ordinal) || userAgent.Contains("iPad", StringComparison.Ordinal) ? "iOS"
            : userAgent.Contains("Mac OS X", StringComparison.Ordinal) ? "macOS"
            : userAgent.Contains("Linux", StringComparison.Ordinal) ? "Linux"
            : null;
        return os is null ? browser : $"{browser} on {os}";
    }

    public static IResult Dashboard(HttpContext context, PgFirstOptions options, DemoSettings settings) =>
        Page(context, "Dashboard", $"""
            <h1>Dashboard</h1>
            <p class="note">Live from this instance's PgFirst meters (<code>pgcache.*</code>, <code>pgsessions.*</code>,
            <code>pgratelimit.*</code>, <code>pgqueue.*</code>) and from the stores themselves (queue depth, dead jobs, sessions,
            orders), pushed every second over SignalR by the instance this page is connected to (<span id="dashboard-instance">{H(settings.InstanceName)}</span>;
            <span id="dashboard-feed">connecting</span>); updated <span id="updated-at">never</span>. Meter figures are this instance's;
            the hit ratio counts get calls (a multi-get that finds any of its keys is a hit), near-cache hits included, which
            cost no round trip (<code>PgCache:NearCache</code>); invalidation p50 is from another instance's write to this
            instance dropping its copy; enqueue→start is measured
            from when a job became available (for a retried or requeued job, from its retry or requeue).</p>
            <section class="grid tiles">
              <article><h2>Cache <small id="backend-cache">{options.GetBackend(PgFirstModule.Cache)}</small></h2>
                <p><span class="figure" id="cache-hit-ratio">–</span> of get calls hit</p><p><span class="figure" id="cache-ops">–</span> operations/s</p>
                <p><span class="figure" id="cache-near-ratio">–</span> served from the near cache, invalidation p50 <span class="figure" id="cache-invalidation-lag">–</span></p>
                <svg class="chart" id="chart-cache-ops" viewBox="0 0 240 60" preserveAspectRatio="none"></svg>
                <svg class="chart" id="chart-cache-hits" viewBox="0 0 240 60" preserveAspectRatio="none"></svg></article>
              <article><h2>Sessions <small id="backend-sessions">{options.GetBackend(PgFirstModule.Sessions)}</small></h2>
                <p><span class="figure" id="sessions-active">–</span> signed-in sessions</p><p><span class="figure" id="session-loads">–</span> loads/s</p>
                <svg class="chart" id="chart-sessions" viewBox="0 0 240 60" preserveAspectRatio="none"></svg>
                <svg class="chart" id="chart-session-loads" viewBox="0 0 240 60" preserveAspectRatio="none"></svg></article>
              <article><h2>Rate limiting <small id="backend-ratelimit">{options.GetBackend(PgFirstModule.RateLimit)}</small></h2>
                <p><span class="figure" id="ratelimit-accepted">–</span> accepted, <span class="figure" id="ratelimit-rejected">–</span> rejected</p>
                <svg class="chart" id="chart-ratelimit" viewBox="0 0 240 60" preserveAspectRatio="none"></svg>
                <button id="api-burst" type="button" data-count="{settings.ApiPermitLimit + 10}">Call the API {settings.ApiPermitLimit + 10} times</button>
                <p id="api-burst-result" class="note"></p></article>
              <article><h2>Queue <small id="backend-queue">{options.GetBackend(PgFirstModule.Queue)}</small></h2>
                <p><span class="figure" id="jobs-per-second">–</span> jobs/s, enqueue→start p50 <span class="figure" id="job-wait-p50">–</span></p>
                <svg class="chart" id="chart-depth" viewBox="0 0 240 60" preserveAspectRatio="none"></svg>
                <svg class="chart" id="chart-jobs" viewBox="0 0 240 60" preserveAspectRatio="none"></svg>
                <svg class="chart" id="chart-wait" viewBox="0 0 240 60" preserveAspectRatio="none"></svg>
                <button id="load" type="button">Enqueue {settings.LoadJobCount:N0} jobs</button> <span id="load-result" class="note"></span></article>
            </section>
            <h2>Topology</h2>
            <p class="note">Pooler mode <span id="topology-pooler">{options.Pooler}</span>. Writes go to the primary; reads go where
            each module's read consistency allows (<code>PgFirst:Replicas</code>).</p>
            <table id="reads-from"><thead><tr><th>Module</th><th>Reads from</th></tr></thead><tbody>
              <tr><td>Cache</td><td id="reads-from-cache">–</td></tr><tr><td>Sessions</td><td id="reads-from-sessions">–</td></tr>
              <tr><td>Rate limiting</td><td id="reads-from-ratelimit">–</td></tr><tr><td>Queue</td><td id="reads-from-queue">–</td></tr>
            </tbody></table>
            <table id="replicas"><thead><tr><th>Read replica</th><th>State</th><th>Replay lag</th></tr></thead><tbody></tbody></table>
            <h2>Queue depth</h2>
            <table id="queue-depth"><thead><tr><th>Queue</th><th>Available</th><th>Scheduled</th><th>Running</th><th>Dead</th></tr></thead><tbody></tbody></table>
            <h2>Dead jobs</h2>
            <table id="dead-jobs"><thead><tr><th>Id</th><th>Queue</th><th>Kind</th><th>Attempts</th><th>Last error</th><th></th></tr></thead><tbody></tbody></table>
            <h2>Recent orders</h2>
            <table id="recent-orders"><thead><tr><th>Order</th><th>User</th><th>Total</th><th>Confirmation</th><th>Invoice</th></tr></thead><tbody></tbody></table>
            <h2>Activity on every instance</h2>
            <p class="note">Sent by the instance where it happened, through the SignalR backplane, to the dashboards on all of them.</p>
            <ul id="activity"></ul>
            <script src="/live.js"></script>
            <script src="/dashboard.js"></script>
            """);
}
