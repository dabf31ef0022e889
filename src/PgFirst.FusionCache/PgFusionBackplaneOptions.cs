namespace PgFirst.FusionCache;

/// <summary>Options of <see cref="PgFusionBackplane"/>.</summary>
public sealed class PgFusionBackplaneOptions
{
    /// <summary>
    /// Gets or sets a direct connection string (past any pooler) for the one connection that LISTENs. When not set,
    /// <c>PgFirst:ListenConnectionString</c> is used, else a connection of the data source is held for it (not possible
    /// behind a transaction pooler: the backplane then refuses to be created).
    /// </summary>
    /// <value>The default is <see langword="null"/>.</value>
    public string? ListenConnectionString { get; set; }

    /// <summary>Gets or sets the prefix of the NOTIFY channel; the rest is a hash of FusionCache's channel name, so any cache name fits PostgreSQL's 63-byte limit.</summary>
    /// <value>The default is <c>pgfirst_fc</c>.</value>
    public string ChannelPrefix { get; set; } = "pgfirst_fc";

    /// <summary>Gets or sets the first wait before the listener reconnects after losing its connection; it doubles up to <see cref="MaxReconnectDelay"/>.</summary>
    /// <value>The default is 500 ms.</value>
    public TimeSpan ReconnectDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Gets or sets the longest wait between reconnection attempts.</summary>
    /// <value>The default is 10 s.</value>
    public TimeSpan MaxReconnectDelay { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Gets or sets how often the idle listen connection is checked (Npgsql keepalive), so a dead server or network is noticed.</summary>
    /// <value>The default is 5 s.</value>
    public TimeSpan KeepAlive { get; set; } = TimeSpan.FromSeconds(5);

    internal void Validate()
    {
        if (string.IsNullOrEmpty(ChannelPrefix) || ChannelPrefix.Length > 40 || !ChannelPrefix.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '_'))
        {
            throw new ArgumentException($"ChannelPrefix '{ChannelPrefix}' must be 1 to 40 characters of a-z, 0-9 and _.", nameof(ChannelPrefix));
        }

        if (ReconnectDelay <= TimeSpan.Zero || MaxReconnectDelay < ReconnectDelay || MaxReconnectDelay > TimeSpan.FromMinutes(5))
        {
            throw new ArgumentException($"ReconnectDelay ({ReconnectDelay}) must be positive and at most MaxReconnectDelay ({MaxReconnectDelay}), itself at most 5 minutes.", nameof(ReconnectDelay));
        }

        if (KeepAlive < TimeSpan.FromSeconds(1) || KeepAlive > TimeSpan.FromMinutes(10))
        {
            throw new ArgumentException($"KeepAlive ({KeepAlive}) must be between 1 s and 10 minutes.", nameof(KeepAlive));
        }
    }
}
