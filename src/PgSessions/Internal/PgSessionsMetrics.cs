using System.Diagnostics;
using System.Diagnostics.Metrics;
using PgFirst.Core;

namespace PgSessions.Internal;

// One meter per package ("PgSessions"); the backend is a tag so dashboards compare PostgreSQL and Redis directly.
internal sealed class PgSessionsMetrics : IDisposable
{
    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly Counter<long> _loads;
    private readonly Counter<long> _commits;
    private readonly Counter<long> _conflicts;
    private readonly Counter<long> _revocations;
    private readonly Histogram<double> _loadDuration;
    private readonly Histogram<double> _commitDuration;
    private readonly KeyValuePair<string, object?> _backend;

    public PgSessionsMetrics(IMeterFactory? meterFactory, string backend)
    {
        _ownsMeter = meterFactory is null;
        _meter = meterFactory?.Create(PgFirstMetricNames.SessionsMeter) ?? new Meter(PgFirstMetricNames.SessionsMeter);
        _loads = _meter.CreateCounter<long>("pgsessions.loads", "{load}", "Session loads by result (found, not_found, new, error) and mode (async, sync).");
        _commits = _meter.CreateCounter<long>("pgsessions.commits", "{commit}", "Session commits that reached the store, by result (inserted, updated, merged, ended, error).");
        _conflicts = _meter.CreateCounter<long>("pgsessions.conflicts_merged", "{conflict}", "Commits that lost a race with a concurrent request and replayed their changes.");
        _revocations = _meter.CreateCounter<long>("pgsessions.revocations", "{session}", "Sessions revoked.");
        _loadDuration = _meter.CreateHistogram<double>("pgsessions.load.duration", "s", "Duration of session loads that reached the store.");
        _commitDuration = _meter.CreateHistogram<double>("pgsessions.commit.duration", "s", "Duration of session commits that reached the store.");
        _backend = new(PgFirstMetricNames.BackendTag, backend);
    }

    public static long Start() => Stopwatch.GetTimestamp();

    public void Loaded(string result, bool async, long started)
    {
        _loads.Add(1, new("pgsessions.result", result), new("pgsessions.mode", async ? "async" : "sync"), _backend);
        if (started != 0)
        {
            _loadDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, _backend);
        }
    }

    public void Committed(string result, long started)
    {
        _commits.Add(1, new("pgsessions.result", result), _backend);
        _commitDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, _backend);
    }

    public void ConflictMerged() => _conflicts.Add(1, _backend);

    public void Revoked(int count) => _revocations.Add(count, _backend);

    public void Dispose()
    {
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }
}
