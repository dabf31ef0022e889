using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Hosting;
using PgFirst.Core;
using PgFirst.Testing;

namespace PgQueue.Tests;

public sealed class PgQueueObservabilityTests(PostgresServer server) : IAsyncLifetime
{
    private readonly PostgresSchema _schema = new(server);
    private IHost? _host;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync() => await _schema.ApplyAsync([PostgresJobQueueBackend.SchemaModule], Ct);

    public async ValueTask DisposeAsync()
    {
        if (_host is not null)
        {
            await _host.StopAsync(CancellationToken.None);
            _host.Dispose();
        }

        await _schema.DisposeAsync();
    }

    [Fact]
    public async Task Metrics_CountEnqueuedStartedAndOutcomes_AndRecordWaitAndDuration()
    {
        _host = QueueTestHost.Build(_schema, handlers: q => q.AddHandler<Work, FlakyHandler>(t => t.MaxAttempts = 1));
        var meters = _host.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
        using var enqueued = new MetricCollector<long>(meters, PgFirstMetricNames.QueueMeter, "pgqueue.jobs.enqueued");
        using var duplicates = new MetricCollector<long>(meters, PgFirstMetricNames.QueueMeter, "pgqueue.jobs.duplicates");
        using var started = new MetricCollector<long>(meters, PgFirstMetricNames.QueueMeter, "pgqueue.jobs.started");
        using var finished = new MetricCollector<long>(meters, PgFirstMetricNames.QueueMeter, "pgqueue.jobs.finished");
        using var wait = new MetricCollector<double>(meters, PgFirstMetricNames.QueueMeter, "pgqueue.job.wait");
        using var duration = new MetricCollector<double>(meters, PgFirstMetricNames.QueueMeter, "pgqueue.job.duration");
        await _host.StartAsync(Ct);
        var queue = _host.Services.GetRequiredService<IJobQueue>();

        await queue.EnqueueAsync(new Work("ok"), new JobOptions { UniqueKey = "m1" }, Ct);
        await queue.EnqueueAsync(new Work("ok-dup"), new JobOptions { UniqueKey = "m1" }, Ct);
        await queue.EnqueueManyAsync([new Work("ok2"), new Work("always")], cancellationToken: Ct);
        await QueueTestHost.WaitUntilAsync(() => finished.GetMeasurementSnapshot().Count >= 3, "three attempts end");

        Assert.Equal(3, enqueued.GetMeasurementSnapshot().Sum(m => m.Value));
        Assert.Equal(1, duplicates.GetMeasurementSnapshot().Sum(m => m.Value));
        Assert.Equal(3, started.GetMeasurementSnapshot().Sum(m => m.Value));
        Assert.Equal(["dead", "succeeded", "succeeded"], finished.GetMeasurementSnapshot().Select(m => (string)m.Tags["pgqueue.outcome"]!).Order());
        Assert.All(finished.GetMeasurementSnapshot(), m => Assert.Equal("default", m.Tags["pgqueue.queue"]));
        Assert.All(finished.GetMeasurementSnapshot(), m => Assert.Equal("postgresql", m.Tags[PgFirstMetricNames.BackendTag]));
        Assert.Equal(3, wait.GetMeasurementSnapshot().Count);
        Assert.All(wait.GetMeasurementSnapshot(), m => Assert.InRange(m.Value, 0, 30));
        Assert.Equal(3, duration.GetMeasurementSnapshot().Count);
    }

    [Fact]
    public async Task Tracing_JobActivityContinuesTheEnqueuingTrace()
    {
        var stopped = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name is "PgQueue" or "test",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => { lock (stopped) { stopped.Add(a); } },
        };
        ActivitySource.AddActivityListener(listener);
        using var source = new ActivitySource("test");
        _host = QueueTestHost.Build(_schema, handlers: q => q.AddHandler<Work, RecordingHandler>());
        await _host.StartAsync(Ct);

