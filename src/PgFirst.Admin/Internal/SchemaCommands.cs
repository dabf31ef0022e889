using System.CommandLine;
using PgFirst.Core;
using Spectre.Console;

namespace PgFirst.Admin.Internal;

internal static class SchemaCommands
{
    private static readonly Option<bool> CacheLogged = new("--cache-logged")
    {
        Description = "Render the cache table as a logged table (PgCache:Durability=Logged); default UNLOGGED.",
    };

    private static readonly Option<bool> RateLimitLogged = new("--ratelimit-logged")
    {
        Description = "Render the rate-limit counter table as a logged table (PgRateLimit:Durability=Logged); default UNLOGGED.",
    };

    public static Command Build(AdminIO io)
    {
        var schema = new Command("schema", "The SQL the installer applies: print it, apply what is pending, or verify what is applied.");

        var script = new Command("script", "Print the full SQL of every module for a DBA to review or apply by hand (no server needed).") { CacheLogged, RateLimitLogged };
        script.SetAction(async (parse, cancellationToken) =>
        {
            var schemaName = parse.GetValue(GlobalOptions.Schema) ?? io.Environment("PGFIRST_SCHEMA") ?? PgFirstOptions.DefaultSchemaName;
            try
            {
                var dataSource = Npgsql.NpgsqlDataSource.Create("Host=unused");
                await using var dataSourceScope = dataSource.ConfigureAwait(false);
                var installer = new PgSchemaInstaller(dataSource, schemaName, Modules.All(parse.GetValue(CacheLogged), parse.GetValue(RateLimitLogged)));
                await io.Out.WriteAsync(installer.GenerateScript().AsMemory(), cancellationToken).ConfigureAwait(false);
                return (int)AdminExitCode.Ok;
            }
            catch (ArgumentException ex)
            {
                await io.Error.WriteLineAsync($"pgfirst-admin: {ex.Message}").ConfigureAwait(false);
                return (int)AdminExitCode.Usage;
            }
        });
        schema.Subcommands.Add(script);

        var verify = new Command("verify", "Compare what the database records with the scripts of this version: exit 0 when every script is applied unchanged, 3 otherwise.");
        verify.SetAction(io, async (context, _, cancellationToken) =>
        {
            var states = await Installer(context, false, false).GetScriptStatesAsync(cancellationToken).ConfigureAwait(false);
            var ready = states.All(s => s.State == PgSchemaScriptStateKind.Applied);
            if (context.Json)
            {
                context.WriteJson(new { schema = context.SchemaName, upToDate = ready, scripts = states });
            }
            else
            {
                var table = AdminContext.Table("Module", "#Version", "Script", "State", "Applied at");
                foreach (var state in states)
                {
                    var shown = state.State switch
                    {
                        PgSchemaScriptStateKind.Applied => "applied",
                        PgSchemaScriptStateKind.Pending => "[yellow]pending[/]",
                        PgSchemaScriptStateKind.ChecksumMismatch => "[red]applied, checksum differs[/]",
                        _ => "[red]unknown to this version[/]",
                    };
                    table.AddRow(new Markup(state.Module), new Markup(state.Version.ToString(System.Globalization.CultureInfo.InvariantCulture)), new Markup(Markup.Escape(state.FileName)), new Markup(shown), new Markup(Format.Time(state.AppliedAt)));
                }

                context.Write(table);
                context.Line(ready ? $"Schema \"{context.SchemaName}\" is up to date." : $"Schema \"{context.SchemaName}\" is not up to date.");
            }

            return ready ? AdminExitCode.Ok : AdminExitCode.SchemaNotReady;
        });
        schema.Subcommands.Add(verify);

        var apply = new Command("apply", "Apply the pending scripts in one transaction under the installer's lock (as the apps do at start-up with ApplySchema). Without --yes, list them and change nothing.")
        {
            GlobalOptions.Yes,
            CacheLogged,
            RateLimitLogged,
        };
        apply.SetAction(io, async (context, parse, cancellationToken) =>
        {
            var installer = Installer(context, parse.GetValue(CacheLogged), parse.GetValue(RateLimitLogged));
            var pending = await installer.GetPendingScriptsAsync(cancellationToken).ConfigureAwait(false);
            if (!parse.GetValue(GlobalOptions.Yes))
            {
                if (context.Json)
                {
                    context.WriteJson(new { schema = context.SchemaName, applied = false, pending = pending.Select(s => s.SourcePath) });
                }
                else
                {
                    context.Line(pending.Count == 0
                        ? $"Schema \"{context.SchemaName}\" is up to date: nothing to apply."
                        : $"Would apply {pending.Count} script(s) to schema \"{context.SchemaName}\": {string.Join(", ", pending.Select(s => s.SourcePath))}. Nothing was changed; pass --yes to apply.");
                }

                return pending.Count == 0 ? AdminExitCode.Ok : AdminExitCode.NotConfirmed;
            }

            var result = await installer.ApplyAsync(cancellationToken).ConfigureAwait(false);
            if (context.Json)
            {
                context.WriteJson(new { schema = context.SchemaName, applied = true, scripts = result.Applied.Select(s => s.SourcePath) });
            }
            else
            {
                context.Line(result.WasUpToDate
                    ? $"Schema \"{context.SchemaName}\" was up to date."
                    : $"Applied {result.Applied.Count} script(s) to schema \"{context.SchemaName}\": {string.Join(", ", result.Applied.Select(s => s.SourcePath))}.");
            }

            return AdminExitCode.Ok;
        });
        schema.Subcommands.Add(apply);
        return schema;
    }

    private static PgSchemaInstaller Installer(AdminContext context, bool cacheLogged, bool rateLimitLogged) =>
        new(context.DataSource, context.SchemaName, Modules.All(cacheLogged, rateLimitLogged));
}
