using PgFirst.Core;

namespace PgFirst.SignalR;

/// <summary>The backplane's schema (<c>sql/pgsignalr</c>): the table of messages too big for a NOTIFY payload, and its cleanup.</summary>
public static class PgSignalRSchema
{
    /// <summary>Gets the schema module.</summary>
    public static PgSchemaModule Module { get; } = PgSchemaModule.FromAssembly("pgsignalr", typeof(PgSignalRSchema).Assembly);

    /// <summary>Gets the maintenance task that deletes large messages past <see cref="PgSignalROptions.LargeMessageRetention"/>.</summary>
    public static PgMaintenanceTask CleanupTask { get; } = new(Module, "signalr_delete_expired");
}
