using System.Diagnostics.Metrics;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using NpgsqlTypes;
using PgFirst.Core;
using ZiggyCreatures.Caching.Fusion;
using ZiggyCreatures.Caching.Fusion.Backplane;

namespace PgFirst.FusionCache;

/// <summary>
/// A FusionCache backplane on PostgreSQL: each node LISTENs on one connection and publishes with <c>pg_notify</c>, so
/// a set, remove or expire on one node evicts the stale copy from every other node's memory level, with no Redis.
/// </summary>
/// <remarks>
/// <para>
/// Messages are FusionCache's own (<see cref="BackplaneMessage"/>), base64 in the NOTIFY payload: a key of up to about
/// 5,800 bytes fits PostgreSQL's 8,000-byte limit; a longer one makes the publish throw
/// <see cref="FusionCacheBackplaneException"/>. Publishing goes through the data source (a transaction pooler is fine);
/// the listen connection must be direct.
/// </para>
/// <para>
/// Delivery is as with FusionCache's Redis backplane: at most once, to the nodes listening at the time. When the listen
/// connection is lost the backplane reconnects with back-off and tells FusionCache (a reconnection), whose
/// auto-recovery then sends again what this node could not publish; what other nodes published while this node was
/// disconnected is not replayed, so keep the memory level's duration short (<c>Duration</c> or
/// <c>MemoryCacheDuration</c>) where a missed eviction matters.
/// </para>
/// </remarks>
public sealed partial class PgFusionBackplane : IFusionCacheBackplane, IPgNotificationHandler, IAsyncDisposable
{
    // NOTIFY payloads are at most 7,999 bytes.
    private const int MaxPayloadBytes = 7_999;

    private static readonly Meter Meter = new("PgFirst.FusionCache");
    private static readonly Counter<long> Messages = Meter.CreateCounter<long>("pgfirst.fusion.backplane.messages", "{message}", "Backplane messages published and received (pgfirst.direction = sent, received).");
    private static readonly Counter<long> Reconnects = Meter.CreateCounter<long>("pgfirst.fusion.backplane.reconnects", "{reconnect}", "Times the listen connection was lost and opened again.");

    private readonly NpgsqlDataSource _dataSource;
    private readonly string _schemaName;
    private readonly string? _listenConnectionString;
    private readonly PgPoolerMode _pooler;
    private readonly PgFusionBackplaneOptions _options;
    private readonly ILogger _logger;
    private readonly object _gate = new();
    private BackplaneSubscriptionOptions? _subscription;
    private string? _channel;
    private PgNotificationListener? _listener;
    private TaskCompletionSource _connected = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _isListening;

    /// <summary>Initializes a new instance of the <see cref="PgFusionBackplane"/> class. Does no I/O.</summary>
    /// <param name="dataSource">The data source to publish through (and, without a listen connection string, to listen on); not disposed.</param>
    /// <param name="pgFirstOptions">The shared options: the pooler mode and <c>PgFirst:ListenConnectionString</c>.</param>
    /// <param name="options">The backplane options, or <see langword="null"/> for the defaults.</param>
    /// <param name="logger">The logger, or <see langword="null"/>.</param>
    /// <exception cref="PgFirstPoolerException">Behind a transaction pooler with no direct listen connection string.</exception>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public PgFusionBackplane(NpgsqlDataSource dataSource, PgFirstOptions pgFirstOptions, PgFusionBackplaneOptions? options = null, ILogger<PgFusionBackplane>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(pgFirstOptions);
        _options = options ?? new PgFusionBackplaneOptions();
        _options.Validate();
        var listen = string.IsNullOrWhiteSpace(_options.ListenConnectionString) ? pgFirstOptions.ListenConnectionString : _options.ListenConnectionString;
        if (string.IsNullOrWhiteSpace(listen) && pgFirstOptions.Pooler == PgPoolerMode.Transaction)
        {
            throw new PgFirstPoolerException(
                $"{PgPooler.SettingName} is Transaction and no listen connection string is set: a LISTEN behind a transaction " +
                "pooler hears nothing once its transaction ends. Set PgFirst:ListenConnectionString (or " +
                "PgFusionBackplaneOptions.ListenConnectionString) to a direct connection.");
        }

