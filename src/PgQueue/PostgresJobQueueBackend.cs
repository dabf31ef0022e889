using Npgsql;
using NpgsqlTypes;
using PgFirst.Core;
using PgQueue.Internal;

namespace PgQueue;

/// <summary>
/// The PostgreSQL job store: the tables of <c>sql/pgqueue</c>, claimed with <c>FOR UPDATE SKIP LOCKED</c> in batches,
/// finished in batches, and woken with LISTEN/NOTIFY on the channel named after the schema.
/// </summary>
public sealed class PostgresJobQueueBackend : IJobQueueBackend
{
    private const int EnqueueChunk = 5000;
    private const int ClaimColumns = 10;
    private readonly NpgsqlDataSource _dataSource;
    private readonly string _schemaName;
    private readonly PgQueueSql _sql;
    private readonly PgPoolerMode _pooler;
    private readonly bool _prepare;
    private readonly string? _listenConnectionString;
    private readonly PgReplicaReads? _replicas;

    /// <summary>
    /// Initializes a new instance of the <see cref="PostgresJobQueueBackend"/> class for a direct connection
    /// (<see cref="PgPoolerMode.None"/>), listening on <paramref name="dataSource"/>. Does no I/O.
    /// </summary>
    /// <param name="dataSource">The data source; not disposed by the backend.</param>
    /// <param name="schemaName">The PgFirst schema.</param>
    public PostgresJobQueueBackend(NpgsqlDataSource dataSource, string schemaName)
        : this(dataSource, new PgFirstOptions { SchemaName = schemaName })
    {
    }

