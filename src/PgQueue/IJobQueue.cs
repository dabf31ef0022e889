using Npgsql;

namespace PgQueue;

/// <summary>
/// Enqueues jobs. Registered by <c>services.AddPgQueue(...)</c>; thread-safe, inject it anywhere.
/// </summary>
/// <remarks>
/// Payloads are serialized with System.Text.Json (<see cref="PgQueueOptions.SerializerOptions"/>). The overloads that
/// take an <see cref="NpgsqlTransaction"/> enqueue inside the caller's transaction: the job exists only if that
/// transaction commits (PostgreSQL backend only).
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1711", Justification = "A job queue is what it is; the name is the public API the issue promised.")]
public interface IJobQueue
{
    /// <summary>Enqueues one job.</summary>
    /// <typeparam name="TPayload">The payload type.</typeparam>
    /// <param name="payload">The payload; not <see langword="null"/>.</param>
    /// <param name="options">Per-job settings, or <see langword="null"/> for the type's defaults.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The new job's id, or the duplicate's.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="payload"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException">An option is invalid or the payload is too large; nothing was enqueued.</exception>
    ValueTask<JobEnqueueResult> EnqueueAsync<TPayload>(TPayload payload, JobOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>Enqueues one job inside the caller's transaction.</summary>
    /// <typeparam name="TPayload">The payload type.</typeparam>
    /// <param name="transaction">The caller's open transaction on the job store's database.</param>
    /// <param name="payload">The payload; not <see langword="null"/>.</param>
    /// <param name="options">Per-job settings, or <see langword="null"/> for the type's defaults.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The new job's id, or the duplicate's.</returns>
    /// <exception cref="NotSupportedException">The queue runs on Redis.</exception>
    ValueTask<JobEnqueueResult> EnqueueAsync<TPayload>(NpgsqlTransaction transaction, TPayload payload, JobOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>Enqueues one job on the caller's open connection (inside its current transaction, if any).</summary>
    /// <typeparam name="TPayload">The payload type.</typeparam>
    /// <param name="connection">An open connection to the job store's database.</param>
    /// <param name="payload">The payload; not <see langword="null"/>.</param>
    /// <param name="options">Per-job settings, or <see langword="null"/> for the type's defaults.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The new job's id, or the duplicate's.</returns>
    /// <exception cref="NotSupportedException">The queue runs on Redis.</exception>
    ValueTask<JobEnqueueResult> EnqueueAsync<TPayload>(NpgsqlConnection connection, TPayload payload, JobOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>Enqueues many jobs in bulk (array parameters, 5,000 rows per statement, one transaction).</summary>
    /// <typeparam name="TPayload">The payload type.</typeparam>
    /// <param name="payloads">The payloads; none <see langword="null"/>.</param>
    /// <param name="options">Settings for every job, or <see langword="null"/>; a unique key is not allowed here.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>How many were enqueued.</returns>
    ValueTask<JobBatchEnqueueResult> EnqueueManyAsync<TPayload>(IEnumerable<TPayload> payloads, JobOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>Enqueues many jobs in bulk inside the caller's transaction.</summary>
    /// <typeparam name="TPayload">The payload type.</typeparam>
    /// <param name="transaction">The caller's open transaction on the job store's database.</param>
    /// <param name="payloads">The payloads; none <see langword="null"/>.</param>
    /// <param name="options">Settings for every job, or <see langword="null"/>; a unique key is not allowed here.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>How many were enqueued.</returns>
    /// <exception cref="NotSupportedException">The queue runs on Redis.</exception>
    ValueTask<JobBatchEnqueueResult> EnqueueManyAsync<TPayload>(NpgsqlTransaction transaction, IEnumerable<TPayload> payloads, JobOptions? options = null, CancellationToken cancellationToken = default);
}
