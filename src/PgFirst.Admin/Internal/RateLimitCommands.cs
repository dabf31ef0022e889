using System.CommandLine;
using PgRateLimit;
using Spectre.Console;

namespace PgFirst.Admin.Internal;

internal static class RateLimitCommands
{
    public static Command Build(AdminIO io)
    {
        var ratelimit = new Command("ratelimit", "The distributed rate limiter's counters (PgRateLimit).");
        var policy = new Option<string?>("--policy", "-p") { Description = "The policy name (or the limiter's LimiterId when set)." };
        var partition = new Option<string?>("--partition", "-k") { Description = "The partition key (the user, the IP… the policy partitions by)." };
        var inspect = new Command("inspect", "One partition's window: when it began, its count, when it resets.") { policy, partition };
        inspect.SetAction(io, async (context, parse, cancellationToken) =>
        {
            var limiterId = parse.GetValue(policy) ?? throw AdminException.Usage("ratelimit inspect needs --policy P.");
            var key = parse.GetValue(partition) ?? throw AdminException.Usage("ratelimit inspect needs --partition K.");
            var counter = await new PostgresRateLimitStore(context.DataSource, context.StoreOptions).InspectAsync(limiterId, key, cancellationToken).ConfigureAwait(false)
                ?? throw AdminException.NotFound($"no counter for policy '{limiterId}', partition '{key}' (never hit, or its window ended and the cleanup removed it).");
            if (context.Json)
            {
                context.WriteJson(counter);
                return AdminExitCode.Ok;
            }

            var table = AdminContext.Table("Field", "Value");
            table.AddRow("Policy", Markup.Escape(counter.LimiterId));
            table.AddRow("Partition", Markup.Escape(counter.PartitionKey));
            table.AddRow("Window", $"{Format.Time(counter.WindowStart)} to {Format.Time(counter.ResetsAt)} ({Format.Duration(counter.ResetsAt - counter.WindowStart)})");
            table.AddRow("Count", Format.Count(counter.Hits) + (counter.Current ? "" : " (window over: the next request starts a new one)"));
            table.AddRow("Resets at", Format.Time(counter.ResetsAt));
            context.Write(table);
            return AdminExitCode.Ok;
        });
        ratelimit.Subcommands.Add(inspect);
        return ratelimit;
    }
}