        _dataSource = dataSource;
        _schemaName = pgFirstOptions.SchemaName;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _listenConnectionString = listen;
        _pooler = pgFirstOptions.Pooler;
    }

    /// <summary>Gets a value indicating whether the listen connection is open and LISTENing.</summary>
    public bool IsListening => _isListening;

    /// <summary>Gets the PostgreSQL backend pid of the listen connection, or 0 when not listening (for operators: <c>pg_stat_activity</c>).</summary>
    public int ListenerProcessId => _isListening ? Volatile.Read(ref _listener)?.ProcessId ?? 0 : 0;

    /// <summary>Gets the NOTIFY channel, once subscribed: the prefix and a hash of the PgFirst schema and FusionCache's channel name.</summary>
    public string? Channel => _channel;

    /// <summary>Waits until the listen connection is LISTENing (the first time, or again after it was lost).</summary>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes when listening.</returns>
    public Task WaitUntilListeningAsync(CancellationToken cancellationToken = default) =>
        _isListening ? Task.CompletedTask : Volatile.Read(ref _connected).Task.WaitAsync(cancellationToken);

    /// <inheritdoc />
#pragma warning disable VSTHRD002 // FusionCache's synchronous contract; the listener runs on the thread pool, so nothing here waits on this thread.
    public void Subscribe(BackplaneSubscriptionOptions options) => SubscribeAsync(options).AsTask().GetAwaiter().GetResult();

    /// <inheritdoc />
    public async ValueTask SubscribeAsync(BackplaneSubscriptionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.ChannelName, nameof(options));
        lock (_gate)
        {
            if (_subscription is not null)
            {
                throw new InvalidOperationException("This backplane is already subscribed: one backplane serves one FusionCache instance.");
            }

            _subscription = options;
            _channel = ChannelFor(_options.ChannelPrefix, _schemaName, options.ChannelName);
            _listener = new PgNotificationListener(
                _dataSource,
                _listenConnectionString,
                _pooler,
                _channel,
                "pgfirst-fusion-backplane",
                this,
                _options.ReconnectDelay,
                _options.MaxReconnectDelay,
                _options.KeepAlive);
            _listener.Start();
        }

        // Like FusionCache's Redis backplane, a subscription is live when this returns, when the server answers.
        try
        {
            await WaitUntilListeningAsync().WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            LogNotYetListening(_logger, _channel!);
        }
    }

    /// <inheritdoc />
    public void Unsubscribe() => UnsubscribeAsync().AsTask().GetAwaiter().GetResult();
#pragma warning restore VSTHRD002

    /// <inheritdoc />
    public async ValueTask UnsubscribeAsync()
    {
        PgNotificationListener? listener;
        lock (_gate)
        {
            listener = _listener;
            _listener = null;
            _subscription = null;
        }

        if (listener is not null)
        {
            await listener.DisposeAsync().ConfigureAwait(false);
            _isListening = false;
        }
    }

    /// <inheritdoc />
    public ValueTask PublishAsync(BackplaneMessage message, FusionCacheEntryOptions options, CancellationToken token = default) =>
        PublishCoreAsync(message, async: true, token);

    /// <inheritdoc />
#pragma warning disable VSTHRD002, CA2012 // With async: false the task is already complete.
    public void Publish(BackplaneMessage message, FusionCacheEntryOptions options, CancellationToken token = default) =>
        PublishCoreAsync(message, async: false, token).GetAwaiter().GetResult();
#pragma warning restore VSTHRD002, CA2012

    /// <inheritdoc />
    public ValueTask DisposeAsync() => UnsubscribeAsync();

    // NOTIFY channels are per database, not per schema: the schema is part of the name, so apps on other schemas of the
    // same database never hear each other's evictions.
    internal static string ChannelFor(string prefix, string schemaName, string channelName) =>
        prefix + "_" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(schemaName + "\0" + channelName)))[..16];

