using Microsoft.Extensions.Options;
using PgFirst.Core;

namespace PgCache.Internal;

internal sealed class PgCacheOptionsValidator(IOptions<PgFirstOptions> first) : IValidateOptions<PgCacheOptions>
{
    public ValidateOptionsResult Validate(string? name, PgCacheOptions options)
    {
        var failures = new List<string>();
        if (!Enum.IsDefined(options.Durability))
        {
            failures.Add($"PgCache:Durability {(int)options.Durability} is neither Unlogged nor Logged.");
        }

        if (options.SlidingRefreshGranularity < TimeSpan.Zero || options.SlidingRefreshGranularity > TimeSpan.FromHours(1))
        {
            failures.Add($"PgCache:SlidingRefreshGranularity {options.SlidingRefreshGranularity} must be between 00:00:00 and 01:00:00.");
        }

        if (options.OperationTimeout < TimeSpan.FromSeconds(1) || options.OperationTimeout > TimeSpan.FromMinutes(10))
        {
            failures.Add($"PgCache:OperationTimeout {options.OperationTimeout} must be between 00:00:01 and 00:10:00.");
        }

        if (!Enum.IsDefined(options.ReadConsistency))
        {
            failures.Add($"PgCache:ReadConsistency {(int)options.ReadConsistency} is not Strong, BoundedStaleness or ReadYourWrites.");
        }
        else if (options.ReadConsistency != PgReadConsistency.Strong)
        {
            if (options.Durability != PgCacheDurability.Logged)
            {
                failures.Add($"PgCache:ReadConsistency {options.ReadConsistency} reads from replicas, but PgCache:Durability is " +
                    $"{options.Durability}: an UNLOGGED table is not replicated and cannot be read on a standby. Set Durability to Logged, or ReadConsistency to Strong.");
            }

            if (first.Value.Replicas.ConnectionString is null)
            {
                failures.Add($"PgCache:ReadConsistency {options.ReadConsistency} reads from replicas, but PgFirst:Replicas:ConnectionString is not set.");
            }
        }

        if (options.MaxReplicaLag <= TimeSpan.Zero)
        {
            failures.Add($"PgCache:MaxReplicaLag {options.MaxReplicaLag} must be positive.");
        }

        var near = options.NearCache;
        if (near.MaxEntries is < 1 or > 10_000_000)
        {
            failures.Add($"PgCache:NearCache:MaxEntries {near.MaxEntries} must be between 1 and 10000000.");
        }

        if (near.MaxBytes < 1024 || near.MaxBytes > 16L * 1024 * 1024 * 1024)
        {
            failures.Add($"PgCache:NearCache:MaxBytes {near.MaxBytes} must be between 1024 and 17179869184.");
        }

        if (near.MaxValueBytes < 1 || near.MaxValueBytes > near.MaxBytes)
        {
            failures.Add($"PgCache:NearCache:MaxValueBytes {near.MaxValueBytes} must be positive and at most MaxBytes ({near.MaxBytes}).");
        }

        if (near.MaxLocalLifetime < TimeSpan.FromSeconds(1) || near.MaxLocalLifetime > TimeSpan.FromDays(1))
        {
            failures.Add($"PgCache:NearCache:MaxLocalLifetime {near.MaxLocalLifetime} must be between 00:00:01 and 1.00:00:00.");
        }

        if (near.MaxStaleness < TimeSpan.FromMilliseconds(100) || near.MaxStaleness > TimeSpan.FromMinutes(1))
        {
            failures.Add($"PgCache:NearCache:MaxStaleness {near.MaxStaleness} must be between 00:00:00.1 and 00:01:00.");
        }

        if (near.Enabled && first.Value.GetBackend(PgFirstModule.Cache) == PgFirstBackend.PostgreSql
            && first.Value.Pooler == PgPoolerMode.Transaction && string.IsNullOrWhiteSpace(first.Value.ListenConnectionString))
        {
            failures.Add("PgCache:NearCache:Enabled needs a listener, and PgFirst:Pooler is Transaction: a LISTEN behind a transaction " +
                "pooler hears nothing once its transaction ends. Set PgFirst:ListenConnectionString to a direct connection, or turn the near cache off.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
