using Microsoft.Extensions.Options;
using PgFirst.Core;

namespace PgQueue.Internal;

internal sealed class PgQueueOptionsValidator(IOptions<PgFirstOptions> first) : IValidateOptions<PgQueueOptions>
{
    public ValidateOptionsResult Validate(string? name, PgQueueOptions options)
    {
        var failures = new List<string>();
        if (!JobQueue.IsValidQueueName(options.DefaultQueue))
        {
            failures.Add($"PgQueue:DefaultQueue '{options.DefaultQueue}' is not a valid queue name (1 to 100 letters, digits, '_', '-', '.' or ':').");
        }

        if (options.DefaultMaxAttempts is < 1 or > 10_000)
        {
            failures.Add("PgQueue:DefaultMaxAttempts must be between 1 and 10000.");
        }

        if (options.DefaultConcurrency is < 0 or > 1000 || options.DefaultPrefetch is < 0 or > 10_000)
        {
            failures.Add("PgQueue:DefaultConcurrency must be between 0 and 1000 and DefaultPrefetch between 0 and 10000.");
        }

        foreach (var (queue, worker) in options.Queues)
        {
            if (!JobQueue.IsValidQueueName(queue))
            {
                failures.Add($"PgQueue:Queues has an invalid queue name '{queue}'.");
            }

            if (worker is null || worker.Concurrency is < 0 or > 1000 || worker.Prefetch is < 0 or > 10_000)
            {
                failures.Add($"PgQueue:Queues:{queue}: Concurrency must be between 0 and 1000 and Prefetch between 0 and 10000.");
            }
        }

        if (options.LeaseDuration < TimeSpan.FromSeconds(1))
        {
            failures.Add("PgQueue:LeaseDuration must be at least 1 second.");
        }

        if (options.HeartbeatInterval <= TimeSpan.Zero || options.HeartbeatInterval >= options.LeaseDuration)
        {
            failures.Add("PgQueue:HeartbeatInterval must be positive and shorter than LeaseDuration (a third of it is a good choice).");
        }

        if (options.PollInterval < TimeSpan.FromMilliseconds(10) || options.PollInterval > TimeSpan.FromMinutes(10))
        {
            failures.Add("PgQueue:PollInterval must be between 10 ms and 10 minutes.");
        }

        if (options.NotifyDebounce < TimeSpan.Zero || options.NotifyDebounce > TimeSpan.FromSeconds(10))
        {
            failures.Add("PgQueue:NotifyDebounce must be between zero and 10 seconds.");
        }

        if (options.ShutdownGracePeriod < TimeSpan.Zero)
        {
            failures.Add("PgQueue:ShutdownGracePeriod must not be negative.");
        }

        if (options.SucceededRetention < TimeSpan.Zero || options.CancelledRetention < TimeSpan.Zero || options.DeadRetention < TimeSpan.Zero)
        {
            failures.Add("PgQueue retention periods must not be negative.");
        }

        if (options.MaxPayloadBytes is < 16 or > 256 * 1024 * 1024)
        {
            failures.Add("PgQueue:MaxPayloadBytes must be between 16 bytes and 256 MiB.");
        }

        if (options.MaxClaimBatch is < 1 or > 10_000)
        {
            failures.Add("PgQueue:MaxClaimBatch must be between 1 and 10000.");
        }

        if (options.SerializerOptions is null)
        {
            failures.Add("PgQueue:SerializerOptions must not be null.");
        }

        if (options.Retry is null)
        {
            failures.Add("PgQueue:Retry must not be null.");
        }
        else if (options.Retry.Validate("PgQueue:Retry") is { } retryError)
        {
            failures.Add(retryError);
        }

        if (options.StatsReadConsistency is not (PgReadConsistency.Strong or PgReadConsistency.BoundedStaleness))
        {
            failures.Add($"PgQueue:StatsReadConsistency {options.StatsReadConsistency} must be Strong or BoundedStaleness (the statistics are not read by key).");
        }
        else if (options.StatsReadConsistency != PgReadConsistency.Strong && first.Value.Replicas.ConnectionString is null)
        {
            failures.Add("PgQueue:StatsReadConsistency BoundedStaleness reads from replicas, but PgFirst:Replicas:ConnectionString is not set.");
        }

        if (options.MaxReplicaLag <= TimeSpan.Zero)
        {
            failures.Add($"PgQueue:MaxReplicaLag {options.MaxReplicaLag} must be positive.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
