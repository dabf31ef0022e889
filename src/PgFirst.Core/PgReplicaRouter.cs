using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace PgFirst.Core;

/// <summary>
/// Decides, read by read, whether a module may read from a standby (see <see cref="PgReadConsistency"/>): it samples
/// the primary's WAL insert position and every standby's replay position every
/// <see cref="PgReplicaOptions.SampleInterval"/>, and remembers which keys this instance wrote and when.
/// </summary>
/// <remarks>
/// <para>
/// Lag is measured, not taken from <c>pg_stat_replication</c> (which stops moving while replay is paused): the primary's
/// <c>pg_current_wal_insert_lsn()</c> is read at the start of each sample, so a standby whose
/// <c>pg_last_wal_replay_lsn()</c> has reached a sample's position has replayed everything committed before that sample
/// started. Its lag is the time since the newest such sample.
/// </para>
/// <para>
/// Read-your-writes needs no round trip on a write: a write that returned before a sample started is in that sample's
/// position, so a key written at time T is readable on a standby whose replayed-as-of time is at least T. Until then its
/// reads go to the primary.
/// </para>
/// </remarks>
public sealed partial class PgReplicaRouter : IAsyncDisposable
{
    private const int MaxSamples = 4096;
    private const string PrimarySql = "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint";
    private const string StandbySql = "SELECT pg_is_in_recovery(), (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint";
    private static readonly Standby[] NoStandbys = [];

    private readonly NpgsqlDataSource _primary;
    private readonly PgReplicaOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly Counter<long> _reads;
    private readonly Standby[] _standbys;
    private readonly List<(long Timestamp, long Lsn)> _samples = [];
    private readonly ConcurrentDictionary<string, long> _writes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _targets = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _sampling = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private Task? _loop;
    private long _barrier = long.MinValue;
    private long _latestWrite = long.MinValue;
    private long _prunedThrough = long.MinValue;
    private int _next;

    /// <summary>
    /// Initializes a new instance of the <see cref="PgReplicaRouter"/> class: one small data source per standby of
    /// <see cref="PgReplicaOptions.ConnectionString"/>, owned and disposed by the router. Does no I/O; sampling starts
    /// with <see cref="Start"/> (the host does it) or <see cref="SampleAsync"/>.
    /// </summary>
    /// <param name="primary">The data source of the primary (where writes go); not disposed by the router.</param>
    /// <param name="options">The shared options: <see cref="PgFirstOptions.Replicas"/> and <see cref="PgFirstOptions.Pooler"/>.</param>
    /// <param name="timeProvider">The clock of samples and writes.</param>
    /// <param name="meterFactory">The meter factory, or <see langword="null"/>.</param>
    /// <param name="logger">The logger, or <see langword="null"/>.</param>
    /// <param name="standbyLoggerFactory">
    /// The logger factory of the standbys' data sources (Npgsql's own command and connection logging), or
    /// <see langword="null"/> for none. The host passes the app's, as Npgsql's <c>AddNpgsqlDataSource</c> does for the
    /// primary, so a read on a standby is logged like a read on the primary.
    /// </param>
    public PgReplicaRouter(NpgsqlDataSource primary, PgFirstOptions options, TimeProvider timeProvider, IMeterFactory? meterFactory = null, ILogger<PgReplicaRouter>? logger = null, ILoggerFactory? standbyLoggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(primary);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _primary = primary;
        _options = options.Replicas;
        _time = timeProvider;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _standbys = options.Replicas.ConnectionString is { } connectionString ? CreateStandbys(connectionString, options.Pooler, standbyLoggerFactory) : NoStandbys;
        _ownsMeter = meterFactory is null;
        _meter = meterFactory?.Create(PgFirstMetricNames.CoreMeter) ?? new Meter(PgFirstMetricNames.CoreMeter);
        _reads = _meter.CreateCounter<long>(PgFirstMetricNames.ReplicaReads, "{read}", "Reads routed by consistency level, by target (replica or primary).");
        _meter.CreateObservableGauge(PgFirstMetricNames.ReplicaLag, ObserveLag, "s", "Replay lag of each read replica, as last sampled.");
    }

    /// <summary>Gets a value indicating whether any standby is configured.</summary>
    public bool HasReplicas => _standbys.Length > 0;

    /// <summary>Gets what was last measured of each standby.</summary>
    public IReadOnlyList<PgReplicaStatus> Status => [.. _standbys.Select(s => s.Snapshot(_time))];

