using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text;
using System.Threading.Channels;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Protocol;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using PgFirst.Core;
using PgFirst.SignalR.Internal;

namespace PgFirst.SignalR;

/// <summary>
/// A SignalR <see cref="HubLifetimeManager{THub}"/> that scales a hub out over PostgreSQL: every instance LISTENs on
/// one channel per hub, and every send is a <c>pg_notify</c> that each instance delivers to the connections it has.
/// The drop-in replacement for <c>AddStackExchangeRedis()</c> on the SignalR builder.
/// </summary>
/// <remarks>
/// <para>
/// A message is serialized once per hub protocol in use and wrapped in a small envelope that says who it is for (all,
/// connections, groups, users, minus an except list). An envelope that fits a NOTIFY payload (7,999 bytes, base64) is
/// the payload; a bigger one is written to <c>signalr_message</c> in the statement that notifies its id, and every
/// instance reads it once.
/// </para>
/// <para>
/// Delivery is at most once, as with Microsoft's Redis backplane: PostgreSQL delivers a channel's notifications in
/// commit order to the sessions listening when they commit. While an instance's listen connection is down (it
/// reconnects with back-off) the messages sent meanwhile never reach its connections, and nothing is redelivered;
/// sends from that instance still go out. Messages of one sender that awaits each send reach every instance in the
/// order sent.
/// </para>
/// </remarks>
/// <typeparam name="THub">The hub.</typeparam>
public sealed partial class PgHubLifetimeManager<THub> : HubLifetimeManager<THub>, IPgSignalRBackplaneStatus, IPgNotificationHandler, IAsyncDisposable, IDisposable
    where THub : Hub
{
    // NOTIFY payloads are at most 7,999 bytes; one byte says how the rest is to be read.
    private const int MaxPayloadBytes = 7_999;
    private const char InlineMarker = 'i';
    private const char TableMarker = 't';

    private readonly HubConnectionStore _connections = new();
    private readonly ConcurrentDictionary<string, HubConnectionStore> _groups = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, HubConnectionStore> _users = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<long, TaskCompletionSource> _acks = new();
    private readonly ConcurrentDictionary<string, PendingInvocation> _pending = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ProxiedInvocation> _proxied = new(StringComparer.Ordinal);
    private readonly System.Threading.Channels.Channel<string> _incoming = System.Threading.Channels.Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true });
    private readonly NpgsqlDataSource _dataSource;
    private readonly PgPoolerMode _pooler;
    private readonly string _schemaName;
    private readonly PgSignalROptions _options;
    private readonly IHubProtocolResolver _protocolResolver;
    private readonly IReadOnlyList<IHubProtocol> _protocols;
    private readonly ILogger _logger;
    private readonly PgNotificationListener _listener;
    private readonly Task _processing;
    private readonly string _notifySql;
    private readonly string _notifyLargeSql;
    private readonly string _fetchSql;
    private readonly Guid _serverId = Guid.NewGuid();

    // Group and user stores are dropped when they empty, under this lock, so a store is never removed while a
    // connection is being added to it (the sends read the stores without it).
    private readonly Lock _membership = new();
    private TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _lastId;
    private int _disposed;

    /// <summary>Initializes a new instance of the <see cref="PgHubLifetimeManager{THub}"/> class and starts listening in the background.</summary>
    /// <param name="dataSource">The data source to send through (and, without a listen connection string, to listen on); not disposed.</param>
    /// <param name="pgFirstOptions">The shared options: schema, pooler mode and <c>PgFirst:ListenConnectionString</c>.</param>
    /// <param name="options">The backplane options.</param>
    /// <param name="protocolResolver">The hub protocols registered with SignalR.</param>
    /// <param name="globalHubOptions">The hub options of every hub, for the supported protocols; optional.</param>
    /// <param name="hubOptions">This hub's options, for the supported protocols; optional.</param>
    /// <param name="logger">The logger; optional.</param>
    /// <exception cref="PgFirstPoolerException">Behind a transaction pooler with no direct listen connection string.</exception>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public PgHubLifetimeManager(
        PgSignalRDataSource dataSource,
        IOptions<PgFirstOptions> pgFirstOptions,
        IOptions<PgSignalROptions> options,
        IHubProtocolResolver protocolResolver,
        IOptions<HubOptions>? globalHubOptions = null,
        IOptions<HubOptions<THub>>? hubOptions = null,
        ILogger<PgHubLifetimeManager<THub>>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(pgFirstOptions);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(protocolResolver);
        _options = options.Value;
        _options.Validate();
        var first = pgFirstOptions.Value;
        _dataSource = dataSource.DataSource;
        _pooler = first.Pooler;
        _schemaName = first.SchemaName;
        _protocolResolver = protocolResolver;
        _logger = (ILogger?)logger ?? NullLogger.Instance;

        // As SignalR serializes: every registered protocol, or those the hub (else every hub) is limited to.
        var supported = hubOptions?.Value.SupportedProtocols ?? globalHubOptions?.Value.SupportedProtocols;
        _protocols = supported is { Count: > 0 }
            ? protocolResolver.AllProtocols.Where(p => supported.Contains(p.Name, StringComparer.OrdinalIgnoreCase)).ToList()
            : protocolResolver.AllProtocols;

        Channel = ChannelFor(_options.ChannelPrefix, _schemaName, typeof(THub).FullName ?? typeof(THub).Name);
        var schema = PgSqlIdentifier.Quote(_schemaName);
        _notifySql = "SELECT pg_notify($1, $2)";
        _notifyLargeSql =
            $"WITH m AS (INSERT INTO {schema}.signalr_message (channel, payload, expires_at) VALUES ($1, $2, now() + $3) RETURNING id) " +
            "SELECT pg_notify($1, 't' || m.id::text) FROM m";
        _fetchSql = $"SELECT payload FROM {schema}.signalr_message WHERE id = $1";
        var listen = string.IsNullOrWhiteSpace(_options.ListenConnectionString) ? first.ListenConnectionString : _options.ListenConnectionString;
        _listener = new PgNotificationListener(
            _dataSource,
            listen,
            _pooler,
            Channel,
            "pgfirst-signalr",
            this,
            _options.ReconnectDelay,
            _options.MaxReconnectDelay,
            _options.KeepAlive);
        _listener.Start();
        _processing = Task.Run(ProcessIncomingAsync);
    }

    /// <summary>Gets the NOTIFY channel of this hub: the prefix and a hash of the PgFirst schema and the hub's type name.</summary>
    public string Channel { get; }

    /// <summary>Gets a value indicating whether the listen connection is open and LISTENing.</summary>
    public bool IsListening => _listener.ProcessId != 0;

    /// <summary>Gets the PostgreSQL backend pid of the listen connection, or 0 when not listening (for operators: <c>pg_stat_activity</c>).</summary>
    public int ListenerProcessId => _listener.ProcessId;

    /// <summary>Gets the id of this instance in the backplane's messages (for logs).</summary>
    public Guid ServerId => _serverId;

    /// <summary>Waits until the listen connection is LISTENing (the first time, or again after it was lost).</summary>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes when listening.</returns>
    public Task WaitUntilListeningAsync(CancellationToken cancellationToken = default) =>
        IsListening ? Task.CompletedTask : Volatile.Read(ref _listening).Task.WaitAsync(cancellationToken);

    /// <inheritdoc />
    public override async Task OnConnectedAsync(HubConnectionContext connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        connection.Features.Set(new PgSignalRFeature());
        _connections.Add(connection);
        if (!string.IsNullOrEmpty(connection.UserIdentifier))
        {
            Join(_users, connection.UserIdentifier, connection);
        }

        // As the Redis backplane subscribes before a connection is live, so that what other instances send from now on
        // reaches it; a listener still reconnecting after 5 s lets the connection in (degraded, logged, health check).
        try
        {
            await WaitUntilListeningAsync(connection.ConnectionAborted).WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            LogConnectedWhileNotListening(_logger, connection.ConnectionId, Channel);
        }
    }

    /// <inheritdoc />
    public override async Task OnDisconnectedAsync(HubConnectionContext connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        _connections.Remove(connection);
        if (connection.Features.Get<PgSignalRFeature>() is { } feature)
        {
            foreach (var group in feature.Snapshot())
            {
                RemoveLocal(connection, group);
            }
        }

        if (!string.IsNullOrEmpty(connection.UserIdentifier))
        {
            Leave(_users, connection.UserIdentifier, connection);
        }

        foreach (var (id, pending) in _pending)
        {
            if (pending.ConnectionId == connection.ConnectionId && _pending.TryRemove(id, out _))
            {
                pending.Fail(new IOException($"Connection '{connection.ConnectionId}' disconnected."));
            }
        }

        foreach (var (id, proxied) in _proxied)
        {
            if (proxied.ConnectionId == connection.ConnectionId && _proxied.TryRemove(id, out _))
            {
                await TryPublishAsync(new PgSignalREnvelope
                {
                    Kind = EnvelopeKind.ClientResult,
                    Sender = _serverId,
                    Recipient = proxied.Caller,
                    InvocationId = id,
                    Status = ResultStatus.Disconnected,
                    Error = $"Connection '{connection.ConnectionId}' disconnected.",
                }).ConfigureAwait(false);
            }
        }
    }

    /// <inheritdoc />
    public override Task SendAllAsync(string methodName, object?[] args, CancellationToken cancellationToken = default) =>
        SendAsync(TargetKind.All, [], [], methodName, args, cancellationToken);

    /// <inheritdoc />
    public override Task SendAllExceptAsync(string methodName, object?[] args, IReadOnlyList<string> excludedConnectionIds, CancellationToken cancellationToken = default) =>
        SendAsync(TargetKind.All, [], excludedConnectionIds ?? [], methodName, args, cancellationToken);

    /// <inheritdoc />
    public override Task SendConnectionAsync(string connectionId, string methodName, object?[] args, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connectionId);

        // A connection of this instance needs no round trip (SignalR connections are sticky), as with the Redis backplane.
        if (_connections[connectionId] is { } local)
        {
            return local.WriteAsync(new InvocationMessage(methodName, args), cancellationToken).AsTask();
        }

        return SendAsync(TargetKind.Connections, [connectionId], [], methodName, args, cancellationToken);
    }

    /// <inheritdoc />
    public override Task SendConnectionsAsync(IReadOnlyList<string> connectionIds, string methodName, object?[] args, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connectionIds);
        return connectionIds.Count == 0 ? Task.CompletedTask : SendAsync(TargetKind.Connections, connectionIds, [], methodName, args, cancellationToken);
    }

    /// <inheritdoc />
    public override Task SendGroupAsync(string groupName, string methodName, object?[] args, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(groupName);
        return SendAsync(TargetKind.Groups, [groupName], [], methodName, args, cancellationToken);
    }

    /// <inheritdoc />
    public override Task SendGroupExceptAsync(string groupName, string methodName, object?[] args, IReadOnlyList<string> excludedConnectionIds, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(groupName);
        return SendAsync(TargetKind.Groups, [groupName], excludedConnectionIds ?? [], methodName, args, cancellationToken);
    }

    /// <inheritdoc />
    public override Task SendGroupsAsync(IReadOnlyList<string> groupNames, string methodName, object?[] args, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(groupNames);
        var names = groupNames.Where(g => !string.IsNullOrEmpty(g)).ToArray();
        return names.Length == 0 ? Task.CompletedTask : SendAsync(TargetKind.Groups, names, [], methodName, args, cancellationToken);
    }

    /// <inheritdoc />
    public override Task SendUserAsync(string userId, string methodName, object?[] args, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userId);
        return SendAsync(TargetKind.Users, [userId], [], methodName, args, cancellationToken);
    }

    /// <inheritdoc />
    public override Task SendUsersAsync(IReadOnlyList<string> userIds, string methodName, object?[] args, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userIds);
        var names = userIds.Where(u => !string.IsNullOrEmpty(u)).ToArray();
        return names.Length == 0 ? Task.CompletedTask : SendAsync(TargetKind.Users, names, [], methodName, args, cancellationToken);
    }

    /// <inheritdoc />
    public override Task AddToGroupAsync(string connectionId, string groupName, CancellationToken cancellationToken = default) =>
        ChangeGroupAsync(connectionId, groupName, add: true, cancellationToken);

    /// <inheritdoc />
    public override Task RemoveFromGroupAsync(string connectionId, string groupName, CancellationToken cancellationToken = default) =>
        ChangeGroupAsync(connectionId, groupName, add: false, cancellationToken);

    /// <inheritdoc />
    /// <remarks>
    /// A connection of another instance: the invocation goes to that instance, which must accept it within
    /// <see cref="PgSignalROptions.AckTimeout"/> (else <see cref="IOException"/>: no instance has the connection), and
    /// the client's result comes back through the backplane.
    /// </remarks>
    public override async Task<T> InvokeConnectionAsync<T>(string connectionId, string methodName, object?[] args, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connectionId);
        ArgumentNullException.ThrowIfNull(methodName);
        var invocationId = _serverId.ToString("N")[..8] + ":" + Interlocked.Increment(ref _lastId).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var pending = new PendingInvocation<T>(connectionId);
        _pending[invocationId] = pending;
        try
        {
            var message = new InvocationMessage(invocationId, methodName, args);
            if (_connections[connectionId] is { } local)
            {
                await local.WriteAsync(message, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                var ackId = Interlocked.Increment(ref _lastId);
                var accepted = await SendAndWaitForAckAsync(
                    ackId,
                    new PgSignalREnvelope
                    {
                        Kind = EnvelopeKind.ClientInvocation,
                        Sender = _serverId,
                        AckId = ackId,
                        InvocationId = invocationId,
                        ConnectionId = connectionId,
                        Messages = Serialize(message),
                    },
                    cancellationToken).ConfigureAwait(false);
                if (!accepted)
                {
                    throw new IOException($"Connection '{connectionId}' does not exist.");
                }
            }

            return await pending.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _pending.TryRemove(invocationId, out _);
        }
    }

    /// <inheritdoc />
    public override Task SetConnectionResultAsync(string connectionId, CompletionMessage result)
    {
        ArgumentNullException.ThrowIfNull(connectionId);
        ArgumentNullException.ThrowIfNull(result);
        var invocationId = result.InvocationId ?? "";
        if (_pending.TryGetValue(invocationId, out var pending) && pending.ConnectionId == connectionId)
        {
            _pending.TryRemove(invocationId, out _);
            pending.Complete(result);
            return Task.CompletedTask;
        }

        if (_proxied.TryGetValue(invocationId, out var proxied) && proxied.ConnectionId == connectionId && _proxied.TryRemove(invocationId, out _))
        {
            // The result was read as RawResult (TryGetReturnType): written again in the connection's protocol, its bytes
            // go to the caller's instance, which reads them with the type it awaits.
            var protocol = _protocolResolver.GetProtocol(proxied.ProtocolName, null)
                ?? throw new InvalidOperationException($"The hub protocol '{proxied.ProtocolName}' of connection '{connectionId}' is not registered.");
            return PublishAsync(
                new PgSignalREnvelope
                {
                    Kind = EnvelopeKind.ClientResult,
                    Sender = _serverId,
                    Recipient = proxied.Caller,
                    InvocationId = invocationId,
                    Status = ResultStatus.Completed,
                    ProtocolName = protocol.Name,
                    Result = protocol.GetMessageBytes(result),
                },
                CancellationToken.None);
        }

        LogUnknownResult(_logger, invocationId, connectionId);
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public override bool TryGetReturnType(string invocationId, [NotNullWhen(true)] out Type? type)
    {
        if (_pending.TryGetValue(invocationId, out var pending))
        {
            type = pending.ResultType;
            return true;
        }

        if (_proxied.ContainsKey(invocationId))
        {
            type = typeof(RawResult);
            return true;
        }

        type = null;
        return false;
    }

    /// <summary>Stops listening and fails what is still awaited.</summary>
    /// <returns>A task that completes when stopped.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        await _listener.DisposeAsync().ConfigureAwait(false);
        _incoming.Writer.TryComplete();
#pragma warning disable VSTHRD003 // The processing loop is this manager's own task, started in the constructor.
        await _processing.ConfigureAwait(false);
#pragma warning restore VSTHRD003
        foreach (var (_, ack) in _acks)
        {
            ack.TrySetCanceled();
        }

        foreach (var (_, pending) in _pending)
        {
            pending.Fail(new ObjectDisposedException(nameof(PgHubLifetimeManager<THub>), "The hub lifetime manager was disposed."));
        }
    }

    /// <inheritdoc />
