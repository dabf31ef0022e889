using System.Diagnostics;
using System.Diagnostics.Metrics;
using PgFirst.Core;

namespace PgQueue.Internal;

// One meter and one activity source per package ("PgQueue"); queue and backend are the only tags.
internal sealed class PgQueueMetrics : IDisposable
{
    public static readonly ActivitySource ActivitySource = new(PgFirstMetricNames.QueueMeter);

    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly Counter<long> _enqueued;
    private readonly Counter<long> _duplicates;
    private readonly Counter<long> _started;
    private readonly Counter<long> _finished;
    private readonly Histogram<double> _wait;
    private readonly Histogram<double> _duration;
    private readonly KeyValuePair<string, object?> _backend;

    public PgQueueMetrics(IMeterFactory? meterFactory, string backend)
    {
        _ownsMeter = meterFactory is null;
        _meter = meterFactory?.Create(PgFirstMetricNames.QueueMeter) ?? new Meter(PgFirstMetricNames.QueueMeter);
        _enqueued = _meter.CreateCounter<long>("pgqueue.jobs.enqueued", "{job}", "Jobs enqueued.");
        _duplicates = _meter.CreateCounter<long>("pgqueue.jobs.duplicates", "{job}", "Enqueues skipped because the unique key was held.");
        _started = _meter.CreateCounter<long>("pgqueue.jobs.started", "{job}", "Job attempts started.");
        _finished = _meter.CreateCounter<long>("pgqueue.jobs.finished", "{job}", "Job attempts ended, by outcome (succeeded, failed, dead, cancelled, snoozed, lease_lost, interrupted).");
        _wait = _meter.CreateHistogram<double>("pgqueue.job.wait", "s", "Time from a job becoming available (enqueue or schedule) to its attempt starting.");
        _duration = _meter.CreateHistogram<double>("pgqueue.job.duration", "s", "Duration of job attempts.");
        _backend = new(PgFirstMetricNames.BackendTag, backend);
    }

    public void Enqueued(string queue, int count, int duplicates)
    {
        if (count > 0)
        {
            _enqueued.Add(count, Queue(queue), _backend);
        }

        if (duplicates > 0)
        {
            _duplicates.Add(duplicates, Queue(queue), _backend);
        }
    }

    public void Started(string queue, TimeSpan wait)
    {
        _started.Add(1, Queue(queue), _backend);
        _wait.Record(Math.Max(0, wait.TotalSeconds), Queue(queue), _backend);
    }

    public void Finished(string queue, string outcome, TimeSpan duration)
    {
        _finished.Add(1, Queue(queue), new("pgqueue.outcome", outcome), _backend);
        _duration.Record(duration.TotalSeconds, Queue(queue), new("pgqueue.outcome", outcome), _backend);
    }

    public void Dispose()
    {
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }

    private static KeyValuePair<string, object?> Queue(string queue) => new("pgqueue.queue", queue);
}
