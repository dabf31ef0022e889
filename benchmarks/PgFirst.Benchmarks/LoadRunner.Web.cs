using System.Diagnostics;
using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.OutputCaching;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using PgFirst.Benchmarks.Report;
using PgFirst.Core;
using PgFirst.SignalR;
using StackExchange.Redis;

namespace PgFirst.Benchmarks;

// What ASP.NET Core apps keep Redis for besides the four modules (issue 19): output caching and SignalR scale-out, each
// beside Microsoft's own Redis implementation.
internal static partial class LoadRunner
{
    internal const string OutputCacheGroup = "output-cache hit, 4 KiB page, through TestServer";
    internal const string OutputCacheKestrelGroup = "output-cache hit, 4 KiB page, through Kestrel and HttpClient";
    internal const string FanOutGroup = "SignalR fan-out to 100 connections on 2 instances, sent as fast as accepted";
    internal const string FanOutLatencyGroup = "SignalR fan-out to 100 connections on 2 instances, 1,000 messages/s";
    internal const string FanOutLightGroup = "SignalR fan-out to 100 connections on 2 instances, 100 messages/s";
    private const int CachedPages = 100;
    private const int FanOutConnections = 100;
    private const int FanOutSenders = 4;

    internal enum OutputStore
    {
        InMemory,
        PostgreSql,
        PostgreSqlNear,
        RedisTwin,
        StockRedis,
    }

    private static Scenario[] WebScenarios() =>
    [
        Load($"{OutputCacheGroup}: in-memory store (ASP.NET Core's default, one instance only)", () => Step.OutputCacheHitAsync(OutputStore.InMemory)),
        Load($"{OutputCacheGroup}: PgFirst.OutputCaching", () => Step.OutputCacheHitAsync(OutputStore.PostgreSql)),
        Load($"{OutputCacheGroup}: PgFirst.OutputCaching, Redis backend", () => Step.OutputCacheHitAsync(OutputStore.RedisTwin)),
        Load($"{OutputCacheGroup}: stock Redis output cache", () => Step.OutputCacheHitAsync(OutputStore.StockRedis)),
        Load($"{OutputCacheGroup}: PgFirst.OutputCaching, near cache", () => Step.OutputCacheHitAsync(OutputStore.PostgreSqlNear)),
        Load($"{OutputCacheKestrelGroup}: in-memory store (ASP.NET Core's default, one instance only)", () => Step.OutputCacheHitAsync(OutputStore.InMemory, kestrel: true)),
        Load($"{OutputCacheKestrelGroup}: PgFirst.OutputCaching", () => Step.OutputCacheHitAsync(OutputStore.PostgreSql, kestrel: true)),
        Load($"{OutputCacheKestrelGroup}: stock Redis output cache", () => Step.OutputCacheHitAsync(OutputStore.StockRedis, kestrel: true)),
        Batch($"{FanOutGroup}: PgFirst.SignalR", () => FanOutAsync(redis: false, FanOutGroup, rate: null)),
        Batch($"{FanOutGroup}: stock Redis backplane", () => FanOutAsync(redis: true, FanOutGroup, rate: null)),
        Batch($"{FanOutLatencyGroup}: PgFirst.SignalR", () => FanOutAsync(redis: false, FanOutLatencyGroup, rate: 1_000), medianByP50: true),
        Batch($"{FanOutLatencyGroup}: stock Redis backplane", () => FanOutAsync(redis: true, FanOutLatencyGroup, rate: 1_000), medianByP50: true),
        Batch($"{FanOutLightGroup}: PgFirst.SignalR", () => FanOutAsync(redis: false, FanOutLightGroup, rate: 100), medianByP50: true),
        Batch($"{FanOutLightGroup}: stock Redis backplane", () => FanOutAsync(redis: true, FanOutLightGroup, rate: 100), medianByP50: true),
    ];

