using System.Security.Cryptography;
using PgSessions;
using Xunit;

namespace PgFirst.Testing;

/// <summary>
/// The behaviour every <see cref="IPgSessionBackend"/> must have, run against PostgreSQL and Redis alike. Time is passed
/// in, never read: expiry is exercised by passing a later <c>now</c>, with no sleeps. Times are whole microseconds, the
/// precision PostgreSQL stores, so they compare exactly.
/// </summary>
public abstract class SessionBackendConformanceTests : IAsyncLifetime
{
    protected const string Tenant = "default";

    /// <summary>A fixed "now" at the start of every test, with a microsecond part.</summary>
    protected static readonly DateTimeOffset Start = new DateTimeOffset(2026, 11, 23, 12, 0, 0, TimeSpan.Zero).AddMicroseconds(123_456);

    protected static readonly TimeSpan Idle = TimeSpan.FromMinutes(20);

    protected static readonly TimeSpan Absolute = TimeSpan.FromHours(8);

    // Loads that must not touch use an interval longer than any test's time span.
    private static readonly TimeSpan NoTouch = TimeSpan.FromDays(365);

    private IPgSessionBackend? _backend;

    protected static CancellationToken CancellationToken => TestContext.Current.CancellationToken;

    /// <summary>Gets the backend under test, created on first use by <see cref="CreateBackend"/>.</summary>
    protected IPgSessionBackend Backend => _backend ??= CreateBackend();

    public virtual ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public virtual ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Creates the backend on this test class instance's isolated store (own schema or key prefix). Called once per
    /// instance, after <see cref="InitializeAsync"/>.
    /// </summary>
    protected abstract IPgSessionBackend CreateBackend();

    protected static byte[] NewKeyHash() => RandomNumberGenerator.GetBytes(32);

    protected static PgSessionRecord NewSession(
        DateTimeOffset? at = null,
        string? userId = null,
        string tenantId = Tenant,
        TimeSpan? idle = null,
        DateTimeOffset? absoluteExpiresAt = null,
        byte[]? data = null,
        string? clientIp = null,
        string? userAgent = null,
        byte[]? keyHash = null)
    {
        var created = at ?? Start;
        return new PgSessionRecord
        {
            KeyHash = keyHash ?? NewKeyHash(),
            TenantId = tenantId,
            SessionId = Guid.NewGuid(),
            UserId = userId,
            Version = 1,
            Data = data ?? [1, 2, 3],
            CreatedAt = created,
            LastSeenAt = created,
            IdleTimeout = idle ?? Idle,
            AbsoluteExpiresAt = absoluteExpiresAt ?? created + Absolute,
            ClientIp = clientIp,
            UserAgent = userAgent,
        };
    }

    protected async Task<PgSessionRecord> InsertAsync(PgSessionRecord record)
    {
        Assert.True(await Backend.InsertAsync(record, CancellationToken));
        return record;
    }

    protected ValueTask<PgSessionRecord?> LoadAsync(byte[] keyHash, DateTimeOffset now, TimeSpan? touchInterval = null, string tenantId = Tenant) =>
        Backend.LoadAsync(new PgSessionLoadRequest(keyHash, tenantId, now, touchInterval ?? NoTouch), CancellationToken);

    protected PgSessionRecord? Load(byte[] keyHash, DateTimeOffset now, TimeSpan? touchInterval = null, string tenantId = Tenant) =>
        Backend.Load(new PgSessionLoadRequest(keyHash, tenantId, now, touchInterval ?? NoTouch));

    protected static PgSessionUpdate Write(
        PgSessionRecord session,
        long expectedVersion,
        DateTimeOffset now,
        byte[]? data = null,
        string? userId = null,
        byte[]? newKeyHash = null,
        TimeSpan? idle = null,
        DateTimeOffset? absoluteExpiresAt = null,
        string? tenantId = null) => new()
        {
            KeyHash = session.KeyHash,
            NewKeyHash = newKeyHash ?? session.KeyHash,
            TenantId = tenantId ?? session.TenantId,
            ExpectedVersion = expectedVersion,
            Data = data ?? [9],
            UserId = userId,
            IdleTimeout = idle ?? session.IdleTimeout,
            AbsoluteExpiresAt = absoluteExpiresAt ?? session.AbsoluteExpiresAt,
            Now = now,
        };

    protected ValueTask<long?> UpdateAsync(PgSessionUpdate update) => Backend.UpdateAsync(update, CancellationToken);

    protected ValueTask<IReadOnlyList<PgSessionInfo>> ListAsync(string userId, DateTimeOffset now, string tenantId = Tenant) =>
        Backend.ListAsync(tenantId, userId, now, CancellationToken);

    private static void AssertSameSession(PgSessionRecord expected, PgSessionRecord? actual, long version = 1)
    {
        Assert.NotNull(actual);
        Assert.Equal(expected.KeyHash, actual.KeyHash);
        Assert.Equal(expected.TenantId, actual.TenantId);
        Assert.Equal(expected.SessionId, actual.SessionId);
        Assert.Equal(expected.UserId, actual.UserId);
        Assert.Equal(version, actual.Version);
        Assert.Equal(expected.Data, actual.Data);
        Assert.Equal(expected.CreatedAt, actual.CreatedAt);
        Assert.Equal(expected.LastSeenAt, actual.LastSeenAt);
        Assert.Equal(expected.IdleTimeout, actual.IdleTimeout);
        Assert.Equal(expected.AbsoluteExpiresAt, actual.AbsoluteExpiresAt);
        Assert.Equal(expected.ExpiresAt, actual.ExpiresAt);
        Assert.Equal(expected.ClientIp, actual.ClientIp);
        Assert.Equal(expected.UserAgent, actual.UserAgent);
    }

