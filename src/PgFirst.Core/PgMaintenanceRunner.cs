using System.Diagnostics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using PgFirst.Core.Internal;

namespace PgFirst.Core;

/// <summary>
/// The hosted service that calls each module's expiry-cleanup function on an interval, in bounded batches, on exactly
/// one app instance at a time.
/// </summary>
/// <remarks>
/// <para>
/// For each task the runner opens one short transaction and tries <c>pg_try_advisory_xact_lock</c> on a key derived
/// from the schema and the task. The instance that gets it is the leader for this run; the others skip. Because the
/// lock is transaction-scoped it is released by commit or rollback, never left behind by a dead connection, and it
/// works behind PgBouncer in transaction mode. The leader then records the run in <c>{schema}.maintenance_state</c>,
/// so instances share one schedule: a task already run within half an interval by any instance is not run again.
/// </para>
/// <para>
/// A run calls the function at most <see cref="PgMaintenanceOptions.MaxBatchesPerRun"/> times with
/// <see cref="PgMaintenanceOptions.BatchSize"/>, stopping early when a call removes less than a full batch. Errors are
/// logged and counted; the loop never dies of one and ends only when the host stops.
/// </para>
/// </remarks>
public sealed partial class PgMaintenanceRunner : BackgroundService
{
    internal const int LockClass = 0x5047464D; // "PGFM"

    private readonly NpgsqlDataSource _dataSource;
    private readonly PgFirstOptions _options;
    private readonly List<PgMaintenanceTask> _tasks;
    private readonly TimeProvider _timeProvider;
    private readonly PgFirstCoreMetrics _metrics;
    private readonly ILogger _logger;
    private readonly string _stateTable;

    /// <summary>
    /// Initializes a new instance of the <see cref="PgMaintenanceRunner"/> class.
    /// </summary>
    /// <param name="dataSource">The data source; not disposed by the runner.</param>
    /// <param name="options">The PgFirst options (schema and <see cref="PgFirstOptions.Maintenance"/>).</param>
    /// <param name="tasks">The cleanup tasks, usually one per module.</param>
    /// <param name="timeProvider">The clock passed to cleanup functions as <c>p_now</c>, and used for waits.</param>
    /// <param name="meterFactory">The meter factory, or <see langword="null"/> for an unshared meter.</param>
    /// <param name="logger">The logger, or <see langword="null"/> for none.</param>
    /// <exception cref="ArgumentException">The schema name is invalid, or two tasks share a name.</exception>
    public PgMaintenanceRunner(
        NpgsqlDataSource dataSource,
        PgFirstOptions options,
        IEnumerable<PgMaintenanceTask> tasks,
        TimeProvider timeProvider,
        System.Diagnostics.Metrics.IMeterFactory? meterFactory = null,
        ILogger<PgMaintenanceRunner>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(tasks);
        ArgumentNullException.ThrowIfNull(timeProvider);
        if (!PgIdentifier.IsValidSchemaName(options.SchemaName))
        {
            throw new ArgumentException($"'{options.SchemaName}' is not a valid schema name.", nameof(options));
        }

        var list = tasks.ToList();
        var duplicate = list.GroupBy(t => t.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new ArgumentException($"The maintenance task '{duplicate.Key}' is registered twice.", nameof(tasks));
        }

        _dataSource = dataSource;
        _options = options;
        _tasks = list;
        _timeProvider = timeProvider;
        _metrics = new PgFirstCoreMetrics(meterFactory);
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _stateTable = PgSqlIdentifier.Quote(options.SchemaName) + ".maintenance_state";
    }

    /// <summary>Gets the registered tasks.</summary>
    public IReadOnlyList<PgMaintenanceTask> Tasks => _tasks;

    /// <summary>
    /// Runs every task once, now, on this instance if it wins the leader lock for the task.
    /// </summary>
    /// <param name="cancellationToken">The token to cancel the run (the current task's transaction rolls back).</param>
    /// <returns>The outcome of each task.</returns>
    public async Task<PgMaintenanceRunResult> RunOnceAsync(CancellationToken cancellationToken = default)
    {
        var results = new List<PgMaintenanceTaskResult>(_tasks.Count);
        foreach (var task in _tasks)
        {
            results.Add(await RunTaskAsync(task, cancellationToken).ConfigureAwait(false));
        }

        return new PgMaintenanceRunResult(results);
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = _options.Maintenance;
        if (!settings.Enabled || _tasks.Count == 0)
        {
            LogDisabled(_logger, settings.Enabled ? "no module registered a cleanup task" : "PgFirst:Maintenance:Enabled is false");
            return;
        }

        // The first run comes after a random part of the jitter, so instances started together spread out.
        var delay = settings.Interval * (settings.Jitter * Random.Shared.NextDouble());
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await Task.Delay(delay, _timeProvider, stoppingToken).ConfigureAwait(false);
                try
                {
                    await RunOnceAsync(stoppingToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogLoopError(_logger, ex);
                }

                delay = settings.Interval * (1 + (settings.Jitter * Random.Shared.NextDouble()));
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Host shutdown.
        }
    }

