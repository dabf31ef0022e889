using Npgsql;

namespace PgQueue.CrashWorker;

// Exactly once: the effect and the job's completion commit in one transaction, or neither does.
internal sealed class TransactionalCrashJobHandler(NpgsqlDataSource dataSource, CrashWorkerSettings settings) : IJobHandler<CrashJob>
{
    public async Task HandleAsync(CrashJob payload, JobContext context, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await CrashEffects.RecordAttemptAsync(connection, settings, context, cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await CrashEffects.RecordEffectAsync(connection, transaction, settings, context, cancellationToken);
        await CrashEffects.WorkAsync(payload, context, settings, cancellationToken);
        await context.CompleteAsync(transaction, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }
}

// At least once: the effect commits on its own; the job completes after the handler returns.
internal sealed class PlainCrashJobHandler(NpgsqlDataSource dataSource, CrashWorkerSettings settings) : IJobHandler<CrashJob>
{
    public async Task HandleAsync(CrashJob payload, JobContext context, CancellationToken cancellationToken)
    {
        await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken))
        {
            await CrashEffects.RecordAttemptAsync(connection, settings, context, cancellationToken);
            await CrashEffects.RecordEffectAsync(connection, null, settings, context, cancellationToken);
        }

        await CrashEffects.WorkAsync(payload, context, settings, cancellationToken);
    }
}

// The rows the tests read: crash_attempt (every attempt that started, committed at once) and crash_effect (the
// handler's side effect). The tests create both tables, with no unique constraint, so a duplicate effect is counted
// rather than refused.
internal static class CrashEffects
{
    public static async Task RecordAttemptAsync(NpgsqlConnection connection, CrashWorkerSettings settings, JobContext context, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"INSERT INTO \"{settings.Schema}\".crash_attempt (job_id, attempt, worker_pid) VALUES ($1, $2, $3)", connection);
        AddParameters(command, context);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public static async Task RecordEffectAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CrashWorkerSettings settings, JobContext context, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"INSERT INTO \"{settings.Schema}\".crash_effect (job_id, attempt, worker_pid) VALUES ($1, $2, $3)", connection, transaction);
        AddParameters(command, context);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    // The work between the effect and the completion, where a kill lands; a hanging job's first attempt never ends.
    public static Task WorkAsync(CrashJob payload, JobContext context, CrashWorkerSettings settings, CancellationToken cancellationToken)
    {
        if (payload.Hang && context.Attempt == 1)
        {
            return Task.Delay(Timeout.InfiniteTimeSpan, cancellationToken);
        }

        var delay = settings.MinDelay + ((settings.MaxDelay - settings.MinDelay) * Random.Shared.NextDouble());
        return Task.Delay(delay, cancellationToken);
    }

    private static void AddParameters(NpgsqlCommand command, JobContext context)
    {
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = context.Id });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = context.Attempt });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = Environment.ProcessId });
    }
}
