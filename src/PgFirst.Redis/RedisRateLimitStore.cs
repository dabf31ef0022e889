using System.Globalization;
using PgFirst.Redis.Internal;
using PgRateLimit;
using StackExchange.Redis;

namespace PgFirst.Redis;

/// <summary>
/// The Redis store of PgRateLimit: the same fixed-window decisions as <see cref="PostgresRateLimitStore"/>, each one
/// Lua script (one round trip, atomic) on the shared <see cref="IConnectionMultiplexer"/>.
/// </summary>
/// <remarks>
/// <para>
/// Windows are aligned to the Unix epoch on the Redis server's clock (<c>TIME</c>, in microseconds), so every app
/// instance agrees on them whatever its own clock says, and <see cref="PgRateLimitDecision.WindowRemaining"/> is the
/// exact time left on that clock. A partition's counter is one hash,
/// <c>{KeyPrefix}rl:{limiter id length}:{limiter id}:{partition key}</c>, that expires one second after its window
/// ends. Each decision touches that one key only, so the store also runs on Redis Cluster.
/// </para>
/// <para>
/// Failure policy: propagate. Redis errors (<see cref="RedisConnectionException"/>, <see cref="RedisTimeoutException"/>,
/// <see cref="RedisServerException"/>) and cancellation reach the caller, where <see cref="PgFixedWindowRateLimiter"/>
/// applies its fail-open or fail-closed policy. Decisions are bounded by the caller's token and by the multiplexer's
/// <c>asyncTimeout</c>. The constructor does no I/O.
/// </para>
/// </remarks>
public sealed class RedisRateLimitStore : IPgRateLimitStore
{
    // Keeps a counter a little past its window's end, so a failover to a replica whose clock lags by less than this
    // still finds the window's count. Once the window has ended the counter is never read as current again.
    private const long ExpiryMarginMilliseconds = 1_000;

    private readonly IConnectionMultiplexer _connection;
    private readonly string _keyPrefix;

    /// <summary>
    /// Initializes a new instance of the <see cref="RedisRateLimitStore"/> class. Usually resolved from DI after
    /// <c>services.AddPgFirst(o => o.RateLimitBackend = PgFirstBackend.Redis).AddRedis(...)</c> and
    /// <c>services.AddPgRateLimiting()</c>. Does no I/O.
    /// </summary>
    /// <param name="connection">The shared Redis connection; not disposed by the store.</param>
    /// <param name="options">The Redis options (key prefix).</param>
    /// <exception cref="ArgumentException">The key prefix is empty.</exception>
    public RedisRateLimitStore(IConnectionMultiplexer connection, PgFirstRedisOptions options)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.KeyPrefix, nameof(options));
        _connection = connection;
        _keyPrefix = options.KeyPrefix + "rl:";
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentException">The limiter id or partition key is missing, the permits are negative, or
    /// the window is shorter than a millisecond.</exception>
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<PgRateLimitDecision> AcquireAsync(PgRateLimitRequest request, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(request.LimiterId, nameof(request));
        ArgumentNullException.ThrowIfNull(request.PartitionKey, nameof(request));
        if (request.Permits < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(request), request.Permits, "Permits must not be negative.");
        }

        if (request.Window < TimeSpan.FromMilliseconds(1))
        {
            throw new ArgumentOutOfRangeException(nameof(request), request.Window, "Window must be at least one millisecond.");
        }

        cancellationToken.ThrowIfCancellationRequested();
        RedisKey[] keys = [Key(request.LimiterId, request.PartitionKey)];
        RedisValue[] arguments =
        [
            request.Permits,
            request.PermitLimit,
            request.Window.Ticks / TimeSpan.TicksPerMicrosecond,
            request.CountRejected ? 1 : 0,
            ExpiryMarginMilliseconds,
        ];
        var result = (RedisResult[])(await EvaluateAsync(RedisRateLimitScripts.Acquire, keys, arguments, cancellationToken).ConfigureAwait(false))!;
        return new PgRateLimitDecision((long)result[0] == 1, (long)result[1], TimeSpan.FromMicroseconds((long)result[2]));
    }

    /// <inheritdoc />
    /// <remarks>One Lua script: the decisions <see cref="AcquireAsync"/> would make one after the other, atomically.</remarks>
    /// <exception cref="ArgumentException">The limiter id or partition key is missing, a permit count is below 1, or
    /// the window is shorter than a millisecond.</exception>
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<PgRateLimitBatchDecision> AcquireBatchAsync(PgRateLimitBatchRequest request, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(request.LimiterId, nameof(request));
        ArgumentNullException.ThrowIfNull(request.PartitionKey, nameof(request));
        ArgumentNullException.ThrowIfNull(request.Permits, nameof(request));
        if (request.Window < TimeSpan.FromMilliseconds(1))
        {
            throw new ArgumentOutOfRangeException(nameof(request), request.Window, "Window must be at least one millisecond.");
        }

        cancellationToken.ThrowIfCancellationRequested();
        RedisKey[] keys = [Key(request.LimiterId, request.PartitionKey)];
        var arguments = new RedisValue[4 + request.Permits.Count];
        arguments[0] = request.PermitLimit;
        arguments[1] = request.Window.Ticks / TimeSpan.TicksPerMicrosecond;
        arguments[2] = request.CountRejected ? 1 : 0;
        arguments[3] = ExpiryMarginMilliseconds;
        for (var i = 0; i < request.Permits.Count; i++)
        {
            if (request.Permits[i] < 1)
            {
                throw new ArgumentOutOfRangeException(nameof(request), request.Permits[i], "Each decision asks for at least one permit.");
            }

            arguments[4 + i] = request.Permits[i];
        }

        var result = (RedisResult[])(await EvaluateAsync(RedisRateLimitScripts.AcquireBatch, keys, arguments, cancellationToken).ConfigureAwait(false))!;
        var acquired = new bool[request.Permits.Count];
        for (var i = 0; i < acquired.Length; i++)
        {
            acquired[i] = (long)result[2 + i] == 1;
        }

        return new PgRateLimitBatchDecision(acquired, (long)result[0], TimeSpan.FromMicroseconds((long)result[1]));
    }

    /// <inheritdoc />
    /// <exception cref="RedisException">Redis is unreachable or timed out.</exception>
    public async ValueTask PingAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        await _connection.GetDatabase().PingAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    // The limiter id's length comes first, so limiter "a" with partition "b:k" and limiter "a:b" with partition "k"
    // never share a counter.
    private RedisKey Key(string limiterId, string partitionKey) =>
        string.Concat(_keyPrefix, limiterId.Length.ToString(CultureInfo.InvariantCulture), ":", limiterId, ":", partitionKey);

    private Task<RedisResult> EvaluateAsync(RedisScript script, RedisKey[] keys, RedisValue[] arguments, CancellationToken cancellationToken) =>
        script.EvaluateAsync(_connection.GetDatabase(), keys, arguments, timeout: null, cancellationToken);
}
