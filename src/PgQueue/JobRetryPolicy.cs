namespace PgQueue;

/// <summary>
/// When a failed job runs again: exponential back-off with jitter,
/// <c>min(MaxDelay, BaseDelay × 2^(attempt − 1)) × (1 ± Jitter)</c>.
/// </summary>
public sealed class JobRetryPolicy
{
    /// <summary>Gets or sets the delay after the first failure. <value>The default is 2 seconds.</value></summary>
    public TimeSpan BaseDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Gets or sets the longest delay. <value>The default is 1 hour.</value></summary>
    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Gets or sets the jitter as a fraction of the delay, so jobs that failed together do not retry together.
    /// <value>The default is 0.2 (±20%). Between 0 and 1.</value>
    /// </summary>
    public double Jitter { get; set; } = 0.2;

    /// <summary>
    /// Returns the delay before the attempt after <paramref name="failedAttempt"/>.
    /// </summary>
    /// <param name="failedAttempt">The attempt that failed (1-based).</param>
    /// <param name="random">The source of jitter; <see cref="Random.Shared"/> when <see langword="null"/>.</param>
    /// <returns>The delay.</returns>
    public TimeSpan GetDelay(int failedAttempt, Random? random = null)
    {
        var exponent = Math.Clamp(failedAttempt - 1, 0, 40);
        var delay = Math.Min(MaxDelay.TotalMilliseconds, BaseDelay.TotalMilliseconds * Math.Pow(2, exponent));
        var factor = 1 + (Jitter * ((2 * (random ?? Random.Shared).NextDouble()) - 1));
        return TimeSpan.FromMilliseconds(Math.Max(0, delay * factor));
    }

    internal string? Validate(string name)
    {
        if (BaseDelay < TimeSpan.Zero || MaxDelay < BaseDelay)
        {
            return $"{name}: BaseDelay must not be negative and MaxDelay must be at least BaseDelay.";
        }

        return Jitter is < 0 or > 1 or double.NaN ? $"{name}: Jitter must be between 0 and 1." : null;
    }
}