    [Fact]
    public async Task InsertAsync_ThenLoad_RoundTripsEveryFieldAtVersionOne()
    {
        byte[] data = [0, 1, 2, 0, 255, 128, 0];
        var session = NewSession(userId: "user:1", data: data, clientIp: "2001:db8::1", userAgent: "Mozilla/5.0 (X11; Linux) \"ü\"");
        var record = new PgSessionRecord
        {
            KeyHash = session.KeyHash,
            TenantId = session.TenantId,
            SessionId = session.SessionId,
            UserId = session.UserId,
            Version = 42,
            Data = session.Data,
            CreatedAt = session.CreatedAt.AddMinutes(-1),
            LastSeenAt = session.LastSeenAt,
            IdleTimeout = TimeSpan.FromMinutes(20) + TimeSpan.FromMicroseconds(7),
            AbsoluteExpiresAt = session.AbsoluteExpiresAt.AddMicroseconds(1),
            ClientIp = session.ClientIp,
            UserAgent = session.UserAgent,
        };

        Assert.True(await Backend.InsertAsync(record, CancellationToken));

        AssertSameSession(record, await LoadAsync(record.KeyHash, Start.AddMinutes(1)));
        AssertSameSession(record, Load(record.KeyHash, Start.AddMinutes(1)));
    }

    [Fact]
    public async Task InsertAsync_NoUserIpAgentAndEmptyData_LoadsNullsAndEmptyData()
    {
        var session = await InsertAsync(NewSession(data: []));

        var loaded = await LoadAsync(session.KeyHash, Start);

        AssertSameSession(session, loaded);
        Assert.Null(loaded!.UserId);
        Assert.Null(loaded.ClientIp);
        Assert.Null(loaded.UserAgent);
        Assert.NotNull(loaded.Data);
        Assert.Empty(loaded.Data);
    }

    [Fact]
    public async Task Load_UnknownKeyHash_ReturnsNull()
    {
        await InsertAsync(NewSession());

        Assert.Null(await LoadAsync(NewKeyHash(), Start));
        Assert.Null(Load(NewKeyHash(), Start));
    }

    [Fact]
    public async Task Load_OtherTenant_ReturnsNullAndLeavesTheSessionAlone()
    {
        var session = await InsertAsync(NewSession(tenantId: "tenant-a"));

        Assert.Null(await LoadAsync(session.KeyHash, Start.AddMinutes(10), TimeSpan.Zero, tenantId: "tenant-b"));
        Assert.Null(Load(session.KeyHash, Start.AddMinutes(10), TimeSpan.Zero, tenantId: "tenant-b"));

        AssertSameSession(session, await LoadAsync(session.KeyHash, Start.AddMinutes(10), tenantId: "tenant-a"));
    }

    [Fact]
    public async Task Load_AtOrPastIdleExpiry_ReturnsNull()
    {
        var session = await InsertAsync(NewSession());

        Assert.Null(await LoadAsync(session.KeyHash, Start + Idle, TimeSpan.Zero));
        Assert.Null(Load(session.KeyHash, Start + Idle, TimeSpan.Zero));
        Assert.Null(await LoadAsync(session.KeyHash, Start + Idle + TimeSpan.FromDays(3), TimeSpan.Zero));
        Assert.Null(Load(session.KeyHash, Start + Idle + TimeSpan.FromDays(3), TimeSpan.Zero));
    }

    [Fact]
    public async Task Load_JustBeforeIdleExpiry_ReturnsTheSession()
    {
        var session = await InsertAsync(NewSession());
        var justBefore = Start + Idle - TimeSpan.FromMicroseconds(1);

        AssertSameSession(session, await LoadAsync(session.KeyHash, justBefore));
        AssertSameSession(session, Load(session.KeyHash, justBefore));
    }

    [Fact]
    public async Task Load_PastAbsoluteExpiry_ReturnsNullEvenWhileActive()
    {
        var session = await InsertAsync(NewSession(absoluteExpiresAt: Start.AddHours(1)));
        for (var minutes = 10; minutes <= 50; minutes += 10)
        {
            Assert.NotNull(await LoadAsync(session.KeyHash, Start.AddMinutes(minutes), TimeSpan.Zero));
        }

        Assert.Null(await LoadAsync(session.KeyHash, Start.AddHours(1), TimeSpan.Zero));
        Assert.Null(Load(session.KeyHash, Start.AddHours(1), TimeSpan.Zero));
        Assert.Null(await LoadAsync(session.KeyHash, Start.AddMinutes(65), TimeSpan.Zero));
    }

    [Fact]
    public async Task LoadAsync_WithinTouchInterval_DoesNotTouch()
    {
        var session = await InsertAsync(NewSession());

        var loaded = await LoadAsync(session.KeyHash, Start.AddMinutes(4), TimeSpan.FromMinutes(5));

        AssertSameSession(session, loaded);
        Assert.Null(await LoadAsync(session.KeyHash, Start + Idle));
    }

    [Fact]
    public async Task LoadAsync_PastTouchInterval_SlidesIdleExpiryAndKeepsTheVersion()
    {
        var session = await InsertAsync(NewSession());
        var touchedAt = Start.AddMinutes(5);

        var loaded = await LoadAsync(session.KeyHash, touchedAt, TimeSpan.FromMinutes(5));

        Assert.NotNull(loaded);
        Assert.Equal(touchedAt, loaded.LastSeenAt);
        Assert.Equal(touchedAt + Idle, loaded.ExpiresAt);
        Assert.Equal(1, loaded.Version);
        Assert.Equal(session.CreatedAt, loaded.CreatedAt);
        var later = await LoadAsync(session.KeyHash, Start + Idle);
        Assert.NotNull(later);
        Assert.Equal(touchedAt, later.LastSeenAt);
        Assert.Equal(1, later.Version);
        Assert.Null(await LoadAsync(session.KeyHash, touchedAt + Idle));
    }

