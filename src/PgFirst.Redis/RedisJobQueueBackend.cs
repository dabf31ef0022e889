using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using PgFirst.Core;
using PgFirst.Redis.Internal;
using PgQueue;
using PgQueue.Internal;
using StackExchange.Redis;

namespace PgFirst.Redis;

/// <summary>
/// The Redis job store of PgQueue: the same <see cref="IJobQueueBackend"/> semantics as
/// <see cref="PostgresJobQueueBackend"/> (claim order, lease tokens, attempt refunds, promotion and lease rescue, unique
/// keys, retention, requeue, recurring jobs) on the shared <see cref="IConnectionMultiplexer"/>, each operation one Lua
/// script (one round trip, atomic), and wake-ups over Redis pub/sub.
/// </summary>
/// <remarks>
/// <para>
/// A job is a hash, <c>j:{id}</c>, with its id from <c>INCR</c>. Where it waits depends on its state: available jobs
/// sit in one sorted set per queue whose members spell the claim order (priority descending, then run-at, then id), so a
/// claim of <c>n</c> jobs is a <c>ZRANGE 0 n-1</c> inside the script and two concurrent claims can never take the same
/// job; scheduled jobs (delayed, retrying, snoozed) in a sorted set per queue by run-at; running jobs in a sorted set per
/// queue by lease expiry. <see cref="PromoteAsync"/> moves due scheduled jobs and jobs with expired leases back to
/// available. A unique key is a string key naming its holder, held while the job is pending or running. Finished jobs
/// keep their hash, indexed by state (per queue and overall) and by delete-after for <see cref="DeleteFinishedAsync"/>.
/// Recurring jobs are a hash each plus a sorted set by next occurrence; firing one is an atomic compare-and-move, so each
/// occurrence fires once however many instances run. The full layout is described with the scripts.
/// </para>
/// <para>
/// Why not Redis Streams: a stream is ordered by append time and its consumer group tracks idle time on Redis's clock,
/// while PgQueue claims by priority, then run-at, then id (a retried job keeps its place by run-at), cancels waiting jobs
/// individually, and runs leases on the application's clock. Sorted sets give exactly that order, O(log n) removal, and
/// expiry scores on the caller's clock, so this store behaves like the PostgreSQL one instead of approximately.
/// </para>
/// <para>
/// Every key starts with <see cref="PgFirstRedisOptions.KeyPrefix"/> followed by <c>q{</c>prefix<c>}:</c>: one hash tag,
/// so the scripts (which compute the keys they touch) also run on Redis Cluster, with each store in one slot. A prefix
/// with braces of its own must not contain <c>{}</c>, which Redis does not treat as a hash tag. Wake-ups are published on
/// the channel <see cref="Channel"/>. Times are passed in by the caller (the application's <see cref="TimeProvider"/>),
/// never read from Redis; they are stored as unix microseconds. Redis 7.0 or later.
/// </para>
/// <para>
/// Durability is Redis's: a job accepted before a crash survives only as far as the server's persistence (AOF with
/// <c>appendfsync always</c> or <c>everysec</c>) and replication allow. Finished jobs are deleted only by
/// <see cref="DeleteFinishedAsync"/>.
/// </para>
/// <para>
/// Failure policy: propagate. Redis errors (<see cref="RedisConnectionException"/>, <see cref="RedisTimeoutException"/>,
/// <see cref="RedisServerException"/>) and cancellation reach the caller (the queue, the workers, the manager), which
/// log and retry. Asynchronous operations are bounded by the caller's token and the multiplexer's <c>asyncTimeout</c>.
/// The constructor does no I/O.
/// </para>
/// </remarks>
public sealed class RedisJobQueueBackend : IJobQueueBackend
{
    // Jobs per script in EnqueueManyAsync: big enough to amortize the round trip, small enough not to stall the server.
    private const int EnqueueChunk = 1000;

    private const int PromoteBatch = 10_000;

    private const int RecurringBatch = 100;

    private const int JobFieldCount = 14;

    // The hash fields a JobInfo is read from, in the order ReadJob expects (ListFinished returns the same order).
    private static readonly RedisValue[] JobFields = ["q", "st", "pr", "a", "m", "k", "p", "uk", "enq", "run", "ca", "fin", "by", "err"];

    private readonly IConnectionMultiplexer _connection;
    private readonly string _root;
    private readonly RedisKey _sequenceKey;
    private readonly RedisKey _queuesKey;
    private readonly RedisChannel _channel;

