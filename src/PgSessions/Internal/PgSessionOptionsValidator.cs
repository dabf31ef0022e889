using Microsoft.Extensions.Options;
using PgFirst.Core;

namespace PgSessions.Internal;

internal sealed class PgSessionOptionsValidator(IOptions<PgFirstOptions> first) : IValidateOptions<PgSessionOptions>
{
    public static readonly TimeSpan MinLifetime = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan MaxLifetime = TimeSpan.FromDays(366);

    public static void ValidateLifetime(TimeSpan? lifetime, string paramName)
    {
        if (lifetime is { } value && (value < MinLifetime || value > MaxLifetime))
        {
            throw new ArgumentOutOfRangeException(paramName, value, $"A session lifetime is between {MinLifetime} and {MaxLifetime}.");
        }
    }

    public ValidateOptionsResult Validate(string? name, PgSessionOptions options)
    {
        var failures = new List<string>();
        if (options.IdleTimeout < MinLifetime || options.IdleTimeout > MaxLifetime)
        {
            failures.Add($"PgSessions:IdleTimeout {options.IdleTimeout} must be between {MinLifetime} and {MaxLifetime}.");
        }

        if (options.AbsoluteLifetime < MinLifetime || options.AbsoluteLifetime > MaxLifetime)
        {
            failures.Add($"PgSessions:AbsoluteLifetime {options.AbsoluteLifetime} must be between {MinLifetime} and {MaxLifetime}.");
        }

        if (options.TouchInterval < TimeSpan.Zero || options.TouchInterval > options.IdleTimeout)
        {
            failures.Add($"PgSessions:TouchInterval {options.TouchInterval} must be between 00:00:00 and the idle timeout ({options.IdleTimeout}).");
        }

        if (options.MaxSessionBytes < 1024 || options.MaxSessionBytes > 64 * 1024 * 1024)
        {
            failures.Add($"PgSessions:MaxSessionBytes {options.MaxSessionBytes} must be between 1024 and 67108864.");
        }

        if (!Enum.IsDefined(options.CommitDurability))
        {
            failures.Add($"PgSessions:CommitDurability {(int)options.CommitDurability} must be Synchronous or Asynchronous.");
        }

        if (!Enum.IsDefined(options.ReadConsistency))
        {
            failures.Add($"PgSessions:ReadConsistency {(int)options.ReadConsistency} is not Strong, BoundedStaleness or ReadYourWrites.");
        }
        else if (options.ReadConsistency != PgReadConsistency.Strong && first.Value.Replicas.ConnectionString is null)
        {
            failures.Add($"PgSessions:ReadConsistency {options.ReadConsistency} reads from replicas, but PgFirst:Replicas:ConnectionString is not set.");
        }

        if (options.MaxReplicaLag <= TimeSpan.Zero)
        {
            failures.Add($"PgSessions:MaxReplicaLag {options.MaxReplicaLag} must be positive.");
        }

        var near = options.NearCache;
        if (near.MaxStaleness < PgSessionNearCacheOptions.MinStaleness || near.MaxStaleness > PgSessionNearCacheOptions.MaxStalenessLimit)
        {
            failures.Add($"PgSessions:NearCache:MaxStaleness {near.MaxStaleness} must be between {PgSessionNearCacheOptions.MinStaleness} and {PgSessionNearCacheOptions.MaxStalenessLimit}.");
        }

        if (near.MaxEntries is < 1 or > 10_000_000)
        {
            failures.Add($"PgSessions:NearCache:MaxEntries {near.MaxEntries} must be between 1 and 10000000.");
        }

        if (near.Enabled && options.ReadConsistency != PgReadConsistency.Strong)
        {
            // A load from a lagging standby right after a revocation's notification would be kept as fresh: the bound
            // would become MaxReplicaLag + MaxStaleness, whatever the notification's speed.
            failures.Add($"PgSessions:NearCache:Enabled is true with PgSessions:ReadConsistency {options.ReadConsistency}: the near cache keeps what a load returns, so its loads must read the primary (Strong).");
        }

        if (near.Enabled && first.Value.GetBackend(PgFirstModule.Sessions) != PgFirstBackend.PostgreSql)
        {
            failures.Add("PgSessions:NearCache:Enabled is true, but sessions run on Redis: the session near cache listens on PostgreSQL (LISTEN/NOTIFY) only.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
