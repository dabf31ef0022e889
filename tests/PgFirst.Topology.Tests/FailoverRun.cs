using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using PgCache;
using PgFirst.Testing;
using PgQueue;
using PgRateLimit;
using PgSessions;

namespace PgFirst.Topology.Tests;

internal enum Replication
{
    Asynchronous,
    Synchronous,
}

// How the old primary looks once it is dead. A killed server on a live machine refuses connections at once (RST);
// a machine that hangs or vanishes from the network does not answer at all, and a connection attempt waits for
// Npgsql's Timeout. The second is imitated on loopback by a listener on the dead server's port that never answers.
public enum DeadPrimary
{
    Refuses,
    Hangs,
}

// One failover scenario: how the standby replicates, what the app's connection string adds to the hosts, how the cache
// table is created, how the dead primary answers, and whether the standby falls behind first: its replication
// connection cut this long before the crash, as by a network fault, so the commits of that last stretch never reach it.
internal sealed record FailoverSettings(
    Replication Replication,
    string NpgsqlSettings,
    PgCacheDurability CacheDurability,
    DeadPrimary DeadPrimary = DeadPrimary.Refuses,
    TimeSpan? CutReplicationBeforeCrash = null)
{
    public override string ToString() =>
        $"{Replication} replication, cache {CacheDurability}, connection string settings '{(NpgsqlSettings.Length == 0 ? "(Npgsql defaults)" : NpgsqlSettings)}', " +
        $"the dead primary {(DeadPrimary == DeadPrimary.Refuses ? "refuses connections" : "hangs (accepts, never answers)")}" +
        (CutReplicationBeforeCrash is { } cut ? $", replication cut {Outage.Seconds(cut)} before the crash" : string.Empty);
}

// A throwaway primary and its streaming standby, and an app (a generic host) on a multi-host data source with the four
// modules under load: the primary is crashed, the standby promoted at once, and the load goes on until every module
// works again. What each module saw, and what survived, is the report.
internal sealed class FailoverRun : IAsyncDisposable
{
    private const string Tenant = PgFirstOptions.DefaultTenant;
    private const int CallersPerModule = 2;
    private const int CacheMarkers = 10;

    // The sessions inserted last before the crash, the likeliest to be missing on the standby, are looked up after it.
    private const int SessionsChecked = 200;
    private const string LimiterPolicy = "failover";

    // Permits nobody runs out of: every decision the store makes admits, so a decision is either the store's or degraded.
    private const int LimiterPermits = 1_000_000;

    // Between two operations of one caller: a steady load rather than a spin, on two cores shared with both servers.
    private static readonly TimeSpan Pace = TimeSpan.FromMilliseconds(5);
    private static readonly TimeSpan WarmUp = TimeSpan.FromSeconds(2);

    // How long the load goes on after every module has recovered; longer with a hanging primary, whose retries (every
    // Host Recheck Seconds) the aftermath shows.
    private static readonly TimeSpan AfterRecovery = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan AfterRecoveryWithHangingPrimary = TimeSpan.FromSeconds(6);

    // An operation slower than this after recovery counts in the aftermath.
    private static readonly TimeSpan Slow = TimeSpan.FromMilliseconds(500);

    // Bounds on the run: the load stops after this long past the crash even if some module never recovered.
    private static readonly TimeSpan RecoveryLimit = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan DrainLimit = TimeSpan.FromSeconds(30);

    // A day-long window: a run of a few seconds crosses its (UTC midnight) boundary about once in 5,000 runs, and the
    // report says when it did.
    private static readonly TimeSpan Day = TimeSpan.FromDays(1);

    private readonly FailoverSettings _settings;
    private readonly string _schemaName = PostgresServer.NewSchemaName();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly FailoverJournal _journal;
    private readonly ModuleProbe _cache;
    private readonly ModuleProbe _sessions;
    private readonly ModuleProbe _limiter;
    private readonly ModuleProbe _enqueue;
    private readonly ConcurrentDictionary<string, int> _errors = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<int, long> _enqueued = new();
    private readonly ConcurrentBag<int> _enqueueFailed = [];
    private readonly ConcurrentQueue<(byte[] KeyHash, TimeSpan At)> _sessionsInserted = new();
    private readonly CapturingLoggerProvider _logs = new();

