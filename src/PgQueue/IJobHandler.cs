namespace PgQueue;

/// <summary>
/// Handles jobs whose payload is a <typeparamref name="TPayload"/>. Register it with
/// <c>services.AddPgQueue(...).AddHandler&lt;TPayload, THandler&gt;()</c>; it is resolved in a new DI scope for
/// every job.
/// </summary>
/// <typeparam name="TPayload">The payload type, serialized with System.Text.Json.</typeparam>
/// <remarks>
/// Returning completes the job; throwing fails this attempt (retried with back-off until the job's attempts run out,
/// then dead). Call <see cref="JobContext.Snooze"/> or <see cref="JobContext.Cancel"/> before returning to do
/// neither, or <see cref="JobContext.CompleteAsync(Npgsql.NpgsqlTransaction, CancellationToken)"/> to complete the job
/// inside your own database transaction. Delivery is at least once: a handler whose worker dies mid-job runs again
/// after the lease expires, so make side effects idempotent or commit them with the completion.
/// </remarks>
public interface IJobHandler<in TPayload>
{
    /// <summary>
    /// Handles one job.
    /// </summary>
    /// <param name="payload">The job's payload.</param>
    /// <param name="context">The job's id, attempt and controls.</param>
    /// <param name="cancellationToken">Fires when the host shuts down past its grace period or this attempt loses its lease.</param>
    /// <returns>A task that completes when the job is handled.</returns>
    Task HandleAsync(TPayload payload, JobContext context, CancellationToken cancellationToken);
}
