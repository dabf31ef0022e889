using System.Security.Claims;
using System.Text.Json;
using PgSessions;

namespace WebApp;

// The "Demo" configuration section: the limits and load the demo shows, validated at start-up.
public sealed class DemoSettings
{
    public const int MaxLoadJobCount = 10_000;

    public int ApiPermitLimit { get; set; } = 30;

    public TimeSpan ApiWindow { get; set; } = TimeSpan.FromSeconds(10);

    public int SignInPermitLimit { get; set; } = 10;

    public TimeSpan SignInWindow { get; set; } = TimeSpan.FromMinutes(1);

    public int LoadJobCount { get; set; } = 3000;

    public TimeSpan LoadJobWork { get; set; } = TimeSpan.FromMilliseconds(5);

    public int FlakyEvery { get; set; } = 500;

    // Which instance this is, shown in the header and on pushed updates ("./pgfirst demo --instances 2" names them A and B).
    public string InstanceName { get; set; } = Environment.MachineName;

    // How often the dashboard's figures are pushed over SignalR to the dashboards connected to this instance.
    public TimeSpan DashboardPushInterval { get; set; } = TimeSpan.FromSeconds(1);

    public void Validate()
    {
        static void Require(bool ok, string message)
        {
            if (!ok)
            {
                throw new InvalidOperationException("Demo settings: " + message);
            }
        }

        Require(ApiPermitLimit > 0 && SignInPermitLimit > 0, "permit limits must be positive.");
        Require(ApiWindow > TimeSpan.Zero && SignInWindow > TimeSpan.Zero, "windows must be positive.");
        Require(LoadJobCount is > 0 and <= MaxLoadJobCount, $"LoadJobCount must be 1 to {MaxLoadJobCount}.");
        Require(LoadJobWork >= TimeSpan.Zero && LoadJobWork <= TimeSpan.FromSeconds(5), "LoadJobWork must be 0 to 5 s.");
        Require(FlakyEvery > 0, "FlakyEvery must be positive.");
        Require(!string.IsNullOrWhiteSpace(InstanceName) && InstanceName.Length <= 40, "InstanceName must be 1 to 40 characters.");
        Require(DashboardPushInterval >= TimeSpan.FromMilliseconds(100) && DashboardPushInterval <= TimeSpan.FromMinutes(1), "DashboardPushInterval must be 0.1 s to 1 min.");
    }
}

// Three demo users, all with the password "demo": enough to show sign-in, per-user rate limits and sessions.
public static class DemoUsers
{
    public const string Password = "demo";

    public static IReadOnlyList<string> All { get; } = ["alice", "bob", "carol"];

    public static bool TryValidate(string? user, string? password) =>
        user is not null && All.Contains(user, StringComparer.Ordinal) && string.Equals(password, Password, StringComparison.Ordinal);

    // The signed-in user comes from the session (PgSessions binds it with BindUserAsync), so revoking a session signs
    // its browser out on the very next request, on every app instance. This middleware loads the session once,
    // asynchronously (one round trip, none without a cookie), and exposes the user to the rest of the pipeline, the rate
    // limiter's per-user partitions among it.
    public static async Task LoadUserAsync(HttpContext context, Func<Task> next)
    {
        // Health probes and the dashboard's once-a-second poll never need the user: they cost no session load.
        if (!context.Request.Path.StartsWithSegments("/health", StringComparison.Ordinal)
            && !context.Request.Path.StartsWithSegments("/dashboard/data", StringComparison.Ordinal)
            && !context.Request.Path.StartsWithSegments(ShopHub.Path, StringComparison.Ordinal))
        {
            await context.Session.LoadAsync(context.RequestAborted);
            if (context.Session.GetUserId() is { } user)
            {
                context.User = new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, user), new Claim(ClaimTypes.NameIdentifier, user)], "PgSessions"));
            }
        }

        await next();
    }

    public static string? CurrentUser(this HttpContext context) =>
        context.User.Identity is { IsAuthenticated: true, Name: { } name } ? name : null;
}

// The cart lives in the session, as JSON under one key.
public static class Cart
{
    private const string Key = "cart";

    public static List<CartLine> Get(ISession session)
    {
        var bytes = session.Get(Key);
        if (bytes is null)
        {
            return [];
        }

        try
        {
            return JsonSerializer.Deserialize(bytes, ShopJson.Default.ListCartLine) ?? [];
        }
        catch (JsonException)
        {
            return []; // a cart written by an older version of the app: start again rather than fail the page
        }
    }

    public static void Save(ISession session, List<CartLine> cart)
    {
        if (cart.Count == 0)
        {
            session.Remove(Key);
        }
        else
        {
            session.Set(Key, JsonSerializer.SerializeToUtf8Bytes(cart, ShopJson.Default.ListCartLine));
        }
    }

    public static void Add(ISession session, int productId, int quantity)
    {
        var cart = Get(session);
        var index = cart.FindIndex(l => l.ProductId == productId);
        if (index >= 0)
        {
            cart[index] = cart[index] with { Quantity = Math.Min(OrderService.MaxQuantity, cart[index].Quantity + quantity) };
        }
        else if (cart.Count >= OrderService.MaxLines)
        {
            throw new ArgumentException($"A cart holds at most {OrderService.MaxLines} products.", nameof(productId));
        }
        else
        {
            cart.Add(new CartLine(productId, quantity));
        }

        Save(session, cart);
    }

    public static int Count(ISession session) => Get(session).Sum(l => l.Quantity);
}
