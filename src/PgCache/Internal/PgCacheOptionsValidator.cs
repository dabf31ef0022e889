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

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
