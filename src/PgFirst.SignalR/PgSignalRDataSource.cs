using Npgsql;

namespace PgFirst.SignalR;

/// <summary>
/// The data source the SignalR backplane sends through and reads large messages with: the one PgFirst uses
/// (<c>PgFirst:DataSourceKey</c>) when registered by <c>AddSignalR().AddPgFirst()</c>. Not disposed by the backplane.
/// </summary>
public sealed class PgSignalRDataSource
{
    /// <summary>Initializes a new instance of the <see cref="PgSignalRDataSource"/> class.</summary>
    /// <param name="dataSource">The data source.</param>
    public PgSignalRDataSource(NpgsqlDataSource dataSource)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        DataSource = dataSource;
    }

    /// <summary>Gets the data source.</summary>
    public NpgsqlDataSource DataSource { get; }
}
