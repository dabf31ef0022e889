using System.Diagnostics.Metrics;

namespace PgFirst.Core.Internal;

internal sealed class PgFirstCoreMetrics : IDisposable
{
    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly Counter<long> _runs;
    private readonly Counter<long> _rowsRemoved;
    private readonly Histogram<double> _duration;

    public PgFirstCoreMetrics(IMeterFactory? meterFactory)
    {
        _ownsMeter = meterFactory is null;
        _meter = meterFactory?.Create(PgFirstMetricNames.CoreMeter) ?? new Meter(PgFirstMetricNames.CoreMeter);
        _runs = _meter.CreateCounter<long>(PgFirstMetricNames.MaintenanceRuns, "{run}", "Maintenance task runs by outcome.");
        _rowsRemoved = _meter.CreateCounter<long>(PgFirstMetricNames.MaintenanceRowsRemoved, "{row}", "Expired rows removed by cleanup functions.");
        _duration = _meter.CreateHistogram<double>(PgFirstMetricNames.MaintenanceDuration, "s", "Duration of maintenance task runs.");
    }

    public void RecordRun(PgMaintenanceTask task, PgMaintenanceOutcome outcome, long rowsRemoved, TimeSpan? duration)
    {
        var taskTag = new KeyValuePair<string, object?>(PgFirstMetricNames.TaskTag, task.Name);
        var moduleTag = new KeyValuePair<string, object?>(PgFirstMetricNames.ModuleTag, task.Module.Name);
        _runs.Add(1, taskTag, moduleTag, new KeyValuePair<string, object?>(PgFirstMetricNames.OutcomeTag, OutcomeName(outcome)));
        if (rowsRemoved > 0)
        {
            _rowsRemoved.Add(rowsRemoved, taskTag, moduleTag);
        }

        if (duration is { } elapsed)
        {
            _duration.Record(elapsed.TotalSeconds, taskTag, moduleTag);
        }
    }

    public void Dispose()
    {
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }

    private static string OutcomeName(PgMaintenanceOutcome outcome) => outcome switch
    {
        PgMaintenanceOutcome.Ran => "ran",
        PgMaintenanceOutcome.NotLeader => "not_leader",
        PgMaintenanceOutcome.NotDue => "not_due",
        _ => "failed",
    };
}
