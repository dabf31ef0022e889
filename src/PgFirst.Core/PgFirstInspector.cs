using Npgsql;
using NpgsqlTypes;
using PgFirst.Core.Internal;

#pragma warning disable VSTHRD103 // Rows are read whole by ReadAsync (default, non-sequential access): column reads do no I/O.

namespace PgFirst.Core;

/// <summary>
/// Reads what an operator wants to see about a PgFirst schema, without changing anything: the server, the schema
/// scripts applied and pending, each table's rows, sizes and dead tuples, the last maintenance runs, replication and
/// whether a pooler sits in front. Used by the <c>pgfirst-admin</c> tool. It reads the catalog and the statistics,
/// plus an exact row count of the tables whose heap is at most <see cref="ExactCountMaxBytes"/> (a bounded scan);
/// bigger tables show the statistics' estimate.
/// </summary>
public sealed class PgFirstInspector
{
    /// <summary>Tables whose heap is bigger than this (64 MiB) are reported with the statistics' row estimate, not counted.</summary>
    public const long ExactCountMaxBytes = 64L * 1024 * 1024;

    // The schema's tables with their statistics ($1: the schema name), for the status and the activity readings.
    private const string TablesOfSchema = """
        FROM pg_class AS c
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        LEFT JOIN pg_stat_user_tables AS s ON s.relid = c.oid
        WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
        ORDER BY c.relname
        """;

    private readonly NpgsqlDataSource _dataSource;
    private readonly string _schemaName;

    /// <summary>Initializes a new instance of the <see cref="PgFirstInspector"/> class. Does no I/O.</summary>
    /// <param name="dataSource">The data source; not disposed.</param>
    /// <param name="schemaName">The PgFirst schema.</param>
    /// <exception cref="ArgumentException">The schema name is invalid.</exception>
    public PgFirstInspector(NpgsqlDataSource dataSource, string schemaName)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(schemaName);
        if (!PgIdentifier.IsValidSchemaName(schemaName))
        {
            throw new ArgumentException($"'{schemaName}' is not a valid schema name: it must match {PgIdentifier.SchemaNamePattern}.", nameof(schemaName));
        }

