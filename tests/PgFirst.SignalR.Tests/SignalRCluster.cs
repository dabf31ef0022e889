using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PgFirst.Testing;
using StackExchange.Redis;

namespace PgFirst.SignalR.Tests;

/// <summary>The hub every test instance maps at <c>/hub</c>.</summary>
public sealed class TestHub : Hub
{
    /// <summary>Answers with the caller's connection id: a hub method runs only once the connection is registered.</summary>
    public string Ping() => Context.ConnectionId;
}

/// <summary>The user of a connection: the <c>user</c> query parameter, as an app would take it from a claim.</summary>
internal sealed class QueryUserIdProvider : IUserIdProvider
{
    public string? GetUserId(HubConnectionContext connection) => connection.GetHttpContext()?.Request.Query["user"].FirstOrDefault();
}

/// <summary>
/// App instances of one test on real Kestrel ports, on the PostgreSQL backplane (one schema of the test's own) or on
/// Microsoft's Redis backplane (a channel prefix of the test's own), and their real SignalR clients.
/// </summary>
internal sealed class SignalRCluster(PostgresServer postgres, RedisServer redis) : IAsyncDisposable
{
    public const string PostgreSql = "postgresql";
    public const string Redis = "redis";

    private readonly List<Instance> _instances = [];
    private readonly string _redisPrefix = RedisServer.NewKeyPrefix();

    public PostgresSchema Schema { get; } = new(postgres);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync() => await Schema.ApplyAsync([PgSignalRSchema.Module], Ct);

    public async Task<(Instance A, Instance B)> StartTwoAsync(string backend, Action<PgSignalROptions>? configure = null) =>
        (await StartAsync(backend, configure), await StartAsync(backend, configure));

    public Task<Instance> StartAsync(string backend, Action<PgSignalROptions>? configure = null) =>
        StartAsync(backend, configure, services =>
        {
            services.AddSingleton(Schema.Track(postgres.CreateDataSource()));
            services.AddPgFirst(Schema.ConfigurePgFirst);
        });

    /// <summary>An instance on another server (a throwaway cluster): its own data source, on <paramref name="schemaName"/>.</summary>
    public Task<Instance> StartOnAsync(string connectionString, string schemaName, Action<PgSignalROptions>? configure = null) =>
        StartAsync(PostgreSql, configure, services =>
        {
            services.AddSingleton(Schema.Track(Npgsql.NpgsqlDataSource.Create(connectionString)));
            services.AddPgFirst(o => o.SchemaName = schemaName);
        });

    private async Task<Instance> StartAsync(string backend, Action<PgSignalROptions>? configure, Action<IServiceCollection> postgresServices)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<IUserIdProvider, QueryUserIdProvider>();
        var signalR = builder.Services.AddSignalR(o => o.EnableDetailedErrors = true);
        if (backend == PostgreSql)
        {
            postgresServices(builder.Services);
            signalR.AddPgFirst(configure);
        }
        else
        {
            signalR.AddStackExchangeRedis(redis.Configuration, o => o.Configuration.ChannelPrefix = RedisChannel.Literal(_redisPrefix));
        }

        var app = builder.Build();
        app.MapHub<TestHub>("/hub");
        await app.StartAsync(Ct);
        var url = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var instance = new Instance(app, url);
        _instances.Add(instance);
        if (backend == PostgreSql)
        {
            await instance.Backplane.WaitUntilListeningAsync(Ct).WaitAsync(TimeSpan.FromSeconds(15), Ct);
        }

        return instance;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var instance in Enumerable.Reverse(_instances))
        {
            await instance.DisposeAsync();
        }

        await Schema.DisposeAsync();
        await redis.DeleteKeysAsync(_redisPrefix);
    }

    internal sealed class Instance(WebApplication app, string url) : IAsyncDisposable
    {
        private readonly List<Client> _clients = [];

        public IHubContext<TestHub> Hub => app.Services.GetRequiredService<IHubContext<TestHub>>();

        public PgHubLifetimeManager<TestHub> Backplane => (PgHubLifetimeManager<TestHub>)app.Services.GetRequiredService<HubLifetimeManager<TestHub>>();

        public IServiceProvider Services => app.Services;

        public async Task<Client> ConnectAsync(string? user = null)
        {
            var connection = new HubConnectionBuilder()
                .WithUrl(url + "/hub" + (user is null ? "" : "?user=" + Uri.EscapeDataString(user)), o => o.Transports = HttpTransportType.WebSockets)
                .Build();
            var client = new Client(connection);
            await connection.StartAsync(Ct);
            _clients.Add(client);

            // StartAsync returns at the handshake, which the server sends before the lifetime manager has registered
            // the connection: a group change from another instance in that gap finds no owner (the Redis backplane
            // then waits 30 s for an ack). A hub call is served only after registration.
            Assert.Equal(client.Id, await connection.InvokeAsync<string>("Ping", Ct));
            return client;
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var client in _clients)
            {
                await client.DisposeAsync();
            }

            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
        }
    }

    /// <summary>A real client: what it receives on <c>Message</c>, in order; it answers <c>Add</c> and refuses <c>Fail</c>.</summary>
    internal sealed class Client : IAsyncDisposable
    {
        private readonly HubConnection _connection;
        private readonly Channel<string> _received = Channel.CreateUnbounded<string>();

        public Client(HubConnection connection)
        {
            _connection = connection;
            connection.On<string>("Message", m => _received.Writer.TryWrite(m));
            connection.On<int, int, int>("Add", (x, y) => x + y);
            connection.On<int>("Fail", new Func<int>(() => throw new InvalidOperationException("client refused")));
        }

        public string Id => _connection.ConnectionId ?? throw new InvalidOperationException("Not connected.");

        public async Task<string> NextAsync()
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(15));
            try
            {
                return await _received.Reader.ReadAsync(timeout.Token);
            }
            catch (OperationCanceledException) when (!Ct.IsCancellationRequested)
            {
                throw new TimeoutException($"Connection {_connection.ConnectionId} received nothing within 15 s.");
            }
        }

        /// <summary>Asserts nothing arrived, after waiting <paramref name="grace"/> for anything in flight.</summary>
        public async Task AssertNothingWithinAsync(TimeSpan grace)
        {
            if (grace > TimeSpan.Zero)
            {
                await Task.Delay(grace, Ct);
            }

            Assert.False(_received.Reader.TryRead(out var unexpected), $"Connection {_connection.ConnectionId} received '{unexpected}'.");
        }

        public ValueTask DisposeAsync() => _connection.DisposeAsync();
    }
}
