using System.Security.Cryptography;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using PgFirst.Testing;
using PgSessions;
using StackExchange.Redis;

namespace PgFirst.Redis.Tests;

// Redis-only behaviour of the session backend: the key layout, the TTLs that let Redis clean up on its own, index
// pruning, the script cache fallback, errors and the wiring.
[Collection(FlushesScriptCache.Name)]
public class RedisSessionBackendTests(RedisServer server) : IAsyncLifetime
{
    private static readonly DateTimeOffset Start = new(2026, 11, 23, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Margin = TimeSpan.FromMinutes(1);

    private readonly string _prefix = RedisServer.NewKeyPrefix();

    private static CancellationToken CancellationToken => TestContext.Current.CancellationToken;

    private IDatabase Db => server.Connection.GetDatabase();

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public async ValueTask DisposeAsync() => await server.DeleteKeysAsync(_prefix);

    private RedisSessionBackend Create(IConnectionMultiplexer? connection = null) =>
        new(connection ?? server.Connection, new PgFirstRedisOptions { KeyPrefix = _prefix });

    private static PgSessionRecord Session(
        string? userId = null,
        string tenantId = "default",
        TimeSpan? idle = null,
        DateTimeOffset? absoluteExpiresAt = null) => new()
    {
        KeyHash = RandomNumberGenerator.GetBytes(32),
        TenantId = tenantId,
        SessionId = Guid.NewGuid(),
        UserId = userId,
        Data = [1, 2, 3],
        CreatedAt = Start,
        LastSeenAt = Start,
        IdleTimeout = idle ?? TimeSpan.FromMinutes(20),
        AbsoluteExpiresAt = absoluteExpiresAt ?? Start.AddHours(8),
        ClientIp = "192.0.2.1",
        UserAgent = "agent",
    };

    private static PgSessionUpdate Write(
        PgSessionRecord session,
        long expectedVersion,
        DateTimeOffset now,
        string? userId,
        byte[]? newKeyHash = null,
        TimeSpan? idle = null) => new()
    {
        KeyHash = session.KeyHash,
        NewKeyHash = newKeyHash ?? session.KeyHash,
        TenantId = session.TenantId,
        ExpectedVersion = expectedVersion,
        Data = [4],
        UserId = userId,
        IdleTimeout = idle ?? session.IdleTimeout,
        AbsoluteExpiresAt = session.AbsoluteExpiresAt,
        Now = now,
    };

    private string Scope(string tenant = "default") => $"{_prefix}s:{tenant.Length}:{tenant}:";

    private string SessionKey(byte[] keyHash, string tenant = "default") => Scope(tenant) + "k:" + Convert.ToHexStringLower(keyHash);

    private string IdKey(Guid sessionId, string tenant = "default") => Scope(tenant) + "i:" + sessionId.ToString("N");

    private string UserKey(string userId, string tenant = "default") => Scope(tenant) + "u:" + userId;

    private static long Microseconds(DateTimeOffset at) => (at - DateTimeOffset.UnixEpoch).Ticks / TimeSpan.TicksPerMicrosecond;

    private async Task<TimeSpan> TtlAsync(string key) => (await Db.KeyTimeToLiveAsync(key)) ?? throw new InvalidOperationException($"{key} has no TTL.");

    // A TTL set a moment ago: at most the expected one, and not much less.
    private async Task AssertTtlAsync(TimeSpan expected, string key) =>
        Assert.InRange(await TtlAsync(key), expected - TimeSpan.FromSeconds(30), expected);

    [Fact]
    public async Task InsertAsync_WritesOneHashAndTwoIndexesInTheTenantsScope()
    {
        var session = Session(userId: "u:1", tenantId: "a:b");

        Assert.True(await Create().InsertAsync(session, CancellationToken));

        var member = Convert.ToHexStringLower(session.KeyHash);
        var hash = (await Db.HashGetAllAsync(SessionKey(session.KeyHash, "a:b"))).ToDictionary(e => (string)e.Name!, e => e.Value);
        Assert.Equal(["abs", "created", "data", "id", "idle", "ip", "seen", "ua", "user", "v"], hash.Keys.Order());
        Assert.Equal(session.SessionId.ToString("N"), (string?)hash["id"]);
        Assert.Equal("u:1", (string?)hash["user"]);
        Assert.Equal(1, (long)hash["v"]);
        Assert.Equal([1, 2, 3], (byte[]?)hash["data"]);
        Assert.Equal(Microseconds(Start), (long)hash["created"]);
        Assert.Equal(Microseconds(Start), (long)hash["seen"]);
        Assert.Equal(20L * 60 * 1_000_000, (long)hash["idle"]);
        Assert.Equal(Microseconds(Start.AddHours(8)), (long)hash["abs"]);
        Assert.Equal("192.0.2.1", (string?)hash["ip"]);
        Assert.Equal("agent", (string?)hash["ua"]);
        Assert.Equal(member, (string?)await Db.StringGetAsync(IdKey(session.SessionId, "a:b")));
        Assert.Equal([member], (await Db.SetMembersAsync(UserKey("u:1", "a:b"))).Select(m => (string?)m));
        var redis = server.Connection.GetServer(server.Connection.GetEndPoints()[0]);
        Assert.Equal(3, await redis.KeysAsync(pattern: _prefix + "*").CountAsync(CancellationToken));
    }

    [Fact]
    public async Task InsertAsync_EveryKey_ExpiresAfterTheSessionPlusAMargin()
    {
        var backend = Create();
        var session = Session(userId: "alice");
        var capped = Session(userId: "bob", absoluteExpiresAt: Start.AddMinutes(5));

        await backend.InsertAsync(session, CancellationToken);
        await backend.InsertAsync(capped, CancellationToken);

        await AssertTtlAsync(TimeSpan.FromMinutes(20) + Margin, SessionKey(session.KeyHash));
        await AssertTtlAsync(TimeSpan.FromMinutes(20) + Margin, IdKey(session.SessionId));
        await AssertTtlAsync(TimeSpan.FromMinutes(20) + Margin, UserKey("alice"));
        await AssertTtlAsync(TimeSpan.FromMinutes(5) + Margin, SessionKey(capped.KeyHash));
        await AssertTtlAsync(TimeSpan.FromMinutes(5) + Margin, IdKey(capped.SessionId));
        await AssertTtlAsync(TimeSpan.FromMinutes(5) + Margin, UserKey("bob"));
    }

    [Fact]
    public async Task LoadAsync_Touch_RefreshesTheTtls_AndALoadWithoutTouchDoesNot()
    {
        var backend = Create();
        var session = Session(userId: "alice");
        await backend.InsertAsync(session, CancellationToken);
        foreach (var key in new[] { SessionKey(session.KeyHash), IdKey(session.SessionId), UserKey("alice") })
        {
            await Db.KeyExpireAsync(key, TimeSpan.FromSeconds(30));
        }

        await backend.LoadAsync(new PgSessionLoadRequest(session.KeyHash, "default", Start.AddMinutes(1), TimeSpan.FromMinutes(5)), CancellationToken);
        Assert.True(await TtlAsync(SessionKey(session.KeyHash)) <= TimeSpan.FromSeconds(30));

        backend.Load(new PgSessionLoadRequest(session.KeyHash, "default", Start.AddMinutes(10), TimeSpan.FromMinutes(5)));

        await AssertTtlAsync(TimeSpan.FromMinutes(20) + Margin, SessionKey(session.KeyHash));
        await AssertTtlAsync(TimeSpan.FromMinutes(20) + Margin, IdKey(session.SessionId));
        await AssertTtlAsync(TimeSpan.FromMinutes(20) + Margin, UserKey("alice"));
    }

    [Fact]
    public async Task UpdateAsync_LongerIdleTimeout_ExtendsTheTtls_AndTheUserSetKeepsItsLongestMember()
    {
        var backend = Create();
        var first = Session(userId: "alice");
        var second = Session(userId: "alice");
        await backend.InsertAsync(first, CancellationToken);
        await backend.InsertAsync(second, CancellationToken);

        Assert.Equal(2, await backend.UpdateAsync(Write(first, 1, Start.AddMinutes(1), "alice", idle: TimeSpan.FromHours(2)), CancellationToken));
        Assert.Equal(2, await backend.UpdateAsync(Write(second, 1, Start.AddMinutes(1), "alice", idle: TimeSpan.FromMinutes(10)), CancellationToken));

        await AssertTtlAsync(TimeSpan.FromHours(2) + Margin, SessionKey(first.KeyHash));
        await AssertTtlAsync(TimeSpan.FromHours(2) + Margin, IdKey(first.SessionId));
        await AssertTtlAsync(TimeSpan.FromMinutes(10) + Margin, SessionKey(second.KeyHash));
        await AssertTtlAsync(TimeSpan.FromHours(2) + Margin, UserKey("alice"));
    }

    [Fact]
    public async Task UpdateAsync_NewKeyHashAndUser_MovesTheHashAndReindexesIt()
    {
        var backend = Create();
        var session = Session(userId: "alice");
        await backend.InsertAsync(session, CancellationToken);
        var newKeyHash = RandomNumberGenerator.GetBytes(32);

        Assert.Equal(2, await backend.UpdateAsync(Write(session, 1, Start.AddMinutes(1), "bob", newKeyHash), CancellationToken));

        var member = Convert.ToHexStringLower(newKeyHash);
        Assert.False(await Db.KeyExistsAsync(SessionKey(session.KeyHash)));
        Assert.Equal(session.SessionId.ToString("N"), (string?)await Db.HashGetAsync(SessionKey(newKeyHash), "id"));
        Assert.Equal(member, (string?)await Db.StringGetAsync(IdKey(session.SessionId)));
        Assert.False(await Db.KeyExistsAsync(UserKey("alice")));
        Assert.Equal([member], (await Db.SetMembersAsync(UserKey("bob"))).Select(m => (string?)m));
        await AssertTtlAsync(TimeSpan.FromMinutes(20) + Margin, SessionKey(newKeyHash));
    }

    [Fact]
    public async Task UpdateAsync_NewKeyHashHeldByALiveSession_ThrowsAndChangesNothing()
    {
        var backend = Create();
        var session = Session();
        var other = Session();
        await backend.InsertAsync(session, CancellationToken);
        await backend.InsertAsync(other, CancellationToken);

        await Assert.ThrowsAsync<RedisServerException>(async () =>
            await backend.UpdateAsync(Write(session, 1, Start.AddMinutes(1), null, other.KeyHash), CancellationToken));

        Assert.Equal(session.SessionId, backend.Load(new(session.KeyHash, "default", Start.AddMinutes(1), TimeSpan.FromDays(1)))?.SessionId);
        Assert.Equal(other.SessionId, backend.Load(new(other.KeyHash, "default", Start.AddMinutes(1), TimeSpan.FromDays(1)))?.SessionId);
    }

    [Fact]
    public async Task ListAsync_SessionDroppedByRedis_IsPrunedFromTheUserSet()
    {
        var backend = Create();
        var dropped = Session(userId: "alice");
        var kept = Session(userId: "alice");
        await backend.InsertAsync(dropped, CancellationToken);
        await backend.InsertAsync(kept, CancellationToken);
        await Db.KeyDeleteAsync(SessionKey(dropped.KeyHash));

        var sessions = await backend.ListAsync("default", "alice", Start, CancellationToken);

        Assert.Equal([kept.SessionId], sessions.Select(s => s.SessionId));
        Assert.Equal([Convert.ToHexStringLower(kept.KeyHash)], (await Db.SetMembersAsync(UserKey("alice"))).Select(m => (string?)m));
    }

    [Fact]
    public async Task LoadAndUpdate_ScriptFlushed_FallBackToTheScriptsText()
    {
        var backend = Create();
        var session = Session();
        await backend.InsertAsync(session, CancellationToken);

        await Db.ExecuteAsync("SCRIPT", "FLUSH");
        Assert.NotNull(backend.Load(new(session.KeyHash, "default", Start, TimeSpan.Zero)));
        await Db.ExecuteAsync("SCRIPT", "FLUSH");
        Assert.NotNull(await backend.LoadAsync(new(session.KeyHash, "default", Start, TimeSpan.Zero), CancellationToken));
        await Db.ExecuteAsync("SCRIPT", "FLUSH");
        Assert.Equal(2, await backend.UpdateAsync(Write(session, 1, Start, null), CancellationToken));
    }

    [Fact]
    public async Task Operations_InvalidKeyHashOrTenant_ThrowArgumentException()
    {
        var backend = Create();
        var session = Session();
        var shortHash = new PgSessionLoadRequest(new byte[31], "default", Start, TimeSpan.Zero);

        await Assert.ThrowsAsync<ArgumentException>(async () => await backend.LoadAsync(shortHash, CancellationToken));
        Assert.Throws<ArgumentException>(() => backend.Load(new(session.KeyHash, "bad tenant", Start, TimeSpan.Zero)));
        await Assert.ThrowsAsync<ArgumentException>(async () => await backend.InsertAsync(Session(tenantId: "a b"), CancellationToken));
        await Assert.ThrowsAsync<ArgumentException>(async () => await backend.UpdateAsync(Write(session, 1, Start, null, new byte[16]), CancellationToken));
        await Assert.ThrowsAsync<ArgumentException>(async () => await backend.ListAsync("", "alice", Start, CancellationToken));
        await Assert.ThrowsAsync<ArgumentNullException>(async () => await backend.RevokeAllAsync("default", null!, null, CancellationToken));
    }

    [Fact]
    public async Task InsertAsync_Canceled_ThrowsAndWritesNothing()
    {
        using var canceled = new CancellationTokenSource();
        await canceled.CancelAsync();
        var session = Session();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await Create().InsertAsync(session, canceled.Token));

        Assert.False(await Db.KeyExistsAsync(SessionKey(session.KeyHash)));
    }