    [Fact]
    public async Task Load_PastTouchInterval_SlidesIdleExpiryAndKeepsTheVersion()
    {
        var session = await InsertAsync(NewSession());
        var touchedAt = Start.AddMinutes(10);

        var loaded = Load(session.KeyHash, touchedAt, TimeSpan.FromMinutes(1));

        Assert.NotNull(loaded);
        Assert.Equal(touchedAt, loaded.LastSeenAt);
        Assert.Equal(1, loaded.Version);
        Assert.Equal(touchedAt, Load(session.KeyHash, Start.AddMinutes(25))?.LastSeenAt);
        Assert.Null(Load(session.KeyHash, touchedAt + Idle));
    }

    [Fact]
    public async Task LoadAsync_Touch_NeverSlidesPastAbsoluteExpiry()
    {
        var absolute = Start.AddMinutes(30);
        var session = await InsertAsync(NewSession(absoluteExpiresAt: absolute));

        var loaded = await LoadAsync(session.KeyHash, Start.AddMinutes(15), TimeSpan.Zero);

        Assert.NotNull(loaded);
        Assert.Equal(Start.AddMinutes(15), loaded.LastSeenAt);
        Assert.Equal(absolute, loaded.ExpiresAt);
        Assert.Equal(absolute, loaded.AbsoluteExpiresAt);
        Assert.NotNull(await LoadAsync(session.KeyHash, absolute.AddMicroseconds(-1), TimeSpan.Zero));
        Assert.Null(await LoadAsync(session.KeyHash, absolute, TimeSpan.Zero));
    }

    [Fact]
    public async Task UpdateAsync_AfterTouch_StillExpectsTheLoadedVersion()
    {
        var session = await InsertAsync(NewSession());
        var loaded = await LoadAsync(session.KeyHash, Start.AddMinutes(5), TimeSpan.Zero);

        var version = await UpdateAsync(Write(session, loaded!.Version, Start.AddMinutes(6)));

        Assert.Equal(2, version);
    }

    [Fact]
    public async Task InsertAsync_LiveDuplicateKeyHash_ReturnsFalseAndKeepsTheOriginal()
    {
        var original = await InsertAsync(NewSession(userId: "alice", data: [1]));
        var duplicate = NewSession(at: Start.AddMinutes(1), userId: "mallory", data: [2], keyHash: original.KeyHash);

        Assert.False(await Backend.InsertAsync(duplicate, CancellationToken));

        AssertSameSession(original, await LoadAsync(original.KeyHash, Start.AddMinutes(2)));
        Assert.False(await Backend.RevokeAsync(Tenant, duplicate.SessionId, CancellationToken));
        Assert.Empty(await ListAsync("mallory", Start.AddMinutes(2)));
        Assert.Single(await ListAsync("alice", Start.AddMinutes(2)));
    }

    [Fact]
    public async Task InsertAsync_KeyHashOfAnExpiredSession_ReplacesIt()
    {
        var expired = await InsertAsync(NewSession(userId: "alice"));
        var now = Start + Idle + TimeSpan.FromMinutes(1);
        var replacement = NewSession(at: now, userId: "bob", data: [7], keyHash: expired.KeyHash);

        Assert.True(await Backend.InsertAsync(replacement, CancellationToken));

        AssertSameSession(replacement, await LoadAsync(expired.KeyHash, now));
        Assert.Empty(await ListAsync("alice", now));
        Assert.Equal([replacement.SessionId], (await ListAsync("bob", now)).Select(i => i.SessionId));
    }

    [Fact]
    public async Task UpdateAsync_ExpectedVersion_WritesEverythingAndReturnsTheNextVersion()
    {
        var session = await InsertAsync(NewSession(clientIp: "203.0.113.7", userAgent: "curl/8"));
        var now = Start.AddMinutes(5).AddMicroseconds(3);
        var absolute = Start.AddHours(12);

        var version = await UpdateAsync(
            Write(session, 1, now, data: [4, 5, 6], userId: "alice", idle: TimeSpan.FromMinutes(30), absoluteExpiresAt: absolute));

        Assert.Equal(2, version);
        var loaded = await LoadAsync(session.KeyHash, now.AddMinutes(29));
        Assert.NotNull(loaded);
        Assert.Equal(2, loaded.Version);
        Assert.Equal([4, 5, 6], loaded.Data);
        Assert.Equal("alice", loaded.UserId);
        Assert.Equal(TimeSpan.FromMinutes(30), loaded.IdleTimeout);
        Assert.Equal(absolute, loaded.AbsoluteExpiresAt);
        Assert.Equal(now, loaded.LastSeenAt);
        Assert.Equal(now.AddMinutes(30), loaded.ExpiresAt);
        Assert.Equal(session.SessionId, loaded.SessionId);
        Assert.Equal(session.CreatedAt, loaded.CreatedAt);
        Assert.Equal("203.0.113.7", loaded.ClientIp);
        Assert.Equal("curl/8", loaded.UserAgent);
        Assert.Equal(3, await UpdateAsync(Write(session, 2, now.AddMinutes(1), userId: "alice")));
        Assert.Equal(3, Load(session.KeyHash, now.AddMinutes(2))?.Version);
    }

