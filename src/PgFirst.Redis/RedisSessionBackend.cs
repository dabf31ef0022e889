using System.Globalization;
using PgFirst.Core;
using PgFirst.Redis.Internal;
using PgSessions;
using StackExchange.Redis;

namespace PgFirst.Redis;

/// <summary>
/// The Redis backend of PgSessions: the same <see cref="IPgSessionBackend"/> semantics as the PostgreSQL one (lazy
/// touch, version-checked writes, key regeneration, list and revoke by user) on the shared
/// <see cref="IConnectionMultiplexer"/>, each operation one Lua script (one round trip, atomic).
/// </summary>
/// <remarks>
/// <para>
/// A session is one hash, <c>{KeyPrefix}s:{tenant length}:{tenant}:k:{key hash in hex}</c>, beside two indexes in the
/// same tenant scope: <c>…:i:{session id}</c> (its key hash, to revoke it by id) and <c>…:u:{user id}</c> (a set of the
/// key hashes bound to that user). Liveness is decided by the <c>now</c> the caller passes (the application's
/// <see cref="TimeProvider"/>), never by Redis's clock. Redis TTLs only clean up: every key lives for the remaining
/// lifetime of its longest-lived session plus one minute, refreshed on every touch and write, so Redis frees dead
/// sessions on its own and no cleanup task runs. Times are stored in microseconds, as PostgreSQL does.
/// </para>
/// <para>
/// The scripts name the index keys they compute, so this backend needs a single Redis primary (or a proxy that routes
/// by the first key), not Redis Cluster; and Redis 7.0 or later.
/// </para>
/// <para>
/// Failure policy: propagate. Redis errors (<see cref="RedisConnectionException"/>, <see cref="RedisTimeoutException"/>,
/// <see cref="RedisServerException"/>) and cancellation reach the caller, the session store, which logs and wraps them.
/// Asynchronous operations are bounded by the caller's token and the multiplexer's <c>asyncTimeout</c>,
/// <see cref="Load"/> by its <c>syncTimeout</c>. The constructor does no I/O.
/// </para>
/// </remarks>
public sealed class RedisSessionBackend : IPgSessionBackend
{
    // Added to every TTL, so app servers whose clocks differ a little never lose a live session to Redis.
    private const long ExpiryMarginMilliseconds = 60_000;

    private const int KeyHashLength = 32;

    private readonly IConnectionMultiplexer _connection;
    private readonly string _keyPrefix;