        ActivityTraceId traceId;
        long jobId;
        using (var request = source.StartActivity("request"))
        {
            Assert.NotNull(request);
            traceId = request.TraceId;
            jobId = (await _host.Services.GetRequiredService<IJobQueue>().EnqueueAsync(new Work("traced"), cancellationToken: Ct)).Id!.Value;
        }

        // The listener hears every PgQueue activity in the process, and job ids restart at 1 in every test schema, so
        // another class's job can share ours (a CI run failed on Single): ours is the one with our id in our trace. A
        // job activity that did not continue the enqueuing trace is never found, and the wait fails.
        bool Ours(Activity a) => a.Source.Name == "PgQueue" && a.GetTagItem("pgqueue.job.id") is long id && id == jobId && a.TraceId == traceId;
        await QueueTestHost.WaitUntilAsync(() => { lock (stopped) { return stopped.Any(Ours); } }, "the job's activity, in the request's trace, ends");
        Activity job;
        lock (stopped)
        {
            job = stopped.Single(Ours);
        }

        Assert.Equal(ActivityKind.Consumer, job.Kind);
        Assert.Equal("succeeded", job.GetTagItem("pgqueue.outcome"));
    }

    [Fact]
    public async Task HealthCheck_HealthyWithSchema_UnhealthyWithoutIt()
    {
        _host = QueueTestHost.Build(_schema, o => o.RunWorkers = false, services: s => s.AddHealthChecks().AddPgQueue());
        await _host.StartAsync(Ct);
        var health = _host.Services.GetRequiredService<HealthCheckService>();
        Assert.Equal(HealthStatus.Healthy, (await health.CheckHealthAsync(Ct)).Status);

        await using (var drop = _schema.DataSource.CreateCommand($"DROP TABLE \"{_schema.Name}\".job CASCADE"))
        {
            await drop.ExecuteNonQueryAsync(Ct);
        }

        var report = await health.CheckHealthAsync(Ct);
        Assert.Equal(HealthStatus.Unhealthy, report.Status);
        Assert.Contains("001_job.sql", report.Entries["pgqueue"].Description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Retention_MaintenanceTaskDeletesOnlyExpiredFinishedJobs()
    {
        _host = QueueTestHost.Build(_schema, o => { o.SucceededRetention = TimeSpan.Zero; o.DeadRetention = TimeSpan.FromDays(1); }, q => q.AddHandler<Work, FlakyHandler>(t => t.MaxAttempts = 1));
        await _host.StartAsync(Ct);
        var queue = _host.Services.GetRequiredService<IJobQueue>();
        await queue.EnqueueAsync(new Work("gone"), cancellationToken: Ct);
        var dead = await queue.EnqueueAsync(new Work("always"), cancellationToken: Ct);
        var manager = _host.Services.GetRequiredService<JobQueueManager>();
        await QueueTestHost.WaitUntilAsync(async () => (await manager.GetJobAsync(dead.Id!.Value, Ct))?.State == JobState.Dead, "the failing job is dead");

        // Succeeded jobs with no retention are not kept at all; the dead one is kept for a day.
        Assert.Single(await manager.ListAsync(null, JobState.Dead, 10, Ct));
        Assert.Empty(await manager.ListAsync(null, JobState.Succeeded, 10, Ct));

        var tasks = _host.Services.GetServices<PgMaintenanceTask>().Where(t => t is not null).ToList();
        Assert.Contains(PostgresJobQueueBackend.CleanupTask, tasks);
        await using (var age = _schema.DataSource.CreateCommand($"UPDATE \"{_schema.Name}\".job_finished SET delete_after = now() - interval '1 minute' WHERE id = {dead.Id}"))
        {
            await age.ExecuteNonQueryAsync(Ct);
        }

        Assert.Equal(1, await manager.DeleteFinishedAsync(100, Ct));
        Assert.Null(await manager.GetJobAsync(dead.Id!.Value, Ct));
    }
}