    [Fact]
    public async Task UpdateAsync_NullUserId_Unbinds()
    {
        var session = await InsertAsync(NewSession(userId: "alice"));

        Assert.Equal(2, await UpdateAsync(Write(session, 1, Start.AddMinutes(1), userId: null)));

        Assert.Null((await LoadAsync(session.KeyHash, Start.AddMinutes(2)))!.UserId);
        Assert.Empty(await ListAsync("alice", Start.AddMinutes(2)));
    }

    [Fact]
    public async Task UpdateAsync_StaleVersion_ReturnsNullAndChangesNothing()
    {
        var session = await InsertAsync(NewSession(userId: "alice"));
        Assert.Equal(2, await UpdateAsync(Write(session, 1, Start.AddMinutes(1), data: [2], userId: "alice")));

        Assert.Null(await UpdateAsync(Write(session, 1, Start.AddMinutes(2), data: [3], userId: "bob")));
        Assert.Null(await UpdateAsync(Write(session, 3, Start.AddMinutes(2), data: [3], userId: "bob")));

        var loaded = await LoadAsync(session.KeyHash, Start.AddMinutes(3));
        Assert.NotNull(loaded);
        Assert.Equal(2, loaded.Version);
        Assert.Equal([2], loaded.Data);
        Assert.Equal("alice", loaded.UserId);
        Assert.Equal(Start.AddMinutes(1), loaded.LastSeenAt);
        Assert.Empty(await ListAsync("bob", Start.AddMinutes(3)));
    }

    [Fact]
    public async Task UpdateAsync_ExpiredSession_ReturnsNull()
    {
        var idleExpired = await InsertAsync(NewSession());
        var absoluteExpired = await InsertAsync(NewSession(absoluteExpiresAt: Start.AddMinutes(10)));

        Assert.Null(await UpdateAsync(Write(idleExpired, 1, Start + Idle)));
        Assert.Null(await UpdateAsync(Write(absoluteExpired, 1, Start.AddMinutes(10), absoluteExpiresAt: Start.AddHours(8))));

        Assert.Null(await LoadAsync(idleExpired.KeyHash, Start + Idle));
        Assert.Null(await LoadAsync(absoluteExpired.KeyHash, Start.AddMinutes(10)));
    }

    [Fact]
    public async Task UpdateAsync_UnknownKeyHashOrOtherTenant_ReturnsNull()
    {
        var session = await InsertAsync(NewSession(tenantId: "tenant-a"));

        Assert.Null(await UpdateAsync(Write(NewSession(tenantId: "tenant-a"), 1, Start.AddMinutes(1))));
        Assert.Null(await UpdateAsync(Write(session, 1, Start.AddMinutes(1), data: [8], tenantId: "tenant-b")));

        var loaded = await LoadAsync(session.KeyHash, Start.AddMinutes(2), tenantId: "tenant-a");
        Assert.NotNull(loaded);
        Assert.Equal(1, loaded.Version);
        Assert.Equal(session.Data, loaded.Data);
    }

    [Fact]
    public async Task UpdateAsync_NewKeyHash_MovesTheSession()
    {
        var session = await InsertAsync(NewSession(userId: "alice", clientIp: "198.51.100.1", userAgent: "agent"));
        var newKeyHash = NewKeyHash();
        var now = Start.AddMinutes(3);

        Assert.Equal(2, await UpdateAsync(Write(session, 1, now, data: [5], userId: "alice", newKeyHash: newKeyHash)));

        Assert.Null(await LoadAsync(session.KeyHash, now));
        Assert.Null(Load(session.KeyHash, now));
        var moved = await LoadAsync(newKeyHash, now);
        Assert.NotNull(moved);
        Assert.Equal(newKeyHash, moved.KeyHash);
        Assert.Equal(session.SessionId, moved.SessionId);
        Assert.Equal(session.CreatedAt, moved.CreatedAt);
        Assert.Equal("198.51.100.1", moved.ClientIp);
        Assert.Equal("agent", moved.UserAgent);
        Assert.Equal(2, moved.Version);
        Assert.Equal([5], moved.Data);
        Assert.Equal(now, moved.LastSeenAt);
        Assert.Equal(session.SessionId, Load(newKeyHash, now)?.SessionId);
        Assert.Null(await UpdateAsync(Write(session, 2, now)));
        Assert.Equal([session.SessionId], (await ListAsync("alice", now)).Select(i => i.SessionId));
    }

    [Fact]
    public async Task UpdateAsync_MovedSession_CanBeRevokedById()
    {
        var session = await InsertAsync(NewSession(userId: "alice"));
        var newKeyHash = NewKeyHash();
        await UpdateAsync(Write(session, 1, Start.AddMinutes(1), userId: "alice", newKeyHash: newKeyHash));

        Assert.True(await Backend.RevokeAsync(Tenant, session.SessionId, CancellationToken));

        Assert.Null(await LoadAsync(newKeyHash, Start.AddMinutes(2)));
        Assert.Empty(await ListAsync("alice", Start.AddMinutes(2)));
    }

    [Fact]
    public async Task UpdateAsync_ConcurrentWritesFromTheSameVersion_ExactlyOneWins()
    {
        for (var round = 0; round < 10; round++)
        {
            var session = await InsertAsync(NewSession());
            var writers = Enumerable.Range(0, 8).Select(writer => Task.Run(
                async () =>
                {
                    var version = await UpdateAsync(Write(session, 1, Start.AddMinutes(1), data: [(byte)writer], userId: $"user-{writer}"));
                    return (Writer: writer, Version: version);
                },
                CancellationToken));

            var results = await Task.WhenAll(writers);

            var winner = Assert.Single(results, r => r.Version is not null);
            Assert.Equal(2, winner.Version);
            var loaded = await LoadAsync(session.KeyHash, Start.AddMinutes(2));
            Assert.Equal(2, loaded!.Version);
            Assert.Equal([(byte)winner.Writer], loaded.Data);
            Assert.Equal($"user-{winner.Writer}", loaded.UserId);
        }
    }