    private static LoadTarget[] WebTargets =>
    [
        new("output-cache hit through TestServer ≥ 0.8 × Microsoft's Redis output cache at 8 callers", OutputCacheGroup, "PgFirst.OutputCaching", "stock Redis output cache", [8], 0.8, TargetKind.ThroughputAtLeast),
        new("output-cache hit with the near cache ≥ 1 × Microsoft's Redis output cache, 8 callers (proposed: the configuration for hot pages)", OutputCacheGroup, "PgFirst.OutputCaching, near cache", "stock Redis output cache", [8], 1.0, TargetKind.ThroughputAtLeast),
        new("output-cache hit through Kestrel ≥ 0.8 × Microsoft's Redis output cache at 8 callers", OutputCacheKestrelGroup, "PgFirst.OutputCaching", "stock Redis output cache", [8], 0.8, TargetKind.ThroughputAtLeast),
        new("SignalR fan-out deliveries/s ≥ 0.5 × Microsoft's Redis backplane", FanOutGroup, "PgFirst.SignalR", "stock Redis backplane", [FanOutConnections], 0.5, TargetKind.ThroughputAtLeast),
        new("SignalR send-to-receive p99 ≤ 20 ms at 1,000 messages/s to 100 connections", FanOutLatencyGroup, "PgFirst.SignalR", null, [FanOutConnections], 20_000, TargetKind.AbsoluteP99AtMost),
    ];

    private static readonly byte[] Page4K = System.Text.Encoding.UTF8.GetBytes(new string('x', 4096));

    private sealed partial class Step
    {
        // One app on TestServer with the store under test; 100 pages cached before the clock starts; each operation a
        // GET of one of them, answered from the store (checked: every response of the warm pass carries Age).
        // Through Kestrel, the same on a loopback port with HttpClient (one connection per caller): the server's HTTP work
        // and the client's are part of every operation, as they are of a real request.
        public static async Task<Step> OutputCacheHitAsync(OutputStore store, bool kestrel = false)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            if (kestrel)
            {
                builder.WebHost.UseUrls("http://127.0.0.1:0");
            }
            else
            {
                builder.WebHost.UseTestServer();
            }

            ConnectionMultiplexer? redis = null;
            // Locking off: with it, the middleware lets concurrent requests for one key share one store lookup, so at
            // 32 callers over 100 pages a store did fewer reads than requests. A hit is one store read per request.
            Action<OutputCacheOptions> configure = o => o.AddBasePolicy(p => p.Expire(TimeSpan.FromHours(1)).Tag("pages").SetLocking(false));
            switch (store)
            {
                case OutputStore.InMemory:
                    builder.Services.AddOutputCache(configure);
                    break;
                case OutputStore.PostgreSql:
                case OutputStore.PostgreSqlNear:
                case OutputStore.RedisTwin:
                    builder.Services.AddSingleton(_ => Npgsql.NpgsqlDataSource.Create(BenchmarkServers.Postgres));
                    var pgFirst = builder.Services.AddPgFirst(o =>
                    {
                        o.SchemaName = Schema;
                        o.ApplySchemaOnStartup = false;
                        o.Maintenance.Enabled = false;
                        o.Backend = store == OutputStore.RedisTwin ? PgFirstBackend.Redis : PgFirstBackend.PostgreSql;
                    });
                    if (store == OutputStore.RedisTwin)
                    {
                        pgFirst.AddRedis(o =>
                        {
                            o.Configuration = BenchmarkServers.Redis;
                            o.KeyPrefix = RedisPrefix + "oc-twin:";
                        });
                    }

                    builder.Services.AddPgCache(o =>
                    {
                        if (store == OutputStore.PostgreSqlNear)
                        {
                            o.NearCache.Enabled = true;
                        }
                    });
                    builder.Services.AddPgOutputCache(configure);
                    break;
                case OutputStore.StockRedis:
                    redis = await ConnectionMultiplexer.ConnectAsync(BenchmarkServers.Redis);
                    var connection = redis;
                    builder.Services.AddStackExchangeRedisOutputCache(o =>
                    {
                        o.ConnectionMultiplexerFactory = () => Task.FromResult<IConnectionMultiplexer>(connection);
                        o.InstanceName = RedisPrefix + "oc-stock:";
                    });
                    builder.Services.AddOutputCache(configure);
                    break;
            }