    // Cancelled first on dispose, so the load and the listener watch end before anything they use goes away, whether
    // the run finished or failed half-way.
    private readonly CancellationTokenSource _disposing = new();
    private PrivatePostgres? _primary;
    private PrivatePostgres? _standby;
    private TcpProxy? _replication;
    private IHost? _host;
    private bool _hostStarted;

    private CancellationTokenSource? _stopLoad;
    private Task _load = Task.CompletedTask;
    private Task _listener = Task.CompletedTask;
    private NpgsqlDataSource? _newPrimary;
    private System.Net.Sockets.TcpListener? _hangingPrimary;
    private int _nextJob;
    private int _sessionsNotFound;

    private FailoverRun(FailoverSettings settings)
    {
        _settings = settings;
        _journal = new FailoverJournal(new ModuleProbe("queue (workers)", _clock));
        _cache = new ModuleProbe("cache", _clock);
        _sessions = new ModuleProbe("sessions", _clock);
        _limiter = new ModuleProbe("rate limiter", _clock);
        _enqueue = new ModuleProbe("queue (enqueue)", _clock);
    }

    private string Schema => PgSqlIdentifier.Quote(_schemaName);

    private IServiceProvider Services => _host?.Services ?? throw new InvalidOperationException("The app was not started.");

    // A connection of the test's own to the promoted standby, for what the report counts there.
    private NpgsqlDataSource NewPrimary => _newPrimary ?? throw new InvalidOperationException("The standby was not promoted.");

