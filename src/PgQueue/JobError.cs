namespace PgQueue;

/// <summary>
/// One failed attempt in a job's error history.
/// </summary>
/// <param name="Attempt">The attempt that failed (1-based).</param>
/// <param name="At">When it failed.</param>
/// <param name="Type">The exception type, or a PgQueue reason such as <c>LeaseExpired</c> or <c>PayloadUnreadable</c>.</param>
/// <param name="Message">The error message (for exceptions, the message and stack trace, truncated).</param>
public sealed record JobError(int Attempt, DateTimeOffset At, string Type, string Message);
