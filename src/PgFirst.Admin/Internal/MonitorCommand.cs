using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using PgFirst.Core;
using PgQueue;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace PgFirst.Admin.Internal;

// A live view refreshed on an interval from catalog statistics and the queue's indexes: cheap enough for a production
// database. Quits on q, Esc or Ctrl-C (and after --refreshes, for scripts and tests).
internal static class MonitorCommand
{
    public static Command Build(AdminIO io)
    {
        var interval = new Option<string>("--interval") { Description = "The refresh interval (\"1s\", \"5s\").", DefaultValueFactory = _ => "1s" };
        var refreshes = new Option<int>("--refreshes") { Description = "Quit after this many refreshes (0: run until q or Ctrl-C).", DefaultValueFactory = _ => 0 };
        var queue = new Option<string[]>("--queue", "-q") { Description = "The queues to show (default: every queue with a job when the monitor starts).", AllowMultipleArgumentsPerToken = true };
        var monitor = new Command("monitor", "A live view: queue depths, their change and oldest waiting job, each store's rows, size and write rates. Quit with q or Ctrl-C.") { interval, refreshes, queue };
        monitor.SetAction(io, async (context, parse, cancellationToken) =>
        {
            var every = Format.ParseSpan(parse.GetValue(interval)!, "--interval");
            if (every < TimeSpan.FromMilliseconds(200) || every > TimeSpan.FromMinutes(10))
            {
                throw AdminException.Usage("--interval is between 0.2s and 10m.");
            }

            var count = parse.GetValue(refreshes);
            if (count < 0)
            {
                throw AdminException.Usage("--refreshes is 0 (no limit) or more.");
            }

            if (context.Json)
            {
                throw AdminException.Usage("monitor is a live view; for JSON, poll 'status --json' or 'jobs stats --json'.");
            }

            var view = new View(context, parse.GetValue(queue) is { Length: > 0 } queues ? queues : null);
            await view.ReadAsync(cancellationToken).ConfigureAwait(false);
            var quit = false;
            await io.Console.Live(view.Render(0)).AutoClear(false).Cropping(VerticalOverflowCropping.Bottom).StartAsync(async live =>
            {
                for (var refresh = 1; !quit && (count == 0 || refresh <= count); refresh++)
                {
                    live.UpdateTarget(view.Render(refresh));
                    live.Refresh();
                    if (count != 0 && refresh == count)
                    {
                        break;
                    }

                    quit = await WaitAsync(io.Console, every, cancellationToken).ConfigureAwait(false);
                    if (!quit)
                    {
                        await view.ReadAsync(cancellationToken).ConfigureAwait(false);
                    }
                }
            }).ConfigureAwait(false);
            return AdminExitCode.Ok;
        });
        return monitor;
    }

    // True when the user asked to quit (q, Esc) or cancelled; false when the interval passed.
    private static async Task<bool> WaitAsync(IAnsiConsole console, TimeSpan interval, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        while (Stopwatch.GetElapsedTime(started) < interval)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                return true;
            }

