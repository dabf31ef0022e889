using System.Diagnostics.Metrics;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using PgFirst.Core;
using PgQueue;
using PgQueue.Internal;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// A builder for PgQueue: register job types, their handlers and recurring jobs.
/// </summary>
public interface IPgQueueBuilder
{
    /// <summary>Gets the service collection.</summary>
    IServiceCollection Services { get; }
}

/// <summary>
/// Settings of a recurring job.
/// </summary>
public sealed class RecurringJobOptions
{
    /// <summary>Gets or sets the time zone the cron expression is read in (IANA or Windows id). <value>The default is <c>UTC</c>.</value></summary>
    public string TimeZone { get; set; } = "UTC";

    /// <summary>Gets or sets the queue. <value>The default is the payload type's queue.</value></summary>
    public string? Queue { get; set; }

    /// <summary>Gets or sets the priority. <value>The default is the payload type's priority.</value></summary>
    public int? Priority { get; set; }

    /// <summary>Gets or sets the attempts of each occurrence. <value>The default is the payload type's.</value></summary>
    public int? MaxAttempts { get; set; }
}

/// <summary>
/// Extension methods that register PgQueue.
/// </summary>
public static class PgQueueServiceCollectionExtensions
{
    /// <summary>
    /// Registers PgQueue: <see cref="IJobQueue"/>, <see cref="JobQueueManager"/>, the hosted workers (for the queues
    /// that get handlers), the schema module and the retention task, on the backend <c>PgFirst:QueueBackend</c> (or
    /// <c>PgFirst:Backend</c>) selects.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Configures <see cref="PgQueueOptions"/>, or <see langword="null"/>.</param>
    /// <returns>A builder to register handlers with.</returns>
    public static IPgQueueBuilder AddPgQueue(this IServiceCollection services, Action<PgQueueOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        AddCore(services);
        if (configure is not null)
        {
            services.Configure(configure);
        }

        return new PgQueueBuilder(services);
    }

    /// <summary>
    /// Registers PgQueue with options bound from <paramref name="configuration"/> (usually the <c>PgQueue</c> section).
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">The section to bind <see cref="PgQueueOptions"/> from.</param>
    /// <returns>A builder to register handlers with.</returns>
    public static IPgQueueBuilder AddPgQueue(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        AddCore(services);
        services.Configure<PgQueueOptions>(configuration);
        return new PgQueueBuilder(services);
    }

