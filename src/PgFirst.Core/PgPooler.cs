using Npgsql;

namespace PgFirst.Core;

/// <summary>
/// What every PostgreSQL backend of PgFirst does differently behind a transaction pooler (see <see cref="PgPoolerMode"/>):
/// whether it may prepare statements, whether a data source is safe to use, and how a pooler's symptoms are reported.
/// </summary>
public static class PgPooler
{
    /// <summary>The configuration key of the setting the errors name.</summary>
    public const string SettingName = "PgFirst:Pooler";

    /// <summary>
    /// Returns whether statements may be prepared (named server-side statements that outlive their transaction).
    /// </summary>
    /// <param name="mode">The pooler mode.</param>
    /// <returns><see langword="false"/> for <see cref="PgPoolerMode.Transaction"/> only.</returns>
    public static bool PreparesStatements(PgPoolerMode mode) => mode != PgPoolerMode.Transaction;

    /// <summary>
    /// Throws when <paramref name="dataSource"/> is unsafe behind a transaction pooler: Npgsql's automatic preparation
    /// (<c>Max Auto Prepare</c> above 0) names statements per physical connection, and a transaction pooler hands those
    /// names to other clients; Npgsql's reset of a pooled connection (unless <c>No Reset On Close=true</c>) runs as a
    /// transaction of its own, after which the pooler may route the rest of the next command elsewhere. Does no I/O.
    /// </summary>
    /// <param name="dataSource">The data source PgFirst will use.</param>
    /// <param name="mode">The pooler mode configured for it.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="mode"/> is not a defined value.</exception>
    /// <exception cref="PgFirstPoolerException">
    /// The mode is <see cref="PgPoolerMode.Transaction"/> and the data source auto-prepares, or pools connections
    /// without <c>No Reset On Close=true</c>.
    /// </exception>
    public static void EnsureCompatible(NpgsqlDataSource dataSource, PgPoolerMode mode)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        if (!Enum.IsDefined(mode))
        {
            throw new ArgumentOutOfRangeException(nameof(mode), mode, $"{SettingName} must be None, Transaction or Session.");
        }

        if (mode != PgPoolerMode.Transaction)
        {
            return;
        }

        var settings = new NpgsqlConnectionStringBuilder(dataSource.ConnectionString);
        if (settings.Pooling && !settings.NoResetOnClose)
        {
            // Measured through PgBouncer 1.18: the reset Npgsql prepends to a reused connection's next command ends a
            // pooler transaction of its own, and a large Bind that follows it (a 1 MiB cache value) reached the
            // server split across two server connections: "08P01: invalid frontend message type".
            throw new PgFirstPoolerException(
                $"{SettingName} is Transaction, but the data source resets connections when they return to its pool " +
                "(DISCARD ALL before the next command). Behind a transaction pooler that reset is its own transaction " +
                "and broke the messages that followed it: add No Reset On Close=true to the connection string (a " +
                "transaction pooler keeps no session state to reset).");
        }

