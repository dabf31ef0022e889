using System.Diagnostics.CodeAnalysis;
using System.Net.Sockets;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace PgSessions.Internal;

// One request's view of one session. Loads once (one round trip, none for a brand-new key), records every change as
// an operation, and commits only when something changed: an insert for a new session, otherwise one commit that
// carries both the session as this request would store it and the request's own net changes; when a concurrent
// request of the same session committed first, the store applies those changes to the session as it is (one round
// trip, no retry), so no change of another request is lost.
internal sealed class PgSession : ISession
{
    private const int MaxUserAgentLength = 512;
    private const int MaxUserIdLength = 256;

    private readonly PgSessionStore _store;
    private readonly string _tenantId;
    private readonly TimeSpan _ioTimeout;
    private readonly List<SessionOperation> _operations = [];

    private string _key;
    private byte[] _keyHash;
    private bool _keyIsNew;
    private string? _cookieWrittenFor;

    private bool _loaded;
    private byte[]? _storedKeyHash;
    private long _version;
    private Guid _sessionId;
    private DateTimeOffset _createdAt;
    private string? _userId;
    private TimeSpan _idleTimeout;
    private DateTimeOffset _absoluteExpiresAt;
    private SessionData _data = new();
    private bool _ended;
    private bool _commitBeforeResponseRequested;

    public PgSession(PgSessionStore store, string key, string tenantId, TimeSpan ioTimeout, bool isNewSessionKey)
    {
        _store = store;
        _tenantId = tenantId;
        _ioTimeout = ioTimeout;
        _key = key;
        _keyHash = SessionKeys.Hash(key);
        _keyIsNew = isNewSessionKey;
    }

    public bool IsAvailable
    {
        get
        {
            try
            {
                Load();
                return true;
            }
            catch (PgSessionException)
            {
                return false;
            }
        }
    }

    public string Id
    {
        get
        {
            Load();
            return _sessionId.ToString();
        }
    }

    public IEnumerable<string> Keys
    {
        get
        {
            Load();
            return _data.Keys.ToArray();
        }
    }

    internal string? UserId
    {
        get
        {
            Load();
            return _userId;
        }
    }

    internal bool IsStored => _storedKeyHash is not null;

    public bool TryGetValue(string key, [NotNullWhen(true)] out byte[]? value)
    {
        ArgumentNullException.ThrowIfNull(key);
        Load();
        return _data.TryGetValue(key, out value);
    }

    public void Set(string key, byte[] value)
    {
        ValidateKey(key);
        ArgumentNullException.ThrowIfNull(value);
        Load();
        var size = _data.SizeAfterSet(key, value.Length);
        if (size > _store.Options.MaxSessionBytes)
        {
            throw new ArgumentException(
                $"Setting '{Describe(key)}' ({value.Length} bytes) would grow the session to {size} bytes, over PgSessions:MaxSessionBytes ({_store.Options.MaxSessionBytes}). Nothing was changed.",
                nameof(value));
        }

        EnsureCookie();
        var copy = value.ToArray();
        _data.Set(key, copy);
        Record(new(SessionOperationKind.Set, key, copy));
    }

    public void Remove(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        Load();
        if (_data.Remove(key))
        {
            Record(new(SessionOperationKind.Remove, key));
        }
    }

    public void Clear()
    {
        Load();
        if (_data.Count > 0)
        {
            _data.Clear();
            Record(new(SessionOperationKind.Clear));
        }
    }

