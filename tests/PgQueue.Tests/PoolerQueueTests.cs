using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using PgFirst.Testing;

namespace PgQueue.Tests;

// The queue behind a transaction pooler: LISTEN needs a server connection of its own, which the pooler does not give.
[Trait("Category", "Pooler")]
public sealed class PoolerQueueTests(PostgresServer server) : IAsyncLifetime
{
    private readonly PostgresSchema _schema = new(server);
    private readonly List<IHost> _hosts = [];

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync() => await _schema.ApplyAsync([PostgresJobQueueBackend.SchemaModule], Ct);

    public async ValueTask DisposeAsync()
    {
        foreach (var host in _hosts)
        {
            await host.StopAsync(CancellationToken.None);
            host.Dispose();
        }

        await _schema.DisposeAsync();
    }

    [Fact]
    public async Task TransactionMode_WithoutListenConnection_WorkersPoll_AndNothingListens()
    {
        var pooled = _schema.Track(NpgsqlDataSource.Create(server.PoolerConnectionString));
        var host = await StartAsync(pooled, listen: null);

        Assert.False(host.Services.GetRequiredService<IJobQueueBackend>().CanListen);
        await host.Services.GetRequiredService<IJobQueue>().EnqueueAsync(new Work("polled"), cancellationToken: Ct);
        var journal = host.Services.GetRequiredService<Journal>();
        await QueueTestHost.WaitUntilAsync(() => journal.Count >= 1, "the polling worker handles the job");
        Assert.Equal(0, await ListenersAsync());
    }

    [Fact]
    public async Task TransactionMode_WithListenConnection_ListensPastThePooler()
    {
        var pooled = _schema.Track(NpgsqlDataSource.Create(server.PoolerConnectionString));
        var host = await StartAsync(pooled, listen: server.DirectConnectionString);

        Assert.True(host.Services.GetRequiredService<IJobQueueBackend>().CanListen);
        await QueueTestHost.WaitUntilAsync(async () => await ListenersAsync() == 1, "one connection LISTENs on the schema's channel");
        await host.Services.GetRequiredService<IJobQueue>().EnqueueAsync(new Work("notified"), cancellationToken: Ct);
        var journal = host.Services.GetRequiredService<Journal>();
        await QueueTestHost.WaitUntilAsync(() => journal.Count >= 1, "the worker handles the job");
    }

    [Fact]
    public async Task TransactionMode_ListenAsyncWithoutListenConnection_ThrowsNamingTheSetting()
    {
        var options = _schema.Options;
        options.Pooler = PgPoolerMode.Transaction;
        options.ListenConnectionString = null;
        var backend = new PostgresJobQueueBackend(_schema.Track(NpgsqlDataSource.Create(server.PoolerConnectionString)), options);

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => backend.ListenAsync(_ => { }, () => { }, Ct));

        Assert.Contains("PgFirst:ListenConnectionString", error.Message, StringComparison.Ordinal);
    }

    private async Task<IHost> StartAsync(NpgsqlDataSource dataSource, string? listen)
    {
        var host = QueueTestHost.Build(
            s =>
            {
                s.AddSingleton(dataSource);
                s.AddPgFirst(o =>
                {
                    o.SchemaName = _schema.Name;
                    o.Pooler = PgPoolerMode.Transaction;
                    o.ListenConnectionString = listen;
                });
            },
            handlers: q => q.AddHandler<Work, RecordingHandler>());
        _hosts.Add(host);
        await host.StartAsync(Ct);
        return host;
    }

    // Sessions of the direct server whose last statement was a LISTEN on this schema's channel.
    private async Task<long> ListenersAsync()
    {
        await using var dataSource = NpgsqlDataSource.Create(server.DirectConnectionString);
        await using var command = dataSource.CreateCommand("SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%' AND query LIKE '%' || $1 || '%'");
        command.Parameters.Add(new NpgsqlParameter { Value = _schema.Name });
        return (long)(await command.ExecuteScalarAsync(Ct))!;
    }
}
