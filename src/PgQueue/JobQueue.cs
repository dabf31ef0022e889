using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Npgsql;
using PgQueue.Internal;

namespace PgQueue;

/// <summary>
/// The <see cref="IJobQueue"/> of PgQueue: validates and serializes jobs, hands them to the configured
/// <see cref="IJobQueueBackend"/>, wakes this process's workers directly and the others with a debounced notification.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1711", Justification = "A job queue is what it is; the name is the public API the issue promised.")]
public sealed partial class JobQueue : IJobQueue
{
    /// <summary>The longest unique key accepted.</summary>
    public const int MaxUniqueKeyLength = 512;

    private readonly IJobQueueBackend _backend;
    private readonly PgQueueOptions _options;
    private readonly JobRegistry _registry;
    private readonly JobWakeHub _wakeHub;
    private readonly NotifyDebouncer? _debouncer;
    private readonly PgQueueMetrics _metrics;
    private readonly TimeProvider _timeProvider;

    internal JobQueue(IJobQueueBackend backend, PgQueueOptions options, JobRegistry registry, JobWakeHub wakeHub, PgQueueMetrics metrics, TimeProvider timeProvider)
    {
        _backend = backend;
        _options = options;
        _registry = registry;
        _wakeHub = wakeHub;
        _metrics = metrics;
        _timeProvider = timeProvider;
        _debouncer = options.UseNotifications
            ? new NotifyDebouncer(TimeProvider.System, options.NotifyDebounce, queues => backend.NotifyAsync(queues, CancellationToken.None).AsTask())
            : null;
    }

    /// <inheritdoc />
    public async ValueTask<JobEnqueueResult> EnqueueAsync<TPayload>(TPayload payload, JobOptions? options = null, CancellationToken cancellationToken = default)
    {
        var request = Build(payload, options, inTransaction: false);
        var result = await _backend.EnqueueAsync(request, cancellationToken).ConfigureAwait(false);
        Enqueued(request, result.Duplicate ? 0 : 1, wakeHere: true);
        return result;
    }