    /// <summary>
    /// Starts sampling in the background every <see cref="PgReplicaOptions.SampleInterval"/>. Idempotent; does nothing
    /// without standbys.
    /// </summary>
    public void Start()
    {
        if (_standbys.Length > 0 && _loop is null)
        {
            _loop = Task.Run(() => LoopAsync(_stopping.Token));
        }
    }

    /// <summary>Takes one sample now: the primary's position, then every standby's.</summary>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes when every standby was sampled (or found unavailable).</returns>
    public async Task SampleAsync(CancellationToken cancellationToken = default)
    {
        if (_standbys.Length == 0)
        {
            return;
        }

        await _sampling.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await SampleCoreAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _sampling.Release();
        }
    }

    /// <summary>
    /// Returns the data source of a standby this read may use, or <see langword="null"/> to read from the primary.
    /// </summary>
    /// <param name="module">The module reading, e.g. <c>pgcache</c>.</param>
    /// <param name="consistency">The module's read consistency.</param>
    /// <param name="maxLag">The largest lag a standby may have.</param>
    /// <param name="key">The key read, for <see cref="PgReadConsistency.ReadYourWrites"/>; <see langword="null"/> when the read spans keys.</param>
    /// <returns>The standby's data source (owned by the router), or <see langword="null"/>. Report who answered with <see cref="RecordRead"/>.</returns>
    public NpgsqlDataSource? ChooseReplica(string module, PgReadConsistency consistency, TimeSpan maxLag, string? key)
    {
        ArgumentNullException.ThrowIfNull(module);
        if (consistency == PgReadConsistency.Strong || _standbys.Length == 0)
        {
            return null;
        }

        var now = _time.GetTimestamp();
        var required = long.MinValue;
        if (consistency == PgReadConsistency.ReadYourWrites)
        {
            required = Math.Max(Volatile.Read(ref _barrier), Volatile.Read(ref _prunedThrough));
            if (key is null)
            {
                required = Math.Max(required, Volatile.Read(ref _latestWrite));
            }
            else if (_writes.TryGetValue(key, out var written))
            {
                required = Math.Max(required, written);
            }
        }

        var count = _standbys.Length;
        var start = (int)((uint)Interlocked.Increment(ref _next) % (uint)count);
        for (var i = 0; i < count; i++)
        {
            var standby = _standbys[(start + i) % count];
            var replayedAsOf = standby.ReplayedAsOf;
            if (standby.IsAvailable && replayedAsOf != long.MinValue && replayedAsOf >= required
                && _time.GetElapsedTime(replayedAsOf, now) <= maxLag)
            {
                return standby.DataSource;
            }
        }

        return null;
    }

    /// <summary>
    /// Records where a read that <see cref="ChooseReplica"/> routed was answered: by the standby it chose, or by the
    /// primary (none chosen, or the standby could not answer: a miss, a due refresh, an error). Feeds the
    /// <c>pgfirst.replica.reads</c> counter and <see cref="LastReadTarget"/>.
    /// </summary>
    /// <param name="module">The module that read.</param>
    /// <param name="replica">The standby's data source that answered, or <see langword="null"/> for the primary.</param>
    public void RecordRead(string module, NpgsqlDataSource? replica)
    {
        ArgumentNullException.ThrowIfNull(module);
        var host = "primary";
        if (replica is not null)
        {
            foreach (var standby in _standbys)
            {
                if (ReferenceEquals(standby.DataSource, replica))
                {
                    host = standby.Host;
                    break;
                }
            }
        }

        Routed(module, host);
    }

    /// <summary>
    /// Records that this instance's write of <paramref name="key"/> has returned (call it after the write, not before).
    /// </summary>
    /// <param name="key">The key, unique across modules (prefix it with the module and tenant).</param>
    public void RecordWrite(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (_standbys.Length == 0)
        {
            return;
        }

        var now = _time.GetTimestamp();
        if (_writes.Count >= _options.MaxTrackedWrites && !_writes.ContainsKey(key))
        {
            RecordWriteToAll();
            return;
        }

        _writes[key] = now;
        RaiseTo(ref _latestWrite, now);
    }

    /// <summary>
    /// Records a write that may have changed any key (a removal by tag, a tenant cleared): every read-your-writes read
    /// waits until the standbys have replayed it.
    /// </summary>
    public void RecordWriteToAll()
    {
        if (_standbys.Length == 0)
        {
            return;
        }

        RaiseTo(ref _barrier, _time.GetTimestamp());
    }

    /// <summary>Returns who answered <paramref name="module"/>'s last routed read: a standby's host, or <c>primary</c>.</summary>
    /// <param name="module">The module.</param>
    /// <returns>The host, <c>primary</c>, or <see langword="null"/> before its first routed read.</returns>
    public string? LastReadTarget(string module) => _targets.TryGetValue(module, out var target) ? target : null;

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_loop is { } loop)
        {
            try
            {
                await loop.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }

        foreach (var standby in _standbys)
        {
            await standby.DataSource.DisposeAsync().ConfigureAwait(false);
        }

        _stopping.Dispose();
        _sampling.Dispose();
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }

    private static Standby[] CreateStandbys(string connectionString, PgPoolerMode pooler, ILoggerFactory? loggerFactory)
    {
        var settings = new NpgsqlConnectionStringBuilder(connectionString);
        var hosts = (settings.Host ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var standbys = new Standby[hosts.Length];
        for (var i = 0; i < hosts.Length; i++)
        {
            var one = new NpgsqlConnectionStringBuilder(settings.ConnectionString) { Host = hosts[i] };
            var builder = new NpgsqlDataSourceBuilder(one.ConnectionString);
            if (loggerFactory is not null)
            {
                builder.UseLoggerFactory(loggerFactory);
            }

            var dataSource = builder.Build();
            PgPooler.EnsureCompatible(dataSource, pooler);
            standbys[i] = new Standby(hosts[i].Contains(':', StringComparison.Ordinal) || one.Port == NpgsqlConnection.DefaultPort ? hosts[i] : $"{hosts[i]}:{one.Port}", dataSource);
        }

        return standbys;
    }

    private static void RaiseTo(ref long location, long value)
    {
        long current;
        do
        {
            current = Volatile.Read(ref location);
        }
        while (current < value && Interlocked.CompareExchange(ref location, value, current) != current);
    }

    private void Routed(string module, string target)
    {
        _reads.Add(1, new KeyValuePair<string, object?>(PgFirstMetricNames.ModuleTag, module), new KeyValuePair<string, object?>(PgFirstMetricNames.ReplicaTargetTag, target == "primary" ? "primary" : "replica"));
        if (!_targets.TryGetValue(module, out var last) || !string.Equals(last, target, StringComparison.Ordinal))
        {
            _targets[module] = target;
        }
    }

    private IEnumerable<Measurement<double>> ObserveLag()
    {
        var now = _time.GetTimestamp();
        foreach (var standby in _standbys)
        {
            if (standby.IsAvailable && standby.ReplayedAsOf != long.MinValue)
            {
                yield return new Measurement<double>(
                    _time.GetElapsedTime(standby.ReplayedAsOf, now).TotalSeconds,
                    new KeyValuePair<string, object?>(PgFirstMetricNames.ReplicaTag, standby.Host));
            }
        }
    }

    private async Task LoopAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_options.SampleInterval, _time);
        do
        {
            try
            {
                await SampleAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                LogSampleFailed(_logger, ex);
            }
        }
        while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false));
    }

    private async Task SampleCoreAsync(CancellationToken cancellationToken)
    {
        // The timestamp is taken before the primary is asked: every write that returned before it is in the position.
        var started = _time.GetTimestamp();
        long primaryLsn;
        try
        {
            primaryLsn = await ScalarAsync(_primary, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            foreach (var standby in _standbys)
            {
                MarkUnavailable(standby, $"the primary could not be sampled: {ex.Message}");
            }

            return;
        }

        if (_samples.Count == MaxSamples)
        {
            _samples.RemoveRange(0, MaxSamples / 4);
        }

        if (_samples.Count == 0 || _samples[^1].Lsn <= primaryLsn)
        {
            _samples.Add((started, primaryLsn));
        }

        foreach (var standby in _standbys)
        {
            try
            {
                var (inRecovery, replayLsn) = await StandbyPositionAsync(standby.DataSource, cancellationToken).ConfigureAwait(false);
                if (!inRecovery || replayLsn is not { } replay)
                {
                    MarkUnavailable(standby, "it is not in recovery (promoted, or not a standby)");
                    continue;
                }

                standby.Update(ReplayedAsOf(replay), _time.GetUtcNow());
                if (!standby.WasAvailable)
                {
                    standby.WasAvailable = true;
                    LogReplicaAvailable(_logger, standby.Host);
                }
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
            {
                MarkUnavailable(standby, ex.Message);
            }
        }

        Prune();
    }

    private void MarkUnavailable(Standby standby, string error)
    {
        standby.MarkUnavailable(error, _time.GetUtcNow());
        if (standby.WasAvailable)
        {
            standby.WasAvailable = false;
            LogReplicaUnavailable(_logger, standby.Host, error);
        }
    }

    // The newest sample whose position the standby has replayed; samples' positions never decrease.
    private long ReplayedAsOf(long replayLsn)
    {
        int low = 0, high = _samples.Count - 1, found = -1;
        while (low <= high)
        {
            var mid = (low + high) / 2;
            if (_samples[mid].Lsn <= replayLsn)
            {
                found = mid;
                low = mid + 1;
            }
            else
            {
                high = mid - 1;
            }
        }

        return found < 0 ? long.MinValue : _samples[found].Timestamp;
    }

    // Forgets writes every available standby has replayed. The horizon is published first, so a read that no longer
    // finds its key's write still waits for it.
    private void Prune()
    {
        var horizon = long.MaxValue;
        foreach (var standby in _standbys)
        {
            if (standby.IsAvailable)
            {
                horizon = Math.Min(horizon, standby.ReplayedAsOf);
            }
        }

        if (horizon is long.MaxValue or long.MinValue || _writes.IsEmpty)
        {
            return;
        }

        if (horizon > Volatile.Read(ref _prunedThrough))
        {
            Volatile.Write(ref _prunedThrough, horizon);
        }

        foreach (var entry in _writes)
        {
            if (entry.Value <= horizon)
            {
                _writes.TryRemove(entry);
            }
        }
    }

    private static async Task<long> ScalarAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        var command = dataSource.CreateCommand(PrimarySql);
        await using var commandScope = command.ConfigureAwait(false);
        return (long)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    private static async Task<(bool InRecovery, long? ReplayLsn)> StandbyPositionAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        var command = dataSource.CreateCommand(StandbySql);
        await using var commandScope = command.ConfigureAwait(false);
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        return (reader.GetBoolean(0), await reader.IsDBNullAsync(1, cancellationToken).ConfigureAwait(false) ? null : reader.GetInt64(1));
    }

    [LoggerMessage(EventId = PgFirstEventIds.ReplicaUnavailable, Level = LogLevel.Warning, Message = "Read replica {Host} is unavailable, its reads go to the primary: {Reason}")]
    private static partial void LogReplicaUnavailable(ILogger logger, string host, string reason);

    [LoggerMessage(EventId = PgFirstEventIds.ReplicaAvailable, Level = LogLevel.Information, Message = "Read replica {Host} is available.")]
    private static partial void LogReplicaAvailable(ILogger logger, string host);

    [LoggerMessage(EventId = PgFirstEventIds.ReplicaSampleFailed, Level = LogLevel.Warning, Message = "Sampling the read replicas failed; reads go to the primary until the next sample.")]
    private static partial void LogSampleFailed(ILogger logger, Exception exception);

    private sealed class Standby(string host, NpgsqlDataSource dataSource)
    {
        private volatile State _state = new(false, long.MinValue, null, "not sampled yet");

        public string Host { get; } = host;

        public NpgsqlDataSource DataSource { get; } = dataSource;

        public bool WasAvailable { get; set; }

        public bool IsAvailable => _state.Available;

        public long ReplayedAsOf => _state.ReplayedAsOf;

        public void Update(long replayedAsOf, DateTimeOffset sampledAt) => _state = new(true, replayedAsOf, sampledAt, null);

        public void MarkUnavailable(string error, DateTimeOffset sampledAt) => _state = new(false, long.MinValue, sampledAt, error);

        public PgReplicaStatus Snapshot(TimeProvider time)
        {
            var state = _state;
            TimeSpan? lag = state.Available && state.ReplayedAsOf != long.MinValue ? time.GetElapsedTime(state.ReplayedAsOf) : null;
            return new PgReplicaStatus(Host, state.Available, lag, state.SampledAt, state.Available && lag is null ? "further behind than the kept samples" : state.Error);
        }

        private sealed record State(bool Available, long ReplayedAsOf, DateTimeOffset? SampledAt, string? Error);
    }
}