    public async Task LoadAsync(CancellationToken cancellationToken = default)
    {
        if (_loaded)
        {
            return;
        }

        if (_keyIsNew)
        {
            // A key the middleware just made names no stored session: nothing to read.
            Loaded(null, async: true, started: 0);
            return;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_ioTimeout);
        var started = PgSessionsMetrics.Start();
        PgSessionRecord? record;
        try
        {
            record = await _store.Backend.LoadAsync(LoadRequest(), timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested && ex is not PgSessionException)
        {
            throw LoadFailed(ex, async: true, started, timeout.IsCancellationRequested);
        }

        Loaded(record, async: true, started);
    }

    public async Task CommitAsync(CancellationToken cancellationToken = default)
    {
        if (!_loaded || _operations.Count == 0 || _ended)
        {
            return;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_ioTimeout);
        var started = PgSessionsMetrics.Start();
        try
        {
            var result = await CommitCoreAsync(timeout.Token).ConfigureAwait(false);
            if (result is not null)
            {
                _store.Metrics.Committed(result, started);
            }
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            _store.Metrics.Committed("error", started);
            var error = ex as PgSessionException ?? new PgSessionException(
                timeout.IsCancellationRequested
                    ? $"Committing the session timed out after {_ioTimeout} (SessionOptions.IOTimeout); its changes were not stored."
                    : "Committing the session failed; its changes were not stored. See the inner exception.",
                ex);
            _store.LogCommitFailed(error);
            throw error;
        }
    }

    public async Task RegenerateIdAsync(CancellationToken cancellationToken)
    {
        await LoadAsync(cancellationToken).ConfigureAwait(false);
        var context = RequireHttpContext();
        var key = SessionKeys.NewKey();
        _store.Cookie.Write(context, key);
        _cookieWrittenFor = key;
        _key = key;
        _keyHash = SessionKeys.Hash(key);
        _store.LogIdRegenerated();
        if (IsStored)
        {
            // Move the stored session to the new key now, so the old cookie stops working at once.
            _operations.Add(new(SessionOperationKind.Regenerate));
            await CommitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task BindUserAsync(string? userId, CancellationToken cancellationToken)
    {
        if (userId is not null && (userId.Length == 0 || userId.Length > MaxUserIdLength))
        {
            throw new ArgumentException($"A user id is 1 to {MaxUserIdLength} characters.", nameof(userId));
        }

        await LoadAsync(cancellationToken).ConfigureAwait(false);
        if (userId is not null || IsStored)
        {
            EnsureCookie();
        }

        _userId = userId;
        _operations.Add(new(SessionOperationKind.BindUser, Key: userId));
        await CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    public void SetLifetime(TimeSpan? idleTimeout, TimeSpan? absoluteLifetime)
    {
        PgSessionOptionsValidator.ValidateLifetime(idleTimeout, nameof(idleTimeout));
        PgSessionOptionsValidator.ValidateLifetime(absoluteLifetime, nameof(absoluteLifetime));
        Load();
        EnsureCookie();
        var operation = new SessionOperation(SessionOperationKind.SetLifetime, IdleTimeout: idleTimeout, AbsoluteLifetime: absoluteLifetime);
        ApplyLifetime(operation);
        Record(operation);
    }

    // Keeps a change for the commit and, the first time, asks for a commit just before the response starts
    // (PgSessionOptions.CommitBeforeResponse), where a failure can still fail the request.
    private void Record(SessionOperation operation)
    {
        _operations.Add(operation);
        if (_commitBeforeResponseRequested || !_store.Options.CommitBeforeResponse || _store.HttpContext is not { } context || context.Response.HasStarted)
        {
            return;
        }

        _commitBeforeResponseRequested = true;
        context.Response.OnStarting(static state => ((PgSession)state).CommitBeforeResponseAsync(), this);
    }

    // A failure here fails the request (500), so the changes are dropped: the client is never told "failed" for a
    // change that the middleware's commit at the end then stores after all.
    private async Task CommitBeforeResponseAsync()
    {
        try
        {
            await CommitAsync().ConfigureAwait(false);
        }
        catch
        {
            _operations.Clear();
            throw;
        }
    }

    private static string Describe(string key) => key.Length > 40 ? key[..40] + "…" : key;

    private static void ValidateKey(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (key.Length == 0)
        {
            throw new ArgumentException("A session key is not empty.", nameof(key));
        }

        if (key.Length > PgSessionOptions.MaxKeyLength)
        {
            throw new ArgumentException($"A session key is at most {PgSessionOptions.MaxKeyLength} characters; '{Describe(key)}' has {key.Length}. Nothing was changed.", nameof(key));
        }
    }

    private PgSessionLoadRequest LoadRequest() => new(_storedKeyHash ?? _keyHash, _tenantId, _store.Now(), _store.Options.TouchInterval);

    private void Load()
    {
        if (_loaded)
        {
            return;
        }

        if (_keyIsNew)
        {
            Loaded(null, async: false, started: 0);
            return;
        }

        if (_store.Options.RequireAsyncLoad)
        {
            throw new InvalidOperationException(
                "The session was used before it was loaded. Call 'await HttpContext.Session.LoadAsync()' first " +
                "(PgSessions:RequireAsyncLoad forbids loading it with blocking I/O).");
        }

        _store.LogSynchronousLoad();
        var started = PgSessionsMetrics.Start();
        PgSessionRecord? record;
        try
        {
            record = _store.Backend.Load(LoadRequest());
        }
        catch (Exception ex) when (ex is not PgSessionException)
        {
            throw LoadFailed(ex, async: false, started, timedOut: false);
        }

        Loaded(record, async: false, started);
    }

    private PgSessionException LoadFailed(Exception ex, bool async, long started, bool timedOut)
    {
        _store.Metrics.Loaded("error", async, started);
        var error = new PgSessionException(
            timedOut
                ? $"Loading the session timed out after {_ioTimeout} (SessionOptions.IOTimeout)."
                : "Loading the session failed: the session store is unavailable. See the inner exception.",
            ex);
        _store.LogLoadFailed(error);
        return error;
    }

    private void Loaded(PgSessionRecord? record, bool async, long started)
    {
        if (record is null)
        {
            _store.Metrics.Loaded(_keyIsNew ? "new" : "not_found", async, started);
            if (!_keyIsNew)
            {
                // The cookie names no live session. Its key is never reused: a write starts a session under a new key,
                // so a revoked or stolen cookie cannot come back to life.
                _store.LogUnknownSession();
                _key = SessionKeys.NewKey();
                _keyHash = SessionKeys.Hash(_key);
                _keyIsNew = true;
            }

            var now = _store.Now();
            _sessionId = Guid.NewGuid();
            _createdAt = now;
            _idleTimeout = _store.Options.IdleTimeout;
            _absoluteExpiresAt = now + _store.Options.AbsoluteLifetime;
            _data = new SessionData();
        }
        else
        {
            _store.Metrics.Loaded("found", async, started);
            Adopt(record);
        }

        _loaded = true;
    }

    private void Adopt(PgSessionRecord record)
    {
        _storedKeyHash = record.KeyHash;
        _version = record.Version;
        _sessionId = record.SessionId;
        _createdAt = record.CreatedAt;
        _userId = record.UserId;
        _idleTimeout = record.IdleTimeout;
        _absoluteExpiresAt = record.AbsoluteExpiresAt;
        _data = SessionData.TryDeserialize(record.Data, out var data) ? data : new SessionData();
    }

    private void ApplyLifetime(SessionOperation operation)
    {
        if (operation.IdleTimeout is { } idle)
        {
            _idleTimeout = idle;
        }

        if (operation.AbsoluteLifetime is { } absolute)
        {
            _absoluteExpiresAt = _createdAt + absolute;
        }
    }

    // Returns the metric result, or null when nothing reached the store.
    private async Task<string?> CommitCoreAsync(CancellationToken cancellationToken)
    {
        if (!IsStored)
        {
            if (_data.Count == 0 && _userId is null)
            {
                // A new session that holds nothing is never stored.
                _operations.Clear();
                return null;
            }

            var context = _store.HttpContext;
            var record = new PgSessionRecord
            {
                KeyHash = _keyHash,
                TenantId = _tenantId,
                SessionId = _sessionId,
                UserId = _userId,
                Version = 1,
                Data = _data.Serialize(),
                CreatedAt = _createdAt,
                LastSeenAt = _store.Now(),
                IdleTimeout = _idleTimeout,
                AbsoluteExpiresAt = _absoluteExpiresAt,
                ClientIp = ClientIp(context),
                UserAgent = UserAgent(context),
            };
            if (await _store.Backend.InsertAsync(record, cancellationToken).ConfigureAwait(false))
            {
                _storedKeyHash = _keyHash;
                _version = 1;
                _operations.Clear();
                return "inserted";
            }

            // Another request stored this very key first (two first requests of one new cookie): merge into it.
            _storedKeyHash = _keyHash;
            _version = 0;
        }

        var changes = Changes();
        var result = await _store.Backend.CommitAsync(
            new PgSessionUpdate
            {
                KeyHash = _storedKeyHash!,
                NewKeyHash = _keyHash,
                TenantId = _tenantId,
                ExpectedVersion = _version,
                Data = _data.Serialize(),
                UserId = _userId,
                IdleTimeout = _idleTimeout,
                AbsoluteExpiresAt = _absoluteExpiresAt,
                Now = _store.Now(),
                TouchInterval = _store.Options.TouchInterval,
            },
            changes,
            cancellationToken).ConfigureAwait(false);
        switch (result.Status)
        {
            case PgSessionCommitStatus.Written:
                _storedKeyHash = _keyHash;
                _version = result.Version;
                _operations.Clear();
                return "updated";
            case PgSessionCommitStatus.Merged:
                // This request's view becomes the session as stored, so a later commit of the same request starts from it.
                var operations = _operations.Count;
                Adopt(result.Session!);
                _operations.Clear();
                _store.Metrics.ConflictMerged();
                _store.LogConflictMerged(operations, result.Version);
                return "merged";
            case PgSessionCommitStatus.Ended:
                // Revoked, expired or regenerated by another request meanwhile: never bring it back.
                _store.LogSessionEnded(_operations.Count);
                _ended = true;
                _operations.Clear();
                return "ended";
            default:
                throw new PgSessionException(
                    $"Committing the session would grow it to {result.DataBytes} bytes once merged with a concurrent request's changes, over PgSessions:MaxSessionBytes ({_store.Options.MaxSessionBytes}); nothing was stored.");
        }
    }

    // The request's net changes: for each key it set or removed, the value it left (null: removed); after a Clear, only
    // the flag, since the whole session is then what the request built (its serialized data).
    private PgSessionChanges Changes()
    {
        var cleared = false;
        var bindsUser = false;
        TimeSpan? idle = null;
        TimeSpan? absolute = null;
        var touched = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var operation in _operations)
        {
            switch (operation.Kind)
            {
                case SessionOperationKind.Set or SessionOperationKind.Remove:
                    if (seen.Add(operation.Key!))
                    {
                        touched.Add(operation.Key!);
                    }

                    break;
                case SessionOperationKind.Clear:
                    cleared = true;
                    touched.Clear();
                    seen.Clear();
                    break;
                case SessionOperationKind.BindUser:
                    bindsUser = true;
                    break;
                case SessionOperationKind.SetLifetime:
                    idle = operation.IdleTimeout ?? idle;
                    absolute = operation.AbsoluteLifetime ?? absolute;
                    break;
            }
        }

        var items = new KeyValuePair<string, byte[]?>[cleared ? 0 : touched.Count];
        for (var i = 0; i < items.Length; i++)
        {
            items[i] = new(touched[i], _data.TryGetValue(touched[i], out var value) ? value : null);
        }

        return new PgSessionChanges
        {
            Cleared = cleared,
            Items = items,
            BindsUser = bindsUser,
            IdleTimeout = idle,
            AbsoluteLifetime = absolute,
            MaxDataBytes = _store.Options.MaxSessionBytes,
        };
    }

    private void EnsureCookie()
    {
        if (!_keyIsNew || _cookieWrittenFor == _key)
        {
            return;
        }

        _store.Cookie.Write(RequireHttpContext(), _key);
        _cookieWrittenFor = _key;
    }

    private HttpContext RequireHttpContext() => _store.HttpContext ?? throw new InvalidOperationException(
        "A PgSessions session can be established or regenerated only during its HTTP request.");

    private static string? ClientIp(HttpContext? context) =>
        context?.Connection.RemoteIpAddress is { } address
            ? (address.AddressFamily == AddressFamily.InterNetworkV6 && address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address).ToString()
            : null;

    private static string? UserAgent(HttpContext? context)
    {
        var agent = context?.Request.Headers.UserAgent.ToString();
        return string.IsNullOrEmpty(agent) ? null : agent.Length > MaxUserAgentLength ? agent[..MaxUserAgentLength] : agent;
    }
}
