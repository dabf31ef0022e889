using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using PgFirst.Testing;
using PgSessions.Internal;

namespace PgSessions.Tests;

// Issue 23: session loads from memory, two instances on one schema, each with its own listen connection.
public sealed class SessionNearCacheTests(PostgresServer server) : IAsyncLifetime
{
    private static readonly TimeSpan Touch = TimeSpan.FromMinutes(1);
    private readonly PostgresSchema _schema = new(server);
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly List<NearCachedSessionBackend> _instances = [];

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync() => await _schema.ApplyAsync([PostgresSessionBackend.SchemaModule], Ct);

    public async ValueTask DisposeAsync()
    {
        foreach (var instance in _instances)
        {
            await instance.DisposeAsync();
        }

        await _schema.DisposeAsync();
    }

    [Fact]
    public async Task Load_ServedFromMemoryWithoutARoundTrip_ForAtMostMaxStaleness()
    {
        var a = await InstanceAsync(TimeSpan.FromSeconds(2));
        var record = await InsertAsync(1, "v1");
        Assert.Equal("v1", await LoadAsync(a, record));

        // Gone from the table behind every instance's back (no notification): still served from memory…
        await DeleteBehindTheBackAsync(record);
        _time.Advance(TimeSpan.FromSeconds(1.9));
        Assert.Equal("v1", await LoadAsync(a, record));

        // …but never past MaxStaleness after it was loaded.
        _time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.Null(await LoadAsync(a, record));
    }

    [Fact]
    public async Task Load_TouchDueOrExpired_GoesToTheStore()
    {
        var a = await InstanceAsync(TimeSpan.FromMinutes(5));
        var record = await InsertAsync(2, "v1");
        Assert.Equal("v1", await LoadAsync(a, record));
        await DeleteBehindTheBackAsync(record);

        // A touch is due a minute after the last one: only the store may make it.
        _time.Advance(Touch);
        Assert.Null(await LoadAsync(a, record));
    }

    [Fact]
    public async Task RevocationOnAnotherInstance_TakesEffectThroughNotify_LongBeforeMaxStaleness()
    {
        var a = await InstanceAsync(TimeSpan.FromMinutes(5));
        var b = await InstanceAsync(TimeSpan.FromMinutes(5));
        var record = await InsertAsync(3, "v1");
        Assert.Equal("v1", await LoadAsync(a, record));
        Assert.Equal("v1", await LoadAsync(a, record));

        Assert.True(await b.RevokeAsync("default", record.SessionId, Ct));

        // The clock does not move: only the notification can end A's copy.
        await QueueTestHost.WaitUntilAsync(async () => await LoadAsync(a, record) is null, "the revocation on B to reach A's near cache");
    }

    [Fact]
    public async Task RevokeAllOfAUserOnAnotherInstance_DropsThatUsersCopiesOnly()
    {
        var a = await InstanceAsync(TimeSpan.FromMinutes(5));
        var b = await InstanceAsync(TimeSpan.FromMinutes(5));
        var alice = await InsertAsync(4, "alice", userId: "alice|admin");
        var bob = await InsertAsync(5, "bob", userId: "bob");
        Assert.Equal("alice", await LoadAsync(a, alice));
        Assert.Equal("bob", await LoadAsync(a, bob));
        await DeleteBehindTheBackAsync(bob); // were bob's copy dropped, A would now load nothing for him

        Assert.Equal(1, await b.RevokeAllAsync("default", "alice|admin", null, Ct));

        await QueueTestHost.WaitUntilAsync(async () => await LoadAsync(a, alice) is null, "the revocation of alice's sessions to reach A");
        Assert.Equal("bob", await LoadAsync(a, bob));
    }

    [Fact]
    public async Task WriteOnAnotherInstance_IsSeen_AndAnOwnWriteAtOnce()
    {
        var a = await InstanceAsync(TimeSpan.FromMinutes(5));
        var b = await InstanceAsync(TimeSpan.FromMinutes(5));
        var record = await InsertAsync(6, "v1");
        Assert.Equal("v1", await LoadAsync(a, record));

        var loaded = (await b.LoadAsync(Request(record), Ct))!;
        Assert.NotNull(await b.UpdateAsync(Update(loaded, "v2"), Ct));
        await QueueTestHost.WaitUntilAsync(async () => await LoadAsync(a, record) == "v2", "B's write to reach A's near cache");

        // A's own write: its next load reads it back, no notification needed.
        var mine = (await a.LoadAsync(Request(record), Ct))!;
        Assert.NotNull(await a.UpdateAsync(Update(mine, "v3"), Ct));
        Assert.Equal("v3", await LoadAsync(a, record));
    }