        if (settings.MaxAutoPrepare > 0)
        {
            throw new PgFirstPoolerException(
                $"{SettingName} is Transaction, but the data source prepares statements automatically (Max Auto Prepare=" +
                $"{settings.MaxAutoPrepare}). Behind a transaction pooler a prepared statement can run on another " +
                "client's server connection: remove Max Auto Prepare from the connection string (its default, 0, is safe).");
        }
    }

    /// <summary>
    /// Returns whether a connection pooler answers for PostgreSQL on <paramref name="dataSource"/>: a pooler hands the
    /// client a cancellation key of its own, so the backend process id the connection was given differs from the one
    /// the server reports (<c>pg_backend_pid()</c>). A plain TCP proxy is not detected; nor is a pooler that forwards the
    /// server's key.
    /// </summary>
    /// <param name="dataSource">The data source to probe.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns><see langword="true"/> when a pooler answers.</returns>
    public static async Task<bool> DetectAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        var command = new NpgsqlCommand("SELECT pg_backend_pid()", connection);
        await using var commandScope = command.ConfigureAwait(false);
        var serverPid = (int)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        return serverPid != connection.ProcessID;
    }

    /// <summary>
    /// Returns a <see cref="PgFirstPoolerException"/> when <paramref name="exception"/> is a symptom of a transaction
    /// pooler: a prepared statement the server connection does not know (<c>26000</c>), already has (<c>42P05</c>) or
    /// has with other parameters (<c>08P01</c>), or a missing schema, table or function in a schema other than this
    /// store's (someone else's statement ran under our statement's name). Otherwise <see langword="null"/>.
    /// </summary>
    /// <param name="exception">The error PostgreSQL returned.</param>
    /// <param name="mode">The configured pooler mode, which the message takes into account.</param>
    /// <param name="schemaName">The schema of the store whose statement failed.</param>
    /// <returns>The translated exception, or <see langword="null"/>.</returns>
    public static PgFirstPoolerException? TryTranslate(PostgresException exception, PgPoolerMode mode, string schemaName)
    {
        ArgumentNullException.ThrowIfNull(exception);
        ArgumentNullException.ThrowIfNull(schemaName);
        var symptom = exception.SqlState switch
        {
            PostgresErrorCodes.InvalidSqlStatementName or PostgresErrorCodes.DuplicatePreparedStatement =>
                "a prepared statement the server connection does not have as expected",
            PostgresErrorCodes.ProtocolViolation when exception.MessageText.Contains("prepared statement", StringComparison.Ordinal) =>
                "a prepared statement with another shape on the server connection",
            PostgresErrorCodes.UndefinedTable or PostgresErrorCodes.InvalidSchemaName or PostgresErrorCodes.UndefinedFunction
                when NamedSchema(exception) is { } other && !string.Equals(other, schemaName, StringComparison.Ordinal) =>
                $"a statement for schema \"{other}\", not this store's \"{schemaName}\", ran under this store's statement name",
            _ => null,
        };
        if (symptom is null)
        {
            return null;
        }

        var advice = mode != PgPoolerMode.Transaction
            ? $"This is what a transaction pooler (PgBouncer pool_mode=transaction, a cloud provider's built-in pooler, " +
              $"RDS Proxy) does to prepared statements. Set {SettingName}=Transaction for this data source, or connect " +
              "directly or through a session pooler."
            : $"{SettingName} is Transaction, so PgFirst prepared nothing: another client of the same pooler, or this " +
              "data source (Max Auto Prepare), prepares statements. Turn preparation off there.";
        return new PgFirstPoolerException(
            $"PgFirst: {symptom} ({exception.SqlState}: {exception.MessageText}). {advice} The statement was not retried.",
            exception);
    }

    // The schema the failed statement named, as PostgreSQL reports it: 3F000 'schema "s" does not exist', 42P01
    // 'relation "s.t" does not exist', 42883 'function s.f(text, ...) does not exist'. Null when it named none.
    private static string? NamedSchema(PostgresException exception)
    {
        var message = exception.MessageText;
        if (exception.SqlState == PostgresErrorCodes.UndefinedFunction)
        {
            var start = message.IndexOf("function ", StringComparison.Ordinal);
            var paren = message.IndexOf('(', StringComparison.Ordinal);
            if (start < 0 || paren < 0 || paren < start)
            {
                return null;
            }

            var function = message[(start + "function ".Length)..paren].Replace("\"", "", StringComparison.Ordinal);
            var dot = function.LastIndexOf('.');
            return dot > 0 ? function[..dot] : null;
        }

        var open = message.IndexOf('"', StringComparison.Ordinal);
        var close = message.LastIndexOf('"');
        if (open < 0 || close <= open)
        {
            return null;
        }

        var name = message[(open + 1)..close].Replace("\"", "", StringComparison.Ordinal);
        if (exception.SqlState == PostgresErrorCodes.InvalidSchemaName)
        {
            return name;
        }

        var last = name.LastIndexOf('.');
        return last > 0 ? name[..last] : null;
    }
}