    private async Task<PgMaintenanceTaskResult> RunTaskAsync(PgMaintenanceTask task, CancellationToken cancellationToken)
    {
        var settings = _options.Maintenance;
        var started = _timeProvider.GetTimestamp();
        var now = _timeProvider.GetUtcNow();
        try
        {
            var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using var connectionScope = connection.ConfigureAwait(false);
            var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using var transactionScope = transaction.ConfigureAwait(false);

            var election = new NpgsqlCommand("SELECT pg_try_advisory_xact_lock(@class, hashtext(@key))", connection, transaction);
            await using (election.ConfigureAwait(false))
            {
                election.Parameters.Add(new NpgsqlParameter<int>("class", LockClass));
                election.Parameters.Add(new NpgsqlParameter<string>("key", _options.SchemaName + "." + task.Name));
                if (!(bool)(await election.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!)
                {
                    return Skipped(task, PgMaintenanceOutcome.NotLeader);
                }
            }

            var claim = new NpgsqlCommand(
                $"""
                INSERT INTO {_stateTable} AS s (task, last_run_at)
                VALUES (@task, @now)
                ON CONFLICT (task) DO UPDATE
                SET last_run_at = EXCLUDED.last_run_at
                WHERE s.last_run_at <= @due_before
                RETURNING true
                """,
                connection,
                transaction);
            await using (claim.ConfigureAwait(false))
            {
                claim.Parameters.Add(new NpgsqlParameter<string>("task", task.Name));
                claim.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", now));
                claim.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("due_before", now - (settings.Interval / 2)));
                if (await claim.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is null)
                {
                    return Skipped(task, PgMaintenanceOutcome.NotDue);
                }
            }

            long removed = 0;
            var batches = 0;
            var cleanup = new NpgsqlCommand(
                $"SELECT {PgSqlIdentifier.Quote(_options.SchemaName)}.{PgSqlIdentifier.Quote(task.FunctionName)}(@batch_size, @now)",
                connection,
                transaction);
            await using (cleanup.ConfigureAwait(false))
            {
                cleanup.Parameters.Add(new NpgsqlParameter<int>("batch_size", settings.BatchSize));
                cleanup.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", now));
                while (batches < settings.MaxBatchesPerRun)
                {
                    var result = await cleanup.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
                    var count = result is null or DBNull ? 0 : Convert.ToInt64(result, System.Globalization.CultureInfo.InvariantCulture);
                    batches++;
                    removed += count;
                    if (count < settings.BatchSize)
                    {
                        break;
                    }
                }
            }

            var record = new NpgsqlCommand($"UPDATE {_stateTable} SET last_rows = @rows WHERE task = @task", connection, transaction);
            await using (record.ConfigureAwait(false))
            {
                record.Parameters.Add(new NpgsqlParameter<long>("rows", removed));
                record.Parameters.Add(new NpgsqlParameter<string>("task", task.Name));
                await record.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);

            var elapsed = _timeProvider.GetElapsedTime(started);
            _metrics.RecordRun(task, PgMaintenanceOutcome.Ran, removed, elapsed);
            LogTaskRan(_logger, task.Name, removed, batches, elapsed.TotalMilliseconds);
            return new PgMaintenanceTaskResult(task.Name, PgMaintenanceOutcome.Ran, removed, batches, null);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException && !cancellationToken.IsCancellationRequested)
        {
            var error = ex is PostgresException pg
                ? PgSchemaErrors.TryTranslate(pg, task.Module, _options.SchemaName) ?? ex
                : ex;
            _metrics.RecordRun(task, PgMaintenanceOutcome.Failed, 0, _timeProvider.GetElapsedTime(started));
            LogTaskFailed(_logger, error, task.Name, error.Message);
            return new PgMaintenanceTaskResult(task.Name, PgMaintenanceOutcome.Failed, 0, 0, error);
        }
    }

    private PgMaintenanceTaskResult Skipped(PgMaintenanceTask task, PgMaintenanceOutcome outcome)
    {
        _metrics.RecordRun(task, outcome, 0, null);
        LogTaskSkipped(_logger, task.Name, outcome);
        return new PgMaintenanceTaskResult(task.Name, outcome, 0, 0, null);
    }

    /// <inheritdoc />
    public override void Dispose()
    {
        _metrics.Dispose();
        base.Dispose();
    }
}
