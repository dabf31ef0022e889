using System.Diagnostics;
using System.Diagnostics.Metrics;
using PgFirst.Core;

namespace PgRateLimit.Internal;

internal sealed class PgRateLimitMetrics : IDisposable
{
    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly Counter<long> _decisions;
    private readonly Counter<long> _saved;
    private readonly Counter<long> _errors;
    private readonly Histogram<double> _duration;
    private readonly Counter<long> _degraded;
    private readonly Histogram<int> _batchSize;

    public PgRateLimitMetrics(IMeterFactory? meterFactory)
    {
        _ownsMeter = meterFactory is null;
        _meter = meterFactory?.Create(PgFirstMetricNames.RateLimitMeter) ?? new Meter(PgFirstMetricNames.RateLimitMeter);
        _decisions = _meter.CreateCounter<long>("pgratelimit.decisions", "{decision}", "Decisions by result: acquired, rejected, rejected_local, degraded_local (admitted by the instance's local window), degraded_local_rejected, degraded_closed.");
        _batchSize = _meter.CreateHistogram<int>("pgratelimit.batch.size", "{decision}", "Decisions of one partition coalesced into one store call (only calls that carried queued decisions).");
        _degraded = _meter.CreateCounter<long>("pgratelimit.degraded", "{decision}", "Decisions the store did not make, by cause: timeout, error, overdue (MaxOverdueStoreCalls reached).");
        _saved = _meter.CreateCounter<long>("pgratelimit.round_trips_saved", "{round_trip}", "Decisions answered locally because the window was known to be exhausted.");
        _errors = _meter.CreateCounter<long>("pgratelimit.errors", "{error}", "Store errors and timeouts.");
        _duration = _meter.CreateHistogram<double>("pgratelimit.decision.duration", "s", "Duration of decisions that went to the store.");
    }

    public void Decision(string policy, string result) =>
        _decisions.Add(1, new KeyValuePair<string, object?>("pgratelimit.policy", policy), new KeyValuePair<string, object?>("pgratelimit.result", result));

    public void Degraded(string policy, string cause) =>
        _degraded.Add(1, new KeyValuePair<string, object?>("pgratelimit.policy", policy), new KeyValuePair<string, object?>("pgratelimit.cause", cause));

    public void BatchSize(string policy, int size) => _batchSize.Record(size, new KeyValuePair<string, object?>("pgratelimit.policy", policy));

    public void Saved(string policy) => _saved.Add(1, new KeyValuePair<string, object?>("pgratelimit.policy", policy));

    public void Error(string policy) => _errors.Add(1, new KeyValuePair<string, object?>("pgratelimit.policy", policy));

    public void Duration(string policy, long started) =>
        _duration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, new KeyValuePair<string, object?>("pgratelimit.policy", policy));

    public void Dispose()
    {
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }
}