    /// <summary>
    /// Registers <typeparamref name="THandler"/> (scoped) as the handler of <typeparamref name="TPayload"/> jobs, so this
    /// process runs workers for the payload type's queue.
    /// </summary>
    /// <typeparam name="TPayload">The payload type.</typeparam>
    /// <typeparam name="THandler">The handler type.</typeparam>
    /// <param name="builder">The builder.</param>
    /// <param name="configure">Configures the payload type's queue, kind name, priority, attempts and back-off.</param>
    /// <returns>The builder.</returns>
    public static IPgQueueBuilder AddHandler<TPayload, THandler>(this IPgQueueBuilder builder, Action<JobTypeOptions>? configure = null)
        where THandler : class, IJobHandler<TPayload>
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddScoped<IJobHandler<TPayload>, THandler>();
        builder.Services.AddSingleton(JobTypeRegistration.Create<TPayload>(Configure(configure), withHandler: true));
        return builder;
    }

    /// <summary>
    /// Registers <typeparamref name="TPayload"/>'s queue, kind name and defaults in a process that enqueues it but does
    /// not handle it.
    /// </summary>
    /// <typeparam name="TPayload">The payload type.</typeparam>
    /// <param name="builder">The builder.</param>
    /// <param name="configure">Configures the payload type's queue, kind name, priority and attempts.</param>
    /// <returns>The builder.</returns>
    public static IPgQueueBuilder AddJob<TPayload>(this IPgQueueBuilder builder, Action<JobTypeOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddSingleton(JobTypeRegistration.Create<TPayload>(Configure(configure), withHandler: false));
        return builder;
    }

    /// <summary>
    /// Enqueues <paramref name="payload"/> at every occurrence of <paramref name="cron"/>, once per occurrence across
    /// all instances. Missed occurrences (every instance down) fire once, not once each.
    /// </summary>
    /// <typeparam name="TPayload">The payload type; register its handler too.</typeparam>
    /// <param name="builder">The builder.</param>
    /// <param name="name">A unique name (1 to 200 characters).</param>
    /// <param name="cron">A cron expression: 5 fields, or 6 with seconds first.</param>
    /// <param name="payload">The payload of each occurrence.</param>
    /// <param name="configure">Configures the time zone, queue, priority and attempts.</param>
    /// <returns>The builder.</returns>
    /// <exception cref="ArgumentException">The name, cron expression or time zone is invalid.</exception>
    public static IPgQueueBuilder AddRecurring<TPayload>(this IPgQueueBuilder builder, string name, string cron, TPayload payload, Action<RecurringJobOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentException.ThrowIfNullOrWhiteSpace(cron);
        ArgumentNullException.ThrowIfNull(payload);
        if (name.Length > 200)
        {
            throw new ArgumentException("A recurring job's name is at most 200 characters.", nameof(name));
        }

        try
        {
            RecurringJobRegistration.Parse(cron);
        }
        catch (Cronos.CronFormatException ex)
        {
            throw new ArgumentException($"'{cron}' is not a valid cron expression: {ex.Message}", nameof(cron), ex);
        }

        var options = new RecurringJobOptions();
        configure?.Invoke(options);
        try
        {
            TimeZoneInfo.FindSystemTimeZoneById(options.TimeZone);
        }
        catch (TimeZoneNotFoundException ex)
        {
            throw new ArgumentException($"The time zone '{options.TimeZone}' is unknown on this machine.", nameof(configure), ex);
        }

        builder.Services.AddSingleton(sp =>
        {
            var queueOptions = sp.GetRequiredService<IOptions<PgQueueOptions>>().Value;
            var registration = sp.GetRequiredService<JobRegistry>().Find(typeof(TPayload));
            var queue = options.Queue ?? registration?.Options.Queue ?? queueOptions.DefaultQueue;
            if (!JobQueue.IsValidQueueName(queue))
            {
                throw new InvalidOperationException($"Recurring job '{name}': '{queue}' is not a valid queue name.");
            }

            return new RecurringJobRegistration
            {
                Definition = new RecurringJobDefinition
                {
                    Name = name,
                    Cron = cron.Trim(),
                    TimeZone = options.TimeZone,
                    Queue = queue,
                    Kind = registration?.Kind ?? JobTypeRegistration.DefaultKind(typeof(TPayload)),
                    Payload = JsonSerializer.Serialize(payload, queueOptions.SerializerOptions),
                    Priority = (short)Math.Clamp(options.Priority ?? registration?.Options.Priority ?? 0, short.MinValue, short.MaxValue),
                    MaxAttempts = options.MaxAttempts ?? registration?.Options.MaxAttempts ?? queueOptions.DefaultMaxAttempts,
                },
            };
        });
        return builder;
    }

    /// <summary>
    /// Adds a health check that queries the job store on its configured backend.
    /// </summary>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="name">The check's name.</param>
    /// <param name="failureStatus">The status reported on failure; <see langword="null"/> for unhealthy.</param>
    /// <param name="tags">Tags, e.g. <c>ready</c>.</param>
    /// <returns>The builder.</returns>
    public static IHealthChecksBuilder AddPgQueue(
        this IHealthChecksBuilder builder,
        string name = "pgqueue",
        HealthStatus? failureStatus = null,
        IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Add(new HealthCheckRegistration(name, sp => new PgQueueHealthCheck(sp.GetRequiredService<IJobQueueBackend>()), failureStatus, tags));
    }

    private static JobTypeOptions Configure(Action<JobTypeOptions>? configure)
    {
        var options = new JobTypeOptions();
        configure?.Invoke(options);
        if (options.Kind is { } kind && (string.IsNullOrWhiteSpace(kind) || kind.Length > 200))
        {
            throw new ArgumentException("A job kind must be 1 to 200 characters and not blank.", nameof(configure));
        }

        if (options.Queue is { } queue && !JobQueue.IsValidQueueName(queue))
        {
            throw new ArgumentException($"'{queue}' is not a valid queue name: use 1 to 100 letters, digits, '_', '-', '.' or ':'.", nameof(configure));
        }

        if (options.MaxAttempts is < 1 or > 10_000)
        {
            throw new ArgumentException("MaxAttempts must be between 1 and 10000.", nameof(configure));
        }

        if (options.Priority is < short.MinValue or > short.MaxValue)
        {
            throw new ArgumentException($"Priority must be between {short.MinValue} and {short.MaxValue}.", nameof(configure));
        }

        if (options.Retry?.Validate("Retry") is { } retryError)
        {
            throw new ArgumentException(retryError, nameof(configure));
        }

        return options;
    }

    private static void AddCore(IServiceCollection services)
    {
        services.AddPgFirst();
        if (services.Any(d => d.ServiceType == typeof(PgQueueBuilder)))
        {
            return;
        }

        services.AddSingleton<PgQueueBuilder>(_ => throw new InvalidOperationException("Marker only."));
        services.AddOptions<PgQueueOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PgQueueOptions>, PgQueueOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);

        // Both the module and the retention task exist only when the queue runs on PostgreSQL.
        services.AddSingleton(sp => OnPostgreSql(sp) ? PostgresJobQueueBackend.SchemaModule : null!);
        services.AddSingleton(sp => OnPostgreSql(sp) ? PostgresJobQueueBackend.CleanupTask : null!);
        services.TryAddSingleton<IJobQueueBackend>(sp =>
        {
            var first = sp.GetRequiredService<IOptions<PgFirstOptions>>().Value;
            if (first.GetBackend(PgFirstModule.Queue) == PgFirstBackend.Redis)
            {
                return sp.GetKeyedService<IJobQueueBackend>(PgFirstBackend.Redis) ?? throw new InvalidOperationException(
                    "PgFirst:QueueBackend (or PgFirst:Backend) is Redis, but the Redis mode is not registered: reference " +
                    "PgFirst.Redis and call services.AddPgFirst(...).AddRedis(...).");
            }

            var options = sp.GetRequiredService<IOptions<PgQueueOptions>>().Value;
            return new PostgresJobQueueBackend(
                sp.GetRequiredNpgsqlDataSource(first.DataSourceKey),
                first,
                sp.GetPgReplicaReads("pgqueue", options.StatsReadConsistency, options.MaxReplicaLag));
        });
        services.TryAddSingleton(sp => new PgQueueMetrics(sp.GetService<IMeterFactory>(), sp.GetRequiredService<IJobQueueBackend>().Name));
        services.TryAddSingleton(sp => new JobRegistry(sp.GetServices<JobTypeRegistration>()));
        services.TryAddSingleton<JobWakeHub>();
        services.TryAddSingleton<IJobQueue>(sp => new JobQueue(
            sp.GetRequiredService<IJobQueueBackend>(),
            sp.GetRequiredService<IOptions<PgQueueOptions>>().Value,
            sp.GetRequiredService<JobRegistry>(),
            sp.GetRequiredService<JobWakeHub>(),
            sp.GetRequiredService<PgQueueMetrics>(),
            sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton(sp => new JobQueueManager(
            sp.GetRequiredService<IJobQueueBackend>(),
            sp.GetRequiredService<IOptions<PgQueueOptions>>().Value,
            sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<IHostedService>(sp => new JobWorkerService(
            sp.GetRequiredService<IJobQueueBackend>(),
            sp.GetRequiredService<IOptions<PgQueueOptions>>().Value,
            sp.GetRequiredService<JobRegistry>(),
            sp.GetServices<RecurringJobRegistration>(),
            sp.GetRequiredService<JobWakeHub>(),
            sp.GetRequiredService<IServiceScopeFactory>(),
            sp.GetRequiredService<PgQueueMetrics>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<JobWorkerService>>()));
    }

    private static bool OnPostgreSql(IServiceProvider services) =>
        services.GetRequiredService<IOptions<PgFirstOptions>>().Value.GetBackend(PgFirstModule.Queue) == PgFirstBackend.PostgreSql;

    private sealed class PgQueueBuilder(IServiceCollection services) : IPgQueueBuilder
    {
        public IServiceCollection Services { get; } = services;
    }
}