    [Fact]
    public async Task ListAsync_ReturnsOnlyTheUsersLiveSessionsInTheTenant_NewestFirst()
    {
        var oldest = await InsertAsync(NewSession(userId: "alice", clientIp: "192.0.2.1", userAgent: "phone"));
        var middle = await InsertAsync(NewSession(at: Start.AddMinutes(1), userId: "alice", absoluteExpiresAt: Start.AddMinutes(15)));
        var newest = await InsertAsync(NewSession(at: Start.AddMinutes(2), userId: "alice"));
        await InsertAsync(NewSession(at: Start.AddMinutes(3), userId: "alice", idle: TimeSpan.FromMinutes(1)));
        await InsertAsync(NewSession(at: Start.AddMinutes(1), userId: "bob"));
        await InsertAsync(NewSession(at: Start.AddMinutes(1), userId: "alice", tenantId: "tenant-b"));
        await InsertAsync(NewSession(at: Start.AddMinutes(1)));
        var now = Start.AddMinutes(5);
        await LoadAsync(oldest.KeyHash, now, TimeSpan.Zero);

        var sessions = await ListAsync("alice", now);

        Assert.Equal([newest.SessionId, middle.SessionId, oldest.SessionId], sessions.Select(s => s.SessionId));
        Assert.All(sessions, s => Assert.Equal("alice", s.UserId));
        Assert.Equal(
            new PgSessionInfo(oldest.SessionId, "alice", oldest.CreatedAt, now, now + Idle, oldest.AbsoluteExpiresAt, "192.0.2.1", "phone"),
            sessions[2]);
        Assert.Equal(
            new PgSessionInfo(middle.SessionId, "alice", middle.CreatedAt, middle.LastSeenAt, Start.AddMinutes(15), Start.AddMinutes(15), null, null),
            sessions[1]);
        Assert.Equal([newest.SessionId, oldest.SessionId], (await ListAsync("alice", Start.AddMinutes(15))).Select(s => s.SessionId));
    }

    [Fact]
    public async Task ListAsync_UnknownUser_ReturnsEmpty()
    {
        await InsertAsync(NewSession(userId: "alice"));

        Assert.Empty(await ListAsync("nobody", Start));
        Assert.Empty(await ListAsync("alice", Start, tenantId: "tenant-b"));
    }

    [Fact]
    public async Task ListAsync_AfterRebindingAndUnbinding_FollowsTheUser()
    {
        var session = await InsertAsync(NewSession(userId: "alice"));
        var now = Start.AddMinutes(1);

        Assert.Equal(2, await UpdateAsync(Write(session, 1, now, userId: "bob")));
        Assert.Empty(await ListAsync("alice", now));
        Assert.Equal([session.SessionId], (await ListAsync("bob", now)).Select(s => s.SessionId));

        Assert.Equal(3, await UpdateAsync(Write(session, 2, now, userId: null)));
        Assert.Empty(await ListAsync("alice", now));
        Assert.Empty(await ListAsync("bob", now));

        Assert.Equal(4, await UpdateAsync(Write(session, 3, now, userId: "alice", newKeyHash: NewKeyHash())));
        Assert.Equal([session.SessionId], (await ListAsync("alice", now)).Select(s => s.SessionId));
        Assert.Empty(await ListAsync("bob", now));
    }

    [Fact]
    public async Task ListAsync_TenantAndUserIdsWithColons_NeverMix()
    {
        var first = await InsertAsync(NewSession(userId: "b:c", tenantId: "a"));
        var second = await InsertAsync(NewSession(userId: "c", tenantId: "a:b"));

        Assert.Equal([first.SessionId], (await ListAsync("b:c", Start, tenantId: "a")).Select(s => s.SessionId));
        Assert.Equal([second.SessionId], (await ListAsync("c", Start, tenantId: "a:b")).Select(s => s.SessionId));
        Assert.Empty(await ListAsync("c", Start, tenantId: "a"));
        Assert.Null(await LoadAsync(first.KeyHash, Start, tenantId: "a:b"));
    }

    [Fact]
    public async Task RevokeAsync_ById_DeletesOnceAndTheSessionNoLongerLoads()
    {
        var session = await InsertAsync(NewSession(userId: "alice"));
        var other = await InsertAsync(NewSession(userId: "alice"));

        Assert.True(await Backend.RevokeAsync(Tenant, session.SessionId, CancellationToken));
        Assert.False(await Backend.RevokeAsync(Tenant, session.SessionId, CancellationToken));

        Assert.Null(await LoadAsync(session.KeyHash, Start));
        Assert.Null(Load(session.KeyHash, Start));
        Assert.NotNull(await LoadAsync(other.KeyHash, Start));
        Assert.Equal([other.SessionId], (await ListAsync("alice", Start)).Select(s => s.SessionId));
    }

    [Fact]
    public async Task RevokeAsync_UnknownIdOrOtherTenant_ReturnsFalse()
    {
        var session = await InsertAsync(NewSession(tenantId: "tenant-a"));

        Assert.False(await Backend.RevokeAsync("tenant-a", Guid.NewGuid(), CancellationToken));
        Assert.False(await Backend.RevokeAsync("tenant-b", session.SessionId, CancellationToken));

        Assert.NotNull(await LoadAsync(session.KeyHash, Start, tenantId: "tenant-a"));
    }