    /// <summary>
    /// Initializes a new instance of the <see cref="PostgresJobQueueBackend"/> class with the schema, pooler mode and
    /// listen connection of <paramref name="options"/>. Does no I/O.
    /// </summary>
    /// <param name="dataSource">The data source; not disposed by the backend.</param>
    /// <param name="options">
    /// The shared options: <see cref="PgFirstOptions.SchemaName"/>, <see cref="PgFirstOptions.Pooler"/> and
    /// <see cref="PgFirstOptions.ListenConnectionString"/> (where LISTEN connects when given; behind a transaction pooler
    /// without it, <see cref="CanListen"/> is <see langword="false"/> and workers poll).
    /// </param>
    /// <param name="replicas">
    /// The read replicas the statistics and lists of finished jobs may use (<see cref="PgQueueOptions.StatsReadConsistency"/>),
    /// or <see langword="null"/> for the primary only.
    /// </param>
    /// <exception cref="PgFirstPoolerException">The data source auto-prepares statements behind a transaction pooler.</exception>
    public PostgresJobQueueBackend(NpgsqlDataSource dataSource, PgFirstOptions options, PgReplicaReads? replicas = null)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(options);
        var schemaName = options.SchemaName;
        ArgumentException.ThrowIfNullOrEmpty(schemaName);
        PgPooler.EnsureCompatible(dataSource, options.Pooler);
        _dataSource = dataSource;
        _schemaName = schemaName;
        _sql = new PgQueueSql(schemaName);
        _pooler = options.Pooler;
        _prepare = PgPooler.PreparesStatements(options.Pooler);
        _listenConnectionString = string.IsNullOrWhiteSpace(options.ListenConnectionString) ? null : options.ListenConnectionString;
        _replicas = replicas;
    }

    /// <summary>Gets the schema module (<c>sql/pgqueue</c>).</summary>
    public static PgSchemaModule SchemaModule { get; } = PgSchemaModule.FromAssembly("pgqueue", typeof(PostgresJobQueueBackend).Assembly);

    /// <summary>Gets the maintenance task that deletes finished jobs past their retention.</summary>
    public static PgMaintenanceTask CleanupTask { get; } = new(SchemaModule, "queue_delete_finished");

    /// <inheritdoc />
    public string Name => "postgresql";

    /// <inheritdoc />
    /// <remarks>
    /// <see langword="false"/> behind a transaction pooler without <see cref="PgFirstOptions.ListenConnectionString"/>:
    /// a LISTEN there would hold no server connection of its own and hear nothing.
    /// </remarks>
    public bool CanListen => _listenConnectionString is not null || _pooler != PgPoolerMode.Transaction;

    /// <summary>Gets the notification channel (the schema's name).</summary>
    public string Channel => _sql.Channel;

    /// <inheritdoc />
    public async ValueTask<JobEnqueueResult> EnqueueAsync(JobEnqueueRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        return await WithConnectionAsync((c, ct) => EnqueueAsync(c, null, request, ct), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Enqueues one job on the caller's connection, inside <paramref name="transaction"/> when given: the job exists
    /// only if that transaction commits, and its notification is delivered at the commit.
    /// </summary>
    /// <param name="connection">An open connection to the job store's database.</param>
    /// <param name="transaction">The caller's transaction, or <see langword="null"/>.</param>
    /// <param name="request">The job.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The result.</returns>
    public async ValueTask<JobEnqueueResult> EnqueueAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, JobEnqueueRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(request);
        try
        {
            var batch = new NpgsqlBatch(connection, transaction);
            await using var batchScope = batch.ConfigureAwait(false);
            var insert = new NpgsqlBatchCommand(_sql.Enqueue);
            insert.Parameters.Add(Text(request.Queue));
            insert.Parameters.Add(new NpgsqlParameter<short> { TypedValue = request.Priority, NpgsqlDbType = NpgsqlDbType.Smallint });
            insert.Parameters.Add(new NpgsqlParameter<short> { TypedValue = (short)(request.Delayed ? JobState.Scheduled : JobState.Available), NpgsqlDbType = NpgsqlDbType.Smallint });
            insert.Parameters.Add(Time(request.RunAt));
            insert.Parameters.Add(Int(request.MaxAttempts));
            insert.Parameters.Add(Text(request.Kind));
            insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = request.Payload, NpgsqlDbType = NpgsqlDbType.Jsonb });
            insert.Parameters.Add(Text(request.UniqueKey));
            insert.Parameters.Add(Time(request.EnqueuedAt));
            insert.Parameters.Add(Text(request.TraceParent));
            batch.BatchCommands.Add(insert);
            if (request.Notify && !request.Delayed)
            {
                batch.BatchCommands.Add(NotifyCommand([request.Queue]));
            }

            if (_prepare)
            {
                await batch.PrepareAsync(cancellationToken).ConfigureAwait(false);
            }

            long? id = null;
            var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    id = reader.GetInt64(0);
                }
            }

            if (id is { } newId)
            {
                return JobEnqueueResult.Enqueued(newId);
            }

            // A duplicate: name the holder when it is still there (it may have finished in between).
            var find = new NpgsqlCommand(_sql.FindUnique, connection, transaction);
            await using var findScope = find.ConfigureAwait(false);
            find.Parameters.Add(Text(request.UniqueKey));
            var holder = await find.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
            return new JobEnqueueResult(holder as long?, true);
        }
        catch (PostgresException ex) when (Translate(ex) is { } schemaError)
        {
            throw schemaError;
        }
    }

    /// <inheritdoc />
    public async ValueTask<JobBatchEnqueueResult> EnqueueManyAsync(IReadOnlyList<JobEnqueueRequest> requests, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(requests);
        if (requests.Count == 0)
        {
            return default;
        }

        return await WithConnectionAsync(
            async (connection, ct) =>
            {
                // One transaction for all chunks: a bulk enqueue is all or nothing.
                var transaction = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
                await using var transactionScope = transaction.ConfigureAwait(false);
                var result = await EnqueueManyAsync(connection, transaction, requests, ct).ConfigureAwait(false);
                await transaction.CommitAsync(ct).ConfigureAwait(false);
                return result;
            },
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Enqueues many jobs on the caller's connection, inside <paramref name="transaction"/> when given, as array
    /// parameters in chunks of 5,000 rows.
    /// </summary>
    /// <param name="connection">An open connection to the job store's database.</param>
    /// <param name="transaction">The caller's transaction, or <see langword="null"/>.</param>
    /// <param name="requests">The jobs.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>How many were enqueued and how many were duplicates.</returns>
    public async ValueTask<JobBatchEnqueueResult> EnqueueManyAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, IReadOnlyList<JobEnqueueRequest> requests, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(requests);
        var enqueued = 0;
        var notify = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            for (var start = 0; start < requests.Count; start += EnqueueChunk)
            {
                var count = Math.Min(EnqueueChunk, requests.Count - start);
                var queues = new string[count];
                var priorities = new short[count];
                var states = new short[count];
                var runAts = new DateTimeOffset[count];
                var maxAttempts = new int[count];
                var kinds = new string[count];
                var payloads = new string[count];
                var uniqueKeys = new string?[count];
                var enqueuedAts = new DateTimeOffset[count];
                var traceParents = new string?[count];
                for (var i = 0; i < count; i++)
                {
                    var r = requests[start + i];
                    queues[i] = r.Queue;
                    priorities[i] = r.Priority;
                    states[i] = (short)(r.Delayed ? JobState.Scheduled : JobState.Available);
                    runAts[i] = r.RunAt;
                    maxAttempts[i] = r.MaxAttempts;
                    kinds[i] = r.Kind;
                    payloads[i] = r.Payload;
                    uniqueKeys[i] = r.UniqueKey;
                    enqueuedAts[i] = r.EnqueuedAt;
                    traceParents[i] = r.TraceParent;
                    if (r.Notify && !r.Delayed)
                    {
                        notify.Add(r.Queue);
                    }
                }

                var command = new NpgsqlCommand(_sql.EnqueueMany, connection, transaction);
                await using var commandScope = command.ConfigureAwait(false);
                command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = queues, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
                command.Parameters.Add(new NpgsqlParameter<short[]> { TypedValue = priorities, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Smallint });
                command.Parameters.Add(new NpgsqlParameter<short[]> { TypedValue = states, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Smallint });
                command.Parameters.Add(new NpgsqlParameter<DateTimeOffset[]> { TypedValue = runAts, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.TimestampTz });
                command.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = maxAttempts, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Integer });
                command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = kinds, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
                command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = payloads, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Jsonb });
                command.Parameters.Add(new NpgsqlParameter<string?[]> { TypedValue = uniqueKeys, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
                command.Parameters.Add(new NpgsqlParameter<DateTimeOffset[]> { TypedValue = enqueuedAts, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.TimestampTz });
                command.Parameters.Add(new NpgsqlParameter<string?[]> { TypedValue = traceParents, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
                enqueued += await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            if (notify.Count > 0)
            {
                var command = new NpgsqlCommand(PgQueueSql.Notify, connection, transaction);
                await using var commandScope = command.ConfigureAwait(false);
                AddNotifyParameters(command.Parameters, [.. notify]);
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        catch (PostgresException ex) when (Translate(ex) is { } schemaError)
        {
            throw schemaError;
        }

        return new JobBatchEnqueueResult(enqueued, requests.Count - enqueued);
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<ClaimedJob>> ClaimAsync(JobClaimRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        return await WithConnectionAsync(
            async (connection, ct) =>
            {
                var batch = new NpgsqlBatch(connection);
                await using var batchScope = batch.ConfigureAwait(false);
                if (request.AsynchronousCommit && (request.Succeeded.Count > 0 || request.Count > 0))
                {
                    // For this implicit transaction only (is_local): the batch's statements commit together.
                    batch.BatchCommands.Add(new NpgsqlBatchCommand(PgQueueSql.AsynchronousCommit));
                }

                if (request.Succeeded.Count > 0)
                {
                    batch.BatchCommands.Add(CompleteCommand(request.Succeeded, request.Now, request.SucceededDeleteAfter));
                }

                if (request.Count > 0)
                {
                    var claim = new NpgsqlBatchCommand(_sql.Claim);
                    claim.Parameters.Add(Text(request.Queue));
                    claim.Parameters.Add(Int(request.Count));
                    claim.Parameters.Add(Time(request.Now));
                    claim.Parameters.Add(Time(request.LeaseExpiresAt));
                    claim.Parameters.Add(Text(request.Worker));
                    batch.BatchCommands.Add(claim);
                }

                if (batch.BatchCommands.Count == 0)
                {
                    return [];
                }

                if (_prepare)
                {
                    await batch.PrepareAsync(ct).ConfigureAwait(false);
                }

                var jobs = new List<ClaimedJob>(request.Count);
                var reader = await batch.ExecuteReaderAsync(ct).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    // Npgsql skips the results of statements that return no rows (the acknowledgement) but not set_config's,
                    // so read the result set shaped like a claim rather than counting on positions.
                    do
                    {
                        while (reader.FieldCount == ClaimColumns && await reader.ReadAsync(ct).ConfigureAwait(false))
                        {
                            jobs.Add(ReadClaimed(reader, request.Queue));
                        }
                    }
                    while (await reader.NextResultAsync(ct).ConfigureAwait(false));
                }

                return (IReadOnlyList<ClaimedJob>)jobs;
            },
            cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<int> CompleteAsync(IReadOnlyList<JobToken> jobs, DateTimeOffset now, DateTimeOffset deleteAfter, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(jobs);
        if (jobs.Count == 0)
        {
            return 0;
        }

        return await WithConnectionAsync(
            async (connection, ct) =>
            {
                var batch = new NpgsqlBatch(connection);
                await using var batchScope = batch.ConfigureAwait(false);
                batch.BatchCommands.Add(CompleteCommand(jobs, now, deleteAfter));
                if (_prepare)
                {
                    await batch.PrepareAsync(ct).ConfigureAwait(false);
                }

                return await batch.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            },
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Finishes a claimed job as succeeded inside the caller's transaction (exactly-once completion).
    /// </summary>
    /// <param name="transaction">The caller's open transaction on the job store's database.</param>
    /// <param name="job">The job and its lease token.</param>
    /// <param name="now">The finish time.</param>
    /// <param name="deleteAfter">
    /// When the finished row may be deleted; not later than <paramref name="now"/> (SucceededRetention 0) deletes the
    /// job without a history row, as the batched completion does.
    /// </param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes when the completion is part of the transaction.</returns>
    /// <exception cref="JobLeaseLostException">The token is stale.</exception>
    public async ValueTask CompleteAsync(NpgsqlTransaction transaction, JobToken job, DateTimeOffset now, DateTimeOffset deleteAfter, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        var connection = transaction.Connection ?? throw new ArgumentException("The transaction is already finished.", nameof(transaction));
        // As the batched path: kept in job_finished only with a retention (deleteAfter later than now), else deleted.
        var keep = deleteAfter > now;
        var command = new NpgsqlCommand(keep ? _sql.CompleteOne : _sql.CompleteOneDelete, connection, transaction);
        await using var commandScope = command.ConfigureAwait(false);
        command.Parameters.Add(Long(job.Id));
        command.Parameters.Add(Long(job.Lease));
        if (keep)
        {
            command.Parameters.Add(Time(now));
            command.Parameters.Add(Time(deleteAfter));
        }
        int rows;
        try
        {
            rows = await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException ex) when (Translate(ex) is { } schemaError)
        {
            throw schemaError;
        }

        if (rows != 1)
        {
            throw new JobLeaseLostException($"Job {job.Id} is no longer held by this attempt (lease {job.Lease}): it was rescued and claimed again, or cancelled. Roll the transaction back.");
        }
    }

    /// <inheritdoc />
    public async ValueTask<bool> RetryAsync(JobToken job, DateTimeOffset runAt, JobError? jobError, bool refundAttempt, CancellationToken cancellationToken) =>
        await ExecuteAsync(
            _sql.Retry,
            p =>
            {
                p.Add(Long(job.Id));
                p.Add(Long(job.Lease));
                p.Add(Time(runAt));
                p.Add(Json(jobError is null ? null : JobErrors.ToJsonArray(jobError)));
                p.Add(Int(refundAttempt ? 1 : 0));
                // A snooze (no error) always waits for promotion; a retry due already goes straight back to available.
                p.Add(Time(jobError?.At ?? DateTimeOffset.MinValue));
            },
            cancellationToken).ConfigureAwait(false) == 1;

    /// <inheritdoc />
    public async ValueTask<bool> FinishAsync(JobToken job, JobState state, JobError jobError, DateTimeOffset now, DateTimeOffset deleteAfter, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(jobError);
        if (state is not (JobState.Cancelled or JobState.Dead))
        {
            throw new ArgumentOutOfRangeException(nameof(state), state, "Only Cancelled or Dead.");
        }

        return await ExecuteAsync(
            _sql.Finish,
            p =>
            {
                p.Add(Long(job.Id));
                p.Add(Long(job.Lease));
                p.Add(new NpgsqlParameter<short> { TypedValue = (short)state, NpgsqlDbType = NpgsqlDbType.Smallint });
                p.Add(Time(now));
                p.Add(Time(deleteAfter));
                p.Add(Json(JobErrors.ToJsonArray(jobError)));
            },
            cancellationToken).ConfigureAwait(false) == 1;
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<JobToken>> ExtendLeasesAsync(IReadOnlyList<JobToken> jobs, DateTimeOffset leaseExpiresAt, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(jobs);
        if (jobs.Count == 0)
        {
            return [];
        }

        var kept = await WithConnectionAsync(
            async (connection, ct) =>
            {
                var command = new NpgsqlCommand(_sql.ExtendLeases, connection);
                await using var commandScope = command.ConfigureAwait(false);
                AddTokens(command.Parameters, jobs);
                command.Parameters.Add(Time(leaseExpiresAt));
                var ids = new HashSet<long>();
                var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    while (await reader.ReadAsync(ct).ConfigureAwait(false))
                    {
                        ids.Add(reader.GetInt64(0));
                    }
                }

                return ids;
            },
            cancellationToken).ConfigureAwait(false);
        return [.. jobs.Where(j => !kept.Contains(j.Id))];
    }

    /// <inheritdoc />
    public async ValueTask<int> ReleaseAsync(IReadOnlyList<JobToken> jobs, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(jobs);
        if (jobs.Count == 0)
        {
            return 0;
        }

        return await ExecuteAsync(
            _sql.Release,
            p =>
            {
                AddTokens(p, jobs);
                p.Add(Time(now));
            },
            cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<KeyValuePair<string, int>>> PromoteAsync(DateTimeOffset now, CancellationToken cancellationToken) =>
        await WithConnectionAsync(
            async (connection, ct) =>
            {
                var command = new NpgsqlCommand(_sql.Promote, connection);
                await using var commandScope = command.ConfigureAwait(false);
                command.Parameters.Add(Time(now));
                if (_prepare)
                {
                    await command.PrepareAsync(ct).ConfigureAwait(false);
                }

                var queues = new List<KeyValuePair<string, int>>();
                var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    while (await reader.ReadAsync(ct).ConfigureAwait(false))
                    {
                        queues.Add(new(reader.GetString(0), reader.GetInt32(1)));
                    }
                }

                return (IReadOnlyList<KeyValuePair<string, int>>)queues;
            },
            cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    public async ValueTask NotifyAsync(IReadOnlyCollection<string> queues, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(queues);
        if (queues.Count == 0)
        {
            return;
        }

        await WithConnectionAsync(
            async (connection, ct) =>
            {
                var batch = new NpgsqlBatch(connection);
                await using var batchScope = batch.ConfigureAwait(false);
                batch.BatchCommands.Add(NotifyCommand([.. queues]));
                return await batch.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            },
            cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task ListenAsync(Action<string> onWake, Action onConnected, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(onWake);
        ArgumentNullException.ThrowIfNull(onConnected);
        if (!CanListen)
        {
            throw new InvalidOperationException(
                $"{PgPooler.SettingName} is Transaction and PgFirst:ListenConnectionString is not set: a LISTEN behind a " +
                "transaction pooler hears nothing. Set a direct connection string, or let workers poll.");
        }

        // Behind a pooler the listen connection goes past it; it is one long-lived connection, not worth a pool.
        var connection = _listenConnectionString is { } direct
            ? new NpgsqlConnection(new NpgsqlConnectionStringBuilder(direct) { Pooling = false }.ConnectionString)
            : _dataSource.CreateConnection();
        await using var connectionScope = connection.ConfigureAwait(false);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        NotificationEventHandler handler = (_, e) => onWake(e.Payload);
        connection.Notification += handler;
        try
        {
            var listen = new NpgsqlCommand(_sql.Listen, connection);
            await using (listen.ConfigureAwait(false))
            {
                await listen.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            onConnected();
            while (!cancellationToken.IsCancellationRequested)
            {
                // A quiet connection is probed now and then, so a dead one is noticed and replaced.
                if (!await connection.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false))
                {
                    var probe = new NpgsqlCommand("SELECT 1", connection);
                    await using (probe.ConfigureAwait(false))
                    {
                        await probe.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            connection.Notification -= handler;
            if (connection.State == System.Data.ConnectionState.Open)
            {
                try
                {
                    // The connection goes back to the pool, which may not reset it (No Reset On Close).
                    var unlisten = new NpgsqlCommand("UNLISTEN *", connection);
                    await using (unlisten.ConfigureAwait(false))
                    {
                        await unlisten.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
                    }
                }
                catch (NpgsqlException)
                {
                }
            }
        }
    }

    /// <inheritdoc />
    public async ValueTask<JobInfo?> GetJobAsync(long id, CancellationToken cancellationToken)
    {
        var jobs = await QueryJobsAsync(_sql.GetJob, p => p.Add(Long(id)), cancellationToken).ConfigureAwait(false);
        return jobs.Count == 0 ? null : jobs[0];
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<JobInfo>> ListFinishedAsync(string? queue, JobState state, int limit, CancellationToken cancellationToken) =>
        QueryJobsAsync(
            _sql.ListFinished,
            p =>
            {
                p.Add(new NpgsqlParameter<short> { TypedValue = (short)state, NpgsqlDbType = NpgsqlDbType.Smallint });
                p.Add(Text(queue));
                p.Add(Int(limit));
            },
            cancellationToken,
            replica: true);

    /// <inheritdoc />
    public async ValueTask<bool> RequeueAsync(long id, DateTimeOffset now, CancellationToken cancellationToken)
    {
        try
        {
            return await ExecuteAsync(
                _sql.Requeue,
                p =>
                {
                    p.Add(Long(id));
                    p.Add(Time(now));
                },
                cancellationToken).ConfigureAwait(false) == 1;
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            return false;
        }
    }

    /// <inheritdoc />
    public async ValueTask<bool> CancelAsync(long id, DateTimeOffset now, DateTimeOffset deleteAfter, CancellationToken cancellationToken) =>
        await ExecuteAsync(
            _sql.Cancel,
            p =>
            {
                p.Add(Long(id));
                p.Add(Time(now));
                p.Add(Time(deleteAfter));
                p.Add(Json(JobErrors.ToJsonArray(new JobError(0, now, "Cancelled", "Cancelled through the API."))));
            },
            cancellationToken).ConfigureAwait(false) == 1;

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<QueueStats>> GetStatsAsync(IReadOnlyList<string> queues, int cap, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(queues);
        return await WithReadConnectionAsync(
            async (connection, ct) =>
            {
                var command = new NpgsqlCommand(_sql.Stats, connection);
                await using var commandScope = command.ConfigureAwait(false);
                command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. queues], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
                command.Parameters.Add(Int(cap));
                var stats = new List<QueueStats>(queues.Count);
                var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    while (await reader.ReadAsync(ct).ConfigureAwait(false))
                    {
                        stats.Add(new QueueStats(reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4), cap));
                    }
                }

                return (IReadOnlyList<QueueStats>)stats;
            },
            cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask UpsertRecurringAsync(RecurringJobDefinition definition, DateTimeOffset nextRunAt, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(definition);
        await ExecuteAsync(
            _sql.UpsertRecurring,
            p =>
            {
                p.Add(Text(definition.Name));
                p.Add(Text(definition.Cron));
                p.Add(Text(definition.TimeZone));
                p.Add(Text(definition.Queue));
                p.Add(Text(definition.Kind));
                p.Add(Json(definition.Payload));
                p.Add(new NpgsqlParameter<short> { TypedValue = definition.Priority, NpgsqlDbType = NpgsqlDbType.Smallint });
                p.Add(Int(definition.MaxAttempts));
                p.Add(Time(nextRunAt));
            },
            cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<string>> RunDueRecurringAsync(DateTimeOffset now, Func<RecurringJobDefinition, DateTimeOffset, DateTimeOffset> nextOccurrence, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(nextOccurrence);
        return await WithConnectionAsync(
            async (connection, ct) =>
            {
                var transaction = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
                await using var transactionScope = transaction.ConfigureAwait(false);
                var due = new List<RecurringJobDefinition>();
                var select = new NpgsqlCommand(_sql.DueRecurring, connection, transaction);
                await using (select.ConfigureAwait(false))
                {
                    select.Parameters.Add(Time(now));
                    var reader = await select.ExecuteReaderAsync(ct).ConfigureAwait(false);
                    await using (reader.ConfigureAwait(false))
                    {
                        while (await reader.ReadAsync(ct).ConfigureAwait(false))
                        {
                            due.Add(new RecurringJobDefinition
                            {
                                Name = reader.GetString(0),
                                Cron = reader.GetString(1),
                                TimeZone = reader.GetString(2),
                                Queue = reader.GetString(3),
                                Kind = reader.GetString(4),
                                Payload = reader.GetString(5),
                                Priority = reader.GetInt16(6),
                                MaxAttempts = reader.GetInt32(7),
                            });
                        }
                    }
                }

                if (due.Count == 0)
                {
                    return (IReadOnlyList<string>)[];
                }

                var queues = new HashSet<string>(StringComparer.Ordinal);
                foreach (var definition in due)
                {
                    var fire = new NpgsqlCommand(_sql.FireRecurring, connection, transaction);
                    await using (fire.ConfigureAwait(false))
                    {
                        fire.Parameters.Add(Text(definition.Name));
                        fire.Parameters.Add(Time(now));
                        fire.Parameters.Add(Time(nextOccurrence(definition, now)));
                        await fire.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
                    }

                    queues.Add(definition.Queue);
                }

                var notify = new NpgsqlCommand(PgQueueSql.Notify, connection, transaction);
                await using (notify.ConfigureAwait(false))
                {
                    AddNotifyParameters(notify.Parameters, [.. queues]);
                    await notify.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
                }

                await transaction.CommitAsync(ct).ConfigureAwait(false);
                return (IReadOnlyList<string>)[.. due.Select(d => d.Name)];
            },
            cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<int> DeleteFinishedAsync(int batchSize, DateTimeOffset now, CancellationToken cancellationToken) =>
        await WithConnectionAsync(
            async (connection, ct) =>
            {
                var command = new NpgsqlCommand(_sql.DeleteFinished, connection);
                await using var commandScope = command.ConfigureAwait(false);
                command.Parameters.Add(Int(batchSize));
                command.Parameters.Add(Time(now));
                return await command.ExecuteScalarAsync(ct).ConfigureAwait(false) is int n ? n : 0;
            },
            cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<string>> ListQueuesAsync(CancellationToken cancellationToken) =>
        await WithReadConnectionAsync(
            async (connection, ct) =>
            {
                var command = new NpgsqlCommand(_sql.ListQueues, connection);
                await using var commandScope = command.ConfigureAwait(false);
                var queues = new List<string>();
                var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    while (await reader.ReadAsync(ct).ConfigureAwait(false))
                    {
                        queues.Add(reader.GetString(0));
                    }
                }

                return (IReadOnlyList<string>)queues;
            },
            cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<QueueActivity>> GetActivityAsync(IReadOnlyList<string> queues, DateTimeOffset now, DateTimeOffset? since, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(queues);
        return await WithReadConnectionAsync(
            async (connection, ct) =>
            {
                var oldest = new List<DateTimeOffset?>(queues.Count);
                var command = new NpgsqlCommand(_sql.OldestDue, connection);
                await using (command.ConfigureAwait(false))
                {
                    command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. queues], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
                    command.Parameters.Add(Time(now));
                    var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
                    await using (reader.ConfigureAwait(false))
                    {
                        while (await reader.ReadAsync(ct).ConfigureAwait(false))
                        {
                            oldest.Add(await reader.IsDBNullAsync(1, ct).ConfigureAwait(false) ? null : await reader.GetFieldValueAsync<DateTimeOffset>(1, ct).ConfigureAwait(false));
                        }
                    }
                }

                var finished = new List<(long, long, long)?>(queues.Count);
                if (since is { } from)
                {
                    var counts = new NpgsqlCommand(_sql.FinishedSince, connection);
                    await using (counts.ConfigureAwait(false))
                    {
                        counts.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. queues], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
                        counts.Parameters.Add(Time(from));
                        var reader = await counts.ExecuteReaderAsync(ct).ConfigureAwait(false);
                        await using (reader.ConfigureAwait(false))
                        {
                            while (await reader.ReadAsync(ct).ConfigureAwait(false))
                            {
                                finished.Add((reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3)));
                            }
                        }
                    }
                }

                var activity = new List<QueueActivity>(queues.Count);
                for (var i = 0; i < queues.Count; i++)
                {
                    var counted = since is null ? null : finished[i];
                    activity.Add(new QueueActivity(queues[i], oldest[i], counted?.Item1, counted?.Item2, counted?.Item3));
                }

                return (IReadOnlyList<QueueActivity>)activity;
            },
            cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<(long Id, DateTimeOffset DiedAt)>> ListDeadPageAsync(string queue, DateTimeOffset diedAtOrBefore, (DateTimeOffset DiedAt, long Id)? after, int limit, CancellationToken cancellationToken) =>
        await WithConnectionAsync(
            async (connection, ct) =>
            {
                var command = new NpgsqlCommand(_sql.DeadPage, connection);
                await using var commandScope = command.ConfigureAwait(false);
                command.Parameters.Add(Text(queue));
                command.Parameters.Add(Time(diedAtOrBefore));
                command.Parameters.Add(new NpgsqlParameter { Value = after is { } a ? a.DiedAt : DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
                command.Parameters.Add(Long(after?.Id ?? 0));
                command.Parameters.Add(Int(limit));
                var page = new List<(long, DateTimeOffset)>();
                var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    while (await reader.ReadAsync(ct).ConfigureAwait(false))
                    {
                        page.Add((reader.GetInt64(0), await reader.GetFieldValueAsync<DateTimeOffset>(1, ct).ConfigureAwait(false)));
                    }
                }

                return (IReadOnlyList<(long Id, DateTimeOffset DiedAt)>)page;
            },
            cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    public async ValueTask<long> CountFinishedBeforeAsync(DateTimeOffset finishedBefore, string? queue, CancellationToken cancellationToken) =>
        await WithConnectionAsync(
            async (connection, ct) =>
            {
                var command = new NpgsqlCommand(_sql.CountFinishedBefore, connection);
                await using var commandScope = command.ConfigureAwait(false);
                command.Parameters.Add(Time(finishedBefore));
                command.Parameters.Add(Text(queue));
                return (long)(await command.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
            },
            cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    public async ValueTask<long> PurgeFinishedRangeAsync(DateTimeOffset finishedBefore, string? queue, long fromId, long toId, CancellationToken cancellationToken) =>
        await WithConnectionAsync(
            async (connection, ct) =>
            {
                var command = new NpgsqlCommand(_sql.PurgeFinishedRange, connection);
                await using var commandScope = command.ConfigureAwait(false);
                command.Parameters.Add(Time(finishedBefore));
                command.Parameters.Add(Text(queue));
                command.Parameters.Add(Long(fromId));
                command.Parameters.Add(Long(toId));
                return (long)(await command.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
            },
            cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    public async ValueTask<(long First, long Last)?> GetFinishedIdRangeAsync(long fromId, CancellationToken cancellationToken) =>
        await WithConnectionAsync(
            async (connection, ct) =>
            {
                var command = new NpgsqlCommand(_sql.FinishedIdRange, connection);
                await using var commandScope = command.ConfigureAwait(false);
                command.Parameters.Add(Long(fromId));
                var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
                await using var readerScope = reader.ConfigureAwait(false);
                await reader.ReadAsync(ct).ConfigureAwait(false);
                return await reader.IsDBNullAsync(0, ct).ConfigureAwait(false) ? ((long, long)?)null : (reader.GetInt64(0), reader.GetInt64(1));
            },
            cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    public async ValueTask PingAsync(CancellationToken cancellationToken) =>
        await WithConnectionAsync(
            async (connection, ct) =>
            {
                var command = new NpgsqlCommand(_sql.Ping, connection);
                await using var commandScope = command.ConfigureAwait(false);
                return await command.ExecuteScalarAsync(ct).ConfigureAwait(false);
            },
            cancellationToken).ConfigureAwait(false);

    private NpgsqlBatchCommand CompleteCommand(IReadOnlyList<JobToken> jobs, DateTimeOffset now, DateTimeOffset deleteAfter)
    {
        var keep = deleteAfter > now;
        var command = new NpgsqlBatchCommand(keep ? _sql.CompleteKeep : _sql.CompleteDelete);
        AddTokens(command.Parameters, jobs);
        if (keep)
        {
            command.Parameters.Add(Time(now));
            command.Parameters.Add(Time(deleteAfter));
        }

        return command;
    }

    private NpgsqlBatchCommand NotifyCommand(string[] queues)
    {
        var command = new NpgsqlBatchCommand(PgQueueSql.Notify);
        AddNotifyParameters(command.Parameters, queues);
        return command;
    }

    private void AddNotifyParameters(NpgsqlParameterCollection parameters, string[] queues)
    {
        parameters.Add(Text(_sql.Channel));
        parameters.Add(new NpgsqlParameter<string[]> { TypedValue = queues, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
    }

    private async ValueTask<IReadOnlyList<JobInfo>> QueryJobsAsync(string sql, Action<NpgsqlParameterCollection> bind, CancellationToken cancellationToken, bool replica = false)
    {
        Func<NpgsqlConnection, CancellationToken, ValueTask<IReadOnlyList<JobInfo>>> query =
            async (connection, ct) =>
            {
                var command = new NpgsqlCommand(sql, connection);
                await using var commandScope = command.ConfigureAwait(false);
                bind(command.Parameters);
                var jobs = new List<JobInfo>();
                var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    while (await reader.ReadAsync(ct).ConfigureAwait(false))
                    {
                        jobs.Add(ReadJob(reader));
                    }
                }

                return (IReadOnlyList<JobInfo>)jobs;
            };
        return replica
            ? await WithReadConnectionAsync(query, cancellationToken).ConfigureAwait(false)
            : await WithConnectionAsync(query, cancellationToken).ConfigureAwait(false);
    }

    // A read that may go to a replica (the statistics, lists of finished jobs): one that fails there is run on the primary.
    private async ValueTask<T> WithReadConnectionAsync<T>(Func<NpgsqlConnection, CancellationToken, ValueTask<T>> run, CancellationToken cancellationToken)
    {
        if (_replicas?.Choose(null) is { } replica)
        {
            try
            {
                var connection = await replica.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
                await using var connectionScope = connection.ConfigureAwait(false);
                var result = await run(connection, cancellationToken).ConfigureAwait(false);
                _replicas.Answered(replica);
                return result;
            }
            catch (NpgsqlException) when (!cancellationToken.IsCancellationRequested)
            {
            }
        }

        _replicas?.Answered(null);
        return await WithConnectionAsync(run, cancellationToken).ConfigureAwait(false);
    }

    private ValueTask<int> ExecuteAsync(string sql, Action<NpgsqlParameterCollection> bind, CancellationToken cancellationToken) =>
        WithConnectionAsync(
            async (connection, ct) =>
            {
                var command = new NpgsqlCommand(sql, connection);
                await using var commandScope = command.ConfigureAwait(false);
                bind(command.Parameters);
                if (_prepare)
                {
                    await command.PrepareAsync(ct).ConfigureAwait(false);
                }

                return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            },
            cancellationToken);

    // A pooled connection per call; a missing schema becomes an error naming the script to apply.
    private async ValueTask<T> WithConnectionAsync<T>(Func<NpgsqlConnection, CancellationToken, ValueTask<T>> run, CancellationToken cancellationToken)
    {
        try
        {
            var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using var connectionScope = connection.ConfigureAwait(false);
            return await run(connection, cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException ex) when (Translate(ex) is { } schemaError)
        {
            throw schemaError;
        }
    }

    private static ClaimedJob ReadClaimed(NpgsqlDataReader reader, string queue) => new()
    {
        Id = reader.GetInt64(0),
        Lease = reader.GetInt64(1),
        Queue = queue,
        Kind = reader.GetString(2),
        Payload = reader.GetString(3),
        Attempt = reader.GetInt32(4),
        MaxAttempts = reader.GetInt32(5),
        EnqueuedAt = reader.GetFieldValue<DateTimeOffset>(6),
        AvailableAt = reader.GetFieldValue<DateTimeOffset>(7),
        TraceParent = reader.IsDBNull(8) ? null : reader.GetString(8),
        Errors = reader.IsDBNull(9) ? [] : JobErrors.Parse(reader.GetString(9)),
    };

    private static JobInfo ReadJob(NpgsqlDataReader reader) => new()
    {
        Id = reader.GetInt64(0),
        Queue = reader.GetString(1),
        State = (JobState)reader.GetInt16(2),
        Priority = reader.GetInt16(3),
        Attempt = reader.GetInt32(4),
        MaxAttempts = reader.GetInt32(5),
        Kind = reader.GetString(6),
        Payload = reader.GetString(7),
        UniqueKey = reader.IsDBNull(8) ? null : reader.GetString(8),
        EnqueuedAt = reader.GetFieldValue<DateTimeOffset>(9),
        RunAt = reader.IsDBNull(10) ? null : reader.GetFieldValue<DateTimeOffset>(10),
        ClaimedAt = reader.IsDBNull(11) ? null : reader.GetFieldValue<DateTimeOffset>(11),
        FinishedAt = reader.IsDBNull(12) ? null : reader.GetFieldValue<DateTimeOffset>(12),
        ClaimedBy = reader.IsDBNull(13) ? null : reader.GetString(13),
        Errors = reader.IsDBNull(14) ? [] : JobErrors.Parse(reader.GetString(14)),
    };

    private static void AddTokens(NpgsqlParameterCollection parameters, IReadOnlyList<JobToken> jobs)
    {
        var ids = new long[jobs.Count];
        var leases = new long[jobs.Count];
        for (var i = 0; i < jobs.Count; i++)
        {
            ids[i] = jobs[i].Id;
            leases[i] = jobs[i].Lease;
        }

        parameters.Add(new NpgsqlParameter<long[]> { TypedValue = ids, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
        parameters.Add(new NpgsqlParameter<long[]> { TypedValue = leases, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
    }

    private Exception? Translate(PostgresException ex) =>
        (Exception?)PgPooler.TryTranslate(ex, _pooler, _schemaName) ?? PgSchemaErrors.TryTranslate(ex, SchemaModule, _schemaName);

    private static NpgsqlParameter Text(string? value) => new() { Value = (object?)value ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text };

    private static NpgsqlParameter Json(string? value) => new() { Value = (object?)value ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Jsonb };

    private static NpgsqlParameter<DateTimeOffset> Time(DateTimeOffset value) => new() { TypedValue = value, NpgsqlDbType = NpgsqlDbType.TimestampTz };

    private static NpgsqlParameter<int> Int(int value) => new() { TypedValue = value, NpgsqlDbType = NpgsqlDbType.Integer };

    private static NpgsqlParameter<long> Long(long value) => new() { TypedValue = value, NpgsqlDbType = NpgsqlDbType.Bigint };
}