    [Fact]
    public async Task ListenConnectionLost_NothingServedFromMemory_UntilItListensAgain()
    {
        var a = await InstanceAsync(TimeSpan.FromMinutes(5));
        var record = await InsertAsync(7, "v1");
        Assert.Equal("v1", await LoadAsync(a, record));
        await DeleteBehindTheBackAsync(record);
        Assert.Equal("v1", await LoadAsync(a, record));

        var listener = a.ListenerProcessId;
        await using (var kill = _schema.DataSource.CreateCommand("SELECT pg_terminate_backend($1)"))
        {
            kill.Parameters.Add(new NpgsqlParameter { Value = listener });
            Assert.Equal(true, await kill.ExecuteScalarAsync(Ct));
        }

        // Every copy went with the connection: the store answers (the row is gone), then serving resumes.
        await QueueTestHost.WaitUntilAsync(async () => await LoadAsync(a, record) is null, "the lost listen connection to stop the near cache serving");
        await QueueTestHost.WaitUntilAsync(() => Task.FromResult(a.IsServing && a.ListenerProcessId != listener), "the near cache to listen again");
    }

    [Fact]
    public async Task LoadThatRacedWithAnInvalidation_IsReturnedButNotKept()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var paused = new PausedLoads(new PostgresSessionBackend(_schema.DataSource, _schema.Options), gate.Task);
        var a = await InstanceAsync(TimeSpan.FromMinutes(5), paused);
        var record = await InsertAsync(8, "v1");

        // The load has read v1 and waits; meanwhile this instance writes v2 (its invalidation runs now); then the load
        // finishes with v1. Kept, v1 would be served for five minutes.
        var load = a.LoadAsync(Request(record), Ct).AsTask();
        await paused.Reached.Task.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        var direct = new PostgresSessionBackend(_schema.DataSource, _schema.Options);
        var fresh = (await direct.LoadAsync(Request(record), Ct))!;
        Assert.NotNull(await a.UpdateAsync(Update(fresh, "v2"), Ct));
        gate.SetResult();
        Assert.Equal("v1", Text(await load));