    /// <inheritdoc />
    public ValueTask<JobEnqueueResult> EnqueueAsync<TPayload>(NpgsqlTransaction transaction, TPayload payload, JobOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        var connection = transaction.Connection ?? throw new ArgumentException("The transaction is already finished.", nameof(transaction));
        return EnqueueAsync(connection, transaction, payload, options, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<JobEnqueueResult> EnqueueAsync<TPayload>(NpgsqlConnection connection, TPayload payload, JobOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        return EnqueueAsync(connection, null, payload, options, cancellationToken);
    }

    /// <inheritdoc />
    public async ValueTask<JobBatchEnqueueResult> EnqueueManyAsync<TPayload>(IEnumerable<TPayload> payloads, JobOptions? options = null, CancellationToken cancellationToken = default)
    {
        var requests = BuildMany(payloads, options, inTransaction: false);
        var result = await _backend.EnqueueManyAsync(requests, cancellationToken).ConfigureAwait(false);
        EnqueuedMany(requests, result, wakeHere: true);
        return result;
    }

    /// <inheritdoc />
    public async ValueTask<JobBatchEnqueueResult> EnqueueManyAsync<TPayload>(NpgsqlTransaction transaction, IEnumerable<TPayload> payloads, JobOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        var connection = transaction.Connection ?? throw new ArgumentException("The transaction is already finished.", nameof(transaction));
        var requests = BuildMany(payloads, options, inTransaction: true);
        var result = await Postgres().EnqueueManyAsync(connection, transaction, requests, cancellationToken).ConfigureAwait(false);

        // Not woken here: the rows are invisible until the caller commits; the notification inside the transaction is
        // delivered at the commit.
        EnqueuedMany(requests, result, wakeHere: false);
        return result;
    }

    internal static bool IsValidQueueName(string? name) => name is not null && QueueNameRegex().IsMatch(name);

    private async ValueTask<JobEnqueueResult> EnqueueAsync<TPayload>(NpgsqlConnection connection, NpgsqlTransaction? transaction, TPayload payload, JobOptions? options, CancellationToken cancellationToken)
    {
        var backend = Postgres();
        var request = Build(payload, options, inTransaction: transaction is not null);
        var result = await backend.EnqueueAsync(connection, transaction, request, cancellationToken).ConfigureAwait(false);

        // Inside a transaction the row is invisible until the commit, which delivers the notification.
        Enqueued(request, result.Duplicate ? 0 : 1, wakeHere: transaction is null);
        return result;
    }

    private PostgresJobQueueBackend Postgres() => _backend as PostgresJobQueueBackend ?? throw new NotSupportedException(
        $"Enqueuing inside the caller's PostgreSQL transaction needs the PostgreSQL backend; this queue runs on {_backend.Name}.");

    private void Enqueued(JobEnqueueRequest request, int count, bool wakeHere)
    {
        _metrics.Enqueued(request.Queue, count, 1 - count);
        if (count > 0 && wakeHere && !request.Delayed)
        {
            _wakeHub.Wake(request.Queue);
            if (!request.Notify)
            {
                _debouncer?.Trail(request.Queue);
            }
        }
    }

    private void EnqueuedMany(List<JobEnqueueRequest> requests, JobBatchEnqueueResult result, bool wakeHere)
    {
        if (requests.Count == 0)
        {
            return;
        }

        _metrics.Enqueued(requests[0].Queue, result.Enqueued, result.Duplicates);
        if (result.Enqueued > 0 && wakeHere && !requests[0].Delayed)
        {
            _wakeHub.Wake(requests[0].Queue);
            if (!requests[0].Notify)
            {
                _debouncer?.Trail(requests[0].Queue);
            }
        }
    }

    private List<JobEnqueueRequest> BuildMany<TPayload>(IEnumerable<TPayload> payloads, JobOptions? options, bool inTransaction)
    {
        ArgumentNullException.ThrowIfNull(payloads);
        if (options?.UniqueKey is not null)
        {
            throw new ArgumentException("A unique key names one job; it cannot be shared by a bulk enqueue. Enqueue unique jobs one by one.", nameof(options));
        }

        var requests = new List<JobEnqueueRequest>(payloads.TryGetNonEnumeratedCount(out var n) ? n : 16);
        foreach (var payload in payloads)
        {
            requests.Add(Build(payload, options, inTransaction, first: requests.Count == 0));
        }

        return requests;
    }

    // Inside a caller's transaction the notification always goes in the transaction: it is delivered at the commit
    // (PostgreSQL folds duplicates within a transaction), whereas a trailing one could arrive before the row exists.
    private JobEnqueueRequest Build<TPayload>(TPayload payload, JobOptions? options, bool inTransaction, bool first = true)
    {
        if (payload is null)
        {
            throw new ArgumentNullException(nameof(payload), "A job needs a payload; use an empty record for jobs that carry no data.");
        }

        var registration = _registry.Find(typeof(TPayload));
        var typeOptions = registration?.Options;
        var queue = options?.Queue ?? typeOptions?.Queue ?? _options.DefaultQueue;
        if (!IsValidQueueName(queue))
        {
            throw new ArgumentException($"'{queue}' is not a valid queue name: use 1 to 100 letters, digits, '_', '-', '.' or ':'.", nameof(options));
        }

        var priority = options?.Priority ?? typeOptions?.Priority ?? 0;
        if (priority is < short.MinValue or > short.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(options), priority, $"Priority must be between {short.MinValue} and {short.MaxValue}.");
        }

        var maxAttempts = options?.MaxAttempts ?? typeOptions?.MaxAttempts ?? _options.DefaultMaxAttempts;
        if (maxAttempts is < 1 or > 10_000)
        {
            throw new ArgumentOutOfRangeException(nameof(options), maxAttempts, "MaxAttempts must be between 1 and 10000.");
        }

        var now = _timeProvider.GetUtcNow();
        var runAt = now;
        if (options?.Delay is { } delay)
        {
            if (options.RunAt is not null)
            {
                throw new ArgumentException("Set Delay or RunAt, not both.", nameof(options));
            }

            if (delay < TimeSpan.Zero || delay > TimeSpan.FromDays(3650))
            {
                throw new ArgumentOutOfRangeException(nameof(options), delay, "Delay must be between zero and 3650 days.");
            }

            runAt = now + delay;
        }
        else if (options?.RunAt is { } at && at > now)
        {
            runAt = at;
        }

        var uniqueKey = options?.UniqueKey;
        if (uniqueKey is not null && (uniqueKey.Length == 0 || uniqueKey.Length > MaxUniqueKeyLength || string.IsNullOrWhiteSpace(uniqueKey)))
        {
            throw new ArgumentException($"A unique key must be 1 to {MaxUniqueKeyLength} characters and not blank.", nameof(options));
        }

        var json = JsonSerializer.Serialize(payload, _options.SerializerOptions);
        if (json.Length > _options.MaxPayloadBytes / 3 && Encoding.UTF8.GetByteCount(json) > _options.MaxPayloadBytes)
        {
            throw new ArgumentException($"The serialized payload is larger than MaxPayloadBytes ({_options.MaxPayloadBytes} bytes); store large data elsewhere and enqueue a reference.", nameof(payload));
        }

        return new JobEnqueueRequest
        {
            Queue = queue,
            Kind = registration?.Kind ?? JobTypeRegistration.DefaultKind(typeof(TPayload)),
            Payload = json,
            Priority = (short)priority,
            RunAt = runAt,
            MaxAttempts = maxAttempts,
            UniqueKey = uniqueKey,
            EnqueuedAt = now,
            TraceParent = Activity.Current is { IdFormat: ActivityIdFormat.W3C } activity ? activity.Id : null,
            Notify = first && runAt <= now && _debouncer is not null && (inTransaction || _debouncer.TryLead(queue)),
        };
    }

    [GeneratedRegex("^[A-Za-z0-9_.:-]{1,100}$", RegexOptions.CultureInvariant)]
    private static partial Regex QueueNameRegex();
}
