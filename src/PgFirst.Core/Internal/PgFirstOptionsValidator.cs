using Microsoft.Extensions.Options;
using Npgsql;

namespace PgFirst.Core.Internal;

internal sealed class PgFirstOptionsValidator : IValidateOptions<PgFirstOptions>
{
    public ValidateOptionsResult Validate(string? name, PgFirstOptions options)
    {
        var failures = new List<string>();
        if (!PgIdentifier.IsValidSchemaName(options.SchemaName))
        {
            failures.Add($"PgFirst:SchemaName '{options.SchemaName}' is not a valid schema name: it must match {PgIdentifier.SchemaNamePattern}.");
        }

        if (!PgTenantId.IsValid(options.DefaultTenantId))
        {
            failures.Add($"PgFirst:DefaultTenantId is not a valid tenant id: {PgTenantId.Rule}");
        }

        foreach (var module in Enum.GetValues<PgFirstModule>())
        {
            var backend = options.GetBackend(module);
            if (!Enum.IsDefined(backend))
            {
                failures.Add($"PgFirst: the backend of {module} ({(int)backend}) is neither PostgreSql nor Redis.");
            }
        }

        if (!Enum.IsDefined(options.Pooler))
        {
            failures.Add($"PgFirst:Pooler ({(int)options.Pooler}) is not None, Transaction or Session.");
        }

        ValidateConnectionString(options.ListenConnectionString, "PgFirst:ListenConnectionString", "give a direct connection string", failures);
        var r = options.Replicas;
        ValidateConnectionString(r.ConnectionString, "PgFirst:Replicas:ConnectionString", "list the standbys", failures);
        if (r.SampleInterval < TimeSpan.FromMilliseconds(10) || r.SampleInterval > TimeSpan.FromMinutes(1))
        {
            failures.Add($"PgFirst:Replicas:SampleInterval {r.SampleInterval} must be between 00:00:00.010 and 00:01:00.");
        }

        if (r.DegradedLag <= TimeSpan.Zero)
        {
            failures.Add($"PgFirst:Replicas:DegradedLag {r.DegradedLag} must be positive.");
        }

        if (r.MaxTrackedWrites is < 1 or > 10_000_000)
        {
            failures.Add($"PgFirst:Replicas:MaxTrackedWrites {r.MaxTrackedWrites} must be between 1 and 10000000.");
        }

        var m = options.Maintenance;
        if (m.Interval < TimeSpan.FromSeconds(1) || m.Interval > TimeSpan.FromDays(1))
        {
            failures.Add($"PgFirst:Maintenance:Interval {m.Interval} must be between 00:00:01 and 1.00:00:00.");
        }

        if (double.IsNaN(m.Jitter) || m.Jitter < 0 || m.Jitter > 1)
        {
            failures.Add($"PgFirst:Maintenance:Jitter {m.Jitter} must be between 0 and 1.");
        }

        if (m.BatchSize is < 1 or > 100_000)
        {
            failures.Add($"PgFirst:Maintenance:BatchSize {m.BatchSize} must be between 1 and 100000.");
        }

        if (m.MaxBatchesPerRun is < 1 or > 1000)
        {
            failures.Add($"PgFirst:Maintenance:MaxBatchesPerRun {m.MaxBatchesPerRun} must be between 1 and 1000.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    // An optional connection string: unset, or parseable with at least one host.
    private static void ValidateConnectionString(string? value, string setting, string advice, List<string> failures)
    {
        if (value is null)
        {
            return;
        }

        try
        {
            if (string.IsNullOrWhiteSpace(value) || string.IsNullOrEmpty(new NpgsqlConnectionStringBuilder(value).Host))
            {
                failures.Add($"{setting} names no Host: {advice}, or leave it unset.");
            }
        }
        catch (ArgumentException ex)
        {
            failures.Add($"{setting} is not a valid Npgsql connection string: {ex.Message}");
        }
    }
}
