using Npgsql;

namespace PgFirst.Testing;

/// <summary>
/// A throwaway primary and its streaming standby (<see cref="PrivatePostgres"/>), with a data source on each and the
/// replay controls the read-replica tests use. Both clusters are stopped and deleted on dispose.
/// </summary>
public sealed class StandbyPair : IAsyncDisposable
{
    private StandbyPair(PrivatePostgres primary, PrivatePostgres standby)
    {
        Primary = primary;
        Standby = standby;
        PrimaryData = NpgsqlDataSource.Create(primary.ConnectionString);
        StandbyData = NpgsqlDataSource.Create(standby.ConnectionString);
    }

    /// <summary>Gets the primary.</summary>
    public PrivatePostgres Primary { get; }

    /// <summary>Gets the standby.</summary>
    public PrivatePostgres Standby { get; }

    /// <summary>Gets a data source on the primary.</summary>
    public NpgsqlDataSource PrimaryData { get; }

    /// <summary>Gets a data source on the standby.</summary>
    public NpgsqlDataSource StandbyData { get; }

    /// <summary>Creates the primary and its standby, streaming.</summary>
    public static async Task<StandbyPair> CreateAsync(CancellationToken cancellationToken)
    {
        var primary = await PrivatePostgres.CreateAsync(cancellationToken);
        try
        {
            return new StandbyPair(primary, await primary.CreateStandbyAsync(cancellationToken));
        }
        catch
        {
            await primary.DisposeAsync();
            throw;
        }
    }

    /// <summary>Waits until the standby has replayed everything the primary had written.</summary>
    public Task WaitForReplayAsync(CancellationToken cancellationToken) => Primary.WaitForReplayAsync(Standby, cancellationToken);

    /// <summary>Pauses replay on the standby (<c>pg_wal_replay_pause()</c>).</summary>
    public Task PauseReplayAsync(CancellationToken cancellationToken) => OnStandbyAsync("SELECT pg_wal_replay_pause()", cancellationToken);

    /// <summary>Resumes replay on the standby (<c>pg_wal_replay_resume()</c>).</summary>
    public Task ResumeReplayAsync(CancellationToken cancellationToken) => OnStandbyAsync("SELECT pg_wal_replay_resume()", cancellationToken);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await PrimaryData.DisposeAsync();
        await StandbyData.DisposeAsync();
        await Standby.DisposeAsync();
        await Primary.DisposeAsync();
    }

    private async Task OnStandbyAsync(string sql, CancellationToken cancellationToken)
    {
        await using var command = StandbyData.CreateCommand(sql);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
