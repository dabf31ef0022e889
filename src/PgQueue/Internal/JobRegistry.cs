using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;

namespace PgQueue.Internal;

// What this process knows about payload types: their kind name, queue, defaults, and (when it handles them) how to
// run a job of that kind. Built from the AddJob/AddHandler registrations; read-only after start.
internal sealed class JobRegistry
{
    private readonly Dictionary<Type, JobTypeRegistration> _byType = [];
    private readonly Dictionary<string, JobTypeRegistration> _byKind = new(StringComparer.Ordinal);

    public JobRegistry(IEnumerable<JobTypeRegistration> registrations)
    {
        foreach (var registration in registrations)
        {
            if (_byKind.TryGetValue(registration.Kind, out var existing) && existing.PayloadType != registration.PayloadType)
            {
                throw new InvalidOperationException($"The job kind '{registration.Kind}' is registered for both {existing.PayloadType} and {registration.PayloadType}; give one of them another JobTypeOptions.Kind.");
            }

            // A later registration of the same type (AddJob then AddHandler) completes the earlier one.
            if (_byType.TryGetValue(registration.PayloadType, out var earlier) && earlier.Invoke is not null && registration.Invoke is null)
            {
                continue;
            }

            _byType[registration.PayloadType] = registration;
            _byKind[registration.Kind] = registration;
        }
    }

    public IEnumerable<JobTypeRegistration> Handled => _byKind.Values.Where(r => r.Invoke is not null);

    public JobTypeRegistration? Find(Type payloadType) => _byType.GetValueOrDefault(payloadType);

    public JobTypeRegistration? Find(string kind) => _byKind.GetValueOrDefault(kind);
}

internal delegate Task JobInvoker(IServiceProvider services, string payload, JsonSerializerOptions serializerOptions, JobContext context, CancellationToken cancellationToken);

internal sealed class JobTypeRegistration
{
    public required Type PayloadType { get; init; }

    public required string Kind { get; init; }

    public required JobTypeOptions Options { get; init; }

    public JobInvoker? Invoke { get; init; }

    public static string DefaultKind(Type type) => type.FullName ?? type.Name;

    public static JobTypeRegistration Create<TPayload>(JobTypeOptions options, bool withHandler) => new()
    {
        PayloadType = typeof(TPayload),
        Kind = options.Kind ?? DefaultKind(typeof(TPayload)),
        Options = options,
        Invoke = withHandler ? InvokeAsync<TPayload> : null,
    };

    private static Task InvokeAsync<TPayload>(IServiceProvider services, string payload, JsonSerializerOptions serializerOptions, JobContext context, CancellationToken cancellationToken)
    {
        TPayload value;
        try
        {
            value = JsonSerializer.Deserialize<TPayload>(payload, serializerOptions)!;
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException or ArgumentException)
        {
            throw new JobPayloadException($"The payload of job {context.Id} cannot be read as {typeof(TPayload)}: {ex.Message}", ex);
        }

        if (value is null)
        {
            throw new JobPayloadException($"The payload of job {context.Id} is null, which {typeof(TPayload)} handlers cannot take.");
        }

        return services.GetRequiredService<IJobHandler<TPayload>>().HandleAsync(value, context, cancellationToken);
    }
}

// A payload that can never be handled: the job goes dead at once instead of burning its attempts.
internal sealed class JobPayloadException(string message, Exception? inner = null) : Exception(message, inner);
