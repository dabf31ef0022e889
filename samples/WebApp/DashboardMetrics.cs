using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using PgFirst.Core;

namespace WebApp;

public sealed record DashboardPoint(
    DateTimeOffset At,
    double CacheOpsPerSecond,
    double? CacheHitRatio,
    double SessionLoadsPerSecond,
    double AcceptedPerSecond,
    double RejectedPerSecond,
    double JobsPerSecond,
    double? JobWaitP50Ms,
    double? NearHitRatio,
    double? InvalidationLagP50Ms);

public sealed record DashboardTotals(long CacheHits, long CacheMisses, long CacheOperations, long SessionLoads, long SessionCommits, long Accepted, long Rejected, long JobsSucceeded, long JobsFailed, long CacheNearHits);

// Listens to this instance's own PgFirst meters (the providers' metrics, the same ones an OpenTelemetry exporter sees)
// and keeps one point per second for the last two minutes. Meters are matched by the app's IMeterFactory, so two apps
// in one process (as in the tests) never count each other's operations.
public sealed class DashboardMetrics : BackgroundService
{
    private const int Points = 120;

    private readonly MeterListener _listener = new();
    private readonly ConcurrentQueue<double> _waits = new();
    private readonly ConcurrentQueue<double> _lags = new();
    private readonly Queue<DashboardPoint> _points = new();
    private readonly Lock _sync = new();
    private readonly TimeProvider _time;
    private long _cacheHits, _cacheNearHits, _cacheMisses, _cacheOps, _sessionLoads, _sessionCommits, _accepted, _rejected, _succeeded, _failed;
    private DashboardTotals _last;

    public DashboardMetrics(IMeterFactory meterFactory, TimeProvider time)
    {
        _time = time;
        _last = Totals;
        string[] meters = [PgFirstMetricNames.CacheMeter, PgFirstMetricNames.SessionsMeter, PgFirstMetricNames.RateLimitMeter, PgFirstMetricNames.QueueMeter];
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter.Scope, meterFactory) && meters.Contains(instrument.Meter.Name, StringComparer.Ordinal)
                && instrument.Name is "pgcache.operations" or "pgcache.near.invalidation.lag" or "pgsessions.loads" or "pgsessions.commits" or "pgratelimit.decisions" or "pgqueue.jobs.finished" or "pgqueue.job.wait")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>(OnLong);
        _listener.SetMeasurementEventCallback<double>(OnDouble);
        _listener.Start();
    }

    public DashboardTotals Totals => new(
        Interlocked.Read(ref _cacheHits), Interlocked.Read(ref _cacheMisses), Interlocked.Read(ref _cacheOps),
        Interlocked.Read(ref _sessionLoads), Interlocked.Read(ref _sessionCommits),
        Interlocked.Read(ref _accepted), Interlocked.Read(ref _rejected),
        Interlocked.Read(ref _succeeded), Interlocked.Read(ref _failed),
        Interlocked.Read(ref _cacheNearHits));

    public IReadOnlyList<DashboardPoint> Series()
    {
        lock (_sync)
        {
            return [.. _points];
        }
    }

    public override void Dispose()
    {
        _listener.Dispose();
        base.Dispose();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1), _time);
        var lastTick = _time.GetTimestamp();
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            var now = _time.GetTimestamp();
            Sample(_time.GetElapsedTime(lastTick, now).TotalSeconds);
            lastTick = now;
        }
    }

    private void Sample(double seconds)
    {
        var totals = Totals;
        var last = _last;
        _last = totals;
        var waits = new List<double>();
        while (_waits.TryDequeue(out var wait))
        {
            waits.Add(wait);
        }

        waits.Sort();
        var lags = new List<double>();
        while (_lags.TryDequeue(out var lag))
        {
            lags.Add(lag);
        }

        lags.Sort();
        var gets = totals.CacheHits + totals.CacheMisses - last.CacheHits - last.CacheMisses;
        var point = new DashboardPoint(
            _time.GetUtcNow(),
            Rate(totals.CacheOperations - last.CacheOperations, seconds),
            gets > 0 ? (double)(totals.CacheHits - last.CacheHits) / gets : null,
            Rate(totals.SessionLoads - last.SessionLoads, seconds),
            Rate(totals.Accepted - last.Accepted, seconds),
            Rate(totals.Rejected - last.Rejected, seconds),
            Rate(totals.JobsSucceeded - last.JobsSucceeded, seconds),
            waits.Count > 0 ? Math.Round(waits[waits.Count / 2] * 1000, 2) : null,
            gets > 0 ? (double)(totals.CacheNearHits - last.CacheNearHits) / gets : null,
            lags.Count > 0 ? Math.Round(lags[lags.Count / 2] * 1000, 2) : null);
        lock (_sync)
        {
            _points.Enqueue(point);
            while (_points.Count > Points)
            {
                _points.Dequeue();
            }
        }
    }

    private static double Rate(long delta, double seconds) => seconds > 0 ? Math.Round(delta / seconds, 1) : 0;

    private static string? Tag(ReadOnlySpan<KeyValuePair<string, object?>> tags, string name)
    {
        foreach (var tag in tags)
        {
            if (tag.Key == name)
            {
                return tag.Value as string;
            }
        }

        return null;
    }

    private void OnLong(Instrument instrument, long value, ReadOnlySpan<KeyValuePair<string, object?>> tags, object? state)
    {
        switch (instrument.Name)
        {
            case "pgcache.operations":
                Interlocked.Add(ref _cacheOps, value);
                var operation = Tag(tags, "pgcache.operation");
                if (operation is "get" or "get_many")
                {
                    switch (Tag(tags, "pgcache.result"))
                    {
                        case "hit":
                            Interlocked.Add(ref _cacheHits, value);
                            break;
                        case "near_hit":
                            Interlocked.Add(ref _cacheHits, value);
                            Interlocked.Add(ref _cacheNearHits, value);
                            break;
                        case "miss" or "failsafe_miss":
                            Interlocked.Add(ref _cacheMisses, value);
                            break;
                    }
                }

                break;
            case "pgsessions.loads":
                Interlocked.Add(ref _sessionLoads, value);
                break;
            case "pgsessions.commits":
                Interlocked.Add(ref _sessionCommits, value);
                break;
            case "pgratelimit.decisions":
                if (Tag(tags, "pgratelimit.result") is "acquired" or "degraded_local")
                {
                    Interlocked.Add(ref _accepted, value);
                }
                else
                {
                    Interlocked.Add(ref _rejected, value);
                }

                break;
            case "pgqueue.jobs.finished":
                switch (Tag(tags, "pgqueue.outcome"))
                {
                    case "succeeded":
                        Interlocked.Add(ref _succeeded, value);
                        break;
                    case "failed" or "dead":
                        Interlocked.Add(ref _failed, value);
                        break;
                }

                break;
        }
    }

    private void OnDouble(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags, object? state)
    {
        if (instrument.Name == "pgqueue.job.wait" && _waits.Count < 100_000)
        {
            _waits.Enqueue(value);
        }
        else if (instrument.Name == "pgcache.near.invalidation.lag" && _lags.Count < 100_000)
        {
            _lags.Enqueue(value);
        }
    }
}