            var app = builder.Build();
            app.UseOutputCache();
            app.MapGet("/page/{n:int}", (int n, HttpContext context) =>
            {
                context.Response.ContentType = "text/html; charset=utf-8";
                return context.Response.Body.WriteAsync(Page4K).AsTask();
            });
            await app.StartAsync();
            var client = kestrel
                ? new HttpClient { BaseAddress = new Uri(app.Urls.First()) }
                : app.GetTestClient();
            if (store == OutputStore.PostgreSqlNear)
            {
                await ((PgCache.PgDistributedCache)app.Services.GetRequiredService<PgCache.IPgDistributedCache>()).NearCache!.WaitUntilServingAsync().WaitAsync(TimeSpan.FromSeconds(30));
            }

            var store2 = app.Services.GetRequiredService<IOutputCacheStore>();
            await store2.EvictByTagAsync("pages", CancellationToken.None);
            for (var n = 0; n < CachedPages; n++)
            {
                (await client.GetAsync($"/page/{n}")).Dispose();
            }

            for (var n = 0; n < CachedPages; n++)
            {
                using var cached = await client.GetAsync($"/page/{n}");
                if (cached.Headers.Age is null || (await cached.Content.ReadAsByteArrayAsync()).Length != Page4K.Length)
                {
                    throw new InvalidOperationException($"{store}: page {n} was not served from the output cache after the warm pass.");
                }
            }