        paused.Passthrough = true;
        Assert.Equal("v2", await LoadAsync(a, record));
    }

    [Fact]
    public async Task Full_CopiesTooOldToServe_AreSweptToMakeRoom()
    {
        var a = await InstanceAsync(TimeSpan.FromSeconds(2), maxEntries: 2);
        var first = await InsertAsync(9, "1");
        var second = await InsertAsync(10, "2");
        var third = await InsertAsync(11, "3");
        await LoadAsync(a, first);
        await LoadAsync(a, second);
        await LoadAsync(a, third);
        Assert.Equal(2, a.Count); // full: the third is not kept

        // Never looked up again, the first two would hold their places for ever and nothing new would be kept.
        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal("3", await LoadAsync(a, third));
        Assert.Equal(1, a.Count);
        await DeleteBehindTheBackAsync(third);
        Assert.Equal("3", await LoadAsync(a, third)); // kept now: served from memory
    }

    [Fact]
    public void NearCacheWithReplicaReads_FailsAtStartup()
    {
        var services = new ServiceCollection();
        services.AddPgFirst(o => o.Replicas.ConnectionString = "Host=standby");
        services.AddPgSessions(o =>
        {
            o.NearCache.Enabled = true;
            o.ReadConsistency = PgReadConsistency.BoundedStaleness;
        });
        using var provider = services.BuildServiceProvider();

        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<PgSessionOptions>>().Value);

        Assert.Contains("its loads must read the primary (Strong)", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("00:00:00.050", 10, "PgSessions:NearCache:MaxStaleness")]
    [InlineData("00:10:00", 10, "PgSessions:NearCache:MaxStaleness")]
    [InlineData("00:00:01", 0, "PgSessions:NearCache:MaxEntries")]
    public void BadNearCacheSettings_FailAtStartup(string maxStaleness, int maxEntries, string message)
    {
        var services = new ServiceCollection();
        services.AddPgFirst();
        services.AddPgSessions(o =>
        {
            o.NearCache.Enabled = true;
            o.NearCache.MaxStaleness = TimeSpan.Parse(maxStaleness, System.Globalization.CultureInfo.InvariantCulture);
            o.NearCache.MaxEntries = maxEntries;
        });
        using var provider = services.BuildServiceProvider();

        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<PgSessionOptions>>().Value);

        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NearCacheOnRedisSessions_FailsAtStartup()
    {
        var services = new ServiceCollection();
        services.AddPgFirst(o => o.SessionsBackend = PgFirstBackend.Redis);
        services.AddPgSessions(o => o.NearCache.Enabled = true);
        using var provider = services.BuildServiceProvider();

        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<PgSessionOptions>>().Value);

        Assert.Contains("the session near cache listens on PostgreSQL", error.Message, StringComparison.Ordinal);
    }

    private async Task<NearCachedSessionBackend> InstanceAsync(TimeSpan maxStaleness, IPgSessionBackend? inner = null, int maxEntries = 100_000)
    {
        var instance = new NearCachedSessionBackend(
            inner ?? new PostgresSessionBackend(_schema.DataSource, _schema.Options),
            new PgSessionNearCacheOptions { Enabled = true, MaxStaleness = maxStaleness, MaxEntries = maxEntries },
            _schema.DataSource,
            _schema.Options,
            _time,
            NullLogger.Instance);
        _instances.Add(instance);
        instance.Start();
        await QueueTestHost.WaitUntilAsync(() => Task.FromResult(instance.IsServing), "the near cache to listen");
        return instance;
    }

    private async Task<PgSessionRecord> InsertAsync(byte key, string data, string? userId = null)
    {
        var now = _time.GetUtcNow();
        var record = new PgSessionRecord
        {
            KeyHash = Enumerable.Repeat(key, 32).ToArray(),
            SessionId = Guid.NewGuid(),
            TenantId = "default",
            UserId = userId,
            CreatedAt = now,
            LastSeenAt = now,
            IdleTimeout = TimeSpan.FromHours(1),
            AbsoluteExpiresAt = now.AddHours(2),
            Version = 1,
            Data = System.Text.Encoding.UTF8.GetBytes(data),
        };
        Assert.True(await new PostgresSessionBackend(_schema.DataSource, _schema.Options).InsertAsync(record, Ct));
        return record;
    }

    private async Task DeleteBehindTheBackAsync(PgSessionRecord record)
    {
        await using var delete = _schema.DataSource.CreateCommand($"DELETE FROM \"{_schema.Name}\".session WHERE key_hash = $1");
        delete.Parameters.Add(new NpgsqlParameter { Value = record.KeyHash });
        Assert.Equal(1, await delete.ExecuteNonQueryAsync(Ct));
    }

    private PgSessionLoadRequest Request(PgSessionRecord record) => new(record.KeyHash, "default", _time.GetUtcNow(), Touch);

    private async Task<string?> LoadAsync(NearCachedSessionBackend backend, PgSessionRecord record) => Text(await backend.LoadAsync(Request(record), Ct));

    private static string? Text(PgSessionRecord? record) => record is null ? null : System.Text.Encoding.UTF8.GetString(record.Data);

    private PgSessionUpdate Update(PgSessionRecord loaded, string data) => new()
    {
        KeyHash = loaded.KeyHash,
        NewKeyHash = loaded.KeyHash,
        TenantId = loaded.TenantId,
        ExpectedVersion = loaded.Version,
        Data = System.Text.Encoding.UTF8.GetBytes(data),
        IdleTimeout = loaded.IdleTimeout,
        AbsoluteExpiresAt = loaded.AbsoluteExpiresAt,
        Now = _time.GetUtcNow(),
        TouchInterval = Touch,
    };

    // The real store, whose loads wait at a gate after they have read (until Passthrough).
    private sealed class PausedLoads(IPgSessionBackend inner, Task gate) : IPgSessionBackend
    {
        public TaskCompletionSource Reached { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public bool Passthrough { get; set; }

        public async ValueTask<PgSessionRecord?> LoadAsync(PgSessionLoadRequest request, CancellationToken cancellationToken)
        {
            var record = await inner.LoadAsync(request, cancellationToken);
            if (!Passthrough)
            {
                Reached.TrySetResult();
                await gate;
            }

            return record;
        }

        public PgSessionRecord? Load(PgSessionLoadRequest request) => inner.Load(request);

        public ValueTask<bool> InsertAsync(PgSessionRecord record, CancellationToken cancellationToken) => inner.InsertAsync(record, cancellationToken);

        public ValueTask<long?> UpdateAsync(PgSessionUpdate update, CancellationToken cancellationToken) => inner.UpdateAsync(update, cancellationToken);

        public ValueTask<PgSessionCommitResult> CommitAsync(PgSessionUpdate update, PgSessionChanges changes, CancellationToken cancellationToken) => inner.CommitAsync(update, changes, cancellationToken);

        public ValueTask<IReadOnlyList<PgSessionInfo>> ListAsync(string tenantId, string userId, DateTimeOffset now, CancellationToken cancellationToken) => inner.ListAsync(tenantId, userId, now, cancellationToken);

        public ValueTask<bool> RevokeAsync(string tenantId, Guid sessionId, CancellationToken cancellationToken) => inner.RevokeAsync(tenantId, sessionId, cancellationToken);

        public ValueTask<int> RevokeAllAsync(string tenantId, string userId, Guid? exceptSessionId, CancellationToken cancellationToken) => inner.RevokeAllAsync(tenantId, userId, exceptSessionId, cancellationToken);

        public ValueTask PingAsync(CancellationToken cancellationToken) => inner.PingAsync(cancellationToken);
    }
}
