using Microsoft.AspNetCore.SignalR;
using Npgsql;
using PgFirst.Testing;

namespace PgFirst.SignalR.Tests;

// Every send kind across two instances on real Kestrel ports with real clients, once on our PostgreSQL backplane and
// once on Microsoft's Redis backplane: any difference from the peer is a failing row.
[Trait("Category", "Pooler")]
public sealed class BackplaneBehaviourTests(PostgresServer postgres, RedisServer redis) : IAsyncLifetime
{
    private readonly SignalRCluster _cluster = new(postgres, redis);

    public static TheoryData<string> Backends => new(SignalRCluster.PostgreSql, SignalRCluster.Redis);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public ValueTask InitializeAsync() => _cluster.InitializeAsync();

    public ValueTask DisposeAsync() => _cluster.DisposeAsync();

    [Theory]
    [MemberData(nameof(Backends))]
    public async Task SendAll_ReachesClientsOfEveryInstance_AndExceptLeavesOutTheNamedConnections(string backend)
    {
        var (a, b) = await _cluster.StartTwoAsync(backend);
        var onA = await a.ConnectAsync();
        var onB = await b.ConnectAsync();
        var alsoOnB = await b.ConnectAsync();

        await a.Hub.Clients.All.SendAsync("Message", "to all", Ct);
        Assert.Equal("to all", await onA.NextAsync());
        Assert.Equal("to all", await onB.NextAsync());
        Assert.Equal("to all", await alsoOnB.NextAsync());

        // Both on the all channel, sent in order: a client that was left out gets the second and nothing before it.
        await b.Hub.Clients.AllExcept(onB.Id, onA.Id).SendAsync("Message", "not to you", Ct);
        await b.Hub.Clients.All.SendAsync("Message", "marker", Ct);
        Assert.Equal("marker", await onA.NextAsync());
        Assert.Equal("marker", await onB.NextAsync());
        Assert.Equal("not to you", await alsoOnB.NextAsync());
        Assert.Equal("marker", await alsoOnB.NextAsync());
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public async Task SendToConnections_OnAnotherInstance_ReachOnlyThem(string backend)
    {
        var (a, b) = await _cluster.StartTwoAsync(backend);
        var onA = await a.ConnectAsync();
        var first = await b.ConnectAsync();
        var second = await b.ConnectAsync();
        var third = await b.ConnectAsync();

        await a.Hub.Clients.Client(first.Id).SendAsync("Message", "just you", Ct);
        await a.Hub.Clients.Clients(second.Id, onA.Id).SendAsync("Message", "you two", Ct);

        Assert.Equal("just you", await first.NextAsync());
        Assert.Equal("you two", await second.NextAsync());
        Assert.Equal("you two", await onA.NextAsync());
        await third.AssertNothingWithinAsync(TimeSpan.FromMilliseconds(300));
        await first.AssertNothingWithinAsync(TimeSpan.Zero);
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public async Task GroupMembership_ChangedFromAnotherInstance_DecidesWhoGetsGroupSends(string backend)
    {
        var (a, b) = await _cluster.StartTwoAsync(backend);
        var member = await b.ConnectAsync();
        var witness = await b.ConnectAsync();
        var outsider = await b.ConnectAsync();
        var onA = await a.ConnectAsync();

        // Added by instance A, which does not have them: the instance that has them acknowledges.
        await a.Hub.Groups.AddToGroupAsync(member.Id, "shop", Ct);
        await a.Hub.Groups.AddToGroupAsync(witness.Id, "shop", Ct);
        await a.Hub.Groups.AddToGroupAsync(onA.Id, "shop", Ct);
        await a.Hub.Clients.Group("shop").SendAsync("Message", "group", Ct);
        Assert.Equal("group", await member.NextAsync());
        Assert.Equal("group", await witness.NextAsync());
        Assert.Equal("group", await onA.NextAsync());

        await a.Hub.Clients.GroupExcept("shop", witness.Id).SendAsync("Message", "group except", Ct);
        Assert.Equal("group except", await member.NextAsync());
        Assert.Equal("group except", await onA.NextAsync());

        await a.Hub.Groups.RemoveFromGroupAsync(member.Id, "shop", Ct);
        await a.Hub.Clients.Group("shop").SendAsync("Message", "after removal", Ct);
        Assert.Equal("after removal", await witness.NextAsync());
        await member.AssertNothingWithinAsync(TimeSpan.FromMilliseconds(300));
        await outsider.AssertNothingWithinAsync(TimeSpan.Zero);

        // Several groups: once per group named.
        await b.Hub.Groups.AddToGroupAsync(outsider.Id, "admins", Ct);
        await a.Hub.Clients.Groups("shop", "admins").SendAsync("Message", "groups", Ct);
        Assert.Equal("groups", await outsider.NextAsync());
        Assert.Equal("after removal", await onA.NextAsync());
        Assert.Equal("groups", await onA.NextAsync());
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public async Task SendToUsers_ReachEveryConnectionOfThemOnEveryInstance(string backend)
    {
        var (a, b) = await _cluster.StartTwoAsync(backend);
        var aliceOnA = await a.ConnectAsync("alice");
        var aliceOnB = await b.ConnectAsync("alice");
        var bob = await b.ConnectAsync("bob");
        var carol = await a.ConnectAsync("carol");

        await b.Hub.Clients.User("alice").SendAsync("Message", "hi alice", Ct);
        Assert.Equal("hi alice", await aliceOnA.NextAsync());
        Assert.Equal("hi alice", await aliceOnB.NextAsync());

        await a.Hub.Clients.Users("bob", "carol").SendAsync("Message", "hi both", Ct);
        Assert.Equal("hi both", await bob.NextAsync());
        Assert.Equal("hi both", await carol.NextAsync());
        await aliceOnA.AssertNothingWithinAsync(TimeSpan.FromMilliseconds(300));
        await aliceOnB.AssertNothingWithinAsync(TimeSpan.Zero);
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public async Task AMessageFarBeyondNotifysPayloadLimit_ArrivesWhole(string backend)
    {
        var (a, b) = await _cluster.StartTwoAsync(backend);
        var onB = await b.ConnectAsync();
        var big = string.Concat(Enumerable.Range(0, 20_000).Select(i => (char)('a' + (i % 26)))) + Guid.NewGuid().ToString("N");

        await a.Hub.Clients.All.SendAsync("Message", big, Ct);
        await a.Hub.Clients.All.SendAsync("Message", "small after big", Ct);

        Assert.Equal(big, await onB.NextAsync());
        Assert.Equal("small after big", await onB.NextAsync());
        if (backend == SignalRCluster.PostgreSql)
        {
            // It went through the table, read once by each instance, kept until the cleanup.
            await using var count = _cluster.Schema.DataSource.CreateCommand($"SELECT count(*) FROM \"{_cluster.Schema.Name}\".signalr_message WHERE expires_at > now()");
            Assert.Equal(1L, await count.ExecuteScalarAsync(Ct));
        }
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public async Task SendsOfOneSender_ArriveOnTheOtherInstanceInTheOrderSent(string backend)
    {
        var (a, b) = await _cluster.StartTwoAsync(backend);
        var onB = await b.ConnectAsync();

        for (var i = 0; i < 200; i++)
        {
            await a.Hub.Clients.All.SendAsync("Message", i.ToString(System.Globalization.CultureInfo.InvariantCulture), Ct);
        }

        for (var i = 0; i < 200; i++)
        {
            Assert.Equal(i.ToString(System.Globalization.CultureInfo.InvariantCulture), await onB.NextAsync());
        }
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public async Task ClientResults_FromAConnectionOnAnotherInstance_ComeBack_AndAnUnknownConnectionFails(string backend)
    {
        var (a, b) = await _cluster.StartTwoAsync(backend);
        var onB = await b.ConnectAsync();
        var onA = await a.ConnectAsync();

        Assert.Equal(5, await a.Hub.Clients.Client(onB.Id).InvokeAsync<int>("Add", 2, 3, Ct));
        Assert.Equal(9, await a.Hub.Clients.Client(onA.Id).InvokeAsync<int>("Add", 4, 5, Ct));

        // The client's own error comes back as a HubException, as it does on one instance.
        var failed = await Assert.ThrowsAsync<HubException>(() => a.Hub.Clients.Client(onB.Id).InvokeAsync<int>("Fail", Ct));
        Assert.Contains("client refused", failed.Message, StringComparison.Ordinal);

        await Assert.ThrowsAsync<IOException>(() => a.Hub.Clients.Client("no-such-connection").InvokeAsync<int>("Add", 1, 1, Ct));
    }

    [Fact]
    public async Task TheTableOfLargeMessages_IsEmptiedByTheCleanupOnceTheyExpire()
    {
        var (a, b) = await _cluster.StartTwoAsync(SignalRCluster.PostgreSql, o => o.LargeMessageRetention = TimeSpan.FromSeconds(1));
        var onB = await b.ConnectAsync();
        await a.Hub.Clients.All.SendAsync("Message", new string('x', 30_000), Ct);
        Assert.Equal(30_000, (await onB.NextAsync()).Length);

        await Task.Delay(TimeSpan.FromSeconds(1.2), Ct);
        await using var cleanup = _cluster.Schema.DataSource.CreateCommand($"SELECT \"{_cluster.Schema.Name}\".signalr_delete_expired(100)");
        Assert.Equal(1, await cleanup.ExecuteScalarAsync(Ct));
        await using var count = _cluster.Schema.DataSource.CreateCommand($"SELECT count(*) FROM \"{_cluster.Schema.Name}\".signalr_message");
        Assert.Equal(0L, await count.ExecuteScalarAsync(Ct));
    }

    [Fact]
    public async Task AGroupChangeForAConnectionNoInstanceHas_FailsAfterTheAckTimeout()
    {
        var (a, _) = await _cluster.StartTwoAsync(SignalRCluster.PostgreSql, o => o.AckTimeout = TimeSpan.FromMilliseconds(500));

        var error = await Assert.ThrowsAsync<TimeoutException>(() => a.Hub.Groups.AddToGroupAsync("no-such-connection", "shop", Ct));
        Assert.Contains("no-such-connection", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AKilledListenConnection_Reconnects_LosesAtMostWhatWasSentMeanwhile_AndNeverDuplicatesOrReorders()
    {
        var (a, b) = await _cluster.StartTwoAsync(SignalRCluster.PostgreSql);
        var onB = await b.ConnectAsync();
        var manager = b.Backplane;
        var pid = manager.ListenerProcessId;
        Assert.NotEqual(0, pid);

        for (var i = 0; i < 60; i++)
        {
            if (i == 30)
            {
                await using var kill = _cluster.Schema.DataSource.CreateCommand("SELECT pg_terminate_backend($1)");
                kill.Parameters.Add(new NpgsqlParameter<int> { TypedValue = pid });
                await kill.ExecuteScalarAsync(Ct);
            }

            await a.Hub.Clients.All.SendAsync("Message", i.ToString(System.Globalization.CultureInfo.InvariantCulture), Ct);
        }

        await QueueTestHost.WaitUntilAsync(() => manager.IsListening && manager.ListenerProcessId != pid, "instance B to LISTEN again on a new connection");
        await a.Hub.Clients.All.SendAsync("Message", "after reconnection", Ct);

        var received = new List<int>();
        while (await onB.NextAsync() is var text && text != "after reconnection")
        {
            received.Add(int.Parse(text, System.Globalization.CultureInfo.InvariantCulture));
        }

        // Notifications committed before the kill but not yet read by that connection are lost with it; what arrived is
        // in order, without duplicates, and the first messages (read long before the kill) are among it.
        Assert.Contains(0, received);
        Assert.Equal(received.Order(), received);
        Assert.Equal(received.Distinct().Count(), received.Count);
    }
}