        _dataSource = dataSource;
        _schemaName = schemaName;
    }

    /// <summary>Reads the status of the server and the schema.</summary>
    /// <param name="modules">The modules the schema should carry (their scripts are compared with what is applied).</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The status; <see cref="PgFirstStatus.SchemaExists"/> is <see langword="false"/> when the schema is missing.</returns>
    /// <exception cref="PgFirstSchemaException">The server could not be reached (when reading the schema versions).</exception>
    /// <exception cref="NpgsqlException">The server failed or went away afterwards.</exception>
    public async Task<PgFirstStatus> GetStatusAsync(IEnumerable<PgSchemaModule> modules, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(modules);
        var installer = new PgSchemaInstaller(_dataSource, _schemaName, modules);
        var scripts = await installer.GetScriptStatesAsync(cancellationToken).ConfigureAwait(false);
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);

        string version;
        bool inRecovery;
        bool schemaExists;
        TimeSpan? replayLag;
        int serverPid;
        var server = new NpgsqlCommand(
            """
            SELECT current_setting('server_version'), pg_is_in_recovery(), to_regnamespace($1) IS NOT NULL,
                   CASE WHEN pg_is_in_recovery() THEN clock_timestamp() - pg_last_xact_replay_timestamp() END,
                   pg_backend_pid()
            """,
            connection);
        await using (server.ConfigureAwait(false))
        {
            server.Parameters.Add(new NpgsqlParameter<string> { TypedValue = PgSqlIdentifier.Quote(_schemaName), NpgsqlDbType = NpgsqlDbType.Text });
            var reader = await server.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                version = reader.GetString(0);
                inRecovery = reader.GetBoolean(1);
                schemaExists = reader.GetBoolean(2);
                replayLag = reader.IsDBNull(3) ? null : reader.GetFieldValue<TimeSpan>(3);
                serverPid = reader.GetInt32(4);
            }
        }

        var tables = schemaExists ? await ReadTablesAsync(connection, installer.Modules, cancellationToken).ConfigureAwait(false) : [];
        var maintenance = schemaExists && tables.Any(t => t.Name == "maintenance_state")
            ? await ReadMaintenanceAsync(connection, cancellationToken).ConfigureAwait(false)
            : [];
        var replication = await ReadReplicationAsync(connection, cancellationToken).ConfigureAwait(false);
        return new PgFirstStatus(
            version,
            inRecovery,
            replayLag,
            serverPid != connection.ProcessID,
            _schemaName,
            schemaExists,
            scripts,
            tables,
            maintenance,
            replication);
    }

    /// <summary>
    /// Reads the cumulative statistics of the schema's tables (rows inserted, updated, deleted, index lookups) and
    /// their estimated rows and size, from the catalog only: cheap enough to call every second. Rates come from the
    /// difference of two readings (the server publishes the counters about once a second).
    /// </summary>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>One reading per table of the schema, by name.</returns>
    public async Task<IReadOnlyList<PgTableActivity>> GetTableActivityAsync(CancellationToken cancellationToken = default)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var connectionScope = connection.ConfigureAwait(false);
        var command = new NpgsqlCommand(
            $$"""
            SELECT c.relname, GREATEST(c.reltuples::bigint, COALESCE(s.n_live_tup, 0)),
                   COALESCE(s.n_tup_ins, 0), COALESCE(s.n_tup_upd, 0), COALESCE(s.n_tup_del, 0), COALESCE(s.idx_scan, 0),
                   pg_total_relation_size(c.oid), clock_timestamp()
            {{TablesOfSchema}}
            """,
            connection);
        await using var commandScope = command.ConfigureAwait(false);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _schemaName, NpgsqlDbType = NpgsqlDbType.Text });
        var readings = new List<PgTableActivity>();
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            readings.Add(new PgTableActivity(
                reader.GetString(0),
                reader.GetInt64(1),
                reader.GetInt64(2),
                reader.GetInt64(3),
                reader.GetInt64(4),
                reader.GetInt64(5),
                reader.GetInt64(6),
                reader.GetFieldValue<DateTimeOffset>(7)));
        }

        return readings;
    }

    private async Task<IReadOnlyList<PgTableStatus>> ReadTablesAsync(NpgsqlConnection connection, IReadOnlyList<PgSchemaModule> modules, CancellationToken cancellationToken)
    {
        var tables = new List<PgTableStatus>();
        var heaps = new List<long>();
        var command = new NpgsqlCommand(
            $$"""
            SELECT c.relname, c.reltuples::bigint, COALESCE(s.n_live_tup, 0), COALESCE(s.n_dead_tup, 0),
                   pg_table_size(c.oid), pg_indexes_size(c.oid), c.relpersistence = 'u',
                   GREATEST(s.last_vacuum, s.last_autovacuum), pg_relation_size(c.oid)
            {{TablesOfSchema}}
            """,
            connection);
        await using (command.ConfigureAwait(false))
        {
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _schemaName, NpgsqlDbType = NpgsqlDbType.Text });
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    var name = reader.GetString(0);
                    var estimate = Math.Max(Math.Max(reader.GetInt64(1), reader.GetInt64(2)), 0);
                    heaps.Add(reader.GetInt64(8));
                    tables.Add(new PgTableStatus(
                        modules.FirstOrDefault(m => m.FindScriptDefining(name) is not null)?.Name,
                        name,
                        estimate,
                        RowsExact: false,
                        DeadTuples: reader.GetInt64(3),
                        TableBytes: reader.GetInt64(4),
                        IndexBytes: reader.GetInt64(5),
                        Unlogged: reader.GetBoolean(6),
                        LastVacuumAt: reader.IsDBNull(7) ? null : reader.GetFieldValue<DateTimeOffset>(7)));
                }
            }
        }

        for (var i = 0; i < tables.Count; i++)
        {
            if (heaps[i] <= ExactCountMaxBytes)
            {
                var count = new NpgsqlCommand($"SELECT count(*) FROM {PgSqlIdentifier.Quote(_schemaName)}.{PgSqlIdentifier.Quote(tables[i].Name)}", connection);
                await using (count.ConfigureAwait(false))
                {
                    tables[i] = tables[i] with { Rows = (long)(await count.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!, RowsExact = true };
                }
            }
        }

        return tables;
    }

    private async Task<IReadOnlyList<PgMaintenanceStatus>> ReadMaintenanceAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var runs = new List<PgMaintenanceStatus>();
        var command = new NpgsqlCommand($"SELECT task, last_run_at, last_rows FROM {PgSqlIdentifier.Quote(_schemaName)}.maintenance_state ORDER BY task", connection);
        await using var commandScope = command.ConfigureAwait(false);
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            runs.Add(new PgMaintenanceStatus(reader.GetString(0), reader.GetFieldValue<DateTimeOffset>(1), reader.GetInt64(2)));
        }

        return runs;
    }

    private static async Task<IReadOnlyList<PgReplicationStatus>> ReadReplicationAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        // Without pg_monitor (or superuser) the columns other than the pid read as NULL: shown as unknown, not as an error.
        var standbys = new List<PgReplicationStatus>();
        var command = new NpgsqlCommand(
            "SELECT application_name, client_addr::text, state, replay_lag FROM pg_stat_replication ORDER BY application_name, client_addr",
            connection);
        await using var commandScope = command.ConfigureAwait(false);
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var readerScope = reader.ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            standbys.Add(new PgReplicationStatus(
                reader.IsDBNull(0) ? null : reader.GetString(0),
                reader.IsDBNull(1) ? null : reader.GetString(1),
                reader.IsDBNull(2) ? null : reader.GetString(2),
                reader.IsDBNull(3) ? null : reader.GetFieldValue<TimeSpan>(3)));
        }

        return standbys;
    }
}