#pragma warning disable VSTHRD002 // The container disposes synchronously; the listener runs on the thread pool, so nothing waits on this thread.
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();
#pragma warning restore VSTHRD002

    // NOTIFY channels are per database, not per schema: the schema is part of the name, so apps on other schemas of the
    // same database never hear each other's hubs.
    internal static string ChannelFor(string prefix, string schemaName, string hubName) =>
        prefix + "_" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(schemaName + "\0" + hubName)))[..16];

    void IPgNotificationHandler.OnListening(int processId, bool reconnection)
    {
        LogListening(_logger, Channel, processId, reconnection);
        if (reconnection)
        {
            PgSignalRMetrics.Reconnects.Add(1);
        }

        Volatile.Read(ref _listening).TrySetResult();
    }

    void IPgNotificationHandler.OnLost(Exception exception, TimeSpan retryIn)
    {
        // The listener has set its pid to 0 already; the next wait is for the next OnListening.
        if (Volatile.Read(ref _listening).Task.IsCompleted)
        {
            Volatile.Write(ref _listening, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        }

        LogListenFailed(_logger, exception, Channel, retryIn);
    }

    // On the listen connection's thread: queue it and return; one reader handles them in the order they came.
    void IPgNotificationHandler.OnNotification(string payload) => _incoming.Writer.TryWrite(payload);

    private Task SendAsync(TargetKind target, IReadOnlyList<string> targets, IReadOnlyList<string> excluded, string methodName, object?[] args, CancellationToken cancellationToken) =>
        PublishAsync(
            new PgSignalREnvelope
            {
                Kind = EnvelopeKind.Invocation,
                Sender = _serverId,
                Target = target,
                Targets = targets,
                Excluded = excluded,
                Messages = Serialize(new InvocationMessage(methodName, args)),
            },
            cancellationToken);

    private SerializedMessage[] Serialize(HubMessage message)
    {
        var messages = new SerializedMessage[_protocols.Count];
        for (var i = 0; i < messages.Length; i++)
        {
            messages[i] = new SerializedMessage(_protocols[i].Name, _protocols[i].GetMessageBytes(message));
        }

        return messages;
    }

    private async Task ChangeGroupAsync(string connectionId, string groupName, bool add, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connectionId);
        ArgumentNullException.ThrowIfNull(groupName);
        if (_connections[connectionId] is { } local)
        {
            if (add)
            {
                AddLocal(local, groupName);
            }
            else
            {
                RemoveLocal(local, groupName);
            }

            return;
        }

        var ackId = Interlocked.Increment(ref _lastId);
        var acknowledged = await SendAndWaitForAckAsync(
            ackId,
            new PgSignalREnvelope { Kind = EnvelopeKind.GroupCommand, Sender = _serverId, AckId = ackId, AddToGroup = add, ConnectionId = connectionId, GroupName = groupName },
            cancellationToken).ConfigureAwait(false);
        if (!acknowledged)
        {
            throw new TimeoutException(
                $"No instance acknowledged {(add ? "adding" : "removing")} connection '{connectionId}' {(add ? "to" : "from")} group '{groupName}' " +
                $"within {_options.AckTimeout}: no instance listening on the backplane has that connection.");
        }
    }

    private async Task<bool> SendAndWaitForAckAsync(long ackId, PgSignalREnvelope envelope, CancellationToken cancellationToken)
    {
        var ack = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _acks[ackId] = ack;
        try
        {
            await PublishAsync(envelope, cancellationToken).ConfigureAwait(false);
            await ack.Task.WaitAsync(_options.AckTimeout, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
        finally
        {
            _acks.TryRemove(ackId, out _);
        }
    }

    private void AddLocal(HubConnectionContext connection, string groupName)
    {
        var feature = connection.Features.Get<PgSignalRFeature>();
        if (feature is null || !feature.Add(groupName))
        {
            return;
        }

        Join(_groups, groupName, connection);
    }

    private void RemoveLocal(HubConnectionContext connection, string groupName)
    {
        connection.Features.Get<PgSignalRFeature>()?.Remove(groupName);
        Leave(_groups, groupName, connection);
    }

    private void Join(ConcurrentDictionary<string, HubConnectionStore> stores, string name, HubConnectionContext connection)
    {
        lock (_membership)
        {
            stores.GetOrAdd(name, _ => new HubConnectionStore()).Add(connection);
        }
    }

    private void Leave(ConcurrentDictionary<string, HubConnectionStore> stores, string name, HubConnectionContext connection)
    {
        lock (_membership)
        {
            if (stores.TryGetValue(name, out var store))
            {
                store.Remove(connection);
                if (store.Count == 0)
                {
                    stores.TryRemove(name, out _);
                }
            }
        }
    }

    private async Task PublishAsync(PgSignalREnvelope envelope, CancellationToken cancellationToken)
    {
        var bytes = envelope.ToBytes();
        var inline = 1 + (((bytes.Length + 2) / 3) * 4) <= MaxPayloadBytes;
        try
        {
            var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using var connectionScope = connection.ConfigureAwait(false);
            var command = new NpgsqlCommand(inline ? _notifySql : _notifyLargeSql, connection);
            await using var commandScope = command.ConfigureAwait(false);
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Channel, NpgsqlDbType = NpgsqlDbType.Text });
            if (inline)
            {
                command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = InlineMarker + Convert.ToBase64String(bytes), NpgsqlDbType = NpgsqlDbType.Text });
            }
            else
            {
                command.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = bytes, NpgsqlDbType = NpgsqlDbType.Bytea });
                command.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = _options.LargeMessageRetention, NpgsqlDbType = NpgsqlDbType.Interval });
            }

            if (PgPooler.PreparesStatements(_pooler))
            {
                await command.PrepareAsync(cancellationToken).ConfigureAwait(false);
            }

            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException ex) when (PgSchemaErrors.TryTranslate(ex, PgSignalRSchema.Module, _schemaName) is { } error)
        {
            throw error;
        }

        PgSignalRMetrics.Sent(inline);
    }

    private async Task TryPublishAsync(PgSignalREnvelope envelope)
    {
        try
        {
            await PublishAsync(envelope, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NpgsqlException or PgFirstSchemaException or IOException or TimeoutException)
        {
            LogSendFailed(_logger, ex, envelope.Kind.ToString(), Channel);
        }
    }

    private async Task ProcessIncomingAsync()
    {
        await foreach (var payload in _incoming.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            try
            {
                var bytes = await DecodeAsync(payload).ConfigureAwait(false);
                if (bytes is null)
                {
                    continue;
                }

                await HandleAsync(PgSignalREnvelope.Read(bytes)).ConfigureAwait(false);
            }
#pragma warning disable CA1031 // One message that cannot be read or delivered must not stop the loop that delivers every later one.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                LogUnreadable(_logger, ex, Channel);
            }
        }
    }

    private async Task<byte[]?> DecodeAsync(string payload)
    {
        if (payload.Length > 1 && payload[0] == InlineMarker)
        {
            PgSignalRMetrics.Received(inline: true);
            return Convert.FromBase64String(payload[1..]);
        }

        if (payload.Length > 1 && payload[0] == TableMarker && long.TryParse(payload.AsSpan(1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id))
        {
            PgSignalRMetrics.Received(inline: false);
            var connection = await _dataSource.OpenConnectionAsync().ConfigureAwait(false);
            await using var connectionScope = connection.ConfigureAwait(false);
            var command = new NpgsqlCommand(_fetchSql, connection);
            await using var commandScope = command.ConfigureAwait(false);
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = id, NpgsqlDbType = NpgsqlDbType.Bigint });
            if (await command.ExecuteScalarAsync().ConfigureAwait(false) is byte[] bytes)
            {
                return bytes;
            }

            LogLargeMessageGone(_logger, id, Channel, _options.LargeMessageRetention);
            return null;
        }

        throw new InvalidDataException("A notification that is not a backplane message.");
    }

    private async Task HandleAsync(PgSignalREnvelope envelope)
    {
        switch (envelope.Kind)
        {
            case EnvelopeKind.Invocation:
                await DeliverAsync(envelope).ConfigureAwait(false);
                break;

            case EnvelopeKind.GroupCommand:
                if (_connections[envelope.ConnectionId] is { } member)
                {
                    if (envelope.AddToGroup)
                    {
                        AddLocal(member, envelope.GroupName);
                    }
                    else
                    {
                        RemoveLocal(member, envelope.GroupName);
                    }

                    await TryPublishAsync(new PgSignalREnvelope { Kind = EnvelopeKind.Ack, Sender = _serverId, Recipient = envelope.Sender, AckId = envelope.AckId }).ConfigureAwait(false);
                }

                break;

            case EnvelopeKind.Ack:
                if (envelope.Recipient == _serverId && _acks.TryGetValue(envelope.AckId, out var ack))
                {
                    ack.TrySetResult();
                }

                break;

            case EnvelopeKind.ClientInvocation:
                if (_connections[envelope.ConnectionId] is { } target)
                {
                    _proxied[envelope.InvocationId] = new ProxiedInvocation(envelope.Sender, target.ConnectionId, target.Protocol.Name);
                    await TryPublishAsync(new PgSignalREnvelope { Kind = EnvelopeKind.Ack, Sender = _serverId, Recipient = envelope.Sender, AckId = envelope.AckId }).ConfigureAwait(false);
                    await WriteAsync(target, new SerializedHubMessage(envelope.Messages)).ConfigureAwait(false);
                }

                break;

            case EnvelopeKind.ClientResult:
                if (envelope.Recipient == _serverId && _pending.TryRemove(envelope.InvocationId, out var pending))
                {
                    CompleteRemote(pending, envelope);
                }

                break;
        }
    }

    private void CompleteRemote(PendingInvocation pending, PgSignalREnvelope envelope)
    {
        if (envelope.Status == ResultStatus.Disconnected)
        {
            pending.Fail(new IOException(envelope.Error));
            return;
        }

        var protocol = _protocolResolver.GetProtocol(envelope.ProtocolName, null);
        var sequence = new ReadOnlySequence<byte>(envelope.Result);
        if (protocol is null || !protocol.TryParseMessage(ref sequence, new ResultBinder(pending.ResultType), out var message) || message is not CompletionMessage completion)
        {
            pending.Fail(new InvalidDataException($"The client result of invocation '{envelope.InvocationId}' could not be read with hub protocol '{envelope.ProtocolName}'."));
            return;
        }

        pending.Complete(completion);
    }

    private async Task DeliverAsync(PgSignalREnvelope envelope)
    {
        var message = new SerializedHubMessage(envelope.Messages);
        var excluded = envelope.Excluded;
        var writes = new List<Task>();
        void To(HubConnectionContext connection)
        {
            if (excluded.Count == 0 || !excluded.Contains(connection.ConnectionId, StringComparer.Ordinal))
            {
                writes.Add(WriteAsync(connection, message));
            }
        }

        void ToMembers(ConcurrentDictionary<string, HubConnectionStore> stores)
        {
            foreach (var name in envelope.Targets)
            {
                if (stores.TryGetValue(name, out var store))
                {
                    foreach (var connection in store)
                    {
                        To(connection);
                    }
                }
            }
        }

        switch (envelope.Target)
        {
            case TargetKind.All:
                foreach (var connection in _connections)
                {
                    To(connection);
                }

                break;
            case TargetKind.Connections:
                foreach (var id in envelope.Targets)
                {
                    if (_connections[id] is { } connection)
                    {
                        To(connection);
                    }
                }

                break;
            case TargetKind.Groups:
                // Once per group named, as SignalR's own managers do: a connection in two of the groups gets it twice.
                ToMembers(_groups);
                break;
            case TargetKind.Users:
                ToMembers(_users);
                break;
        }

        await Task.WhenAll(writes).ConfigureAwait(false);
    }

    private async Task WriteAsync(HubConnectionContext connection, SerializedHubMessage message)
    {
        try
        {
            await connection.WriteAsync(message).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or OperationCanceledException)
        {
            LogWriteFailed(_logger, ex, connection.ConnectionId);
        }
    }

    [LoggerMessage(8001, LogLevel.Information, "PgFirst SignalR backplane LISTENs on {Channel} (backend pid {ProcessId}, reconnection: {Reconnection})")]
    private static partial void LogListening(ILogger logger, string channel, int processId, bool reconnection);

    [LoggerMessage(8002, LogLevel.Warning, "PgFirst SignalR backplane lost or could not open its listen connection on {Channel}; messages other instances send meanwhile do not reach this instance's connections; retrying in {Delay}")]
    private static partial void LogListenFailed(ILogger logger, Exception exception, string channel, TimeSpan delay);

    [LoggerMessage(8003, LogLevel.Warning, "PgFirst SignalR backplane could not read or deliver a notification on {Channel}; it is dropped and the next one handled")]
    private static partial void LogUnreadable(ILogger logger, Exception exception, string channel);

    [LoggerMessage(8004, LogLevel.Warning, "PgFirst SignalR backplane: connection {ConnectionId} connected while the backplane is not LISTENing on {Channel}; other instances' messages reach it once the listener is back")]
    private static partial void LogConnectedWhileNotListening(ILogger logger, string connectionId, string channel);

    [LoggerMessage(8005, LogLevel.Warning, "PgFirst SignalR backplane: large message {Id} on {Channel} was gone when read (kept for {Retention}); dropped")]
    private static partial void LogLargeMessageGone(ILogger logger, long id, string channel, TimeSpan retention);

    [LoggerMessage(8006, LogLevel.Warning, "PgFirst SignalR backplane could not send a {Kind} message on {Channel}")]
    private static partial void LogSendFailed(ILogger logger, Exception exception, string kind, string channel);

    [LoggerMessage(8007, LogLevel.Debug, "PgFirst SignalR backplane could not write to connection {ConnectionId} (it is closing)")]
    private static partial void LogWriteFailed(ILogger logger, Exception exception, string connectionId);

    [LoggerMessage(8008, LogLevel.Debug, "PgFirst SignalR backplane: a result for invocation {InvocationId} from connection {ConnectionId} that nobody awaits; ignored")]
    private static partial void LogUnknownResult(ILogger logger, string invocationId, string connectionId);

    private abstract class PendingInvocation(string connectionId, Type resultType)
    {
        public string ConnectionId { get; } = connectionId;

        public Type ResultType { get; } = resultType;

        public abstract void Complete(CompletionMessage completion);

        public abstract void Fail(Exception exception);
    }

    private sealed class PendingInvocation<T>(string connectionId) : PendingInvocation(connectionId, typeof(T))
    {
        private readonly TaskCompletionSource<T> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);

