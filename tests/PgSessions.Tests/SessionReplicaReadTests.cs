using Microsoft.Extensions.Logging;
using Npgsql;
using PgFirst.Testing;

namespace PgSessions.Tests;

// Issue 15: session loads on a streaming standby, with replay paused for real on a throwaway primary + standby.
[Trait("Category", "Replica")]
public sealed class SessionReplicaReadTests : IAsyncLifetime
{
    private static readonly TimeSpan Touch = TimeSpan.FromMinutes(5);
    private readonly string _schema = PostgresServer.NewSchemaName();
    private StandbyPair _pair = null!;
    private PgReplicaRouter _router = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private PgFirstOptions Options => new()
    {
        SchemaName = _schema,
        Replicas = { ConnectionString = _pair.Standby.ConnectionString, SampleInterval = TimeSpan.FromMilliseconds(50) },
    };

    public async ValueTask InitializeAsync()
    {
        _pair = await StandbyPair.CreateAsync(Ct);
        await new PgSchemaInstaller(_pair.PrimaryData, _schema, [PostgresSessionBackend.SchemaModule]).ApplyAsync(Ct);
        await _pair.WaitForReplayAsync(Ct);
        _router = new PgReplicaRouter(_pair.PrimaryData, Options, TimeProvider.System);
        _router.Start();
    }

    public async ValueTask DisposeAsync()
    {
        await _router.DisposeAsync();
        await _pair.DisposeAsync();
    }

    [Fact]
    public async Task ReadYourWrites_ReplayPaused_OwnUpdateIsLoadedFromThePrimary_AnotherInstancesSessionFromTheStandby()
    {
        var mine = Backend(PgReadConsistency.ReadYourWrites);
        var otherInstance = new PostgresSessionBackend(_pair.PrimaryData, Options);
        var now = DateTimeOffset.UtcNow;
        await otherInstance.InsertAsync(Record(Key(9), "theirs-v1", now), Ct);
        await mine.InsertAsync(Record(Key(1), "mine-v1", now), Ct);
        await _pair.WaitForReplayAsync(Ct);
        await QueueTestHost.WaitUntilAsync(
            async () => await LoadAsync(mine, Key(1), now) == "mine-v1" && _router.LastReadTarget("pgsessions") == StandbyHost,
            "this instance's session to be loaded from the standby once it replayed it");

        await _pair.PauseReplayAsync(Ct);
        var loaded = (await mine.LoadAsync(Request(Key(1), now), Ct))!;
        Assert.NotNull(await mine.UpdateAsync(Update(loaded, "mine-v2", now), Ct));
        await otherInstance.UpdateAsync(Update((await otherInstance.LoadAsync(Request(Key(9), now), Ct))!, "theirs-v2", now), Ct);

        Assert.Equal("mine-v2", await LoadAsync(mine, Key(1), now));
        Assert.Equal("primary", _router.LastReadTarget("pgsessions"));
        Assert.Equal("theirs-v1", await LoadAsync(mine, Key(9), now));
        Assert.Equal(StandbyHost, _router.LastReadTarget("pgsessions"));

        // A revocation by id may touch any session: every load waits for the standby.
        await mine.RevokeAsync("default", Guid.NewGuid(), Ct);
        Assert.Equal("theirs-v2", await LoadAsync(mine, Key(9), now));
        Assert.Equal("primary", _router.LastReadTarget("pgsessions"));
        await _pair.ResumeReplayAsync(Ct);
    }

    [Fact]
    public async Task Load_OnTheStandby_SessionMissingThere_OrTouchDue_IsLoadedOnThePrimary()
    {
        var backend = Backend(PgReadConsistency.BoundedStaleness);
        var now = DateTimeOffset.UtcNow;
        await _pair.PauseReplayAsync(Ct);
        await new PostgresSessionBackend(_pair.PrimaryData, Options).InsertAsync(Record(Key(5), "new", now), Ct);

        // Not on the paused standby yet: a miss there is never taken for "no session".
        Assert.Equal("new", await LoadAsync(backend, Key(5), now));
        await _pair.ResumeReplayAsync(Ct);
        await _pair.WaitForReplayAsync(Ct);
        await QueueTestHost.WaitUntilAsync(
            async () => await LoadAsync(backend, Key(5), now) == "new" && _router.LastReadTarget("pgsessions") == StandbyHost,
            "the session to be loaded from the standby");

        // A touch due: loaded (and touched) on the primary.
        var later = now + Touch + TimeSpan.FromSeconds(1);
        Assert.Equal("new", await LoadAsync(backend, Key(5), later));
        Assert.Equal("primary", _router.LastReadTarget("pgsessions"));
        await using var lastSeen = _pair.PrimaryData.CreateCommand($"SELECT last_seen_at FROM \"{_schema}\".session WHERE key_hash = $1");
        lastSeen.Parameters.Add(new NpgsqlParameter { Value = Key(5) });
        Assert.Equal(later.UtcDateTime, (DateTime)(await lastSeen.ExecuteScalarAsync(Ct))!, TimeSpan.FromMilliseconds(1));
    }