    /// <summary>
    /// Initializes a new instance of the <see cref="RedisSessionBackend"/> class. Usually resolved from DI (keyed
    /// <see cref="PgFirstBackend.Redis"/>) after <c>services.AddPgFirst(...).AddRedis(...)</c>. Does no I/O.
    /// </summary>
    /// <param name="connection">The shared Redis connection; not disposed by the backend.</param>
    /// <param name="options">The Redis options (key prefix).</param>
    /// <exception cref="ArgumentException">The key prefix is empty.</exception>
    public RedisSessionBackend(IConnectionMultiplexer connection, PgFirstRedisOptions options)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.KeyPrefix, nameof(options));
        _connection = connection;
        _keyPrefix = options.KeyPrefix + "s:";
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentException">The key hash is not 32 bytes or the tenant id is invalid.</exception>
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<PgSessionRecord?> LoadAsync(PgSessionLoadRequest request, CancellationToken cancellationToken)
    {
        var (keys, arguments) = LoadCommand(request);
        cancellationToken.ThrowIfCancellationRequested();
        var result = await EvaluateAsync(RedisSessionScripts.Load, keys, arguments, cancellationToken).ConfigureAwait(false);
        return ReadRecord(result, request);
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentException">The key hash is not 32 bytes or the tenant id is invalid.</exception>
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public PgSessionRecord? Load(PgSessionLoadRequest request)
    {
        var (keys, arguments) = LoadCommand(request);
        return ReadRecord(Evaluate(RedisSessionScripts.Load, keys, arguments), request);
    }

    /// <inheritdoc />
    /// <remarks>
    /// A session still stored under the key hash but no longer live at <see cref="PgSessionRecord.LastSeenAt"/> is replaced.
    /// </remarks>
    /// <exception cref="ArgumentException">The key hash is not 32 bytes or the tenant id is invalid.</exception>
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<bool> InsertAsync(PgSessionRecord record, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        ValidateKeyHash(record.KeyHash, nameof(record));
        PgTenantId.Validate(record.TenantId, nameof(record));
        ArgumentNullException.ThrowIfNull(record.Data, nameof(record));
        cancellationToken.ThrowIfCancellationRequested();
        var scope = Scope(record.TenantId);
        RedisKey[] keys = [SessionKey(scope, record.KeyHash)];
        RedisValue[] arguments =
        [
            scope,
            Microseconds(record.LastSeenAt),
            ExpiryMarginMilliseconds,
            Id(record.SessionId),
            Optional(record.UserId),
            record.Data,
            Microseconds(record.CreatedAt),
            Microseconds(record.IdleTimeout),
            Microseconds(record.AbsoluteExpiresAt),
            Optional(record.ClientIp),
            Optional(record.UserAgent),
        ];
        var result = await EvaluateAsync(RedisSessionScripts.Insert, keys, arguments, cancellationToken).ConfigureAwait(false);
        return (long)result == 1;
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentException">A key hash is not 32 bytes or the tenant id is invalid.</exception>
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<long?> UpdateAsync(PgSessionUpdate update, CancellationToken cancellationToken)
    {
        var (scope, keys) = UpdateKeys(update, cancellationToken);
        RedisValue[] arguments =
        [
            scope,
            Microseconds(update.Now),
            ExpiryMarginMilliseconds,
            update.ExpectedVersion,
            update.Data,
            Optional(update.UserId),
            Microseconds(update.IdleTimeout),
            Microseconds(update.AbsoluteExpiresAt),
        ];
        var result = await EvaluateAsync(RedisSessionScripts.Update, keys, arguments, cancellationToken).ConfigureAwait(false);
        return result.IsNull ? null : (long)result;
    }

    /// <inheritdoc />
    /// <remarks>
    /// One Lua script: atomic in Redis, so a concurrent commit of the same session runs wholly before or after this
    /// one, and this one merges its changes into whatever that left. <see cref="PgSessionOptions.CommitDurability"/>
    /// does not apply: Redis persists as its server is configured.
    /// </remarks>
    /// <exception cref="ArgumentException">A key hash is not 32 bytes or the tenant id is invalid.</exception>
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<PgSessionCommitResult> CommitAsync(PgSessionUpdate update, PgSessionChanges changes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(changes);
        var (scope, keys) = UpdateKeys(update, cancellationToken);
        var arguments = new RedisValue[14 + (2 * changes.Items.Count)];
        arguments[0] = scope;
        arguments[1] = Microseconds(update.Now);
        arguments[2] = ExpiryMarginMilliseconds;
        arguments[3] = update.ExpectedVersion;
        arguments[4] = update.Data;
        arguments[5] = Optional(update.UserId);
        arguments[6] = Microseconds(update.IdleTimeout);
        arguments[7] = Microseconds(update.AbsoluteExpiresAt);
        arguments[8] = changes.Cleared ? "1" : "0";
        arguments[9] = changes.BindsUser ? "1" : "0";
        arguments[10] = changes.IdleTimeout is { } idle ? Microseconds(idle) : string.Empty;
        arguments[11] = changes.AbsoluteLifetime is { } absolute ? Microseconds(absolute) : string.Empty;
        arguments[12] = changes.MaxDataBytes;
        arguments[13] = changes.Items.Count;
        for (var i = 0; i < changes.Items.Count; i++)
        {
            var (key, value) = changes.Items[i];
            arguments[14 + (2 * i)] = key;
            if (value is null)
            {
                arguments[15 + (2 * i)] = "-";
            }
            else
            {
                var prefixed = new byte[value.Length + 1];
                prefixed[0] = (byte)'+';
                value.CopyTo(prefixed, 1);
                arguments[15 + (2 * i)] = prefixed;
            }
        }

        var result = (RedisResult[])(await EvaluateAsync(RedisSessionScripts.Commit, keys, arguments, cancellationToken).ConfigureAwait(false))!;
        switch ((int)result[0])
        {
            case 0:
                return new PgSessionCommitResult { Status = PgSessionCommitStatus.Written, Version = (long)result[1] };
            case 1:
                var version = (long)result[1];
                var idleTimeout = TimeSpan.FromMicroseconds((long)result[4]);
                return new PgSessionCommitResult
                {
                    Status = PgSessionCommitStatus.Merged,
                    Version = version,
                    Session = new PgSessionRecord
                    {
                        KeyHash = update.NewKeyHash,
                        TenantId = update.TenantId,
                        SessionId = Guid.ParseExact((string)result[6]!, "N"),
                        UserId = (string?)result[3],
                        Version = version,
                        Data = (byte[]?)result[2] ?? [],
                        CreatedAt = FromMicroseconds((long)result[7]),
                        LastSeenAt = FromMicroseconds((long)result[8]),
                        IdleTimeout = idleTimeout,
                        AbsoluteExpiresAt = FromMicroseconds((long)result[5]),
                        ClientIp = (string?)result[9],
                        UserAgent = (string?)result[10],
                    },
                };
            case 2:
                return new PgSessionCommitResult { Status = PgSessionCommitStatus.Ended };
            default:
                return new PgSessionCommitResult { Status = PgSessionCommitStatus.TooLarge, DataBytes = (int)result[1] };
        }
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentException">The tenant id is invalid.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="userId"/> is <see langword="null"/>.</exception>
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<IReadOnlyList<PgSessionInfo>> ListAsync(
        string tenantId,
        string userId,
        DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        PgTenantId.Validate(tenantId, nameof(tenantId));
        ArgumentNullException.ThrowIfNull(userId);
        cancellationToken.ThrowIfCancellationRequested();
        var scope = Scope(tenantId);
        RedisKey[] keys = [UserKey(scope, userId)];
        RedisValue[] arguments = [scope, userId, Microseconds(now)];
        var list = await EvaluateAsync(RedisSessionScripts.List, keys, arguments, cancellationToken).ConfigureAwait(false);
        var result = (RedisResult[])list!;
        var sessions = new PgSessionInfo[result.Length];
        for (var i = 0; i < result.Length; i++)
        {
            var fields = (RedisResult[])result[i]!;
            var lastSeenAt = FromMicroseconds((long)fields[2]);
            var idleTimeout = TimeSpan.FromMicroseconds((long)fields[3]);
            var absoluteExpiresAt = FromMicroseconds((long)fields[4]);
            sessions[i] = new PgSessionInfo(
                Guid.ParseExact((string)fields[0]!, "N"),
                userId,
                FromMicroseconds((long)fields[1]),
                lastSeenAt,
                ExpiresAt(lastSeenAt, idleTimeout, absoluteExpiresAt),
                absoluteExpiresAt,
                (string?)fields[5],
                (string?)fields[6]);
        }

        // ORDER BY created_at DESC, session_id, as on PostgreSQL: Guid.CompareTo follows the uuid byte order.
        Array.Sort(sessions, static (x, y) =>
        {
            var byCreated = y.CreatedAt.CompareTo(x.CreatedAt);
            return byCreated != 0 ? byCreated : x.SessionId.CompareTo(y.SessionId);
        });
        return sessions;
    }

    /// <inheritdoc />
    /// <remarks>A session that is no longer live but still stored counts as deleted.</remarks>
    /// <exception cref="ArgumentException">The tenant id is invalid.</exception>
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<bool> RevokeAsync(string tenantId, Guid sessionId, CancellationToken cancellationToken)
    {
        PgTenantId.Validate(tenantId, nameof(tenantId));
        cancellationToken.ThrowIfCancellationRequested();
        var scope = Scope(tenantId);
        var id = Id(sessionId);
        RedisKey[] keys = [scope + "i:" + id];
        RedisValue[] arguments = [scope, id];
        var result = await EvaluateAsync(RedisSessionScripts.Revoke, keys, arguments, cancellationToken).ConfigureAwait(false);
        return (long)result == 1;
    }

    /// <inheritdoc />
    /// <remarks>Sessions that are no longer live but still stored are deleted and counted too.</remarks>
    /// <exception cref="ArgumentException">The tenant id is invalid.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="userId"/> is <see langword="null"/>.</exception>
    /// <exception cref="RedisException">Redis is unreachable, timed out or failed the script.</exception>
    public async ValueTask<int> RevokeAllAsync(string tenantId, string userId, Guid? exceptSessionId, CancellationToken cancellationToken)
    {
        PgTenantId.Validate(tenantId, nameof(tenantId));
        ArgumentNullException.ThrowIfNull(userId);
        cancellationToken.ThrowIfCancellationRequested();
        var scope = Scope(tenantId);
        RedisKey[] keys = [UserKey(scope, userId)];
        RedisValue[] arguments = [scope, userId, exceptSessionId is { } except ? Id(except) : string.Empty];
        var result = await EvaluateAsync(RedisSessionScripts.RevokeAll, keys, arguments, cancellationToken).ConfigureAwait(false);
        return (int)result;
    }

    /// <inheritdoc />
    /// <remarks>Sends a <c>PING</c>; Redis has no schema to check.</remarks>
    /// <exception cref="RedisException">Redis is unreachable or timed out.</exception>
    public async ValueTask PingAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        await _connection.GetDatabase().PingAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    // The checks and keys of both writes: the session's key and the key it lives under from now on.
    private (string Scope, RedisKey[] Keys) UpdateKeys(PgSessionUpdate update, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(update);
        ValidateKeyHash(update.KeyHash, nameof(update));
        ValidateKeyHash(update.NewKeyHash, nameof(update));
        PgTenantId.Validate(update.TenantId, nameof(update));
        ArgumentNullException.ThrowIfNull(update.Data, nameof(update));
        cancellationToken.ThrowIfCancellationRequested();
        var scope = Scope(update.TenantId);
        return (scope, [SessionKey(scope, update.KeyHash), SessionKey(scope, update.NewKeyHash)]);
    }

    private static void ValidateKeyHash(byte[] keyHash, string paramName)
    {
        ArgumentNullException.ThrowIfNull(keyHash, paramName);
        if (keyHash.Length != KeyHashLength)
        {
            throw new ArgumentException($"A session key hash is {KeyHashLength} bytes (SHA-256), not {keyHash.Length}.", paramName);
        }
    }

    // The tenant's length comes first, so tenant "a" with user "b:c" and tenant "a:b" with user "c" never share a key.
    private string Scope(string tenantId) =>
        string.Concat(_keyPrefix, tenantId.Length.ToString(CultureInfo.InvariantCulture), ":", tenantId, ":");

    private static RedisKey SessionKey(string scope, byte[] keyHash) => scope + "k:" + Convert.ToHexStringLower(keyHash);

    private static RedisKey UserKey(string scope, string userId) => scope + "u:" + userId;

    private static string Id(Guid sessionId) => sessionId.ToString("N");

    // The scripts read '' as none and drop the leading '+' of a value, so an empty string stays distinct from none.
    private static RedisValue Optional(string? value) => value is null ? string.Empty : "+" + value;

    private (RedisKey[] Keys, RedisValue[] Arguments) LoadCommand(PgSessionLoadRequest request)
    {
        ValidateKeyHash(request.KeyHash, nameof(request));
        PgTenantId.Validate(request.TenantId, nameof(request));
        var scope = Scope(request.TenantId);
        return (
            [SessionKey(scope, request.KeyHash)],
            [scope, Microseconds(request.Now), Microseconds(request.TouchInterval), ExpiryMarginMilliseconds]);
    }

    private static PgSessionRecord? ReadRecord(RedisResult result, PgSessionLoadRequest request)
    {
        if (result.IsNull)
        {
            return null;
        }

        var fields = (RedisResult[])result!;
        return new PgSessionRecord
        {
            KeyHash = request.KeyHash,
            TenantId = request.TenantId,
            SessionId = Guid.ParseExact((string)fields[0]!, "N"),
            UserId = (string?)fields[1],
            Version = (long)fields[2],
            Data = (byte[]?)fields[3] ?? [],
            CreatedAt = FromMicroseconds((long)fields[4]),
            LastSeenAt = FromMicroseconds((long)fields[5]),
            IdleTimeout = TimeSpan.FromMicroseconds((long)fields[6]),
            AbsoluteExpiresAt = FromMicroseconds((long)fields[7]),
            ClientIp = (string?)fields[8],
            UserAgent = (string?)fields[9],
        };
    }

    // The same rule as PgSessionRecord.ExpiresAt, without overflowing when the idle timeout reaches past year 9999.
    private static DateTimeOffset ExpiresAt(DateTimeOffset lastSeenAt, TimeSpan idleTimeout, DateTimeOffset absoluteExpiresAt) =>
        idleTimeout < absoluteExpiresAt - lastSeenAt ? lastSeenAt + idleTimeout : absoluteExpiresAt;

    // Microseconds, as PostgreSQL stores them: the finer ticks are dropped (towards the past), so both backends agree.
    private static long Microseconds(DateTimeOffset at)
    {
        var (quotient, remainder) = Math.DivRem(at.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks, TimeSpan.TicksPerMicrosecond);
        return remainder < 0 ? quotient - 1 : quotient;
    }

    private static long Microseconds(TimeSpan span) => span.Ticks / TimeSpan.TicksPerMicrosecond;

    private static DateTimeOffset FromMicroseconds(long microseconds) =>
        DateTimeOffset.UnixEpoch.AddTicks(microseconds * TimeSpan.TicksPerMicrosecond);

    private RedisResult Evaluate(RedisScript script, RedisKey[] keys, RedisValue[] arguments) =>
        script.Evaluate(_connection.GetDatabase(), keys, arguments);

    private Task<RedisResult> EvaluateAsync(RedisScript script, RedisKey[] keys, RedisValue[] arguments, CancellationToken cancellationToken) =>
        script.EvaluateAsync(_connection.GetDatabase(), keys, arguments, timeout: null, cancellationToken);
}
