using System.Collections.Concurrent;
using Npgsql;
using NpgsqlTypes;

namespace PgFirst.Core;

/// <summary>What a <see cref="PgNotificationListener"/> tells its owner.</summary>
public interface IPgNotificationHandler
{
    /// <summary>The LISTEN is in effect: every notification committed from now on arrives.</summary>
    /// <param name="processId">The PostgreSQL backend pid of the listen connection.</param>
    /// <param name="reconnection">Whether the connection was lost before and this is a new one.</param>
    void OnListening(int processId, bool reconnection);

    /// <summary>The listen connection failed or could not be opened: notifications sent from now until the next <see cref="OnListening"/> are lost.</summary>
    /// <param name="exception">What failed.</param>
    /// <param name="retryIn">When the listener tries again.</param>
    void OnLost(Exception exception, TimeSpan retryIn);

    /// <summary>A notification arrived, on the connection's reading thread: keep it short.</summary>
    /// <param name="payload">The payload.</param>
    void OnNotification(string payload);
}

/// <summary>
/// One connection that LISTENs on one channel for as long as it runs, opened again with exponential back-off when it
/// is lost: the listener under the cache's near-cache invalidation and the FusionCache backplane.
/// </summary>
/// <remarks>
/// PostgreSQL delivers the notifications of one channel in the order their transactions committed, to every session
/// listening when they committed; a session that was not listening never gets them. The listener uses a dedicated,
/// unpooled data source on <see cref="PgFirstOptions.ListenConnectionString"/> when it is set, and a connection of
/// the app's data source otherwise, which a transaction pooler cannot give (the constructor refuses).
/// </remarks>
public sealed class PgNotificationListener : IAsyncDisposable
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly NpgsqlDataSource? _listenDataSource;
    private readonly string _channel;
    private readonly IPgNotificationHandler _handler;
    private readonly TimeSpan _reconnectDelay;
    private readonly TimeSpan _maxReconnectDelay;
    private readonly object _gate = new();
    private readonly ConcurrentQueue<(string Payload, TaskCompletionSource Sent)> _outbox = new();
    private CancellationTokenSource? _stopping;
    private Task? _running;
    private int _processId;

    /// <summary>Initializes a new instance of the <see cref="PgNotificationListener"/> class. Does no I/O.</summary>
    /// <param name="dataSource">The app's data source, used to listen when <paramref name="listenConnectionString"/> is not set; not disposed.</param>
    /// <param name="listenConnectionString">A direct connection string for the listen connection, or <see langword="null"/>.</param>
    /// <param name="pooler">The pooler in front of <paramref name="dataSource"/>.</param>
    /// <param name="channel">The channel (any text; quoted as an identifier).</param>
    /// <param name="applicationName">The <c>application_name</c> of a dedicated listen connection, for <c>pg_stat_activity</c>.</param>
    /// <param name="handler">Receives the notifications and the state changes.</param>
    /// <param name="reconnectDelay">The first delay before opening a lost connection again.</param>
    /// <param name="maxReconnectDelay">The longest such delay (the delay doubles up to it).</param>
    /// <param name="keepAlive">The TCP keepalive of a dedicated listen connection, so a dead peer is noticed.</param>
    /// <exception cref="PgFirstPoolerException">Behind a transaction pooler with no listen connection string.</exception>
    public PgNotificationListener(
        NpgsqlDataSource dataSource,
        string? listenConnectionString,
        PgPoolerMode pooler,
        string channel,
        string applicationName,
        IPgNotificationHandler handler,
        TimeSpan reconnectDelay,
        TimeSpan maxReconnectDelay,
        TimeSpan keepAlive)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentException.ThrowIfNullOrEmpty(channel);
        ArgumentNullException.ThrowIfNull(handler);
        if (string.IsNullOrWhiteSpace(listenConnectionString) && pooler == PgPoolerMode.Transaction)
        {
            throw new PgFirstPoolerException(
                $"{PgPooler.SettingName} is Transaction and no listen connection string is set: a LISTEN behind a transaction " +
                "pooler hears nothing once its transaction ends. Set PgFirst:ListenConnectionString to a direct connection.");
        }

        _dataSource = dataSource;
        _channel = channel;
        _handler = handler;
        _reconnectDelay = reconnectDelay;
        _maxReconnectDelay = maxReconnectDelay;
        if (!string.IsNullOrWhiteSpace(listenConnectionString))
        {
            var builder = new NpgsqlConnectionStringBuilder(listenConnectionString)
            {
                KeepAlive = Math.Max(1, (int)keepAlive.TotalSeconds),
                ApplicationName = applicationName,
                Pooling = false,
            };
            _listenDataSource = NpgsqlDataSource.Create(builder.ConnectionString);
        }
    }

    /// <summary>Gets the channel.</summary>
    public string Channel => _channel;

    /// <summary>Gets the backend pid of the listen connection, or 0 while not listening.</summary>
    public int ProcessId => Volatile.Read(ref _processId);

    /// <summary>Gets or sets how often the listen connection stops waiting to send what <see cref="NotifyOnListenConnectionAsync"/> queued.</summary>
    /// <value>The default is 50 milliseconds.</value>
    public TimeSpan SendInterval { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// Sends a notification on this channel from the listen connection itself, between two waits: it does not wait
    /// for a connection of the app's pool, so it measures the listener alone (a heartbeat that proves the listener is
    /// current). Every notification committed before it arrives before it.
    /// </summary>
    /// <param name="payload">The payload (at most 7,999 bytes).</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes when the server has committed it.</returns>
    /// <exception cref="InvalidOperationException">The listener is not listening.</exception>
    public Task NotifyOnListenConnectionAsync(string payload, CancellationToken cancellationToken = default)
    {
        if (ProcessId == 0)
        {
            throw new InvalidOperationException("The listener is not listening.");
        }

        var sent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _outbox.Enqueue((payload, sent));
        return sent.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Starts listening in the background; a second call does nothing.</summary>
    public void Start()
    {
        lock (_gate)
        {
            if (_stopping is not null)
            {
                return;
            }

            _stopping = new CancellationTokenSource();
            var token = _stopping.Token;
            _running = Task.Run(() => RunAsync(token));
        }
    }

    /// <summary>Stops listening and closes the connection.</summary>
    /// <returns>A task that completes when stopped.</returns>
    public async ValueTask DisposeAsync()
    {
        CancellationTokenSource? stopping;
        Task? running;
        lock (_gate)
        {
            stopping = _stopping;
            running = _running;
            _running = null;
        }

        if (stopping is not null && running is not null)
        {
            await stopping.CancelAsync().ConfigureAwait(false);
            try
            {
                await running.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }

            stopping.Dispose();
        }

        if (_listenDataSource is not null)
        {
            await _listenDataSource.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task RunAsync(CancellationToken stopping)
    {
        var delay = _reconnectDelay;
        var connectedBefore = false;
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                var connection = _listenDataSource is not null
                    ? await _listenDataSource.OpenConnectionAsync(stopping).ConfigureAwait(false)
                    : await _dataSource.OpenConnectionAsync(stopping).ConfigureAwait(false);
                await using (connection.ConfigureAwait(false))
                {
                    connection.Notification += OnNotification;
                    var listen = new NpgsqlCommand($"LISTEN {PgSqlIdentifier.Quote(_channel)}", connection);
                    await using (listen.ConfigureAwait(false))
                    {
                        await listen.ExecuteNonQueryAsync(stopping).ConfigureAwait(false);
                    }

                    Volatile.Write(ref _processId, connection.ProcessID);
                    delay = _reconnectDelay;
                    _handler.OnListening(connection.ProcessID, connectedBefore);
                    connectedBefore = true;
                    while (true)
                    {
                        await SendQueuedAsync(connection, stopping).ConfigureAwait(false);
                        await connection.WaitAsync(SendInterval, stopping).ConfigureAwait(false);
                    }
                }
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex) when (ex is NpgsqlException or IOException or TimeoutException or InvalidOperationException or OperationCanceledException)
            {
                Volatile.Write(ref _processId, 0);
                FailQueued(ex);
                _handler.OnLost(ex, delay);
                try
                {
                    await Task.Delay(delay, stopping).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _maxReconnectDelay.Ticks));
            }
        }

        Volatile.Write(ref _processId, 0);
        FailQueued(new OperationCanceledException("The listener stopped."));
    }

    private async Task SendQueuedAsync(NpgsqlConnection connection, CancellationToken stopping)
    {
        while (_outbox.TryDequeue(out var item))
        {
            try
            {
                var command = new NpgsqlCommand("SELECT pg_notify($1, $2)", connection);
                await using (command.ConfigureAwait(false))
                {
                    command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _channel, NpgsqlDbType = NpgsqlDbType.Text });
                    command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = item.Payload, NpgsqlDbType = NpgsqlDbType.Text });
                    await command.ExecuteNonQueryAsync(stopping).ConfigureAwait(false);
                }

                item.Sent.TrySetResult();
            }
            catch (Exception ex)
            {
                item.Sent.TrySetException(ex);
                throw;
            }
        }
    }

    private void FailQueued(Exception exception)
    {
        while (_outbox.TryDequeue(out var item))
        {
            item.Sent.TrySetException(exception);
        }
    }

    private void OnNotification(object sender, NpgsqlNotificationEventArgs e)
    {
        if (string.Equals(e.Channel, _channel, StringComparison.Ordinal))
        {
            _handler.OnNotification(e.Payload);
        }
    }
}