    [Fact]
    public async Task StandbyReads_AreLoggedThroughTheLoggerFactoryGivenForTheStandbys()
    {
        // A command-count test once counted 0 for a read the router had sent to the standby: the standby's data source
        // logged nowhere. The host now hands the app's logger factory to the standbys, as it does to the primary.
        var standbyLogs = new CapturingLoggerProvider();
        using var loggerFactory = LoggerFactory.Create(l => l.AddProvider(standbyLogs).SetMinimumLevel(LogLevel.Trace));
        await using var router = new PgReplicaRouter(_pair.PrimaryData, Options, TimeProvider.System, standbyLoggerFactory: loggerFactory);
        router.Start();
        var backend = new PostgresSessionBackend(
            _pair.PrimaryData, Options, PgReplicaReads.For(router, "pgsessions", PgReadConsistency.BoundedStaleness, TimeSpan.FromSeconds(60)));
        var now = DateTimeOffset.UtcNow;
        await new PostgresSessionBackend(_pair.PrimaryData, Options).InsertAsync(Record(Key(7), "logged", now), Ct);
        await _pair.WaitForReplayAsync(Ct);

        await QueueTestHost.WaitUntilAsync(
            async () => await LoadAsync(backend, Key(7), now) == "logged" && router.LastReadTarget("pgsessions") == router.Status[0].Host,
            "the session to be loaded from the standby");

        Assert.Contains(standbyLogs.Entries, e => e.EventId.Id == NpgsqlEventId.CommandExecutionCompleted
            && e.Message.Contains($"\"{_schema}\"", StringComparison.Ordinal));
    }

    private string StandbyHost => _router.Status[0].Host;

    // Session keys are stored as their SHA-256: 32 bytes.
    private static byte[] Key(byte value) => Enumerable.Repeat(value, 32).ToArray();

    private PostgresSessionBackend Backend(PgReadConsistency consistency) =>
        new(_pair.PrimaryData, Options, PgReplicaReads.For(_router, "pgsessions", consistency, TimeSpan.FromSeconds(60)));

    private static PgSessionLoadRequest Request(byte[] key, DateTimeOffset now) => new(key, "default", now, Touch);

    private static async Task<string?> LoadAsync(PostgresSessionBackend backend, byte[] key, DateTimeOffset now) =>
        await backend.LoadAsync(Request(key, now), Ct) is { } record ? System.Text.Encoding.UTF8.GetString(record.Data) : null;

    private static PgSessionRecord Record(byte[] key, string data, DateTimeOffset now) => new()
    {
        KeyHash = key,
        SessionId = Guid.NewGuid(),
        TenantId = "default",
        CreatedAt = now,
        LastSeenAt = now,
        IdleTimeout = TimeSpan.FromHours(1),
        AbsoluteExpiresAt = now.AddHours(2),
        Version = 1,
        Data = System.Text.Encoding.UTF8.GetBytes(data),
    };

    private static PgSessionUpdate Update(PgSessionRecord loaded, string data, DateTimeOffset now) => new()
    {
        KeyHash = loaded.KeyHash,
        NewKeyHash = loaded.KeyHash,
        TenantId = loaded.TenantId,
        ExpectedVersion = loaded.Version,
        Data = System.Text.Encoding.UTF8.GetBytes(data),
        IdleTimeout = loaded.IdleTimeout,
        AbsoluteExpiresAt = loaded.AbsoluteExpiresAt,
        Now = now,
        TouchInterval = Touch,
    };
}