            return new Step(
                async i =>
                {
                    using var response = await client.GetAsync($"/page/{i % CachedPages}", HttpCompletionOption.ResponseContentRead);
                    if (response.StatusCode != HttpStatusCode.OK)
                    {
                        throw new InvalidOperationException($"GET /page/{i % CachedPages}: {(int)response.StatusCode}");
                    }
                },
                async () =>
                {
                    client.Dispose();
                    await app.StopAsync();
                    await app.DisposeAsync();
                    if (redis is not null)
                    {
                        await redis.DisposeAsync();
                    }
                });
        }
    }

    private sealed class FanOutHub : Hub
    {
        public string Ping() => Context.ConnectionId;
    }

    private static async Task<WebApplication> FanOutHostAsync(bool redis)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var signalR = builder.Services.AddSignalR();
        if (redis)
        {
            signalR.AddStackExchangeRedis(BenchmarkServers.Redis, o => o.Configuration.ChannelPrefix = RedisChannel.Literal(RedisPrefix + "signalr:"));
        }
        else
        {
            builder.Services.AddSingleton(_ => Npgsql.NpgsqlDataSource.Create(BenchmarkServers.Postgres));
            builder.Services.AddPgFirst(o =>
            {
                o.SchemaName = Schema;
                o.ApplySchemaOnStartup = false;
                o.Maintenance.Enabled = false;
            });
            signalR.AddPgFirst();
        }

        var app = builder.Build();
        app.MapHub<FanOutHub>("/hub");
        await app.StartAsync();
        if (!redis)
        {
            var backplane = (PgHubLifetimeManager<FanOutHub>)app.Services.GetRequiredService<HubLifetimeManager<FanOutHub>>();
            await backplane.WaitUntilListeningAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(15));
        }

        return app;
    }

    // Two instances, 50 connections on each (Microsoft's client over WebSockets); instance A's hub context sends to all.
    // Each message carries its send timestamp; every delivery to every connection is one latency sample. Unpaced, four
    // senders each await their sends back to back (deliveries/s is the figure); paced, two senders follow a schedule of
    // `rate` messages/s between them (latency is the figure, and how many deliveries kept up).
    private static async Task<Measurement> FanOutAsync(bool redis, string group, int? rate)
    {
        var paced = rate is not null;
        var a = await FanOutHostAsync(redis);
        var b = await FanOutHostAsync(redis);
        var connections = new List<HubConnection>();
        var samples = new List<double>[FanOutConnections];
        var from = long.MaxValue; // set once every connection is up; only messages sent in [from, to) are samples
        var to = long.MaxValue;
        try
        {
            var urls = new[] { a.Urls.First(), b.Urls.First() };
            for (var c = 0; c < FanOutConnections; c++)
            {
                var mine = samples[c] = new List<double>(16_384);
                var connection = new HubConnectionBuilder()
                    .WithUrl(urls[c % 2] + "/hub", o => o.Transports = HttpTransportType.WebSockets)
                    .Build();
                connection.On<long>("m", sent =>
                {
                    if (sent >= Volatile.Read(ref from) && sent < Volatile.Read(ref to))
                    {
                        mine.Add(Stopwatch.GetElapsedTime(sent).TotalMicroseconds);
                    }
                });
                await connection.StartAsync();
                await connection.InvokeAsync<string>("Ping"); // registered on its instance before anything is sent
                connections.Add(connection);
            }

            var hub = a.Services.GetRequiredService<IHubContext<FanOutHub>>();
            var start = Stopwatch.GetTimestamp() + (long)(StepWarmUp.TotalSeconds * Stopwatch.Frequency);
            Volatile.Write(ref to, start + (long)(StepDuration.TotalSeconds * Stopwatch.Frequency));
            Volatile.Write(ref from, start);
            long sentInWindow = 0;
            var senders = paced ? 2 : FanOutSenders;
            var interval = (long)(Stopwatch.Frequency * senders / (double)(rate ?? 1));
            var tasks = Enumerable.Range(0, senders).Select(s => Task.Run(async () =>
            {
                var next = Stopwatch.GetTimestamp() + (s * interval / senders);
                while (true)
                {
                    var now = Stopwatch.GetTimestamp();
                    if (now >= Volatile.Read(ref to))
                    {
                        break;
                    }

                    if (now >= start)
                    {
                        Interlocked.Increment(ref sentInWindow);
                    }

                    await hub.Clients.All.SendAsync("m", now);
                    if (paced)
                    {
                        next += interval;
                        var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), next);
                        if (wait > TimeSpan.Zero)
                        {
                            await Task.Delay(wait);
                        }
                    }
                }
            })).ToArray();
            await Task.WhenAll(tasks);
            await Task.Delay(1_000); // the last sends' deliveries; a delivery later than this is counted as lost
            Volatile.Write(ref from, long.MaxValue); // no handler adds a sample from here on
            await Task.Delay(50);
            // Every handler has seen `from` move past its samples by now, so the lists no longer change.
            var all = samples.SelectMany(s => s).Order().ToArray();

            if (all.Length == 0)
            {
                throw new InvalidOperationException("No message reached a connection.");
            }

            var expected = Interlocked.Read(ref sentInWindow) * FanOutConnections;
            Findings[$"{group}: {(redis ? "stock Redis backplane" : "PgFirst.SignalR")}"] = Format(
                $"{Interlocked.Read(ref sentInWindow):N0} messages sent in {StepDuration.TotalSeconds:F0} s, {all.Length:N0} of {expected:N0} deliveries seen ({100.0 * all.Length / Math.Max(1, expected):F1} %)");
            return new(FanOutConnections, all.Length / StepDuration.TotalSeconds, PercentileOf(all, 0.50), PercentileOf(all, 0.95), PercentileOf(all, 0.99));
        }
        finally
        {
            foreach (var connection in connections)
            {
                await connection.DisposeAsync();
            }

            await a.StopAsync();
            await b.StopAsync();
            await a.DisposeAsync();
            await b.DisposeAsync();
        }
    }
}
