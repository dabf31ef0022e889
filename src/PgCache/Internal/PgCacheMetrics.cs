using System.Diagnostics;
using System.Diagnostics.Metrics;
using PgFirst.Core;

namespace PgCache.Internal;

// One meter per package ("PgCache"); the backend is a tag so dashboards compare PostgreSQL and Redis directly.
internal sealed class PgCacheMetrics : IDisposable
{
    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly Counter<long> _operations;
    private readonly Histogram<double> _duration;
    private readonly Counter<long> _bytes;
    private readonly KeyValuePair<string, object?> _backend;
    private readonly Counter<long> _nearEvictions;
    private readonly Counter<long> _nearInvalidations;
    private readonly Histogram<double> _nearLag;
    private readonly Histogram<double> _nearHeartbeat;

    public PgCacheMetrics(IMeterFactory? meterFactory, string backend)
    {
        _ownsMeter = meterFactory is null;
        _meter = meterFactory?.Create(PgFirstMetricNames.CacheMeter) ?? new Meter(PgFirstMetricNames.CacheMeter);
        _operations = _meter.CreateCounter<long>("pgcache.operations", "{operation}", "Cache operations by operation and result (hit, miss, ok, error, failsafe_miss).");
        _duration = _meter.CreateHistogram<double>("pgcache.operation.duration", "s", "Duration of cache operations.");
        _bytes = _meter.CreateCounter<long>("pgcache.bytes", "By", "Value bytes read and written.");
        _backend = new(PgFirstMetricNames.BackendTag, backend);
        _nearEvictions = _meter.CreateCounter<long>("pgcache.near.evictions", "{entry}", "Near-cache copies dropped, by cause (invalidated, expired, capacity, listener_lost, late, resubscribed, resumed, cleared).");
        _nearInvalidations = _meter.CreateCounter<long>("pgcache.near.invalidations", "{message}", "Near-cache invalidations published and received (pgcache.direction = sent, received).");
        _nearLag = _meter.CreateHistogram<double>(
            "pgcache.near.invalidation.lag",
            "s",
            "From another instance building an invalidation (just before its write) to this instance applying it; across machines it includes their clock difference.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 5] });
        _nearHeartbeat = _meter.CreateHistogram<double>("pgcache.near.heartbeat", "s", "Round trip of the near cache's heartbeat through the store and back to its listener.");
    }

    public void ObserveNearCache(PgNearCache near)
    {
        _meter.CreateObservableGauge("pgcache.near.entries", () => new Measurement<long>(near.Count, _backend), "{entry}", "Entries in the near cache.");
        _meter.CreateObservableGauge("pgcache.near.bytes", () => new Measurement<long>(near.Bytes, _backend), "By", "Value bytes in the near cache.");
        _meter.CreateObservableGauge("pgcache.near.serving", () => new Measurement<int>(near.IsServing ? 1 : 0, _backend), "{state}", "1 while the near cache serves near hits, 0 while it is flushed and bypassed.");
    }

    public void NearEvicted(string cause) => _nearEvictions.Add(1, new KeyValuePair<string, object?>("pgcache.cause", cause), _backend);

    public void NearInvalidationSent() => _nearInvalidations.Add(1, new KeyValuePair<string, object?>("pgcache.direction", "sent"), _backend);

    public void NearInvalidationReceived(long sentUtcTicks)
    {
        _nearInvalidations.Add(1, new KeyValuePair<string, object?>("pgcache.direction", "received"), _backend);
        if (sentUtcTicks > 0)
        {
            _nearLag.Record(Math.Max(0, TimeProvider.System.GetUtcNow().UtcTicks - sentUtcTicks) / (double)TimeSpan.TicksPerSecond, _backend);
        }
    }

    public void NearHeartbeat(TimeSpan roundTrip) => _nearHeartbeat.Record(roundTrip.TotalSeconds, _backend);

    public static long Start() => Stopwatch.GetTimestamp();

    public void Record(string operation, string result, long started, long count = 1)
    {
        var op = new KeyValuePair<string, object?>("pgcache.operation", operation);
        _operations.Add(count, op, new("pgcache.result", result), _backend);
        _duration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, op, _backend);
    }

    public void Read(long bytes) => _bytes.Add(bytes, new("pgcache.direction", "read"), _backend);

    public void Written(long bytes) => _bytes.Add(bytes, new("pgcache.direction", "written"), _backend);

    public void Dispose()
    {
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }
}
