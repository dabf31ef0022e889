using Microsoft.Extensions.Options;

namespace PgFirst.Redis.Internal;

internal sealed class PgFirstRedisOptionsValidator : IValidateOptions<PgFirstRedisOptions>
{
    public ValidateOptionsResult Validate(string? name, PgFirstRedisOptions options)
    {
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(options.Configuration))
        {
            failures.Add("PgFirst:Redis:Configuration is required (e.g. 127.0.0.1:6379) when a module runs on Redis.");
        }
        else
        {
            try
            {
                StackExchange.Redis.ConfigurationOptions.Parse(options.Configuration);
            }
            catch (ArgumentException ex)
            {
                failures.Add($"PgFirst:Redis:Configuration is not a valid Redis configuration string: {ex.Message}");
            }
        }

        if (string.IsNullOrEmpty(options.KeyPrefix) || options.KeyPrefix.Any(char.IsWhiteSpace))
        {
            failures.Add("PgFirst:Redis:KeyPrefix must be non-empty and contain no whitespace.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
