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
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return await FailAsync(io, AdminExitCode.Interrupted, "interrupted; what was done so far stays done.").ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                var (code, message) = Classify(ex, context);
                return await FailAsync(io, code, message).ConfigureAwait(false);
            }
            finally
            {
                if (context is not null)
                {
                    await context.DisposeAsync().ConfigureAwait(false);
                }
            }
        });

    // What a failure means to an operator, and the exit code a script sees.
    internal static (AdminExitCode Code, string Message) Classify(Exception exception, AdminContext? context)
    {
        var where = context?.Where ?? "the server";
        switch (exception)
        {
            case AdminException admin:
                return (admin.Code, admin.Message);
            case PgFirstPoolerException pooler:
                return (AdminExitCode.Failed, pooler.Message);
            case PgFirstSchemaException schema when schema.InnerException is PostgresException pg && !IsMissingObject(pg):
                return Classify(pg, context);
            case PgFirstSchemaException schema when schema.InnerException is NpgsqlException and not PostgresException:
                return Classify(schema.InnerException, context);
            case PgFirstSchemaException schema:
                return (AdminExitCode.SchemaNotReady, schema.Message);
            case PostgresException pg when IsMissingObject(pg):
                return (AdminExitCode.SchemaNotReady, $"schema \"{context?.SchemaName}\" is missing what this command reads ({pg.MessageText}). Check --schema, or see what 'pgfirst-admin schema apply' would do.");
            case PostgresException pg when pg.SqlState.StartsWith("28", StringComparison.Ordinal) || pg.SqlState is PostgresErrorCodes.InvalidCatalogName or PostgresErrorCodes.TooManyConnections or PostgresErrorCodes.CannotConnectNow:
                return (AdminExitCode.Failed, $"cannot connect to PostgreSQL at {where}: {pg.SqlState}: {pg.MessageText}");
            case PostgresException pg:
                return (AdminExitCode.Failed, $"PostgreSQL refused: {pg.SqlState}: {pg.MessageText}");
            case NpgsqlException { InnerException: TimeoutException } when exception.Message.Contains("connect", StringComparison.OrdinalIgnoreCase):
                return (AdminExitCode.Failed, $"cannot reach PostgreSQL at {where}: {exception.Message}");
            case NpgsqlException { InnerException: TimeoutException }:
                return (AdminExitCode.Failed, $"PostgreSQL at {where} did not answer within the command timeout ({exception.Message}); for a long bulk command pass a connection string with a larger Command Timeout.");
            case NpgsqlException or SocketException or TimeoutException:
                return (AdminExitCode.Failed, $"cannot reach PostgreSQL at {where}: {Innermost(exception).Message}");
            case NotSupportedException:
                return (AdminExitCode.Failed, exception.Message);
            case ArgumentException:
                return (AdminExitCode.Usage, exception.Message);
            case { InnerException: { } inner } when exception.GetType().Name.EndsWith("Exception", StringComparison.Ordinal)
                && exception.GetType().Namespace is "PgCache" or "PgSessions" or "PgRateLimit" or "PgQueue":
                // A module's own wrapper ("the store failed, see the inner exception"): what matters is inside.
                return Classify(inner, context);
            default:
                return (AdminExitCode.Failed, $"unexpected {exception.GetType().Name}: {exception.Message}");
        }
    }

    private static bool IsMissingObject(PostgresException exception) =>
        exception.SqlState is PostgresErrorCodes.InvalidSchemaName or PostgresErrorCodes.UndefinedTable or PostgresErrorCodes.UndefinedFunction or PostgresErrorCodes.UndefinedColumn;

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
