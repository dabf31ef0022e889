using System.CommandLine;
using System.Net.Sockets;
using Npgsql;
using PgFirst.Admin.Internal;
using PgFirst.Core;

namespace PgFirst.Admin;

/// <summary>
/// The <c>pgfirst-admin</c> command line: see and operate every PgFirst store (schema, cache, sessions, rate limits,
/// jobs) of one database from a terminal.
/// </summary>
public static class AdminApp
{
    /// <summary>Parses and runs one command line.</summary>
    /// <param name="args">The arguments.</param>
    /// <param name="io">The console, output streams and environment.</param>
    /// <param name="cancellationToken">Stops a running command (Ctrl-C does too).</param>
    /// <returns>The exit code, one of <see cref="AdminExitCode"/>.</returns>
    public static async Task<int> RunAsync(string[] args, AdminIO io, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(io);
        var root = BuildCommand(io);
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors)
            {
                await io.Error.WriteLineAsync($"pgfirst-admin: {error.Message}").ConfigureAwait(false);
            }

            await io.Error.WriteLineAsync("Run 'pgfirst-admin --help' (or '<command> --help') for usage.").ConfigureAwait(false);
            return (int)AdminExitCode.Usage;
        }

        return await parse.InvokeAsync(new InvocationConfiguration { Output = io.Out, Error = io.Error, EnableDefaultExceptionHandler = false }, cancellationToken).ConfigureAwait(false);
    }

    internal static RootCommand BuildCommand(AdminIO io)
    {
        var root = new RootCommand("pgfirst-admin: see and operate the PgFirst stores (cache, sessions, rate limits, jobs) of a PostgreSQL database.")
        {
            GlobalOptions.Connection,
            GlobalOptions.Schema,
            GlobalOptions.Json,
        };
        root.Subcommands.Add(StatusCommand.Build(io));
        root.Subcommands.Add(CacheCommands.Build(io));
        root.Subcommands.Add(SessionCommands.Build(io));
        root.Subcommands.Add(RateLimitCommands.Build(io));
        root.Subcommands.Add(JobCommands.Build(io));
        root.Subcommands.Add(SchemaCommands.Build(io));
        root.Subcommands.Add(MonitorCommand.Build(io));
        return root;
    }

    // Every action runs here: one context, and every failure becomes one line and its exit code.
    internal static void SetAction(this Command command, AdminIO io, Func<AdminContext, ParseResult, CancellationToken, Task<AdminExitCode>> action) =>
        command.SetAction(async (parse, cancellationToken) =>
        {
            AdminContext? context = null;
            try
            {
                context = new AdminContext(parse, io);
                return (int)await action(context, parse, cancellationToken).ConfigureAwait(false);
            }
            catch (AdminException ex)
            {
                return await FailAsync(io, ex.Code, ex.Message).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return (int)AdminExitCode.Ok;
            }
            catch (PgFirstSchemaException ex) when (ex.InnerException is NpgsqlException and not PostgresException)
            {
                return await FailAsync(io, AdminExitCode.Failed, $"cannot reach PostgreSQL at {context?.Where ?? "the server"}: {Innermost(ex).Message}").ConfigureAwait(false);
            }
            catch (PgFirstSchemaException ex)
            {
                return await FailAsync(io, AdminExitCode.SchemaNotReady, ex.Message).ConfigureAwait(false);
            }
            catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.InvalidSchemaName or PostgresErrorCodes.UndefinedTable or PostgresErrorCodes.UndefinedFunction)
            {
                return await FailAsync(
                    io,
                    AdminExitCode.SchemaNotReady,
                    $"schema \"{context!.SchemaName}\" is missing what this command reads ({ex.MessageText}). Check --schema, or see what 'pgfirst-admin schema apply' would do.").ConfigureAwait(false);
            }
            catch (PostgresException ex)
            {
                return await FailAsync(io, AdminExitCode.Failed, $"PostgreSQL refused: {ex.SqlState}: {ex.MessageText}").ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is NpgsqlException or SocketException or TimeoutException)
            {
                var where = context?.Where ?? "the server";
                return await FailAsync(io, AdminExitCode.Failed, $"cannot reach PostgreSQL at {where}: {Innermost(ex).Message}").ConfigureAwait(false);
            }
            catch (NotSupportedException ex)
            {
                return await FailAsync(io, AdminExitCode.Failed, ex.Message).ConfigureAwait(false);
            }
            catch (ArgumentException ex)
            {
                return await FailAsync(io, AdminExitCode.Usage, ex.Message).ConfigureAwait(false);
            }
            finally
            {
                if (context is not null)
                {
                    await context.DisposeAsync().ConfigureAwait(false);
                }
            }
        });

    private static Exception Innermost(Exception exception)
    {
        while (exception.InnerException is { } inner)
        {
            exception = inner;
        }

        return exception;
    }

    private static async Task<int> FailAsync(AdminIO io, AdminExitCode code, string message)
    {
        await io.Error.WriteLineAsync($"pgfirst-admin: {message}").ConfigureAwait(false);
        return (int)code;
    }
}