/// <summary>What <see cref="PgFirstInspector.GetStatusAsync"/> read.</summary>
/// <param name="ServerVersion">The server's <c>server_version</c>.</param>
/// <param name="InRecovery">Whether the server is a standby.</param>
/// <param name="ReplayLag">On a standby, the time since the last replayed transaction; otherwise <see langword="null"/>.</param>
/// <param name="BehindPooler">Whether a pooler answers between the client and the server (the backend pid differs from the one the client saw).</param>
/// <param name="SchemaName">The schema.</param>
/// <param name="SchemaExists">Whether the schema exists.</param>
/// <param name="Scripts">Each script of the expected modules and each recorded one, with its state.</param>
/// <param name="Tables">The schema's tables.</param>
/// <param name="Maintenance">The last run of each maintenance task.</param>
/// <param name="Replication">The standbys streaming from this server (<c>pg_stat_replication</c>).</param>
public sealed record PgFirstStatus(
    string ServerVersion,
    bool InRecovery,
    TimeSpan? ReplayLag,
    bool BehindPooler,
    string SchemaName,
    bool SchemaExists,
    IReadOnlyList<PgSchemaScriptState> Scripts,
    IReadOnlyList<PgTableStatus> Tables,
    IReadOnlyList<PgMaintenanceStatus> Maintenance,
    IReadOnlyList<PgReplicationStatus> Replication)
{
    /// <summary>Gets whether every expected script is applied with its checksum and none is unknown.</summary>
    public bool UpToDate => SchemaExists && Scripts.All(s => s.State == PgSchemaScriptStateKind.Applied);
}

/// <summary>One table of the schema.</summary>
/// <param name="Module">The module whose scripts create the table, or <see langword="null"/> when none does.</param>
/// <param name="Name">The table.</param>
/// <param name="Rows">The rows: counted when <paramref name="RowsExact"/>, else the statistics' estimate.</param>
/// <param name="RowsExact">Whether <paramref name="Rows"/> was counted.</param>
/// <param name="DeadTuples">Dead tuples not yet vacuumed (statistics).</param>
/// <param name="TableBytes">The table with its TOAST data (<c>pg_table_size</c>).</param>
/// <param name="IndexBytes">Its indexes (<c>pg_indexes_size</c>).</param>
/// <param name="Unlogged">Whether the table is UNLOGGED.</param>
/// <param name="LastVacuumAt">The last (auto)vacuum, or <see langword="null"/> when never.</param>
public sealed record PgTableStatus(
    string? Module,
    string Name,
    long Rows,
    bool RowsExact,
    long DeadTuples,
    long TableBytes,
    long IndexBytes,
    bool Unlogged,
    DateTimeOffset? LastVacuumAt)
{
    /// <summary>Gets the table, TOAST and index bytes together.</summary>
    public long TotalBytes => TableBytes + IndexBytes;
}

/// <summary>The last run of one maintenance task (<c>{schema}.maintenance_state</c>).</summary>
/// <param name="Task">The task (the cleanup function).</param>
/// <param name="LastRunAt">When the elected instance last ran it.</param>
/// <param name="LastRows">The rows it removed then.</param>
public sealed record PgMaintenanceStatus(string Task, DateTimeOffset LastRunAt, long LastRows);

/// <summary>One standby streaming from the server.</summary>
/// <param name="ApplicationName">Its <c>application_name</c>, or <see langword="null"/> when not visible.</param>
/// <param name="ClientAddress">Its address, or <see langword="null"/> (local socket, or not visible).</param>
/// <param name="State">Its state (<c>streaming</c>, <c>catchup</c>…), or <see langword="null"/> when not visible.</param>
/// <param name="ReplayLag">Its replay lag, or <see langword="null"/> when idle or not visible.</param>
public sealed record PgReplicationStatus(string? ApplicationName, string? ClientAddress, string? State, TimeSpan? ReplayLag);

/// <summary>One table's cumulative statistics at one moment (<see cref="PgFirstInspector.GetTableActivityAsync"/>).</summary>
/// <param name="Name">The table.</param>
/// <param name="EstimatedRows">The estimated live rows.</param>
/// <param name="Inserted">Rows inserted since the statistics were reset.</param>
/// <param name="Updated">Rows updated since then.</param>
/// <param name="Deleted">Rows deleted since then.</param>
/// <param name="IndexScans">Index scans (for the cache: about one per get) since then.</param>
/// <param name="TotalBytes">The table with TOAST and indexes.</param>
/// <param name="ReadAt">The server's clock when read.</param>
public sealed record PgTableActivity(string Name, long EstimatedRows, long Inserted, long Updated, long Deleted, long IndexScans, long TotalBytes, DateTimeOffset ReadAt);