    [Fact]
    public async Task UpdateAsync_RevokedSession_ReturnsNull()
    {
        var session = await InsertAsync(NewSession(userId: "alice"));
        Assert.True(await Backend.RevokeAsync(Tenant, session.SessionId, CancellationToken));

        Assert.Null(await UpdateAsync(Write(session, 1, Start.AddMinutes(1), userId: "alice")));

        Assert.Null(await LoadAsync(session.KeyHash, Start.AddMinutes(1)));
        Assert.Empty(await ListAsync("alice", Start.AddMinutes(1)));
    }

    [Fact]
    public async Task RevokeAllAsync_NoException_DeletesEveryUserSessionInTheTenantOnly()
    {
        var sessions = new[]
        {
            await InsertAsync(NewSession(userId: "alice")),
            await InsertAsync(NewSession(userId: "alice")),
            await InsertAsync(NewSession(userId: "alice")),
        };
        var bob = await InsertAsync(NewSession(userId: "bob"));
        var otherTenant = await InsertAsync(NewSession(userId: "alice", tenantId: "tenant-b"));
        var anonymous = await InsertAsync(NewSession());

        Assert.Equal(3, await Backend.RevokeAllAsync(Tenant, "alice", null, CancellationToken));
        Assert.Equal(0, await Backend.RevokeAllAsync(Tenant, "alice", null, CancellationToken));

        foreach (var session in sessions)
        {
            Assert.Null(await LoadAsync(session.KeyHash, Start));
            Assert.False(await Backend.RevokeAsync(Tenant, session.SessionId, CancellationToken));
        }

        Assert.Empty(await ListAsync("alice", Start));
        Assert.NotNull(await LoadAsync(bob.KeyHash, Start));
        Assert.NotNull(await LoadAsync(otherTenant.KeyHash, Start, tenantId: "tenant-b"));
        Assert.NotNull(await LoadAsync(anonymous.KeyHash, Start));
        Assert.Single(await ListAsync("alice", Start, tenantId: "tenant-b"));
    }

    [Fact]
    public async Task RevokeAllAsync_WithException_KeepsThatSession()
    {
        var current = await InsertAsync(NewSession(userId: "alice"));
        var moved = await InsertAsync(NewSession(userId: "alice"));
        var rebound = await InsertAsync(NewSession(userId: "bob"));
        var movedKeyHash = NewKeyHash();
        await UpdateAsync(Write(moved, 1, Start.AddMinutes(1), userId: "alice", newKeyHash: movedKeyHash));
        await UpdateAsync(Write(rebound, 1, Start.AddMinutes(1), userId: "alice"));

        Assert.Equal(2, await Backend.RevokeAllAsync(Tenant, "alice", current.SessionId, CancellationToken));

        Assert.Null(await LoadAsync(movedKeyHash, Start.AddMinutes(2)));
        Assert.Null(await LoadAsync(rebound.KeyHash, Start.AddMinutes(2)));
        AssertSameSession(current, await LoadAsync(current.KeyHash, Start.AddMinutes(2)));
        Assert.Equal([current.SessionId], (await ListAsync("alice", Start.AddMinutes(2))).Select(s => s.SessionId));
        Assert.Equal(2, await UpdateAsync(Write(current, 1, Start.AddMinutes(3), userId: "alice")));
    }

    // ---- CommitAsync: the request's changes merged into the session as it is ----

    protected ValueTask<PgSessionCommitResult> CommitAsync(PgSessionUpdate update, PgSessionChanges changes) =>
        Backend.CommitAsync(update, changes, CancellationToken);

    protected static PgSessionChanges Sets(params (string Key, byte[]? Value)[] items) => new()
    {
        Items = items.Select(i => new KeyValuePair<string, byte[]?>(i.Key, i.Value)).ToArray(),
    };

    private static string Blob(params (string Key, byte[] Value)[] entries) =>
        string.Join(",", SessionBlob.Read(SessionBlob.Of(entries)).Select(e => $"{e.Key}={e.Value}"));

    private static string Blob(byte[] data) => string.Join(",", SessionBlob.Read(data).Select(e => $"{e.Key}={e.Value}"));

    [Fact]
    public async Task CommitAsync_AtTheExpectedVersion_WritesTheSessionAsSent()
    {
        var session = await InsertAsync(NewSession(data: SessionBlob.Of(("a", [1]))));
        var sent = SessionBlob.Of(("a", [1]), ("b", [2]));

        var result = await CommitAsync(Write(session, 1, Start.AddMinutes(1), data: sent, userId: "alice"), Sets(("b", [2])));

        Assert.Equal(PgSessionCommitStatus.Written, result.Status);
        Assert.Equal(2, result.Version);
        Assert.Null(result.Session);
        var loaded = await LoadAsync(session.KeyHash, Start.AddMinutes(2));
        Assert.Equal(sent, loaded!.Data);
        Assert.Equal("alice", loaded.UserId);
        Assert.Equal(2, loaded.Version);
    }

