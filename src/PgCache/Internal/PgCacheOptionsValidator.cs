using Microsoft.Extensions.Options;

namespace PgCache.Internal;

internal sealed class PgCacheOptionsValidator : IValidateOptions<PgCacheOptions>
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

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
