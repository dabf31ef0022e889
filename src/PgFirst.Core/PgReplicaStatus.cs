namespace PgFirst.Core;

/// <summary>What PgFirst last measured of one read replica.</summary>
/// <param name="Host">The standby's host (and port, when not the default).</param>
/// <param name="IsAvailable">Whether the last sample reached it and found it in recovery (a standby).</param>
/// <param name="Lag">
/// How far behind the primary it was: the time since the primary was at the WAL position the standby has replayed.
/// <see langword="null"/> when unavailable, or when it is further behind than the samples PgFirst keeps.
/// </param>
/// <param name="SampledAt">When it was last sampled, or <see langword="null"/> before the first sample.</param>
/// <param name="Error">Why it is unavailable, or <see langword="null"/>.</param>
public sealed record PgReplicaStatus(string Host, bool IsAvailable, TimeSpan? Lag, DateTimeOffset? SampledAt, string? Error);
