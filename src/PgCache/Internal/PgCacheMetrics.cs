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

    public PgCacheMetrics(IMeterFactory? meterFactory, string backend)
    {
        _ownsMeter = meterFactory is null;
        _meter = meterFactory?.Create(PgFirstMetricNames.CacheMeter) ?? new Meter(PgFirstMetricNames.CacheMeter);
        _operations = _meter.CreateCounter<long>("pgcache.operations", "{operation}", "Cache operations by operation and result (hit, miss, ok, error, failsafe_miss).");
        _duration = _meter.CreateHistogram<double>("pgcache.operation.duration", "s", "Duration of cache operations.");
        _bytes = _meter.CreateCounter<long>("pgcache.bytes", "By", "Value bytes read and written.");
        _backend = new(PgFirstMetricNames.BackendTag, backend);
    }

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
