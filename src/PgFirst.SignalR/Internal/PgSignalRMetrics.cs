using System.Diagnostics.Metrics;

namespace PgFirst.SignalR.Internal;

/// <summary>The backplane's instruments, on the meter <c>PgFirst.SignalR</c>.</summary>
internal static class PgSignalRMetrics
{
    private static readonly Meter Meter = new("PgFirst.SignalR");

    private static readonly Counter<long> Messages = Meter.CreateCounter<long>(
        "pgfirst.signalr.messages",
        "{message}",
        "Backplane messages sent and received (pgfirst.direction = sent, received; pgfirst.transport = notify: in the NOTIFY payload, table: through signalr_message).");

    /// <summary>Times the listen connection was lost and opened again.</summary>
    public static readonly Counter<long> Reconnects = Meter.CreateCounter<long>("pgfirst.signalr.reconnects", "{reconnect}", "Times the listen connection was lost and opened again.");

    public static void Sent(bool inline) => Messages.Add(
        1,
        new KeyValuePair<string, object?>("pgfirst.direction", "sent"),
        new KeyValuePair<string, object?>("pgfirst.transport", inline ? "notify" : "table"));

    public static void Received(bool inline) => Messages.Add(
        1,
        new KeyValuePair<string, object?>("pgfirst.direction", "received"),
        new KeyValuePair<string, object?>("pgfirst.transport", inline ? "notify" : "table"));
}
