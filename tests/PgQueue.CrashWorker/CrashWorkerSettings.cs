using Microsoft.Extensions.Configuration;

namespace PgQueue.CrashWorker;

// The worker's settings, from the CrashWorker configuration section.
internal sealed class CrashWorkerSettings
{
    public required string ConnectionString { get; init; }

    public required string Schema { get; init; }

    // "transactional": the effect commits with the job's completion (exactly once).
    // "plain": the effect commits on its own and the job completes after the handler returns (at least once).
    public required bool Transactional { get; init; }

    // How long a handler works between recording its effect and finishing, drawn per job.
    public TimeSpan MinDelay { get; init; }

    public TimeSpan MaxDelay { get; init; }

    public TimeSpan LeaseDuration { get; init; }

    public bool StopWhenInputEnds { get; init; }

    public static CrashWorkerSettings Read(IConfiguration configuration)
    {
        var section = configuration.GetSection("CrashWorker");
        var mode = Required(section, "Mode");
        if (mode is not ("transactional" or "plain"))
        {
            throw new InvalidOperationException($"CrashWorker:Mode must be 'transactional' or 'plain', not '{mode}'.");
        }

        var minDelay = TimeSpan.FromMilliseconds(section.GetValue("MinDelayMs", 20));
        var maxDelay = TimeSpan.FromMilliseconds(section.GetValue("MaxDelayMs", 100));
        if (minDelay < TimeSpan.Zero || maxDelay < minDelay)
        {
            throw new InvalidOperationException("CrashWorker:MinDelayMs must not be negative nor above CrashWorker:MaxDelayMs.");
        }

        var leaseDuration = section.GetValue("LeaseDuration", TimeSpan.FromSeconds(4));
        if (leaseDuration < TimeSpan.FromSeconds(1))
        {
            throw new InvalidOperationException("CrashWorker:LeaseDuration must be at least 1 second.");
        }

        return new CrashWorkerSettings
        {
            ConnectionString = Required(section, "ConnectionString"),
            Schema = Required(section, "Schema"),
            Transactional = mode == "transactional",
            MinDelay = minDelay,
            MaxDelay = maxDelay,
            LeaseDuration = leaseDuration,
            StopWhenInputEnds = section.GetValue("StopWhenInputEnds", false),
        };
    }

    private static string Required(IConfigurationSection section, string key) =>
        section[key] is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException($"Set {section.Path}:{key} (environment variable {section.Path}__{key}).");
}