    [Fact]
    public async Task Operations_RedisDown_ThrowTheClientsExceptions()
    {
        var configuration = ConfigurationOptions.Parse($"127.0.0.1:{TestEnvironment.UnusedLoopbackPort()}");
        configuration.AbortOnConnectFail = false;
        configuration.ConnectTimeout = 500;
        configuration.SyncTimeout = 500;
        configuration.AsyncTimeout = 500;
        await using var connection = await ConnectionMultiplexer.ConnectAsync(configuration);
        var backend = Create(connection);
        var session = Session();

        var request = new PgSessionLoadRequest(session.KeyHash, "default", Start, TimeSpan.Zero);

        await Assert.ThrowsAnyAsync<RedisException>(async () => await backend.LoadAsync(request, CancellationToken));
        Assert.ThrowsAny<RedisException>(() => backend.Load(request));
        await Assert.ThrowsAnyAsync<RedisException>(async () => await backend.InsertAsync(session, CancellationToken));
        await Assert.ThrowsAnyAsync<RedisException>(async () => await backend.PingAsync(CancellationToken));
    }

    [Fact]
    public async Task AddRedis_RegistersTheBackendKeyedRedis()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddPgFirst(o => o.Backend = PgFirstBackend.Redis).AddRedis(o =>
        {
            o.Configuration = server.Configuration;
            o.KeyPrefix = _prefix;
        });
        using var host = builder.Build();
        await host.StartAsync(CancellationToken);

        var backend = host.Services.GetRequiredKeyedService<IPgSessionBackend>(PgFirstBackend.Redis);
        var session = Session();
        Assert.True(await backend.InsertAsync(session, CancellationToken));

        Assert.IsType<RedisSessionBackend>(backend);
        Assert.Same(backend, host.Services.GetRequiredKeyedService<IPgSessionBackend>(PgFirstBackend.Redis));
        Assert.True(await Db.KeyExistsAsync(SessionKey(session.KeyHash)));
        await host.StopAsync(CancellationToken);
    }
}
