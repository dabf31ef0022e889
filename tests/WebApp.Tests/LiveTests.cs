using System.Net;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.SignalR.Client;
using PgFirst.Testing;

namespace WebApp.Tests;

/// <summary>
/// The demo's live updates over SignalR across two instances (two apps on one schema), with Microsoft's SignalR client:
/// on the PostgreSQL backplane and, in Redis mode, on Microsoft's Redis backplane.
/// </summary>
public class LiveTests(PostgresServer postgres, RedisServer redis) : PostgresTest(postgres)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);

    // Two instances of the demo, A and B, on this test's schema.
    private (WebApplicationFactory<Program> A, WebApplicationFactory<Program> B) TwoInstances(string? backend)
    {
        static Dictionary<string, string?> Instance(string name) => new()
        {
            ["Demo:InstanceName"] = name,
            ["Demo:DashboardPushInterval"] = "00:00:00.200",
        };

        return (DemoApp.Create(Server, redis, Schema, backend, Instance("A")), DemoApp.Create(Server, redis, Schema, backend, Instance("B")));
    }

    // A client connected the way a page is, through the app's in-memory server (long polling: TestServer has no sockets).
    private static async Task<(HubConnection Connection, Channel<(string Target, JsonElement Body)> Received)> ConnectAsync(WebApplicationFactory<Program> app)
    {
        var received = Channel.CreateUnbounded<(string, JsonElement)>();
        var connection = new HubConnectionBuilder()
            .WithUrl(new Uri(app.Server.BaseAddress, "/hubs/shop"), o =>
            {
                o.Transports = HttpTransportType.LongPolling;
                o.HttpMessageHandlerFactory = _ => app.Server.CreateHandler();
            })
            .Build();
        foreach (var target in new[] { "productChanged", "activity", "dashboard" })
        {
            connection.On<JsonElement>(target, body => received.Writer.TryWrite((target, body)));
        }

        await connection.StartAsync(TestContext.Current.CancellationToken);
        return (connection, received);
    }

    private static async Task<JsonElement> NextAsync(Channel<(string Target, JsonElement Body)> received, string target, Func<JsonElement, bool>? match = null)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(Wait);
        try
        {
            while (true)
            {
                var (name, body) = await received.Reader.ReadAsync(timeout.Token);
                if (name == target && (match is null || match(body)))
                {
                    return body;
                }
            }
        }
        catch (OperationCanceledException) when (!TestContext.Current.CancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"No '{target}' message arrived within {Wait.TotalSeconds:0} s.");
        }
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Redis")]
    public async Task AnEditOnOneInstance_ReachesAPageConnectedToTheOther(string? backend)
    {
        var (first, second) = TwoInstances(backend);
        await using var a = first;
        await using var b = second;
        using var editor = a.Client();
        using var visitor = b.Client();
        await visitor.GetPageAsync("/products/3");
        var (page, received) = await ConnectAsync(b);
        await using var _ = page;

        // Until the hub has registered the connection, a send can miss it: an edit is retried until one arrives.
        await editor.SignInAsync("alice");
        JsonElement change = default;
        for (var attempt = 0; change.ValueKind == JsonValueKind.Undefined; attempt++)
        {
            using var edited = await editor.PostFormAsync("/products/3", "/products/3/edit", ("name", $"Ethiopia Guji {attempt}"), ("priceCents", "1790"));
            Assert.Equal(HttpStatusCode.OK, edited.StatusCode);
            try
            {
                change = await NextAsync(received, "productChanged");
            }
            catch (TimeoutException) when (attempt < 2)
            {
            }
        }

        Assert.Equal(3, change.GetProperty("id").GetInt32());
        Assert.StartsWith("Ethiopia Guji", change.GetProperty("name").GetString(), StringComparison.Ordinal);
        Assert.Equal("€17.90", change.GetProperty("price").GetString());
        Assert.Equal("A", change.GetProperty("instance").GetString());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Redis")]
    public async Task TheDashboard_GetsItsInstancesFiguresPushed_AndActivityFromEveryInstance(string? backend)
    {
        var (first, second) = TwoInstances(backend);
        await using var a = first;
        await using var b = second;
        using var shopper = a.Client();
        b.Client().Dispose(); // starts B's server
        var (dashboard, received) = await ConnectAsync(b);
        await using var _ = dashboard;
        await dashboard.InvokeAsync("WatchDashboard", TestContext.Current.CancellationToken);

        // B's own figures, pushed without a request, and only B's: A pushes to its own dashboards, never to this one.
        for (var i = 0; i < 3; i++)
        {
            var figures = await NextAsync(received, "dashboard");
            Assert.Equal("B", figures.GetProperty("instance").GetString());
            Assert.Equal(JsonValueKind.Array, figures.GetProperty("queues").ValueKind);
        }

        // An order placed on A shows in B's activity, sent by A.
        await shopper.SignInAsync("carol");
        using var order = await shopper.PostJsonAsync("/api/orders", """{"items":[{"productId":1,"quantity":2}]}""");
        Assert.Equal(HttpStatusCode.Created, order.StatusCode);
        var orderId = JsonDocument.Parse(await DemoClient.BodyAsync(order)).RootElement.GetProperty("orderId").GetInt64();
        var activity = await NextAsync(received, "activity", m => m.GetProperty("text").GetString()!.Contains($"Order {orderId} ", StringComparison.Ordinal));
        Assert.Equal("A", activity.GetProperty("instance").GetString());
        Assert.Contains("carol", activity.GetProperty("text").GetString(), StringComparison.Ordinal);
    }
}
