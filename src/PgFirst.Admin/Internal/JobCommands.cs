using System.CommandLine;
using System.Globalization;
using PgQueue;
using Spectre.Console;

namespace PgFirst.Admin.Internal;

internal static class JobCommands
{
    public static Command Build(AdminIO io)
    {
        var jobs = new Command("jobs", "The job queue (PgQueue).");
        var queue = new Option<string?>("--queue", "-q") { Description = "One queue (default: every queue)." };

        var window = new Option<string>("--window") { Description = "The window of the finished counts (\"15m\", \"1h\").", DefaultValueFactory = _ => "15m" };
        var stats = new Command("stats", "Per queue: jobs by state, how long the oldest due job has waited, and jobs finished over the window.") { queue, window };
        stats.SetAction(io, async (context, parse, cancellationToken) =>
        {
            var span = Format.ParseSpan(parse.GetValue(window)!, "--window");
            if (span < TimeSpan.FromMinutes(1) || span > TimeSpan.FromDays(1))
            {
                throw AdminException.Usage("--window is between 1m and 1d.");
            }

            var one = parse.GetValue(queue);
            var overview = await Manager(context).GetOverviewAsync(one is null ? null : [one], span, cancellationToken: cancellationToken).ConfigureAwait(false);
            if (context.Json)
            {
                context.WriteJson(overview.Select(o => new
                {
                    queue = o.Depth.Queue,
                    available = o.Depth.Available,
                    scheduled = o.Depth.Scheduled,
                    running = o.Depth.Running,
                    dead = o.Depth.Dead,
                    capped = o.Depth.Capped,
                    oldestWaitingSeconds = o.OldestWaitingAge?.TotalSeconds,
                    windowMinutes = o.Window?.TotalMinutes,
                    succeeded = o.Activity.Succeeded,
                    cancelled = o.Activity.Cancelled,
                    died = o.Activity.Dead,
                    finishedPerMinute = o.FinishedPerMinute,
                }));
                return AdminExitCode.Ok;
            }

            if (overview.Count == 0)
            {
                context.Line("No queue has a job.");
                return AdminExitCode.Ok;
            }

            var minutes = Format.Window(span);
            var table = AdminContext.Table("Queue", "#Available", "#Scheduled", "#Running", "#Dead", "#Oldest waiting", $"#Succeeded ({minutes})", $"#Died ({minutes})", "#Finished/min");
            foreach (var o in overview)
            {
                var cap = o.Depth.Cap;
                table.AddRow(
                    Markup.Escape(o.Depth.Queue),
                    Format.Capped(o.Depth.Available, cap),
                    Format.Capped(o.Depth.Scheduled, cap),
                    Format.Capped(o.Depth.Running, cap),
                    Format.Capped(o.Depth.Dead, cap),
                    Format.Duration(o.OldestWaitingAge),
                    Format.Count(o.Activity.Succeeded ?? 0),
                    Format.Count(o.Activity.Dead ?? 0),
                    (o.FinishedPerMinute ?? 0).ToString("0.#", CultureInfo.InvariantCulture));
            }

            context.Write(table);
            context.Line("Succeeded: only jobs kept by PgQueue:SucceededRetention (none by default). Without --queue, queue names come from a scan of the job tables.");
            return AdminExitCode.Ok;
        });
        jobs.Subcommands.Add(stats);

        var state = new Option<string>("--state") { Description = "dead, succeeded or cancelled.", DefaultValueFactory = _ => "dead" };
        var limit = new Option<int>("--limit", "-n") { Description = "The most to list (1 to 1000).", DefaultValueFactory = _ => 50 };
        var list = new Command("list", "Finished jobs of one state, newest first, with their last error.") { state, queue, limit };
        list.SetAction(io, async (context, parse, cancellationToken) =>
        {
            var wanted = parse.GetValue(state)!.ToLowerInvariant() switch
            {
                "dead" => JobState.Dead,
                "succeeded" => JobState.Succeeded,
                "cancelled" or "canceled" => JobState.Cancelled,
                var other => throw AdminException.Usage($"--state '{other}' is not one of dead, succeeded, cancelled (jobs still queued are counted by 'jobs stats')."),
            };
            var count = parse.GetValue(limit);
            if (count is < 1 or > 1000)
            {
                throw AdminException.Usage("--limit is between 1 and 1000.");
            }

            var found = await Manager(context).ListAsync(parse.GetValue(queue), wanted, count, cancellationToken).ConfigureAwait(false);
            if (context.Json)
            {
                context.WriteJson(found);
                return AdminExitCode.Ok;
            }

            if (found.Count == 0)
            {
                context.Line($"No {parse.GetValue(state)} job{(parse.GetValue(queue) is { } q ? $" in queue '{q}'" : "")}.");
                return AdminExitCode.Ok;
            }

            var table = AdminContext.Table("#Id", "Queue", "Kind", "#Attempts", "Finished", "Last error");
            foreach (var job in found)
            {
                var last = job.Errors.Count > 0 ? job.Errors[^1] : null;
                table.AddRow(
                    job.Id.ToString(CultureInfo.InvariantCulture),
                    Markup.Escape(job.Queue),
                    Markup.Escape(job.Kind),
                    $"{job.Attempt}/{job.MaxAttempts}",
                    Format.Time(job.FinishedAt),
                    Markup.Escape(last is null ? "-" : Shorten($"{last.Type}: {last.Message}", 80)));
            }

            context.Write(table);
            return AdminExitCode.Ok;
        });
        jobs.Subcommands.Add(list);

        var id = new Argument<long>("id") { Description = "The job id." };
        var show = new Command("show", "One job in any state: its payload and every error.") { id };
        show.SetAction(io, async (context, parse, cancellationToken) =>
        {
            var jobId = parse.GetValue(id);
            var job = await Manager(context).GetJobAsync(jobId, cancellationToken).ConfigureAwait(false)
                ?? throw AdminException.NotFound($"no job {jobId} (never enqueued, or removed by retention).");
            if (context.Json)
            {
                context.WriteJson(job);
                return AdminExitCode.Ok;
            }

            var table = AdminContext.Table("Field", "Value");
            table.AddRow("Id", job.Id.ToString(CultureInfo.InvariantCulture));
            table.AddRow("Queue", Markup.Escape(job.Queue));
            table.AddRow("Kind", Markup.Escape(job.Kind));
            table.AddRow("State", job.State.ToString());
            table.AddRow("Priority", job.Priority.ToString(CultureInfo.InvariantCulture));
            table.AddRow("Attempts", $"{job.Attempt}/{job.MaxAttempts}");
            table.AddRow("Unique key", Markup.Escape(job.UniqueKey ?? "-"));
            table.AddRow("Enqueued", Format.Time(job.EnqueuedAt));
            table.AddRow("Runs at", Format.Time(job.RunAt));
            table.AddRow("Claimed", job.ClaimedAt is null ? "-" : $"{Format.Time(job.ClaimedAt)} by {Markup.Escape(job.ClaimedBy ?? "?")}");
            table.AddRow("Finished", Format.Time(job.FinishedAt));
            table.AddRow("Payload", Markup.Escape(job.Payload));
            context.Write(table);
            if (job.Errors.Count > 0)
            {
                var errors = AdminContext.Table("#Attempt", "At", "Error");
                foreach (var error in job.Errors)
                {
                    errors.AddRow(error.Attempt.ToString(CultureInfo.InvariantCulture), Format.Time(error.At), Markup.Escape($"{error.Type}: {error.Message}"));
                }

                context.Write(errors);
            }

            return AdminExitCode.Ok;
        });
        jobs.Subcommands.Add(show);

        var optionalId = new Argument<long?>("id") { Description = "The job id.", Arity = ArgumentArity.ZeroOrOne };
        var allDead = new Option<bool>("--all-dead") { Description = "Every dead job of --queue (needs --yes)." };
        var requeue = new Command("requeue", "Move a dead or cancelled job back to its queue with fresh attempts (it runs again); or, with --all-dead --queue Q, every job of the queue that is dead now. Needs --yes.") { optionalId, allDead, queue, GlobalOptions.Yes };
        requeue.SetAction(io, async (context, parse, cancellationToken) =>
        {
            var jobId = parse.GetValue(optionalId);
            var manager = Manager(context);
            if (parse.GetValue(allDead))
            {
                if (jobId is not null)
                {
                    throw AdminException.Usage("jobs requeue takes a job id or --all-dead, not both.");
                }

                var name = parse.GetValue(queue) ?? throw AdminException.Usage("jobs requeue --all-dead needs --queue Q.");
                if (!parse.GetValue(GlobalOptions.Yes))
                {
                    var dead = (await manager.GetStatsAsync([name], 1_000_000, cancellationToken).ConfigureAwait(false))[0].Dead;
                    return CacheCommands.Unconfirmed(context, $"Would requeue the {Format.Count(dead)} dead job(s) of queue '{name}'.", new { requeued = 0, wouldRequeue = dead });
                }

                var (requeued, skipped) = await manager.RequeueDeadAsync(name, cancellationToken: cancellationToken).ConfigureAwait(false);
                context.Report(new { requeued, skipped }, $"Requeued {Format.Count(requeued)} dead job(s) of queue '{name}'{(skipped > 0 ? $"; {skipped} stayed dead (another job holds their unique key)" : "")}.");

                return AdminExitCode.Ok;
            }

            if (jobId is not { } one)
            {
                throw AdminException.Usage("jobs requeue needs a job id, or --all-dead --queue Q.");
            }

            var job = await manager.GetJobAsync(one, cancellationToken).ConfigureAwait(false)
                ?? throw AdminException.NotFound($"no job {one} (never enqueued, or removed by retention).");
            if (job.State is not (JobState.Dead or JobState.Cancelled))
            {
                throw new AdminException(AdminExitCode.Failed, $"job {one} is {job.State.ToString().ToLowerInvariant()}: only dead or cancelled jobs are requeued.");
            }

            if (!parse.GetValue(GlobalOptions.Yes))
            {
                return CacheCommands.Unconfirmed(context, $"Would requeue job {one} ({Markup.Escape(job.Kind)} in queue '{Markup.Escape(job.Queue)}', {job.State.ToString().ToLowerInvariant()}): it runs again with fresh attempts.", new { requeued = 0, wouldRequeue = 1 });
            }

            if (!await manager.RequeueAsync(one, cancellationToken).ConfigureAwait(false))
            {
                var now = await manager.GetJobAsync(one, cancellationToken).ConfigureAwait(false);
                throw new AdminException(AdminExitCode.Failed, now is { State: JobState.Dead or JobState.Cancelled }
                    ? $"job {one} was not requeued: another job holds its unique key '{now.UniqueKey}'."
                    : $"job {one} is {now?.State.ToString().ToLowerInvariant() ?? "gone"}: only dead or cancelled jobs are requeued.");
            }

            context.Report(new { requeued = 1 }, $"Requeued job {one}.");

            return AdminExitCode.Ok;
        });
        jobs.Subcommands.Add(requeue);

        var cancel = new Command("cancel", "Cancel a job that has not started (available or scheduled); a running job is left to finish. Needs --yes.") { id, GlobalOptions.Yes };
        cancel.SetAction(io, async (context, parse, cancellationToken) =>
        {
            var jobId = parse.GetValue(id);
            var manager = Manager(context);
            var job = await manager.GetJobAsync(jobId, cancellationToken).ConfigureAwait(false)
                ?? throw AdminException.NotFound($"no job {jobId} (never enqueued, or removed by retention).");
            if (job.State is not (JobState.Available or JobState.Scheduled))
            {
                throw new AdminException(AdminExitCode.Failed, $"job {jobId} is {job.State.ToString().ToLowerInvariant()}: only available or scheduled jobs are cancelled.");
            }

            if (!parse.GetValue(GlobalOptions.Yes))
            {
                return CacheCommands.Unconfirmed(context, $"Would cancel job {jobId} ({Markup.Escape(job.Kind)} in queue '{Markup.Escape(job.Queue)}', {job.State.ToString().ToLowerInvariant()}).", new { cancelled = false, state = job.State });
            }

            if (!await manager.CancelAsync(jobId, cancellationToken).ConfigureAwait(false))
            {
                var now = await manager.GetJobAsync(jobId, cancellationToken).ConfigureAwait(false);
                throw new AdminException(AdminExitCode.Failed, $"job {jobId} is {now?.State.ToString().ToLowerInvariant() ?? "gone"}: only available or scheduled jobs are cancelled.");
            }

            context.Report(new { cancelled = true }, $"Cancelled job {jobId}.");

            return AdminExitCode.Ok;
        });
        jobs.Subcommands.Add(cancel);

        var before = new Option<string?>("--finished-before") { Description = "A time (\"2026-12-01T00:00:00Z\") or a span ago (\"7d\")." };
        var purge = new Command("purge", "Delete finished jobs (succeeded, cancelled, dead) that finished before a time, whatever their retention. Needs --yes.") { before, queue, GlobalOptions.Yes };
        purge.SetAction(io, async (context, parse, cancellationToken) =>
        {
            var text = parse.GetValue(before) ?? throw AdminException.Usage("jobs purge needs --finished-before (a time, or a span ago such as 7d).");
            var cutoff = Format.ParseInstant(text, "--finished-before", TimeProvider.System.GetUtcNow());
            var name = parse.GetValue(queue);
            var manager = Manager(context);
            var scope = $"finished before {Format.Time(cutoff)}{(name is null ? "" : $" in queue '{name}'")}";
            if (!parse.GetValue(GlobalOptions.Yes))
            {
                var count = await manager.CountFinishedBeforeAsync(cutoff, name, cancellationToken).ConfigureAwait(false);
                return CacheCommands.Unconfirmed(context, $"Would delete {Format.Count(count)} finished job(s) {scope}.", new { deleted = 0, wouldDelete = count });
            }

            var deleted = await manager.PurgeFinishedAsync(cutoff, name, cancellationToken: cancellationToken).ConfigureAwait(false);
            context.Report(new { deleted }, $"Deleted {Format.Count(deleted)} finished job(s) {scope}.");

            return AdminExitCode.Ok;
        });
        jobs.Subcommands.Add(purge);
        return jobs;
    }

    private static string Shorten(string text, int length) => text.Length <= length ? text : text[..(length - 1)] + "…";

    private static JobQueueManager Manager(AdminContext context) =>
        new(new PostgresJobQueueBackend(context.DataSource, context.StoreOptions), new PgQueueOptions(), TimeProvider.System);
}