    /// <summary>Runs the scenario once; every cluster is stopped and deleted whatever happens.</summary>
    public static async Task<FailoverReport> RunAsync(FailoverSettings settings, CancellationToken cancellationToken)
    {
        await using var run = new FailoverRun(settings);
        return await run.RunAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        await _disposing.CancelAsync();
        try
        {
            // Each operation in flight ends within Timeout; the loops then see the cancellation.
            await Task.WhenAll(_load, _listener).WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (Exception ex) when (ex is OperationCanceledException or TimeoutException or NpgsqlException or ObjectDisposedException)
        {
            // The run's own error, if any, is the one to report.
        }

        _stopLoad?.Dispose();
        _disposing.Dispose();
        _hangingPrimary?.Dispose();
        try
        {
            if (_host is not null)
            {
                using var stopLimit = new CancellationTokenSource(TimeSpan.FromSeconds(15));
                try
                {
                    // A host whose start failed cannot be stopped (and the start's error is the one to report).
                    if (_hostStarted)
                    {
                        await _host.StopAsync(stopLimit.Token);
                    }
                }
                finally
                {
                    // Disposes the container's data source too.
                    _host.Dispose();
                }
            }
        }
        finally
        {
            try
            {
                if (_newPrimary is not null)
                {
                    await _newPrimary.DisposeAsync();
                }

                if (_replication is not null)
                {
                    await _replication.DisposeAsync();
                }
            }
            finally
            {
                try
                {
                    if (_standby is not null)
                    {
                        await _standby.DisposeAsync();
                    }
                }
                finally
                {
                    if (_primary is not null)
                    {
                        await _primary.DisposeAsync();
                    }
                }
            }
        }
    }

    private async Task<FailoverReport> RunAsync(CancellationToken cancellationToken)
    {
        _primary = await PrivatePostgres.CreateAsync(cancellationToken);

        // The standby streams through a proxy of the test's, which can cut replication and leave it behind.
        _replication = new TcpProxy("127.0.0.1", _primary.Port);
        _standby = await _primary.CreateStandbyAsync(_replication.Port, cancellationToken);
        if (_settings.Replication == Replication.Synchronous)
        {
            await _primary.MakeSynchronousAsync(_standby, cancellationToken);
        }

        _host = BuildApp($"Host=127.0.0.1:{_primary.Port},127.0.0.1:{_standby.Port};Username={PrivatePostgres.UserName};Database=postgres;" +
                         $"Target Session Attributes=primary;{_settings.NpgsqlSettings}");
        await _host.StartAsync(cancellationToken);
        _hostStarted = true;
        await using (var command = Services.GetRequiredService<NpgsqlDataSource>().CreateCommand(
            $"CREATE TABLE {Schema}.failover_effect (number integer NOT NULL, job_id bigint NOT NULL, attempt integer NOT NULL)"))
        {
            // No unique constraint: a second effect of a job must be counted, not refused.
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        // The schema must be on the standby before the crash, or there is nothing to fail over to.
        await _primary.WaitForReplayAsync(_standby, cancellationToken);

        var stop = _stopLoad = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposing.Token);
        _load = StartLoad(stop.Token);
        await Task.Delay(WarmUp, cancellationToken);
        var before = await WriteMarkersAsync(cancellationToken);
        if (_settings.CutReplicationBeforeCrash is { } cut)
        {
            // Asynchronous: the primary goes on acknowledging commits the standby never gets. Synchronous: every commit
            // that needs the standby waits, so none of them is acknowledged.
            _replication.GoDown();
            await Task.Delay(cut, cancellationToken);
        }

        var crashedAt = _clock.Elapsed;
        await _primary.CrashAsync(cancellationToken);
        var crashReturnedAt = _clock.Elapsed;
        if (_settings.DeadPrimary == DeadPrimary.Hangs)
        {
            _hangingPrimary = await HangOnAsync(_primary.Port, cancellationToken);
        }

        await _standby.PromoteAsync(cancellationToken);
        var promotedAt = _clock.Elapsed;
        _newPrimary = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(_standby.ConnectionString) { Pooling = false }.ConnectionString);
        var listener = WaitForListenerAsync(_disposing.Token);
        _listener = listener;

        var probes = new[] { _cache, _sessions, _limiter, _enqueue, _journal.Handler };
        while (!probes.All(p => p.SucceededSince(promotedAt)) && _clock.Elapsed - crashedAt < RecoveryLimit)
        {
            await Task.Delay(20, cancellationToken);
        }

        var recoveredAt = _clock.Elapsed;
        await Task.Delay(_settings.DeadPrimary == DeadPrimary.Hangs ? AfterRecoveryWithHangingPrimary : AfterRecovery, cancellationToken);
        await stop.CancelAsync();
        await _load;

        // With a hanging old primary every open may wait for Timeout (see docs/production.md): what survived is the
        // refusing runs' business, so this one reports the outage and its aftermath only.
        var hangs = _settings.DeadPrimary == DeadPrimary.Hangs;
        var after = hangs ? null : await ReadMarkersAsync(before, crashedAt, cancellationToken);
        var queue = hangs ? null : await CountJobsAsync(await DrainAsync(cancellationToken), cancellationToken);
        var listenerBackAt = await listener;
        return new FailoverReport
        {
            Settings = _settings,
            CrashedAt = crashedAt,
            CrashReturnedAt = crashReturnedAt,
            PromotedAt = promotedAt,
            Outages = [.. probes.Select(p => p.Measure(crashedAt, crashReturnedAt))],
            Aftermath = [.. probes.Take(4).Select(p => p.After(recoveredAt, Slow))],
            ListenerBackAt = listenerBackAt,
            Operations = probes.ToDictionary(p => p.Name, p => (p.Successes, p.Failures)),
            Errors = _errors.OrderByDescending(e => e.Value).Take(12).Select(e => $"{e.Value} × {e.Key}").ToList(),
            Markers = after,
            SessionsNotFound = Volatile.Read(ref _sessionsNotFound),
            Queue = queue,
        };
    }

    private IHost BuildApp(string connectionString)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(_logs);
        builder.Logging.SetMinimumLevel(LogLevel.Information);

