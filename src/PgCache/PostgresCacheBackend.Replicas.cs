using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;
using PgFirst.Core;

namespace PgCache;

#pragma warning disable VSTHRD002, VSTHRD103, CA2012

// Gets from read replicas (PgCacheOptions.ReadConsistency): a read-only statement on the standby the router chose;
// the primary answers when no standby may, when the standby fails or conflicts with recovery, and when a sliding
// entry is due for its refresh (only the primary can extend it).
public sealed partial class PostgresCacheBackend
{
    // The key matters only to read-your-writes: other levels skip building it.
    private NpgsqlDataSource? ChooseReplica(string tenantId, string? key) => _replicas is { } replicas && !_replicaTableUnreadable
        ? replicas.Choose(key is null || replicas.Consistency != PgReadConsistency.ReadYourWrites ? null : WriteKey(tenantId, key))
        : null;

    private static string WriteKey(string tenantId, string key) => string.Concat(tenantId, "\0", key);

    private void Wrote(string tenantId, string key)
    {
        if (_replicas is { Consistency: PgReadConsistency.ReadYourWrites } replicas)
        {
            replicas.Wrote(WriteKey(tenantId, key));
        }
    }

    // A hit on the primary may have extended a sliding entry: under read-your-writes that is a write this instance made,
    // so a standby that has not replayed it must not answer for the key (it would see the entry as expired and miss).
    private void SlidOnThePrimary(string tenantId, string key) => Wrote(tenantId, key);

    // (true, value) when the standby answered with no refresh due; (false, null) when the primary must answer.
    private async ValueTask<(bool Answered, byte[]? Value)> ReplicaGetAsync(NpgsqlDataSource replica, PgCacheRead read, string key, bool async, CancellationToken cancellationToken)
    {
        try
        {
            var connection = async ? await replica.OpenConnectionAsync(cancellationToken).ConfigureAwait(false) : replica.OpenConnection();
            await using var connectionScope = connection.ConfigureAwait(false);
            var command = Command(connection, _sql.ReplicaGet, read.TenantId);
            await using var commandScope = command.ConfigureAwait(false);
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key, NpgsqlDbType = NpgsqlDbType.Text });
            AddReadParameters(command, read);
            await PrepareAsync(command, async, cancellationToken).ConfigureAwait(false);
            var reader = async ? await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false) : command.ExecuteReader();
            await using var readerScope = reader.ConfigureAwait(false);
            if (!(async ? await reader.ReadAsync(cancellationToken).ConfigureAwait(false) : reader.Read()))
            {
                _replicas!.Answered(replica);
                return (true, null);
            }

            if (reader.GetBoolean(1))
            {
                return (false, null);
            }

            var value = reader.GetFieldValue<byte[]>(0);
            _replicas!.Answered(replica);
            return (true, value);
        }
        catch (NpgsqlException ex) when (!cancellationToken.IsCancellationRequested)
        {
            ReplicaReadFailed(ex, "get");
            return (false, null);
        }
    }

    // The hits when the standby answered and none is due for a refresh; null when the primary must answer.
    private async Task<IReadOnlyDictionary<string, byte[]>?> ReplicaGetManyAsync(NpgsqlDataSource replica, PgCacheRead read, string[] keys, CancellationToken cancellationToken)
    {
        try
        {
            var connection = await replica.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using var connectionScope = connection.ConfigureAwait(false);
            var command = Command(connection, _sql.ReplicaGetMany, read.TenantId);
            await using var commandScope = command.ConfigureAwait(false);
            command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = keys, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
            AddReadParameters(command, read);
            await PrepareAsync(command, async: true, cancellationToken).ConfigureAwait(false);
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using var readerScope = reader.ConfigureAwait(false);
            var found = new Dictionary<string, byte[]>(keys.Length, StringComparer.Ordinal);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                if (reader.GetBoolean(2))
                {
                    return null;
                }

                found[reader.GetString(0)] = reader.GetFieldValue<byte[]>(1);
            }

            _replicas!.Answered(replica);
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
        if (exception is PostgresException { SqlState: PostgresErrorCodes.FeatureNotSupported } && !_replicaTableUnreadable)
        {
            _replicaTableUnreadable = true;
            LogReplicaTableUnreadable(_logger, exception, _schemaName);
            return;
        }

        LogReplicaReadFailed(_logger, exception, operation, exception.Message);
    }

    [LoggerMessage(PgCacheEventIds.ReplicaReadFailed, LogLevel.Warning, "PgCache {Operation} on a read replica failed and was read on the primary: {Reason}")]
    private static partial void LogReplicaReadFailed(ILogger logger, Exception exception, string operation, string reason);

    [LoggerMessage(PgCacheEventIds.ReplicaTableUnreadable, LogLevel.Error, "PgCache gets cannot be read on the read replicas: the cache_entry table of schema {Schema} is UNLOGGED there (created before PgCache:Durability was Logged?). Every get goes to the primary; run ALTER TABLE ... SET LOGGED on the primary, or set ReadConsistency to Strong.")]
    private static partial void LogReplicaTableUnreadable(ILogger logger, Exception exception, string schema);
}
