using Cronos;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace PgQueue.Internal;

// The hosted service: one runner per handled queue, one LISTEN connection, one heartbeat loop, and one loop that
// promotes due and rescued jobs and fires recurring jobs.
internal sealed partial class JobWorkerService : BackgroundService
{
    private readonly IJobQueueBackend _backend;
    private readonly PgQueueOptions _options;
    private readonly JobRegistry _registry;
    private readonly IReadOnlyList<RecurringJobRegistration> _recurring;
    private readonly JobWakeHub _wakeHub;
    private readonly IServiceScopeFactory _scopes;
    private readonly PgQueueMetrics _metrics;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly List<QueueRunner> _runners = [];

    public JobWorkerService(IJobQueueBackend backend, PgQueueOptions options, JobRegistry registry, IEnumerable<RecurringJobRegistration> recurring, JobWakeHub wakeHub, IServiceScopeFactory scopes, PgQueueMetrics metrics, TimeProvider timeProvider, ILogger<JobWorkerService> logger)
    {
        _backend = backend;
        _options = options;
        _registry = registry;
        _recurring = [.. recurring];
        _wakeHub = wakeHub;
        _scopes = scopes;
        _metrics = metrics;
        _timeProvider = timeProvider;
        _logger = logger;
        WorkerName = options.WorkerName ?? $"{Environment.MachineName}:{Environment.ProcessId}";
    }

    public string WorkerName { get; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_options.RunWorkers)
        {
            return;
        }

        // Yield first: the host starts the other services while the loops spin up.
        await Task.Yield();
        foreach (var queue in _registry.Handled.Select(r => r.Options.Queue ?? _options.DefaultQueue).Distinct(StringComparer.Ordinal))
        {
            var queueOptions = _options.GetQueue(queue);
            if (queueOptions.Concurrency <= 0)
            {
                continue;
            }

            var runner = new QueueRunner(queue, queueOptions, _backend, _options, _registry, _scopes, _metrics, _timeProvider, _logger, WorkerName);
            _runners.Add(runner);
            _wakeHub.Register(queue, runner.Wake);
            runner.Start();
        }

        var queues = string.Join(", ", _runners.Select(r => r.Queue));
        LogStarted(_logger, WorkerName, queues);
        using var loops = new CancellationTokenSource();
        var background = new List<Task>
        {
            Task.Run(() => HeartbeatLoopAsync(loops.Token), CancellationToken.None),
            Task.Run(() => PromoteLoopAsync(loops.Token), CancellationToken.None),
        };
        if (_options.UseNotifications && _runners.Count > 0)
        {
            if (_backend.CanListen)
            {
                background.Add(Task.Run(() => ListenLoopAsync(loops.Token), CancellationToken.None));
            }
            else
            {
                LogPollOnly(_logger, _options.PollInterval);
            }
        }

