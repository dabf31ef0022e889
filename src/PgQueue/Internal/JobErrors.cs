using System.Buffers;
using System.Text;
using System.Text.Json;

namespace PgQueue.Internal;

// The error history is a JSON array of {attempt, at, type, message}, readable by SQL users and dashboards.
internal static class JobErrors
{
    public const int MaxMessageLength = 4000;

    public static string ToJsonArray(JobError error)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            Write(writer, error);
            writer.WriteEndArray();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    public static void Write(Utf8JsonWriter writer, JobError error)
    {
        writer.WriteStartObject();
        writer.WriteNumber("attempt", error.Attempt);
        writer.WriteString("at", error.At);
        writer.WriteString("type", error.Type);
        writer.WriteString("message", Truncate(error.Message));
        writer.WriteEndObject();
    }

    public static IReadOnlyList<JobError> Parse(string? json)
    {
        if (string.IsNullOrEmpty(json))
        {
            return [];
        }

        using var document = JsonDocument.Parse(json);
        if (document.RootElement.ValueKind != JsonValueKind.Array)
        {
            return [];
        }

        var errors = new List<JobError>(document.RootElement.GetArrayLength());
        foreach (var item in document.RootElement.EnumerateArray())
        {
            errors.Add(new JobError(
                item.TryGetProperty("attempt", out var attempt) && attempt.TryGetInt32(out var a) ? a : 0,
                item.TryGetProperty("at", out var at) && at.TryGetDateTimeOffset(out var t) ? t : default,
                item.TryGetProperty("type", out var type) ? type.GetString() ?? "" : "",
                item.TryGetProperty("message", out var message) ? message.GetString() ?? "" : ""));
        }

        return errors;
    }

    public static JobError FromException(int attempt, DateTimeOffset at, Exception exception) =>
        new(attempt, at, exception.GetType().FullName ?? exception.GetType().Name, Truncate(exception.ToString()));

    public static string Truncate(string message) =>
        message.Length <= MaxMessageLength ? message : string.Concat(message.AsSpan(0, MaxMessageLength - 1), "…");
}