    /// <summary>
    /// Initializes a new instance of the <see cref="RedisJobQueueBackend"/> class. Usually resolved from DI (keyed
    /// <see cref="PgFirstBackend.Redis"/>) after <c>services.AddPgFirst(...).AddRedis(...)</c>. Does no I/O.
    /// </summary>
    /// <param name="connection">The shared Redis connection; not disposed by the backend.</param>
    /// <param name="options">The Redis options (key prefix).</param>
    /// <exception cref="ArgumentException">The key prefix is empty.</exception>
    public RedisJobQueueBackend(IConnectionMultiplexer connection, PgFirstRedisOptions options)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.KeyPrefix, nameof(options));
        _connection = connection;
        _root = options.KeyPrefix + "q{" + options.KeyPrefix + "}:";
        _sequenceKey = _root + "seq";
        _queuesKey = _root + "queues";
        Channel = options.KeyPrefix + "q:wake";
        _channel = RedisChannel.Literal(Channel);
    }

    /// <inheritdoc />
    public string Name => "redis";

    /// <summary>Gets the pub/sub channel of wake-ups (<c>{KeyPrefix}q:wake</c>); each message is a queue name.</summary>
    public string Channel { get; }

    /// <inheritdoc />
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<JobEnqueueResult> EnqueueAsync(JobEnqueueRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        cancellationToken.ThrowIfCancellationRequested();
        var results = await EnqueueChunkAsync([request], 0, 1, cancellationToken).ConfigureAwait(false);
        var result = (string)results[0]!;
        return result.StartsWith('-')
            ? new JobEnqueueResult(ParseLong(result.AsSpan(1)), true)
            : JobEnqueueResult.Enqueued(ParseLong(result));
    }

    /// <inheritdoc />
    /// <remarks>
    /// Jobs go in chunks of 1,000 per script, pipelined. Each chunk is atomic; the whole batch is not (a failure part way
    /// leaves the earlier chunks enqueued). A unique key repeated inside the batch counts as a duplicate.
    /// </remarks>
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<JobBatchEnqueueResult> EnqueueManyAsync(IReadOnlyList<JobEnqueueRequest> requests, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(requests);
        if (requests.Count == 0)
        {
            return default;
        }

        cancellationToken.ThrowIfCancellationRequested();
        var chunks = new List<Task<RedisResult[]>>();
        for (var start = 0; start < requests.Count; start += EnqueueChunk)
        {
            chunks.Add(EnqueueChunkAsync(requests, start, Math.Min(EnqueueChunk, requests.Count - start), cancellationToken));
        }

        var enqueued = 0;
        foreach (var results in await Task.WhenAll(chunks).ConfigureAwait(false))
        {
            enqueued += results.Count(r => !((string)r!).StartsWith('-'));
        }

        return new JobBatchEnqueueResult(enqueued, requests.Count - enqueued);
    }

    /// <inheritdoc />
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<IReadOnlyList<ClaimedJob>> ClaimAsync(JobClaimRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Count <= 0 && request.Succeeded.Count == 0)
        {
            return [];
        }

        cancellationToken.ThrowIfCancellationRequested();
        var arguments = new List<RedisValue>(7 + (request.Succeeded.Count * 2))
        {
            _root,
            request.Queue,
            Math.Max(0, request.Count),
            Microseconds(request.Now),
            Microseconds(request.LeaseExpiresAt),
            request.Worker,
            Microseconds(request.SucceededDeleteAfter),
        };
        AddTokens(arguments, request.Succeeded);
        var result = (RedisResult[])(await EvaluateAsync(RedisJobQueueScripts.Claim, ReadyKey(request.Queue), [.. arguments], cancellationToken).ConfigureAwait(false))!;
        var jobs = new ClaimedJob[result.Length - 1];
        for (var i = 1; i < result.Length; i++)
        {
            var fields = (RedisResult[])result[i]!;
            var errors = (string?)fields[9];
            jobs[i - 1] = new ClaimedJob
            {
                Id = (long)fields[0],
                Lease = (long)fields[1],
                Queue = request.Queue,
                Kind = (string)fields[2]!,
                Payload = (string)fields[3]!,
                Attempt = (int)fields[4],
                MaxAttempts = (int)fields[5],
                EnqueuedAt = FromMicroseconds((long)fields[6]),
                AvailableAt = FromMicroseconds((long)fields[7]),
                TraceParent = (string?)fields[8],
                Errors = errors is null ? [] : JobErrors.Parse(errors),
            };
        }

        return jobs;
    }

    /// <inheritdoc />
    /// <remarks>With <paramref name="deleteAfter"/> not after <paramref name="now"/>, the jobs are deleted at once.</remarks>
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<int> CompleteAsync(IReadOnlyList<JobToken> jobs, DateTimeOffset now, DateTimeOffset deleteAfter, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(jobs);
        if (jobs.Count == 0)
        {
            return 0;
        }

        cancellationToken.ThrowIfCancellationRequested();
        var arguments = new List<RedisValue>(3 + (jobs.Count * 2)) { _root, Microseconds(now), Microseconds(deleteAfter) };
        AddTokens(arguments, jobs);
        return (int)await EvaluateAsync(RedisJobQueueScripts.Complete, _sequenceKey, [.. arguments], cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<bool> RetryAsync(JobToken job, DateTimeOffset runAt, JobError? jobError, bool refundAttempt, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();

        // A snooze (no error) always waits for promotion; a retry due already goes straight back to available.
        var availableNow = jobError is not null && runAt <= jobError.At;
        RedisValue[] arguments =
        [
            _root,
            Id(job.Id),
            Id(job.Lease),
            Microseconds(runAt),
            jobError is null ? string.Empty : JobErrors.ToJsonArray(jobError),
            refundAttempt ? 1 : 0,
            availableNow ? 1 : 0,
        ];
        return (int)await EvaluateAsync(RedisJobQueueScripts.Retry, JobKey(job.Id), arguments, cancellationToken).ConfigureAwait(false) == 1;
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="state"/> is neither cancelled nor dead.</exception>
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<bool> FinishAsync(JobToken job, JobState state, JobError jobError, DateTimeOffset now, DateTimeOffset deleteAfter, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(jobError);
        if (state is not (JobState.Cancelled or JobState.Dead))
        {
            throw new ArgumentOutOfRangeException(nameof(state), state, "Only Cancelled or Dead.");
        }

        cancellationToken.ThrowIfCancellationRequested();
        RedisValue[] arguments =
        [
            _root,
            Id(job.Id),
            Id(job.Lease),
            (int)state,
            JobErrors.ToJsonArray(jobError),
            Microseconds(now),
            Microseconds(deleteAfter),
        ];
        return (int)await EvaluateAsync(RedisJobQueueScripts.Finish, JobKey(job.Id), arguments, cancellationToken).ConfigureAwait(false) == 1;
    }

    /// <inheritdoc />
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<IReadOnlyList<JobToken>> ExtendLeasesAsync(IReadOnlyList<JobToken> jobs, DateTimeOffset leaseExpiresAt, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(jobs);
        if (jobs.Count == 0)
        {
            return [];
        }

        cancellationToken.ThrowIfCancellationRequested();
        var arguments = new List<RedisValue>(2 + (jobs.Count * 2)) { _root, Microseconds(leaseExpiresAt) };
        AddTokens(arguments, jobs);
        var lost = (RedisResult[])(await EvaluateAsync(RedisJobQueueScripts.Extend, _sequenceKey, [.. arguments], cancellationToken).ConfigureAwait(false))!;
        if (lost.Length == 0)
        {
            return [];
        }

        var ids = lost.Select(r => (long)r).ToHashSet();
        return [.. jobs.Where(j => ids.Contains(j.Id))];
    }

    /// <inheritdoc />
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<int> ReleaseAsync(IReadOnlyList<JobToken> jobs, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(jobs);
        if (jobs.Count == 0)
        {
            return 0;
        }

        cancellationToken.ThrowIfCancellationRequested();
        var arguments = new List<RedisValue>(2 + (jobs.Count * 2)) { _root, Microseconds(now) };
        AddTokens(arguments, jobs);
        return (int)await EvaluateAsync(RedisJobQueueScripts.Release, _sequenceKey, [.. arguments], cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <remarks>Moves at most 10,000 jobs per call; the caller's loop picks up the rest.</remarks>
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<IReadOnlyList<KeyValuePair<string, int>>> PromoteAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        RedisValue[] arguments = [_root, Microseconds(now), JsonString(now), PromoteBatch];
        var result = (RedisResult[])(await EvaluateAsync(RedisJobQueueScripts.Promote, _queuesKey, arguments, cancellationToken).ConfigureAwait(false))!;
        var queues = new KeyValuePair<string, int>[result.Length / 2];
        for (var i = 0; i < queues.Length; i++)
        {
            queues[i] = new((string)result[2 * i]!, (int)result[(2 * i) + 1]);
        }

        return queues;
    }

    /// <inheritdoc />
    /// <remarks>Publishes each queue name on <see cref="Channel"/>, pipelined.</remarks>
    /// <exception cref="RedisException">Redis is unreachable or timed out.</exception>
    public async ValueTask NotifyAsync(IReadOnlyCollection<string> queues, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(queues);
        if (queues.Count == 0)
        {
            return;
        }

        cancellationToken.ThrowIfCancellationRequested();
        var subscriber = _connection.GetSubscriber();
        await Task.WhenAll(queues.Select(q => subscriber.PublishAsync(_channel, q))).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Subscribes to <see cref="Channel"/> on the multiplexer's subscription connection. When any of the multiplexer's
    /// connections fails the method throws, so the caller subscribes again and looks at every queue once (wake-ups
    /// published while disconnected are lost).
    /// </remarks>
    /// <exception cref="RedisException">Redis is unreachable, or the connection failed while listening.</exception>
    /// <exception cref="RedisTimeoutException">The subscription could not be sent while reconnecting.</exception>
    public async Task ListenAsync(Action<string> onWake, Action onConnected, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(onWake);
        ArgumentNullException.ThrowIfNull(onConnected);
        cancellationToken.ThrowIfCancellationRequested();
        var subscriber = _connection.GetSubscriber();
        var failed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnFailed(object? sender, ConnectionFailedEventArgs e) =>
            failed.TrySetException(new RedisConnectionException(e.FailureType, "The Redis connection of the PgQueue listener failed.", e.Exception));
        void OnMessage(RedisChannel channel, RedisValue message)
        {
            if (!message.IsNullOrEmpty)
            {
                onWake(message!);
            }
        }

        _connection.ConnectionFailed += OnFailed;
        try
        {
            await subscriber.SubscribeAsync(_channel, OnMessage).WaitAsync(cancellationToken).ConfigureAwait(false);
            onConnected();
            await failed.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            _connection.ConnectionFailed -= OnFailed;
            try
            {
                await subscriber.UnsubscribeAsync(_channel, OnMessage).ConfigureAwait(false);
            }
            catch (RedisException)
            {
                // The handler is dropped locally either way; the server forgets the subscription with the connection.
            }
        }
    }

    /// <inheritdoc />
    /// <exception cref="RedisException">Redis is unreachable or timed out.</exception>
    public async ValueTask<JobInfo?> GetJobAsync(long id, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var fields = await _connection.GetDatabase().HashGetAsync(JobKey(id), JobFields).WaitAsync(cancellationToken).ConfigureAwait(false);
        return fields[0].IsNull ? null : ReadJob(id, Array.ConvertAll(fields, f => (string?)f));
    }

    /// <inheritdoc />
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<IReadOnlyList<JobInfo>> ListFinishedAsync(string? queue, JobState state, int limit, CancellationToken cancellationToken)
    {
        if (limit <= 0 || state is not (JobState.Succeeded or JobState.Cancelled or JobState.Dead))
        {
            return [];
        }

        cancellationToken.ThrowIfCancellationRequested();
        var index = _root + "f" + ((int)state).ToString(CultureInfo.InvariantCulture) + (queue is null ? string.Empty : ":" + queue);
        var result = (RedisResult[])(await EvaluateAsync(RedisJobQueueScripts.ListFinished, index, [_root, limit], cancellationToken).ConfigureAwait(false))!;
        var jobs = new JobInfo[result.Length];
        for (var i = 0; i < result.Length; i++)
        {
            var fields = (RedisResult[])result[i]!;
            var values = new string?[JobFieldCount];
            for (var f = 0; f < JobFieldCount; f++)
            {
                values[f] = (string?)fields[f + 1];
            }

            jobs[i] = ReadJob((long)fields[0], values);
        }

        return jobs;
    }

    /// <inheritdoc />
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<bool> RequeueAsync(long id, DateTimeOffset now, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        RedisValue[] arguments = [_root, Id(id), Microseconds(now)];
        return (int)await EvaluateAsync(RedisJobQueueScripts.Requeue, JobKey(id), arguments, cancellationToken).ConfigureAwait(false) == 1;
    }

    /// <inheritdoc />
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<bool> CancelAsync(long id, DateTimeOffset now, DateTimeOffset deleteAfter, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        RedisValue[] arguments =
        [
            _root,
            Id(id),
            Microseconds(now),
            Microseconds(deleteAfter),
            JobErrors.ToJsonArray(new JobError(0, now, "Cancelled", "Cancelled through the API.")),
        ];
        return (int)await EvaluateAsync(RedisJobQueueScripts.Cancel, JobKey(id), arguments, cancellationToken).ConfigureAwait(false) == 1;
    }

    /// <inheritdoc />
    /// <remarks>Each count is a <c>ZCARD</c>, so the cap bounds the answer, not the work, which is constant per queue.</remarks>
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<IReadOnlyList<QueueStats>> GetStatsAsync(IReadOnlyList<string> queues, int cap, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(queues);
        if (queues.Count == 0)
        {
            return [];
        }

        cancellationToken.ThrowIfCancellationRequested();
        var arguments = new RedisValue[queues.Count + 2];
        arguments[0] = _root;
        arguments[1] = cap;
        for (var i = 0; i < queues.Count; i++)
        {
            arguments[i + 2] = queues[i];
        }

        var counts = (RedisResult[])(await EvaluateAsync(RedisJobQueueScripts.Stats, _queuesKey, arguments, cancellationToken).ConfigureAwait(false))!;
        var stats = new QueueStats[queues.Count];
        for (var i = 0; i < stats.Length; i++)
        {
            stats[i] = new QueueStats(queues[i], (long)counts[4 * i], (long)counts[(4 * i) + 1], (long)counts[(4 * i) + 2], (long)counts[(4 * i) + 3], cap);
        }

        return stats;
    }

    /// <inheritdoc />
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask UpsertRecurringAsync(RecurringJobDefinition definition, DateTimeOffset nextRunAt, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(definition);
        cancellationToken.ThrowIfCancellationRequested();
        RedisValue[] arguments =
        [
            _root,
            definition.Name,
            definition.Cron,
            definition.TimeZone,
            definition.Queue,
            definition.Kind,
            definition.Payload,
            (int)definition.Priority,
            definition.MaxAttempts,
            Microseconds(nextRunAt),
        ];
        await EvaluateAsync(RedisJobQueueScripts.UpsertRecurring, _root + "rc:" + definition.Name, arguments, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Two round trips: one reads the due definitions (at most 100), then <paramref name="nextOccurrence"/> runs here, then
    /// one script fires each definition that is still at the occurrence it was read with. An instance that loses the race
    /// for a definition skips it.
    /// </remarks>
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<IReadOnlyList<string>> RunDueRecurringAsync(DateTimeOffset now, Func<RecurringJobDefinition, DateTimeOffset, DateTimeOffset> nextOccurrence, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(nextOccurrence);
        cancellationToken.ThrowIfCancellationRequested();
        RedisKey dueKey = _root + "rcdue";
        var nowMicroseconds = Microseconds(now);
        var due = (RedisResult[])(await EvaluateAsync(RedisJobQueueScripts.DueRecurring, dueKey, [_root, nowMicroseconds, RecurringBatch], cancellationToken).ConfigureAwait(false))!;
        if (due.Length == 0)
        {
            return [];
        }

        var arguments = new List<RedisValue>(3 + (due.Length * 3)) { _root, Channel, nowMicroseconds };
        foreach (var item in due)
        {
            var fields = (RedisResult[])item!;
            var definition = new RecurringJobDefinition
            {
                Name = (string)fields[0]!,
                Cron = (string)fields[1]!,
                TimeZone = (string)fields[2]!,
                Queue = (string)fields[3]!,
                Kind = (string)fields[4]!,
                Payload = (string)fields[5]!,
                Priority = (short)(int)fields[6],
                MaxAttempts = (int)fields[7],
            };
            arguments.Add(definition.Name);
            arguments.Add((string)fields[8]!);
            arguments.Add(Microseconds(nextOccurrence(definition, now)));
        }

        var fired = (RedisResult[])(await EvaluateAsync(RedisJobQueueScripts.FireRecurring, dueKey, [.. arguments], cancellationToken).ConfigureAwait(false))!;
        return Array.ConvertAll(fired, f => (string)f!);
    }

    /// <inheritdoc />
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<int> DeleteFinishedAsync(int batchSize, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (batchSize <= 0)
        {
            return 0;
        }

        cancellationToken.ThrowIfCancellationRequested();
        RedisValue[] arguments = [_root, Microseconds(now), batchSize];
        return (int)await EvaluateAsync(RedisJobQueueScripts.DeleteFinished, _root + "del", arguments, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <remarks>Sends a <c>PING</c>; Redis has no schema to check.</remarks>
    /// <exception cref="RedisException">Redis is unreachable or timed out.</exception>
    public async ValueTask PingAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        await _connection.GetDatabase().PingAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task<RedisResult[]> EnqueueChunkAsync(IReadOnlyList<JobEnqueueRequest> requests, int start, int count, CancellationToken cancellationToken)
    {
        var arguments = new RedisValue[3 + (count * 11)];
        arguments[0] = _root;
        arguments[1] = Channel;
        arguments[2] = count;
        for (var i = 0; i < count; i++)
        {
            var r = requests[start + i];
            ArgumentNullException.ThrowIfNull(r, nameof(requests));
            var b = 3 + (i * 11);
            arguments[b] = r.Queue;
            arguments[b + 1] = r.Kind;
            arguments[b + 2] = r.Payload;
            arguments[b + 3] = (int)r.Priority;
            arguments[b + 4] = Microseconds(r.RunAt);
            arguments[b + 5] = r.Delayed ? 1 : 0;
            arguments[b + 6] = r.MaxAttempts;
            arguments[b + 7] = Optional(r.UniqueKey);
            arguments[b + 8] = Microseconds(r.EnqueuedAt);
            arguments[b + 9] = Optional(r.TraceParent);
            arguments[b + 10] = r.Notify ? 1 : 0;
        }

        return (RedisResult[])(await EvaluateAsync(RedisJobQueueScripts.Enqueue, _sequenceKey, arguments, cancellationToken).ConfigureAwait(false))!;
    }

    private RedisKey JobKey(long id) => _root + "j:" + Id(id);

    private RedisKey ReadyKey(string queue) => _root + "r:" + queue;

    private static JobInfo ReadJob(long id, string?[] f) => new()
    {
        Id = id,
        Queue = f[0]!,
        State = (JobState)int.Parse(f[1]!, CultureInfo.InvariantCulture),
        Priority = int.Parse(f[2]!, CultureInfo.InvariantCulture),
        Attempt = int.Parse(f[3]!, CultureInfo.InvariantCulture),
        MaxAttempts = int.Parse(f[4]!, CultureInfo.InvariantCulture),
        Kind = f[5]!,
        Payload = f[6]!,
        UniqueKey = f[7],
        EnqueuedAt = FromMicroseconds(ParseLong(f[8])),
        RunAt = f[9] is { } run ? FromMicroseconds(ParseLong(run)) : null,
        ClaimedAt = f[10] is { } claimed ? FromMicroseconds(ParseLong(claimed)) : null,
        FinishedAt = f[11] is { } finished ? FromMicroseconds(ParseLong(finished)) : null,
        ClaimedBy = f[12],
        Errors = f[13] is { } errors ? JobErrors.Parse(errors) : [],
    };

    private static void AddTokens(List<RedisValue> arguments, IReadOnlyList<JobToken> jobs)
    {
        foreach (var job in jobs)
        {
            arguments.Add(Id(job.Id));
            arguments.Add(Id(job.Lease));
        }
    }

    private static string Id(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static long ParseLong(ReadOnlySpan<char> value) => long.Parse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);

    // The scripts read '' as none and drop the leading '+' of a value, so an empty string stays distinct from none.
    private static RedisValue Optional(string? value) => value is null ? string.Empty : "+" + value;

    private static string Microseconds(DateTimeOffset at) =>
        ((at.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / TimeSpan.TicksPerMicrosecond).ToString(CultureInfo.InvariantCulture);

    private static DateTimeOffset FromMicroseconds(long microseconds) => DateTimeOffset.UnixEpoch.AddTicks(microseconds * TimeSpan.TicksPerMicrosecond);

    // The time as a JSON string, written as the error history writes it, for the LeaseExpired entries promote appends.
    private static string JsonString(DateTimeOffset at)
    {
        var buffer = new ArrayBufferWriter<byte>(48);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStringValue(at);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private Task<RedisResult> EvaluateAsync(RedisScript script, RedisKey key, RedisValue[] arguments, CancellationToken cancellationToken) =>
        script.EvaluateAsync(_connection.GetDatabase(), [key], arguments, timeout: null, cancellationToken);
}