        try
        {
            await Task.Delay(Timeout.InfiniteTimeSpan, _timeProvider, stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        // Stop claiming, let running handlers finish (heartbeats keep their leases meanwhile), return the rest.
        await Task.WhenAll(_runners.Select(r => r.StopAsync(_options.ShutdownGracePeriod))).ConfigureAwait(false);
        await loops.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(background).ConfigureAwait(false);
        foreach (var runner in _runners)
        {
            _wakeHub.Unregister(runner.Queue);
            await runner.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task HeartbeatLoopAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            if (!await DelayAsync(_options.HeartbeatInterval, cancellationToken).ConfigureAwait(false))
            {
                return;
            }

            foreach (var runner in _runners)
            {
                try
                {
                    var held = runner.HeldTokens();
                    if (held.Count == 0)
                    {
                        continue;
                    }

                    var lost = await _backend.ExtendLeasesAsync(held, _timeProvider.GetUtcNow() + _options.LeaseDuration, cancellationToken).ConfigureAwait(false);
                    foreach (var token in lost)
                    {
                        runner.LeaseLost(token);
                    }
                }
                catch (Exception ex) when (ex is not OutOfMemoryException && !cancellationToken.IsCancellationRequested)
                {
                    LogLoopError(_logger, ex, "heartbeat");
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private async Task PromoteLoopAsync(CancellationToken cancellationToken)
    {
        var recurringStored = _recurring.Count == 0;

        // On PostgreSQL the maintenance runner (or pg_cron) applies retention; other stores get it from here.
        var sweepsRetention = _backend is not PostgresJobQueueBackend;
        var nextRetentionSweep = _timeProvider.GetUtcNow();
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var now = _timeProvider.GetUtcNow();
                if (!recurringStored)
                {
                    foreach (var recurring in _recurring)
                    {
                        await _backend.UpsertRecurringAsync(recurring.Definition, recurring.Next(now), cancellationToken).ConfigureAwait(false);
                    }

                    recurringStored = true;
                }

                var promoted = await _backend.PromoteAsync(now, cancellationToken).ConfigureAwait(false);
                if (promoted.Count > 0)
                {
                    var count = promoted.Sum(p => p.Value);
                    LogPromoted(_logger, count);
                    foreach (var (queue, _) in promoted)
                    {
                        _wakeHub.Wake(queue);
                    }

                    if (_options.UseNotifications)
                    {
                        await _backend.NotifyAsync([.. promoted.Select(p => p.Key)], cancellationToken).ConfigureAwait(false);
                    }
                }

                if (sweepsRetention && now >= nextRetentionSweep)
                {
                    nextRetentionSweep = now + TimeSpan.FromSeconds(30);
                    while (await _backend.DeleteFinishedAsync(1000, now, cancellationToken).ConfigureAwait(false) == 1000)
                    {
                    }
                }

                if (_recurring.Count > 0)
                {
                    var fired = await _backend.RunDueRecurringAsync(now, (definition, after) => RecurringJobRegistration.NextOccurrence(definition, after), cancellationToken).ConfigureAwait(false);
                    foreach (var name in fired)
                    {
                        LogRecurring(_logger, name);
                    }

                    foreach (var queue in _recurring.Where(r => fired.Contains(r.Definition.Name)).Select(r => r.Definition.Queue))
                    {
                        _wakeHub.Wake(queue);
                    }
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                LogLoopError(_logger, ex, "promote");
            }

            if (!await DelayAsync(_options.PollInterval, cancellationToken).ConfigureAwait(false))
            {
                return;
            }
        }
    }

    private async Task ListenLoopAsync(CancellationToken cancellationToken)
    {
        var failures = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await _backend.ListenAsync(
                    _wakeHub.Wake,
                    () =>
                    {
                        failures = 0;

                        // Notifications sent while not listening are lost: look at every queue once.
                        _wakeHub.WakeAll();
                    },
                    cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException && !cancellationToken.IsCancellationRequested)
            {
                failures++;
                LogListenerError(_logger, ex);
                if (!await DelayAsync(TimeSpan.FromMilliseconds(Math.Min(5000, 100 * Math.Pow(2, Math.Min(failures, 6)))), cancellationToken).ConfigureAwait(false))
                {
                    return;
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task<bool> DelayAsync(TimeSpan delay, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(delay, _timeProvider, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    [LoggerMessage(EventId = PgQueueEventIds.WorkersStarted, Level = LogLevel.Information, Message = "PgQueue worker {Worker} started on queues: {Queues}.")]
    private static partial void LogStarted(ILogger logger, string worker, string queues);

    [LoggerMessage(EventId = PgQueueEventIds.WorkerError, Level = LogLevel.Warning, Message = "The PgQueue {Loop} loop could not reach the job store; it retries.")]
    private static partial void LogLoopError(ILogger logger, Exception exception, string loop);

    [LoggerMessage(EventId = PgQueueEventIds.PollOnly, Level = LogLevel.Information, Message = "PgQueue workers poll every {PollInterval} without notifications: PgFirst:Pooler is Transaction and PgFirst:ListenConnectionString is not set.")]
    private static partial void LogPollOnly(ILogger logger, TimeSpan pollInterval);

    [LoggerMessage(EventId = PgQueueEventIds.ListenerError, Level = LogLevel.Warning, Message = "The PgQueue notification listener lost its connection; workers poll until it reconnects.")]
    private static partial void LogListenerError(ILogger logger, Exception exception);

    [LoggerMessage(EventId = PgQueueEventIds.RecurringEnqueued, Level = LogLevel.Information, Message = "Recurring job {Name} enqueued its occurrence.")]
    private static partial void LogRecurring(ILogger logger, string name);

    [LoggerMessage(EventId = PgQueueEventIds.JobsPromoted, Level = LogLevel.Debug, Message = "{Count} scheduled or rescued jobs became available.")]
    private static partial void LogPromoted(ILogger logger, int count);
}

// A recurring job as registered: its definition and its parsed schedule.
internal sealed class RecurringJobRegistration
{
    public required RecurringJobDefinition Definition { get; init; }

    public DateTimeOffset Next(DateTimeOffset after) => NextOccurrence(Definition, after);

    public static CronExpression Parse(string cron) =>
        CronExpression.Parse(cron, cron.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries).Length == 6 ? CronFormat.IncludeSeconds : CronFormat.Standard);

    // The next occurrence strictly after `after`; one far in the future when the expression has none left.
    public static DateTimeOffset NextOccurrence(RecurringJobDefinition definition, DateTimeOffset after)
    {
        var zone = TimeZoneInfo.FindSystemTimeZoneById(definition.TimeZone);
        return Parse(definition.Cron).GetNextOccurrence(after, zone) ?? DateTimeOffset.MaxValue.AddYears(-1);
    }
}