        // As an app registers a multi-host data source: it is both the NpgsqlMultiHostDataSource and the NpgsqlDataSource
        // PgFirst resolves, and Target Session Attributes in the string sends every connection to the primary.
        builder.Services.AddMultiHostNpgsqlDataSource(connectionString);
        builder.Services.AddPgFirst(o =>
        {
            o.SchemaName = _schemaName;
            o.ApplySchemaOnStartup = true;
        });
        builder.Services.AddPgCache(o => o.Durability = _settings.CacheDurability);
        builder.Services.AddPgSessions();
        builder.Services.AddPgRateLimiting();
        builder.Services.AddPgQueue(o =>
            {
                o.DefaultConcurrency = 4;
                o.DefaultPrefetch = 16;
                o.PollInterval = TimeSpan.FromMilliseconds(200);
                o.LeaseDuration = TimeSpan.FromSeconds(3);
                o.HeartbeatInterval = TimeSpan.FromSeconds(1);
                o.ShutdownGracePeriod = TimeSpan.FromSeconds(5);
                o.SucceededRetention = TimeSpan.FromHours(1);
                o.Retry = new JobRetryPolicy { BaseDelay = TimeSpan.FromMilliseconds(50), MaxDelay = TimeSpan.FromMilliseconds(200), Jitter = 0 };
            })
            .AddHandler<FailoverJob, EffectHandler>(o => o.Kind = FailoverJob.Kind);
        builder.Services.AddSingleton(_journal);
        return builder.Build();
    }

    private Task StartLoad(CancellationToken stop)
    {
        var cache = Services.GetRequiredService<IDistributedCache>();
        var sessions = Services.GetRequiredService<IPgSessionBackend>();
        var store = Services.GetRequiredService<IPgRateLimitStore>();
        var queue = Services.GetRequiredService<IJobQueue>();
        var policy = new PgFixedWindowRateLimiterOptions { PermitLimit = LimiterPermits, Window = Day };
        var loops = new List<Task>();
        for (var caller = 0; caller < CallersPerModule; caller++)
        {
            var id = caller;
            loops.Add(LoopAsync(i => CacheStepAsync(cache, id, i, stop), stop));
            loops.Add(LoopAsync(_ => SessionStepAsync(sessions, stop), stop));
            var limiter = new PgFixedWindowRateLimiter(store, LimiterPolicy, $"caller:{id}", policy);
            loops.Add(LoopAsync(_ => LimiterStepAsync(limiter, stop), stop));
            loops.Add(LoopAsync(_ => EnqueueStepAsync(queue, stop), stop));
        }

        return Task.WhenAll(loops);
    }

    // Runs one caller's steps, paced, until the load stops; a step records its own outcomes.
    private static async Task LoopAsync(Func<int, Task> step, CancellationToken stop)
    {
        await Task.Yield();
        for (var i = 0; !stop.IsCancellationRequested; i++)
        {
            try
            {
                await step(i);
                await Task.Delay(Pace, stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
        }
    }

    // One operation, timed on the run's clock: true when it succeeded. Failures are counted by kind for the report.
    private async Task<bool> TryAsync(ModuleProbe probe, Func<Task> operation, CancellationToken stop)
    {
        var started = _clock.Elapsed;
        try
        {
            await operation();
            probe.Succeeded(_clock.Elapsed - started);
            return true;
        }
        catch (Exception ex) when (!stop.IsCancellationRequested)
        {
            probe.Failed(_clock.Elapsed - started);
            _errors.AddOrUpdate($"{probe.Name}: {Describe(ex)}", 1, (_, n) => n + 1);
            return false;
        }
    }

    private async Task CacheStepAsync(IDistributedCache cache, int caller, int i, CancellationToken stop)
    {
        var key = $"load:{caller}:{i % 50}";
        if (await TryAsync(_cache, () => cache.SetAsync(key, RandomNumberGenerator.GetBytes(64), new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(10) }, stop), stop))
        {
            await TryAsync(_cache, () => cache.GetAsync(key, stop), stop);
        }
    }

    private async Task SessionStepAsync(IPgSessionBackend sessions, CancellationToken stop)
    {
        var now = TimeProvider.System.GetUtcNow();
        var session = new PgSessionRecord
        {
            KeyHash = RandomNumberGenerator.GetBytes(32),
            TenantId = Tenant,
            SessionId = Guid.NewGuid(),
            Version = 1,
            Data = [1, 2, 3],
            CreatedAt = now,
            LastSeenAt = now,
            IdleTimeout = TimeSpan.FromMinutes(20),
            AbsoluteExpiresAt = now + TimeSpan.FromHours(8),
        };
        var inserted = false;
        if (!await TryAsync(_sessions, async () => inserted = await sessions.InsertAsync(session, stop), stop) || !inserted)
        {
            return;
        }

        _sessionsInserted.Enqueue((session.KeyHash, _clock.Elapsed));
        PgSessionRecord? loaded = null;
        if (!await TryAsync(_sessions, async () => loaded = await sessions.LoadAsync(new PgSessionLoadRequest(session.KeyHash, Tenant, now, Day), stop), stop))
        {
            return;
        }

        if (loaded is null)
        {
            Interlocked.Increment(ref _sessionsNotFound);
            return;
        }

        await TryAsync(
            _sessions,
            () => sessions.UpdateAsync(
                new PgSessionUpdate
                {
                    KeyHash = session.KeyHash,
                    NewKeyHash = session.KeyHash,
                    TenantId = Tenant,
                    ExpectedVersion = 1,
                    Data = [4, 5, 6],
                    IdleTimeout = session.IdleTimeout,
                    AbsoluteExpiresAt = session.AbsoluteExpiresAt,
                    Now = TimeProvider.System.GetUtcNow(),
                },
                stop).AsTask(),
            stop);
    }

    // A decision the store made carries the policy's metadata; one the limiter made alone (fail-open) carries none.
    private async Task LimiterStepAsync(PgFixedWindowRateLimiter limiter, CancellationToken stop)
    {
        var started = _clock.Elapsed;
        using var lease = await limiter.AcquireAsync(1, stop);
        if (lease.TryGetMetadata(PgRateLimitMetadata.Policy, out _))
        {
            _limiter.Succeeded(_clock.Elapsed - started);
        }
        else
        {
            _limiter.Failed(_clock.Elapsed - started);
            _errors.AddOrUpdate($"{_limiter.Name}: degraded (fail-open), admitted={lease.IsAcquired}", 1, (_, n) => n + 1);
        }
    }

    private async Task EnqueueStepAsync(IJobQueue queue, CancellationToken stop)
    {
        var number = Interlocked.Increment(ref _nextJob);
        JobEnqueueResult result = default;
        if (await TryAsync(_enqueue, async () => result = await queue.EnqueueAsync(new FailoverJob(number), cancellationToken: stop), stop))
        {
            _enqueued[number] = result.Id ?? 0;
        }
        else
        {
            // In doubt: the commit may have reached the server (and the standby) before the connection broke.
            _enqueueFailed.Add(number);
        }
    }

    // Written after the warm-up, before the crash: cache entries, a rate-limit count, and (by the load) sessions.
    private async Task<MarkersBefore> WriteMarkersAsync(CancellationToken cancellationToken)
    {
        var cache = Services.GetRequiredService<IDistributedCache>();
        for (var i = 0; i < CacheMarkers; i++)
        {
            await cache.SetAsync($"marker:{i}", [(byte)i], new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromHours(1) }, cancellationToken);
        }

        var decision = await Services.GetRequiredService<IPgRateLimitStore>().AcquireAsync(MarkerRequest(5), cancellationToken);
        return new MarkersBefore(decision.Count, decision.WindowRemaining);
    }

    private static PgRateLimitRequest MarkerRequest(int permits) => new("failover-marker", "marker", permits, LimiterPermits, Day, false);

    // Read through the app once every module works again: what the new primary still has of what was written before.
    private async Task<Markers> ReadMarkersAsync(MarkersBefore before, TimeSpan crashedAt, CancellationToken cancellationToken)
    {
        var cache = Services.GetRequiredService<IDistributedCache>();
        var cacheSurvived = 0;
        for (var i = 0; i < CacheMarkers; i++)
        {
            if (await cache.GetAsync($"marker:{i}", cancellationToken) is not null)
            {
                cacheSurvived++;
            }
        }

        var decision = await Services.GetRequiredService<IPgRateLimitStore>().AcquireAsync(MarkerRequest(1), cancellationToken);

        // Sessions whose insert returned before the crash began: their commits were acknowledged by the old primary.
        var sessions = Services.GetRequiredService<IPgSessionBackend>();
        var sessionsBefore = 0;
        var sessionsSurvived = 0;
        var now = TimeProvider.System.GetUtcNow();
        foreach (var (keyHash, _) in _sessionsInserted.Where(s => s.At < crashedAt).TakeLast(SessionsChecked))
        {
            sessionsBefore++;
            if (await sessions.LoadAsync(new PgSessionLoadRequest(keyHash, Tenant, now, Day), cancellationToken) is not null)
            {
                sessionsSurvived++;
            }
        }

        var persistence = new Dictionary<string, string>(StringComparer.Ordinal);
        await using (var command = NewPrimary.CreateCommand(
            "SELECT c.relname, c.relpersistence::text FROM pg_class AS c WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'r' ORDER BY 1"))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = _schemaName });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                persistence[reader.GetString(0)] = reader.GetString(1) == "u" ? "UNLOGGED" : "logged";
            }
        }

        return new Markers
        {
            CacheWritten = CacheMarkers,
            CacheSurvived = cacheSurvived,
            RateLimitCountBefore = before.RateLimitCount,
            RateLimitCountAfter = decision.Count,
            RateLimitWindowEnded = decision.WindowRemaining > before.WindowRemaining,
            SessionsBefore = sessionsBefore,
            SessionsSurvived = sessionsSurvived,
            TablePersistence = persistence,
        };
    }

    // Waits until no job is waiting or running on the new primary: every job it has ran (or died).
    private async Task<bool> DrainAsync(CancellationToken cancellationToken)
    {
        var elapsed = Stopwatch.StartNew();
        while (elapsed.Elapsed < DrainLimit)
        {
            await using var command = NewPrimary.CreateCommand($"SELECT count(*) FROM {Schema}.job");
            if ((long)(await command.ExecuteScalarAsync(cancellationToken))! == 0)
            {
                return true;
            }

            await Task.Delay(100, cancellationToken);
        }

        return false;
    }

    private async Task<QueueOutcome> CountJobsAsync(bool drained, CancellationToken cancellationToken)
    {
        var effects = new Dictionary<int, int>();
        await using (var command = NewPrimary.CreateCommand($"SELECT number, count(*)::int FROM {Schema}.failover_effect GROUP BY number"))
        {
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                effects[reader.GetInt32(0)] = reader.GetInt32(1);
            }
        }

        long notSucceeded;
        await using (var command = NewPrimary.CreateCommand($"SELECT count(*) FROM {Schema}.job_finished WHERE state <> 3"))
        {
            notSucceeded = (long)(await command.ExecuteScalarAsync(cancellationToken))!;
        }

        var committed = _enqueued.Keys.ToHashSet();
        var inDoubt = _enqueueFailed.ToHashSet();
        return new QueueOutcome
        {
            Enqueued = committed.Count,
            EnqueueFailed = inDoubt.Count,
            Ran = committed.Count(n => effects.ContainsKey(n)),
            Lost = committed.Where(n => !effects.ContainsKey(n)).Order().ToList(),
            DuplicateEffects = effects.Where(e => e.Value > 1).Select(e => e.Key).Order().ToList(),
            InDoubtRan = inDoubt.Count(n => effects.ContainsKey(n)),
            StrayEffects = effects.Keys.Count(n => !committed.Contains(n) && !inDoubt.Contains(n)),
            CommittedRunsTwice = _journal.CommittedRuns.Where(r => r.Value > 1).Select(r => r.Key).Order().ToList(),
            HandlerCommits = _journal.CommittedRuns.Values.Sum(),
            NotSucceeded = notSucceeded,
            Drained = drained,
        };
    }

    // The queue's listener reconnects on its own to whichever host is primary: watch for its LISTEN on the new one.
    private async Task<TimeSpan?> WaitForListenerAsync(CancellationToken cancellationToken)
    {
        var elapsed = Stopwatch.StartNew();
        while (elapsed.Elapsed < RecoveryLimit)
        {
            try
            {
                await using var command = NewPrimary.CreateCommand(
                    "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%' AND strpos(query, $1) > 0");
                command.Parameters.Add(new NpgsqlParameter { Value = _schemaName });
                if ((long)(await command.ExecuteScalarAsync(cancellationToken))! > 0)
                {
                    return _clock.Elapsed;
                }
            }
            catch (NpgsqlException)
            {
                // Just promoted: may still refuse a moment.
            }

            await Task.Delay(50, cancellationToken);
        }

        return null;
    }

    // Takes the dead server's port with a listener that never accepts: the kernel completes the handshakes (up to the
    // backlog), and the startup message gets no answer, as from a machine that hangs.
    private static async Task<System.Net.Sockets.TcpListener> HangOnAsync(int port, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, port);
            try
            {
                listener.Start(backlog: 1024);
                return listener;
            }
            catch (System.Net.Sockets.SocketException) when (attempt < 50)
            {
                listener.Dispose();
                await Task.Delay(20, cancellationToken);
            }
        }
    }

    private static string Describe(Exception exception)
    {
        var inner = exception;
        while (inner.InnerException is { } next && inner is not NpgsqlException { InnerException: AggregateException })
        {
            inner = next;
        }

        var text = inner == exception ? $"{exception.GetType().Name}: {exception.Message}" : $"{exception.GetType().Name} ({inner.GetType().Name}: {inner.Message})";
        text = text.ReplaceLineEndings(" ");
        return text.Length > 160 ? text[..160] + "…" : text;
    }

    private sealed record MarkersBefore(long RateLimitCount, TimeSpan WindowRemaining);
}

