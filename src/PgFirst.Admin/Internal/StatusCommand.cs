using System.CommandLine;
using PgFirst.Core;
using Spectre.Console;

namespace PgFirst.Admin.Internal;

internal static class StatusCommand
{
    public static Command Build(AdminIO io)
    {
        var command = new Command("status", "The server, the schema's scripts (applied, pending), each table's rows, sizes and dead tuples, the last cleanup runs, replication and the pooler.");
        command.SetAction(io, async (context, _, cancellationToken) =>
        {
            var status = await new PgFirstInspector(context.DataSource, context.SchemaName).GetStatusAsync(Modules.All(), cancellationToken).ConfigureAwait(false);
            if (context.Json)
            {
                context.WriteJson(status);
            }
            else
            {
                Render(context, status);
            }

            if (!status.SchemaExists)
            {
                await io.Error.WriteLineAsync($"pgfirst-admin: schema \"{status.SchemaName}\" does not exist in this database (check --schema; 'pgfirst-admin schema apply' creates it).").ConfigureAwait(false);
                return AdminExitCode.SchemaNotReady;
            }

            return AdminExitCode.Ok;
        });
        return command;
    }

    private static void Render(AdminContext context, PgFirstStatus status)
    {
        var role = status.InRecovery ? $"standby, replay lag {Format.Duration(status.ReplayLag)}" : "primary";
        var pooler = status.BehindPooler ? "through a pooler (the server's backend pid differs from the client's)" : "direct (no pooler)";
        context.Markup($"[bold]PostgreSQL {Markup.Escape(status.ServerVersion)}[/] ({role}) at {Markup.Escape(context.Where)}, {pooler}");
        if (!status.SchemaExists)
        {
            context.Markup($"Schema [bold]{status.SchemaName}[/]: [red]missing[/]");
            return;
        }

        var applied = status.Scripts.Count(s => s.State == PgSchemaScriptStateKind.Applied);
        var pending = status.Scripts.Count(s => s.State == PgSchemaScriptStateKind.Pending);
        var other = status.Scripts.Count - applied - pending;
        context.Markup($"Schema [bold]{status.SchemaName}[/]: {applied} scripts applied, {pending} pending{(other > 0 ? $", [red]{other} mismatched or unknown[/]" : "")}{(status.UpToDate ? " (up to date)" : " ([yellow]not up to date[/]: see 'schema verify')")}");

        var modules = AdminContext.Table("Module", "#Version", "Latest applied", "Applied at", "#Pending");
        foreach (var group in status.Scripts.GroupBy(s => s.Module))
        {
            var last = group.Where(s => s.State != PgSchemaScriptStateKind.Pending).OrderBy(s => s.Version).LastOrDefault();
            modules.AddRow(
                group.Key,
                last?.Version.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-",
                Markup.Escape(last?.FileName ?? "-"),
                Format.Time(last?.AppliedAt),
                group.Count(s => s.State == PgSchemaScriptStateKind.Pending).ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        context.Write(modules);

        var tables = AdminContext.Table("Module", "Table", "#Rows", "#Table+TOAST", "#Indexes", "#Dead tuples", "Last vacuum");
        foreach (var table in status.Tables)
        {
            tables.AddRow(
                table.Module ?? "-",
                table.Name + (table.Unlogged ? " (unlogged)" : ""),
                (table.RowsExact ? "" : "~") + Format.Count(table.Rows),
                Format.Bytes(table.TableBytes),
                Format.Bytes(table.IndexBytes),
                Format.Count(table.DeadTuples),
                Format.Time(table.LastVacuumAt));
        }

        context.Write(tables);

        if (status.Maintenance.Count == 0)
        {
            context.Line("Cleanup: no run recorded yet (the apps' maintenance runner records each run).");
        }
        else
        {
            var runs = AdminContext.Table("Cleanup task", "Last run", "#Rows removed");
            foreach (var run in status.Maintenance)
            {
                runs.AddRow(run.Task, Format.Time(run.LastRunAt), Format.Count(run.LastRows));
            }

            context.Write(runs);
        }

        if (status.Replication.Count == 0)
        {
            context.Line("Replication: no standby streams from this server.");
        }
        else
        {
            var standbys = AdminContext.Table("Standby", "Address", "State", "#Replay lag");
            foreach (var standby in status.Replication)
            {
                standbys.AddRow(Markup.Escape(standby.ApplicationName ?? "?"), standby.ClientAddress ?? "local", standby.State ?? "not visible (needs pg_monitor)", Format.Duration(standby.ReplayLag));
            }

            context.Write(standbys);
        }
    }
}