#pragma warning disable VSTHRD003 // Completed by the backplane's processing loop or the hub dispatcher on the thread pool, never on a caller's context.
        public Task<T> Task => _result.Task;
#pragma warning restore VSTHRD003

        public override void Complete(CompletionMessage completion)
        {
            if (completion.Error is { } error)
            {
                _result.TrySetException(new HubException(error));
            }
            else
            {
                _result.TrySetResult(completion.Result is T value ? value : default!);
            }
        }

        public override void Fail(Exception exception) => _result.TrySetException(exception);
    }

    private sealed record ProxiedInvocation(Guid Caller, string ConnectionId, string ProtocolName);

    // Reads a completion message with the result type the caller awaits; nothing else is parsed with it.
    private sealed class ResultBinder(Type resultType) : IInvocationBinder
    {
        public Type GetReturnType(string invocationId) => resultType;

        public IReadOnlyList<Type> GetParameterTypes(string methodName) => throw new NotSupportedException("Only completion messages are read with this binder.");

        public Type GetStreamItemType(string streamId) => throw new NotSupportedException("Only completion messages are read with this binder.");
    }

    // The groups one connection is in on this instance, so that disconnecting removes it from each.
    private sealed class PgSignalRFeature
    {
        private readonly HashSet<string> _groups = new(StringComparer.Ordinal);

        public bool Add(string group)
        {
            lock (_groups)
            {
                return _groups.Add(group);
            }
        }

        public void Remove(string group)
        {
            lock (_groups)
            {
                _groups.Remove(group);
            }
        }

        public string[] Snapshot()
        {
            lock (_groups)
            {
                return [.. _groups];
            }
        }
    }
}