// The job of the load: its number is the test's own identity for it, since a job id can be handed out again on a new
// primary that never saw the enqueue of a lost job.
internal sealed record FailoverJob(int Number)
{
    public const string Kind = "failover-job";
}

// What the workers did, shared by the handlers and the run.
internal sealed class FailoverJournal(ModuleProbe handler)
{
    public ModuleProbe Handler { get; } = handler;

    // Per job number: how many runs committed, as the handler saw its commit return.
    public ConcurrentDictionary<int, int> CommittedRuns { get; } = new();
}

// Writes the job's effect and completes the job in one transaction: the effect exists if and only if the job finished.
internal sealed class EffectHandler(NpgsqlDataSource dataSource, IOptions<PgFirstOptions> first, FailoverJournal journal) : IJobHandler<FailoverJob>
{
    public async Task HandleAsync(FailoverJob payload, JobContext context, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await using (var insert = new NpgsqlCommand($"INSERT INTO {PgSqlIdentifier.Quote(first.Value.SchemaName)}.failover_effect (number, job_id, attempt) VALUES ($1, $2, $3)", connection, transaction))
            {
                insert.Parameters.Add(new NpgsqlParameter<int> { TypedValue = payload.Number });
                insert.Parameters.Add(new NpgsqlParameter<long> { TypedValue = context.Id });
                insert.Parameters.Add(new NpgsqlParameter<int> { TypedValue = context.Attempt });
                await insert.ExecuteNonQueryAsync(cancellationToken);
            }

            await context.CompleteAsync(transaction, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }
        catch (Exception) when (!cancellationToken.IsCancellationRequested)
        {
            journal.Handler.Failed();
            throw;
        }

        journal.CommittedRuns.AddOrUpdate(payload.Number, 1, (_, n) => n + 1);
        journal.Handler.Succeeded();
    }
}