            if (console.Profile.Capabilities.Interactive && console.Input.IsKeyAvailable()
                && console.Input.ReadKey(intercept: true) is { } key
                && (key.Key is ConsoleKey.Q or ConsoleKey.Escape))
            {
                return true;
            }

            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(50), cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return true;
            }
        }

        return false;
    }

    private sealed class View(AdminContext context, IReadOnlyList<string>? queueNames)
    {
        private readonly PgFirstInspector _inspector = new(context.DataSource, context.SchemaName);
        private readonly JobQueueManager _jobs = new(new PostgresJobQueueBackend(context.DataSource, context.StoreOptions), new PgQueueOptions(), TimeProvider.System);
        private IReadOnlyList<string>? _queueNames = queueNames;
        private IReadOnlyList<PgTableActivity> _previous = [];
        private IReadOnlyList<PgTableActivity> _current = [];
        private IReadOnlyList<QueueOverview> _queues = [];
        private IReadOnlyList<QueueOverview> _previousQueues = [];
        private string? _queueError;

        public async Task ReadAsync(CancellationToken cancellationToken)
        {
            _previous = _current;
            _current = await _inspector.GetTableActivityAsync(cancellationToken).ConfigureAwait(false);
            _previousQueues = _queues;
            if (_current.Any(t => t.Name == "job"))
            {
                try
                {
                    // The queue names come from a scan of the job tables: read once, when the monitor starts (or given).
                    _queueNames ??= await _jobs.ListQueuesAsync(cancellationToken).ConfigureAwait(false);

                    // Depths (capped counts) and the oldest due job: index probes, no finished-job window.
                    _queues = await _jobs.GetOverviewAsync(_queueNames, window: null, cancellationToken: cancellationToken).ConfigureAwait(false);
                    _queueError = null;
                }
                catch (Npgsql.PostgresException ex)
                {
                    _queueError = ex.MessageText;
                }
            }

        }

        public Rows Render(int refresh)
        {
            var rows = new List<IRenderable>
            {
                new Markup($"[bold]pgfirst-admin monitor[/]: schema [bold]{context.SchemaName}[/] at {Markup.Escape(context.Where)} · refresh {refresh} · {Format.Time(_current.Count > 0 ? _current[0].ReadAt : null)} · [dim]q or Ctrl-C quits[/]"),
            };

            var queues = AdminContext.Table("Queue", "#Available", "#Δ/s", "#Scheduled", "#Running", "#Dead", "#Oldest waiting");
            foreach (var queue in _queues)
            {
                var before = _previousQueues.FirstOrDefault(q => q.Depth.Queue == queue.Depth.Queue);
                var seconds = SecondsBetweenReads();
                var cap = queue.Depth.Cap;
                var delta = before is null || seconds <= 0 || queue.Depth.Available >= cap || before.Depth.Available >= cap
                    ? "-"
                    : Format.Rate((queue.Depth.Available - before.Depth.Available) / seconds);
                queues.AddRow(
                    Markup.Escape(queue.Depth.Queue),
                    Format.Capped(queue.Depth.Available, cap),
                    delta,
                    Format.Capped(queue.Depth.Scheduled, cap),
                    Format.Capped(queue.Depth.Running, cap),
                    Format.Capped(queue.Depth.Dead, cap),
                    Format.Duration(queue.OldestWaitingAge));
            }

            rows.Add(_queueError is not null ? new Markup($"[red]Queues: {Markup.Escape(_queueError)}[/]")
                : _queues.Count == 0 ? new Markup("Queues: no job in any queue.")
                : queues);

            var stores = AdminContext.Table("Table", "#Rows (est.)", "#Size", "#Inserts/s", "#Updates/s", "#Deletes/s", "#Index lookups/s");
            foreach (var table in _current)
            {
                var before = _previous.FirstOrDefault(t => t.Name == table.Name);
                var seconds = before is null ? 0 : (table.ReadAt - before.ReadAt).TotalSeconds;
                string Rate(Func<PgTableActivity, long> counter) => before is null || seconds <= 0 ? "-" : Format.Rate(Math.Max(0, counter(table) - counter(before)) / seconds);
                stores.AddRow(
                    table.Name,
                    Format.Count(table.EstimatedRows),
                    Format.Bytes(table.TotalBytes),
                    Rate(t => t.Inserted),
                    Rate(t => t.Updated),
                    Rate(t => t.Deleted),
                    Rate(t => t.IndexScans));
            }

            rows.Add(_current.Count == 0 ? new Markup($"[red]Schema \"{context.SchemaName}\" has no tables.[/]") : stores);
            rows.Add(new Markup("[dim]Rates come from the server's table statistics (published about once a second); the job table's deletes/s are jobs leaving the queue (finished). Cache hit ratios and limiter rejections live in the apps' meters (pgcache.operations, pgratelimit.decisions): export them with OpenTelemetry.[/]"));
            return new Rows(rows);
        }

        private double SecondsBetweenReads()
        {
            DateTimeOffset? now = _current.Count > 0 ? _current[0].ReadAt : null;
            DateTimeOffset? before = _previous.Count > 0 ? _previous[0].ReadAt : null;
            return now is { } a && before is { } b ? (a - b).TotalSeconds : 0;
        }
    }
}