#pragma warning disable VSTHRD002, VSTHRD103, CA2012 // With async: false the path does synchronous I/O only.
    private async ValueTask PublishCoreAsync(BackplaneMessage message, bool async, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        var channel = _channel ?? throw new InvalidOperationException("Publish before Subscribe: FusionCache subscribes a backplane when it is set up.");
        var payload = Convert.ToBase64String(BackplaneMessage.ToByteArray(message));
        if (payload.Length > MaxPayloadBytes)
        {
            throw new FusionCacheBackplaneException(
                $"The backplane message for a key of {message.CacheKey?.Length ?? 0} characters is {payload.Length} bytes encoded, over NOTIFY's limit of {MaxPayloadBytes}: use shorter cache keys.");
        }

        var connection = async ? await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false) : _dataSource.OpenConnection();
        await using var connectionScope = connection.ConfigureAwait(false);
        var command = new NpgsqlCommand("SELECT pg_notify($1, $2)", connection);
        await using var commandScope = command.ConfigureAwait(false);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = channel, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = payload, NpgsqlDbType = NpgsqlDbType.Text });
        if (async)
        {
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        else
        {
            command.ExecuteNonQuery();
        }

        Messages.Add(1, new KeyValuePair<string, object?>("pgfirst.direction", "sent"));
    }
#pragma warning restore VSTHRD002, VSTHRD103, CA2012

    void IPgNotificationHandler.OnListening(int processId, bool reconnection)
    {
        _isListening = true;
        LogListening(_logger, _channel!, processId, reconnection);
        if (reconnection)
        {
            Reconnects.Add(1);
        }

        Connected(reconnection);
        Volatile.Read(ref _connected).TrySetResult();
    }

    void IPgNotificationHandler.OnLost(Exception exception, TimeSpan retryIn)
    {
        if (_isListening)
        {
            Volatile.Write(ref _connected, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        }

        _isListening = false;
        LogListenFailed(_logger, exception, _channel!, retryIn);
    }

    private void Connected(bool reconnection)
    {
        var subscription = _subscription;
        if (subscription?.ConnectHandlerAsync is { } handler)
        {
            _ = Task.Run(async () => await handler(new BackplaneConnectionInfo(reconnection)).ConfigureAwait(false));
        }
        else
        {
            subscription?.ConnectHandler?.Invoke(new BackplaneConnectionInfo(reconnection));
        }
    }

    void IPgNotificationHandler.OnNotification(string payload)
    {
        var subscription = _subscription;
        if (subscription is null)
        {
            return;
        }

        BackplaneMessage message;
        try
        {
            message = BackplaneMessage.FromByteArray(Convert.FromBase64String(payload));
        }
        catch (FormatException ex)
        {
            LogUndecodable(_logger, ex, _channel!);
            return;
        }

        // FusionCache also ignores its own messages; skipping them here saves the hop.
        if (string.Equals(message.SourceId, subscription.CacheInstanceId, StringComparison.Ordinal))
        {
            return;
        }

        Messages.Add(1, new KeyValuePair<string, object?>("pgfirst.direction", "received"));

        // Off the listen connection's thread: the handler may do I/O, and the next notification must not wait for it.
        if (subscription.IncomingMessageHandlerAsync is { } handler)
        {
            _ = Task.Run(async () => await handler(message).ConfigureAwait(false));
        }
        else if (subscription.IncomingMessageHandler is { } sync)
        {
            _ = Task.Run(() => sync(message));
        }
    }

    [LoggerMessage(7001, LogLevel.Information, "PgFirst FusionCache backplane LISTENs on {Channel} (backend pid {ProcessId}, reconnection: {Reconnection})")]
    private static partial void LogListening(ILogger logger, string channel, int processId, bool reconnection);

    [LoggerMessage(7002, LogLevel.Warning, "PgFirst FusionCache backplane lost or could not open its listen connection on {Channel}; retrying in {Delay}")]
    private static partial void LogListenFailed(ILogger logger, Exception exception, string channel, TimeSpan delay);

    [LoggerMessage(7003, LogLevel.Warning, "PgFirst FusionCache backplane received a payload on {Channel} that is not a backplane message; ignored")]
    private static partial void LogUndecodable(ILogger logger, Exception exception, string channel);

    [LoggerMessage(7004, LogLevel.Warning, "PgFirst FusionCache backplane is not LISTENing on {Channel} yet (the server has not answered); it keeps trying")]
    private static partial void LogNotYetListening(ILogger logger, string channel);
}
