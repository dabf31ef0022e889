using Npgsql;
using NpgsqlTypes;
using PgFirst.Core;

namespace PgCache;

#pragma warning disable VSTHRD002, VSTHRD103, CA2012

// Gets from read replicas (PgCacheOptions.ReadConsistency): a read-only statement on the standby the router chose;
// the primary answers when no standby may, when the standby fails or conflicts with recovery, and when a sliding
// entry is due for its refresh (only the primary can extend it).
public sealed partial class PgDistributedCache
{
    private const string ModuleName = "pgcache";

    // The key matters only to read-your-writes: other levels skip building it.
    private NpgsqlDataSource? ChooseReplica(string? key) => _shared.Replicas is { } replicas && !_shared.ReplicaTableUnreadable
        ? replicas.Choose(key is null || replicas.Consistency != PgReadConsistency.ReadYourWrites ? null : WriteKey(key))
        : null;

    private string WriteKey(string key) => string.Concat(TenantId, "\0", key);

    private void Wrote(string key) => _shared.Replicas?.Wrote(WriteKey(key));

    private void Wrote(string[] keys)
    {
        if (_shared.Replicas is { Consistency: PgReadConsistency.ReadYourWrites } replicas)
        {
            foreach (var key in keys)
            {
                replicas.Wrote(WriteKey(key));
            }
        }
    }

    // A hit on the primary may have extended a sliding entry: under read-your-writes that is a write this instance made,
    // so a standby that has not replayed it must not answer for the key (it would see the entry as expired and miss).
    private void SlidOnThePrimary(string key)
    {
        if (_shared.Replicas is { Consistency: PgReadConsistency.ReadYourWrites })
        {
            Wrote(key);
        }
    }

    private void SlidOnThePrimary(IEnumerable<string> keys)
    {
        if (_shared.Replicas is { Consistency: PgReadConsistency.ReadYourWrites } replicas)
        {
            foreach (var key in keys)
            {
                replicas.Wrote(WriteKey(key));
            }
        }
    }

    private async Task WriteThenRecordAsync<T>(ValueTask<T> write, string key)
    {
        await write.ConfigureAwait(false);
        Wrote(key);
    }

    // (true, value) when the standby answered with no refresh due; (false, null) when the primary must answer.
    private async ValueTask<(bool Answered, byte[]? Value)> ReplicaGetAsync(NpgsqlDataSource replica, string key, bool async, CancellationToken cancellationToken)
    {
        var started = Internal.PgCacheMetrics.Start();
        try
        {
            var connection = async ? await replica.OpenConnectionAsync(cancellationToken).ConfigureAwait(false) : replica.OpenConnection();
            await using var connectionScope = connection.ConfigureAwait(false);
            var command = Command(connection, _shared.Sql.ReplicaGet, TenantId);
            await using var commandScope = command.ConfigureAwait(false);
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key, NpgsqlDbType = NpgsqlDbType.Text });
            AddReadParameters(command);
            await PrepareAsync(command, async, cancellationToken).ConfigureAwait(false);
            var reader = async ? await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false) : command.ExecuteReader();
            await using var readerScope = reader.ConfigureAwait(false);
            if (!(async ? await reader.ReadAsync(cancellationToken).ConfigureAwait(false) : reader.Read()))
            {
                _shared.Metrics.Record("get", "miss", started);
                _shared.Replicas!.Answered(replica);
                return (true, null);
            }

            if (reader.GetBoolean(1))
            {
                return (false, null);
            }

            var value = reader.GetFieldValue<byte[]>(0);
            _shared.Metrics.Record("get", "hit", started);
            _shared.Metrics.Read(value.Length);
            _shared.Replicas!.Answered(replica);
            return (true, value);
        }
        catch (NpgsqlException ex) when (!cancellationToken.IsCancellationRequested)
        {
            ReplicaReadFailed(ex, "get");
            return (false, null);
        }
    }

    // The hits when the standby answered and none is due for a refresh; null when the primary must answer.
    private async Task<IReadOnlyDictionary<string, byte[]>?> ReplicaGetManyAsync(NpgsqlDataSource replica, string[] keys, CancellationToken cancellationToken)
    {
        var started = Internal.PgCacheMetrics.Start();
        try
        {
            var connection = await replica.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using var connectionScope = connection.ConfigureAwait(false);
            var command = Command(connection, _shared.Sql.ReplicaGetMany, TenantId);
            await using var commandScope = command.ConfigureAwait(false);
            command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = keys, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
            AddReadParameters(command);
            await PrepareAsync(command, async: true, cancellationToken).ConfigureAwait(false);
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using var readerScope = reader.ConfigureAwait(false);
            var found = new Dictionary<string, byte[]>(keys.Length, StringComparer.Ordinal);
            long bytes = 0;
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                if (reader.GetBoolean(2))
                {
                    return null;
                }

                var value = reader.GetFieldValue<byte[]>(1);
                found[reader.GetString(0)] = value;
                bytes += value.Length;
            }

            _shared.Metrics.Record("get_many", found.Count == 0 ? "miss" : "hit", started);
            _shared.Metrics.Read(bytes);
            _shared.Replicas!.Answered(replica);
            return found;
        }
        catch (NpgsqlException ex) when (!cancellationToken.IsCancellationRequested)
        {
            ReplicaReadFailed(ex, "get_many");
            return null;
        }
    }

    // A table created UNLOGGED (before Durability was set to Logged, say) cannot be read on a standby at all: say so
    // once and read from the primary from then on, rather than fail over on every get.
    private void ReplicaReadFailed(NpgsqlException exception, string operation)
    {
        if (exception is PostgresException { SqlState: PostgresErrorCodes.FeatureNotSupported } && !_shared.ReplicaTableUnreadable)
        {
            _shared.ReplicaTableUnreadable = true;
            LogReplicaTableUnreadable(_shared.Logger, exception, _shared.SchemaName);
            return;
        }

        LogReplicaReadFailed(_shared.Logger, exception, operation, exception.Message);
    }
}