    [Fact]
    public async Task CommitAsync_StaleVersion_MergesThisRequestsKeysIntoTheOtherRequestsSession()
    {
        var session = await InsertAsync(NewSession(userId: "alice", data: SessionBlob.Of(("a", [1]), ("b", [2])), clientIp: "192.0.2.9", userAgent: "ua"));
        Assert.Equal(
            PgSessionCommitStatus.Written,
            (await CommitAsync(Write(session, 1, Start.AddMinutes(1), data: SessionBlob.Of(("a", [1]), ("b", [2]), ("c", [3])), userId: "alice"), Sets(("c", [3])))).Status);

        // Loaded version 1 too: sets d, removes a, overwrites b.
        var result = await CommitAsync(
            Write(session, 1, Start.AddMinutes(2), data: SessionBlob.Of(("b", [22]), ("d", [4])), userId: "alice"),
            Sets(("d", [4]), ("a", null), ("b", [22])));

        Assert.Equal(PgSessionCommitStatus.Merged, result.Status);
        Assert.Equal(3, result.Version);
        var merged = result.Session!;
        Assert.Equal(Blob(("b", [22]), ("c", [3]), ("d", [4])), Blob(merged.Data));
        Assert.Equal(3, merged.Version);
        Assert.Equal(session.SessionId, merged.SessionId);
        Assert.Equal(session.KeyHash, merged.KeyHash);
        Assert.Equal(session.CreatedAt, merged.CreatedAt);
        Assert.Equal("alice", merged.UserId);
        Assert.Equal("192.0.2.9", merged.ClientIp);
        Assert.Equal("ua", merged.UserAgent);
        var loaded = await LoadAsync(session.KeyHash, Start.AddMinutes(3));
        Assert.Equal(Blob(merged.Data), Blob(loaded!.Data));
        Assert.Equal(3, loaded.Version);
    }

    [Fact]
    public async Task CommitAsync_StaleVersion_KeepsTheStoredUserAndLifetime_UnlessThisRequestChangedThem()
    {
        var session = await InsertAsync(NewSession(data: SessionBlob.Of()));
        await CommitAsync(Write(session, 1, Start.AddMinutes(1), data: SessionBlob.Of(), userId: "alice", idle: TimeSpan.FromMinutes(30)), new PgSessionChanges { BindsUser = true, IdleTimeout = TimeSpan.FromMinutes(30) });

        // A request that loaded version 1 and only set a key: its stale view (no user, 20 minutes) must not win.
        var kept = await CommitAsync(Write(session, 1, Start.AddMinutes(2), data: SessionBlob.Of(("k", [1])), userId: null), Sets(("k", [1])));
        Assert.Equal(PgSessionCommitStatus.Merged, kept.Status);
        Assert.Equal("alice", kept.Session!.UserId);
        Assert.Equal(TimeSpan.FromMinutes(30), kept.Session.IdleTimeout);
        Assert.Equal(session.AbsoluteExpiresAt, kept.Session.AbsoluteExpiresAt);

        // One that loaded version 1 and unbound the user and set an absolute lifetime: those apply.
        var changed = await CommitAsync(
            Write(session, 1, Start.AddMinutes(3), data: SessionBlob.Of(), userId: null),
            new PgSessionChanges { BindsUser = true, AbsoluteLifetime = TimeSpan.FromHours(1) });
        Assert.Equal(PgSessionCommitStatus.Merged, changed.Status);
        Assert.Null(changed.Session!.UserId);
        Assert.Equal(session.CreatedAt + TimeSpan.FromHours(1), changed.Session.AbsoluteExpiresAt);
        Assert.Equal(TimeSpan.FromMinutes(30), changed.Session.IdleTimeout);
        Assert.Equal(Blob(("k", [1])), Blob(changed.Session.Data));
        Assert.Empty(await ListAsync("alice", Start.AddMinutes(4)));
        var loaded = await LoadAsync(session.KeyHash, Start.AddMinutes(4));
        Assert.Null(loaded!.UserId);
        Assert.Equal(session.CreatedAt + TimeSpan.FromHours(1), loaded.AbsoluteExpiresAt);
    }

    [Fact]
    public async Task CommitAsync_StaleVersion_AfterAClear_StoresOnlyWhatThisRequestBuilt()
    {
        var session = await InsertAsync(NewSession(data: SessionBlob.Of(("a", [1]))));
        await CommitAsync(Write(session, 1, Start.AddMinutes(1), data: SessionBlob.Of(("a", [1]), ("b", [2]))), Sets(("b", [2])));

        var result = await CommitAsync(Write(session, 1, Start.AddMinutes(2), data: SessionBlob.Of(("z", [9]))), new PgSessionChanges { Cleared = true });

        Assert.Equal(PgSessionCommitStatus.Merged, result.Status);
        Assert.Equal(Blob(("z", [9])), Blob((await LoadAsync(session.KeyHash, Start.AddMinutes(3)))!.Data));
    }

    [Fact]
    public async Task CommitAsync_StaleVersion_OverTheLimit_IsTooLarge_AndChangesNothing()
    {
        var session = await InsertAsync(NewSession(data: SessionBlob.Of(("a", new byte[600]))));
        var afterFirst = SessionBlob.Of(("a", new byte[600]), ("b", new byte[300]));
        await CommitAsync(Write(session, 1, Start.AddMinutes(1), data: afterFirst), Sets(("b", new byte[300])));

        var tooLarge = new PgSessionChanges { Items = [new("c", new byte[300])], MaxDataBytes = 1024 };
        var result = await CommitAsync(Write(session, 1, Start.AddMinutes(2), data: SessionBlob.Of(("a", new byte[600]), ("c", new byte[300]))), tooLarge);

        Assert.Equal(PgSessionCommitStatus.TooLarge, result.Status);
        Assert.Equal(SessionBlob.Of(("a", new byte[600]), ("b", new byte[300]), ("c", new byte[300])).Length, result.DataBytes);
        var loaded = await LoadAsync(session.KeyHash, Start.AddMinutes(3));
        Assert.Equal(2, loaded!.Version);
        Assert.Equal(afterFirst, loaded.Data);
        Assert.Equal(Start.AddMinutes(1), loaded.LastSeenAt);
    }

