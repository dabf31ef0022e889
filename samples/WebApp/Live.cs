using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using PgFirst.Core;
using PgQueue;
using PgSessions;

namespace WebApp;

// The demo's one hub. Pages connect with /live.js: product and catalog pages hear of every product edit (sent to all
// connections, on every instance, through the backplane), the dashboard joins its instance's group for the
// once-a-second figures and the "dashboard" group for what happens on any instance.
public sealed class ShopHub(DemoSettings settings, DashboardWatchers watchers) : Hub
{
    public const string Path = "/hubs/shop";
    public const string Dashboards = "dashboard";

    public static string DashboardsOf(string instance) => "dashboard@" + instance;

    public async Task WatchDashboard()
    {
        await Groups.AddToGroupAsync(Context.ConnectionId, Dashboards);
        await Groups.AddToGroupAsync(Context.ConnectionId, DashboardsOf(settings.InstanceName));
        watchers.Add(Context.ConnectionId);
    }

    public override Task OnDisconnectedAsync(Exception? exception)
    {
        watchers.Remove(Context.ConnectionId);
        return base.OnDisconnectedAsync(exception);
    }
}

// The dashboards connected to this instance, so the figures (a handful of queries) are built only while one watches.
public sealed class DashboardWatchers
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> _connections = new(StringComparer.Ordinal);

    public bool Any => !_connections.IsEmpty;

    public void Add(string connectionId) => _connections.TryAdd(connectionId, 0);

    public void Remove(string connectionId) => _connections.TryRemove(connectionId, out _);
}

public sealed record ProductChanged(int Id, string Name, string Price, string Instance);

public sealed record ShopActivity(string Text, string Instance, DateTimeOffset At);

// What the app tells open pages, on whichever instance they are connected to.
public sealed partial class LiveUpdates(IHubContext<ShopHub> hub, DemoSettings settings, ILogger<LiveUpdates> logger)
{
    public Task ProductChangedAsync(Product product) =>
        SendAsync(() => hub.Clients.All.SendAsync("productChanged", new ProductChanged(product.Id, product.Name, product.Price, settings.InstanceName)));

    public Task ActivityAsync(string text) =>
        SendAsync(() => hub.Clients.Group(ShopHub.Dashboards).SendAsync("activity", new ShopActivity(text, settings.InstanceName, DateTimeOffset.UtcNow)));

    // A push is a courtesy to open pages: the change itself is committed, so a backplane failure is logged, not thrown.
    private async Task SendAsync(Func<Task> send)
    {
        try
        {
            await send();
        }
        catch (Exception error) when (error is not OperationCanceledException)
        {
            LogPushFailed(logger, error);
        }
    }

    [LoggerMessage(EventId = 9101, Level = LogLevel.Warning, Message = "A live update could not be sent to open pages; they show it on their next load.")]
    private static partial void LogPushFailed(ILogger logger, Exception error);
}

// The dashboard's figures, for /dashboard/data and for the push.
public sealed class DashboardSnapshot(DashboardMetrics metrics, JobQueueManager jobs, DemoShop shop, PgSessionManager sessions, IOptions<PgFirstOptions> options, IServiceProvider services, DemoSettings settings)
{
    private static readonly string[] Queues = ["default", "invoices", "load"];

    public async Task<object> BuildAsync(CancellationToken ct)
    {
        var signedIn = 0;
        foreach (var user in DemoUsers.All)
        {
            signedIn += (await sessions.ListSessionsAsync(user, ct)).Count;
        }

        var o = options.Value;
        var replicas = o.Replicas.ConnectionString is null ? null : services.GetRequiredService<PgReplicaRouter>();
        var dead = await jobs.ListDeadAsync(null, 20, ct);
        var series = metrics.Series();
        return new
        {
            updatedAt = DateTimeOffset.UtcNow,
            instance = settings.InstanceName,
            backends = new { cache = o.GetBackend(PgFirstModule.Cache).ToString(), sessions = o.GetBackend(PgFirstModule.Sessions).ToString(), rateLimit = o.GetBackend(PgFirstModule.RateLimit).ToString(), queue = o.GetBackend(PgFirstModule.Queue).ToString() },
            topology = new
            {
                pooler = o.Pooler.ToString(),
                // Where each module's last read went: a standby's host, or the primary (writes always go there).
                readsFrom = new
                {
                    cache = ReadsFrom(replicas, "pgcache", o.GetBackend(PgFirstModule.Cache)),
                    sessions = ReadsFrom(replicas, "pgsessions", o.GetBackend(PgFirstModule.Sessions)),
                    rateLimit = ReadsFrom(null, "pgratelimit", o.GetBackend(PgFirstModule.RateLimit)),
                    queue = ReadsFrom(replicas, "pgqueue", o.GetBackend(PgFirstModule.Queue)),
                },
                replicas = replicas?.Status.Select(r => new { host = r.Host, available = r.IsAvailable, lagSeconds = r.Lag?.TotalSeconds, error = r.Error }) ?? [],
            },
            totals = metrics.Totals,
            latest = series.Count > 0 ? series[^1] : null,
            series,
            signedInSessions = signedIn,
            queues = await jobs.GetStatsAsync(Queues, cancellationToken: ct), // exact up to 10,000 per state, "capped" beyond
            dead = dead.Select(j => new { id = j.Id, queue = j.Queue, kind = j.Kind, attempts = j.Attempt, error = j.Errors.Count > 0 ? FirstLine(j.Errors[^1].Message) : null }),
            orders = (await shop.RecentOrdersAsync(8, ct)).Select(x => new { id = x.Id, user = x.UserId, total = Product.FormatPrice(x.TotalCents), confirmed = x.ConfirmedAt is not null, invoiced = x.InvoicedAt is not null }),
        };
    }

    private static string FirstLine(string text) => text.Split('\n', 2)[0].TrimEnd();

    private static string ReadsFrom(PgReplicaRouter? replicas, string module, PgFirstBackend backend) =>
        backend == PgFirstBackend.Redis ? "Redis" : replicas?.LastReadTarget(module) ?? "primary";
}

// Pushes this instance's figures to the dashboards connected to it, once a second (DashboardPushInterval), instead of
// each of them polling; nothing is built while none is connected. The group is this instance's, so two instances
// never send one dashboard two sets of figures.
public sealed partial class DashboardPusher(IServiceProvider services, IHubContext<ShopHub> hub, DashboardWatchers watchers, DemoSettings settings, ILogger<DashboardPusher> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(settings.DashboardPushInterval);
        var snapshot = services.GetRequiredService<DashboardSnapshot>();
        var group = hub.Clients.Group(ShopHub.DashboardsOf(settings.InstanceName));
        var failing = false;
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            if (!watchers.Any)
            {
                continue;
            }

            try
            {
                await group.SendAsync("dashboard", await snapshot.BuildAsync(stoppingToken), stoppingToken);
                failing = false;
            }
            catch (Exception error) when (error is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                // Logged once per outage, not every second; the next tick tries again.
                if (!failing)
                {
                    LogPushFailed(logger, error);
                }

                failing = true;
            }
        }
    }

    [LoggerMessage(EventId = 9102, Level = LogLevel.Warning, Message = "The dashboard's figures could not be pushed; retrying every tick.")]
    private static partial void LogPushFailed(ILogger logger, Exception error);
}
