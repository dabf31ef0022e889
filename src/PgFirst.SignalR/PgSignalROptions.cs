namespace PgFirst.SignalR;

/// <summary>Options of the PostgreSQL SignalR backplane (<see cref="PgHubLifetimeManager{THub}"/>).</summary>
public sealed class PgSignalROptions
{
    /// <summary>
    /// Gets or sets a direct connection string (past any pooler) for the one connection per hub that LISTENs. When not
    /// set, <c>PgFirst:ListenConnectionString</c> is used, else a connection of the data source is held for it (not
    /// possible behind a transaction pooler: the backplane then refuses to start).
    /// </summary>
    /// <value>The default is <see langword="null"/>.</value>
    public string? ListenConnectionString { get; set; }

    /// <summary>Gets or sets the prefix of each hub's NOTIFY channel; the rest is a hash of the schema and the hub's type name, so any hub name fits PostgreSQL's 63-byte limit.</summary>
    /// <value>The default is <c>pgfirst_signalr</c>.</value>
    public string ChannelPrefix { get; set; } = "pgfirst_signalr";

    /// <summary>
    /// Gets or sets how long a group change for a connection on another instance, or the acceptance of a client-result
    /// invocation there, is awaited before the call fails (no instance has the connection, or it did not answer).
    /// </summary>
    /// <value>The default is 30 s, as Microsoft's Redis backplane waits for its acknowledgements.</value>
    public TimeSpan AckTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Gets or sets how long a message too big for a NOTIFY payload stays in <c>signalr_message</c> for the instances to
    /// read it; the maintenance runner deletes it afterwards. An instance that reads it later (a backlog longer than
    /// this) drops it and logs a warning.
    /// </summary>
    /// <value>The default is 5 minutes.</value>
    public TimeSpan LargeMessageRetention { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Gets or sets the first wait before the listener reconnects after losing its connection; it doubles up to <see cref="MaxReconnectDelay"/>.</summary>
    /// <value>The default is 500 ms.</value>
    public TimeSpan ReconnectDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Gets or sets the longest wait between reconnection attempts.</summary>
    /// <value>The default is 10 s.</value>
    public TimeSpan MaxReconnectDelay { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Gets or sets how often the idle listen connection is checked (Npgsql keepalive), so a dead server or network is noticed.</summary>
    /// <value>The default is 5 s.</value>
    public TimeSpan KeepAlive { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Throws when an option is out of range; called at start-up.</summary>
    /// <exception cref="ArgumentException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        if (string.IsNullOrEmpty(ChannelPrefix) || ChannelPrefix.Length > 40 || !ChannelPrefix.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '_'))
        {
            throw new ArgumentException($"PgSignalR:ChannelPrefix '{ChannelPrefix}' must be 1 to 40 characters of a-z, 0-9 and _.", nameof(ChannelPrefix));
        }

        if (AckTimeout < TimeSpan.FromMilliseconds(100) || AckTimeout > TimeSpan.FromMinutes(5))
        {
            throw new ArgumentException($"PgSignalR:AckTimeout ({AckTimeout}) must be between 100 ms and 5 minutes.", nameof(AckTimeout));
        }

        if (LargeMessageRetention < TimeSpan.FromSeconds(1) || LargeMessageRetention > TimeSpan.FromDays(1))
        {
            throw new ArgumentException($"PgSignalR:LargeMessageRetention ({LargeMessageRetention}) must be between 1 s and 1 day.", nameof(LargeMessageRetention));
        }

        if (ReconnectDelay <= TimeSpan.Zero || MaxReconnectDelay < ReconnectDelay || MaxReconnectDelay > TimeSpan.FromMinutes(5))
        {
            throw new ArgumentException($"PgSignalR:ReconnectDelay ({ReconnectDelay}) must be positive and at most MaxReconnectDelay ({MaxReconnectDelay}), itself at most 5 minutes.", nameof(ReconnectDelay));
        }

        if (KeepAlive < TimeSpan.FromSeconds(1) || KeepAlive > TimeSpan.FromMinutes(10))
        {
            throw new ArgumentException($"PgSignalR:KeepAlive ({KeepAlive}) must be between 1 s and 10 minutes.", nameof(KeepAlive));
        }
    }
}