    [Fact]
    public async Task CommitAsync_UnknownExpiredOrOtherTenantsSession_IsEnded_AndWritesNothing()
    {
        var session = await InsertAsync(NewSession(tenantId: "tenant-a", data: SessionBlob.Of(("a", [1]))));
        var expired = await InsertAsync(NewSession(data: SessionBlob.Of()));

        Assert.Equal(PgSessionCommitStatus.Ended, (await CommitAsync(Write(NewSession(), 1, Start.AddMinutes(1)), Sets(("x", [1])))).Status);
        Assert.Equal(PgSessionCommitStatus.Ended, (await CommitAsync(Write(session, 1, Start.AddMinutes(1), tenantId: "tenant-b"), Sets(("x", [1])))).Status);
        Assert.Equal(PgSessionCommitStatus.Ended, (await CommitAsync(Write(session, 7, Start.AddMinutes(1), tenantId: "tenant-b"), Sets(("x", [1])))).Status);
        Assert.Equal(PgSessionCommitStatus.Ended, (await CommitAsync(Write(expired, 1, Start + Idle), Sets(("x", [1])))).Status);
        Assert.Equal(PgSessionCommitStatus.Ended, (await CommitAsync(Write(expired, 5, Start + Idle), Sets(("x", [1])))).Status);

        var loaded = await LoadAsync(session.KeyHash, Start.AddMinutes(2), tenantId: "tenant-a");
        Assert.Equal(1, loaded!.Version);
        Assert.Equal(session.Data, loaded.Data);
        Assert.Null(await LoadAsync(NewSession().KeyHash, Start.AddMinutes(2), tenantId: "tenant-b"));
    }

    [Fact]
    public async Task CommitAsync_StaleVersion_ToANewKeyHash_MovesTheMergedSession()
    {
        var session = await InsertAsync(NewSession(userId: "alice", data: SessionBlob.Of()));
        await CommitAsync(Write(session, 1, Start.AddMinutes(1), data: SessionBlob.Of(("a", [1])), userId: "alice"), Sets(("a", [1])));
        var newKeyHash = NewKeyHash();

        var result = await CommitAsync(
            Write(session, 1, Start.AddMinutes(2), data: SessionBlob.Of(("b", [2])), userId: "alice", newKeyHash: newKeyHash),
            Sets(("b", [2])));

        Assert.Equal(PgSessionCommitStatus.Merged, result.Status);
        Assert.Equal(newKeyHash, result.Session!.KeyHash);
        Assert.Null(await LoadAsync(session.KeyHash, Start.AddMinutes(3)));
        Assert.Equal(Blob(("a", [1]), ("b", [2])), Blob((await LoadAsync(newKeyHash, Start.AddMinutes(3)))!.Data));
        Assert.Equal([session.SessionId], (await ListAsync("alice", Start.AddMinutes(3))).Select(s => s.SessionId));
        Assert.Equal(PgSessionCommitStatus.Ended, (await CommitAsync(Write(session, 3, Start.AddMinutes(3)), Sets(("c", [3])))).Status);
    }

    [Fact]
    public async Task CommitAsync_DamagedStoredData_CountsAsEmpty()
    {
        var session = await InsertAsync(NewSession(data: [1, 0, 0, 0, 9, 0]));
        await CommitAsync(Write(session, 1, Start.AddMinutes(1), data: [1, 0, 0, 0, 9, 0, 1]), Sets());

        var result = await CommitAsync(Write(session, 1, Start.AddMinutes(2), data: SessionBlob.Of(("k", [7]))), Sets(("k", [7])));

        Assert.Equal(PgSessionCommitStatus.Merged, result.Status);
        Assert.Equal(Blob(("k", [7])), Blob(result.Session!.Data));
    }

    [Fact]
    public async Task CommitAsync_ThirtyTwoConcurrentCommitsFromOneVersion_EveryKeySurvives_SameKeyHasOneWholeValue()
    {
        var session = await InsertAsync(NewSession(data: SessionBlob.Of(("base", [0]))));
        var results = await Task.WhenAll(Enumerable.Range(0, 32).Select(writer => Task.Run(
            async () =>
            {
                byte[] own = [(byte)writer, (byte)writer, (byte)writer];
                var shared = new byte[100];
                Array.Fill(shared, (byte)writer);
                var data = SessionBlob.Of(("base", [0]), ($"k{writer:D2}", own), ("shared", shared));
                return await CommitAsync(Write(session, 1, Start.AddMinutes(1), data: data), Sets(($"k{writer:D2}", own), ("shared", shared)));
            },
            CancellationToken)));

        Assert.All(results, r => Assert.Contains(r.Status, new[] { PgSessionCommitStatus.Written, PgSessionCommitStatus.Merged }));
        Assert.Single(results, r => r.Status == PgSessionCommitStatus.Written);
        Assert.Equal(Enumerable.Range(2, 32).Select(v => (long)v), results.Select(r => r.Version).Order());
        var stored = SessionBlob.Read((await LoadAsync(session.KeyHash, Start.AddMinutes(2)))!.Data);
        Assert.Equal(["base", .. Enumerable.Range(0, 32).Select(w => $"k{w:D2}"), "shared"], stored.Keys);
        Assert.Equal(33, (await LoadAsync(session.KeyHash, Start.AddMinutes(2)))!.Version);
        var sharedValue = Convert.FromHexString(stored["shared"]);
        Assert.Equal(100, sharedValue.Length);
        Assert.All(sharedValue, b => Assert.Equal(sharedValue[0], b));
    }

    [Fact]
    public async Task PingAsync_ReachableStore_Completes() => await Backend.PingAsync(CancellationToken);
}
