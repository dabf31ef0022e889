using System.CommandLine;
using PgCache;
using Spectre.Console;

namespace PgFirst.Admin.Internal;

internal static class CacheCommands
{
    public static Command Build(AdminIO io)
    {
        var cache = new Command("cache", "The distributed cache table (PgCache).");

        var top = new Option<int>("--top") { Description = "How many tenants and tags to list.", DefaultValueFactory = _ => 10 };
        var stats = new Command("stats", "Entries, value bytes, expired entries not yet removed, per tenant, and the most used tags (scans the table).") { GlobalOptions.Tenant, top };
        stats.SetAction(io, async (context, parse, cancellationToken) =>
        {
            var result = await Manager(context).GetStatsAsync(parse.GetValue(GlobalOptions.Tenant), parse.GetValue(top), cancellationToken).ConfigureAwait(false);
            if (context.Json)
            {
                context.WriteJson(result);
                return AdminExitCode.Ok;
            }

            context.Markup($"[bold]{Format.Count(result.Entries)}[/] entries, {Format.Bytes(result.ValueBytes)} of values, {Format.Count(result.Expired)} expired awaiting cleanup, {result.TenantCount} tenant(s)");
            var tenants = AdminContext.Table("Tenant", "#Entries", "#Value bytes", "#Expired");
            foreach (var tenant in result.Tenants)
            {
                tenants.AddRow(Markup.Escape(tenant.TenantId), Format.Count(tenant.Entries), Format.Bytes(tenant.ValueBytes), Format.Count(tenant.Expired));
            }

            context.Write(tenants);
            if (result.TopTags.Count > 0)
            {
                var tags = AdminContext.Table("Tag", "#Entries");
                foreach (var tag in result.TopTags)
                {
                    tags.AddRow(Markup.Escape(tag.Tag), Format.Count(tag.Entries));
                }

                context.Write(tags);
            }

            return AdminExitCode.Ok;
        });
        cache.Subcommands.Add(stats);

        var cleanup = new Command("cleanup", "Remove every expired entry now, in batches (what the apps' maintenance runner does on its interval). Removes nothing a get could return.");
        cleanup.SetAction(io, async (context, _, cancellationToken) =>
        {
            var removed = await Manager(context).CleanupAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            context.Report(new { removed }, $"Removed {Format.Count(removed)} expired entries.");

            return AdminExitCode.Ok;
        });
        cache.Subcommands.Add(cleanup);

        var tag = new Option<string?>("--tag") { Description = "Remove the entries carrying this tag (in --tenant, or every tenant)." };
        var all = new Option<bool>("--all") { Description = "Remove every entry of every tenant." };
        var clear = new Command("clear", "Remove a tenant's entries (--tenant), a tag's (--tag, optionally with --tenant), or all (--all). Needs --yes.") { GlobalOptions.Tenant, tag, all, GlobalOptions.Yes };
        clear.SetAction(io, async (context, parse, cancellationToken) =>
        {
            var tenant = parse.GetValue(GlobalOptions.Tenant);
            var tagName = parse.GetValue(tag);
            var everything = parse.GetValue(all);
            PgCacheScope scope = (tenant, tagName, everything) switch
            {
                (_, _, true) when tenant is not null || tagName is not null => throw AdminException.Usage("--all removes everything: it takes neither --tenant nor --tag."),
                (_, _, true) => PgCacheScope.All,
                (_, string t, false) => PgCacheScope.WithTag(t, tenant),
                (string t, null, false) => PgCacheScope.Tenant(t),
                _ => throw AdminException.Usage("Say what to clear: --tenant T, --tag X (with or without --tenant), or --all."),
            };
            var manager = Manager(context);
            if (!parse.GetValue(GlobalOptions.Yes))
            {
                var count = await manager.CountAsync(scope, cancellationToken).ConfigureAwait(false);
                return Unconfirmed(context, $"Would remove {Format.Count(count)} entries ({scope}).", new { removed = 0, wouldRemove = count, scope = scope.ToString() });
            }

            var removed = await manager.RemoveAsync(scope, cancellationToken).ConfigureAwait(false);
            context.Report(new { removed, scope = scope.ToString() }, $"Removed {Format.Count(removed)} entries ({scope}).");

            return AdminExitCode.Ok;
        });
        cache.Subcommands.Add(clear);

        var key = new Argument<string>("key") { Description = "The key, exactly as the app wrote it (a key prefix such as PgCache:KeyPrefix included)." };
        var get = new Command("get", "One entry's metadata: size, expiry, sliding and absolute expiration, tags (not the value).") { key, GlobalOptions.Tenant };
        get.SetAction(io, async (context, parse, cancellationToken) =>
        {
            var tenant = parse.GetValue(GlobalOptions.Tenant) ?? PgFirst.Core.PgFirstOptions.DefaultTenant;
            var entry = await Manager(context).GetEntryAsync(tenant, parse.GetValue(key)!, cancellationToken).ConfigureAwait(false)
                ?? throw AdminException.NotFound($"no cache entry '{parse.GetValue(key)}' in tenant '{tenant}'.");
            if (context.Json)
            {
                context.WriteJson(entry);
                return AdminExitCode.Ok;
            }

            var table = AdminContext.Table("Field", "Value");
            table.AddRow("Tenant", Markup.Escape(entry.TenantId));
            table.AddRow("Key", Markup.Escape(entry.Key));
            table.AddRow("Value size", Format.Bytes(entry.ValueBytes));
            table.AddRow("Expires at", entry.ExpiresAt is null ? "never" : Format.Time(entry.ExpiresAt) + (entry.Expired ? " (expired, awaiting cleanup)" : ""));
            table.AddRow("Sliding expiration", Format.Duration(entry.SlidingExpiration));
            table.AddRow("Absolute expiration", Format.Time(entry.AbsoluteExpiresAt));
            table.AddRow("Tags", entry.Tags.Count == 0 ? "-" : Markup.Escape(string.Join(", ", entry.Tags)));
            context.Write(table);
            return AdminExitCode.Ok;
        });
        cache.Subcommands.Add(get);
        return cache;
    }

    internal static AdminExitCode Unconfirmed(AdminContext context, string plan, object json)
    {
        if (context.Json)
        {
            context.WriteJson(json);
        }
        else
        {
            context.Line(plan + " Nothing was changed; pass --yes to do it.");
        }

        return AdminExitCode.NotConfirmed;
    }

    private static PgCacheManager Manager(AdminContext context) => new(context.DataSource, context.SchemaName);
}
