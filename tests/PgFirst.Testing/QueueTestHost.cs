using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Xunit;
using PgQueue;

namespace PgFirst.Testing;

// A real generic host running PgQueue on a test's store, plus the records the test handlers write.
public static class QueueTestHost
{
    public static IHost Build(PostgresSchema schema, Action<PgQueueOptions>? configure = null, Action<IPgQueueBuilder>? handlers = null, Action<IServiceCollection>? services = null, NpgsqlDataSource? dataSource = null) =>
        Build(
            s =>
            {
                s.AddSingleton(dataSource ?? schema.DataSource);
                s.AddPgFirst(schema.ConfigurePgFirst);
            },
            configure,
            handlers,
            services);

    public static IHost Build(Action<IServiceCollection> store, Action<PgQueueOptions>? configure = null, Action<IPgQueueBuilder>? handlers = null, Action<IServiceCollection>? services = null)
    {
        var builder = Host.CreateApplicationBuilder();
        if (Environment.GetEnvironmentVariable("PGQUEUE_TEST_LOG") != "1")
        {
            builder.Logging.ClearProviders();
        }

        store(builder.Services);
        var queue = builder.Services.AddPgQueue(o =>
        {
            o.PollInterval = TimeSpan.FromMilliseconds(200);
            o.LeaseDuration = TimeSpan.FromSeconds(5);
            o.HeartbeatInterval = TimeSpan.FromSeconds(1);
            o.ShutdownGracePeriod = TimeSpan.FromSeconds(5);

            // The tests read finished jobs back; apps keep none by default.
            o.SucceededRetention = TimeSpan.FromHours(1);
            o.Retry = new JobRetryPolicy { BaseDelay = TimeSpan.FromMilliseconds(50), MaxDelay = TimeSpan.FromMilliseconds(200), Jitter = 0 };
            configure?.Invoke(o);
        });
        handlers?.Invoke(queue);
        builder.Services.AddSingleton<Journal>();
        services?.Invoke(builder.Services);
        return builder.Build();
    }

    public static async Task WaitUntilAsync(Func<Task<bool>> condition, string what, int seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out after {seconds} s waiting until {what}.");
            }

            await Task.Delay(25, TestContext.Current.CancellationToken);
        }
    }

    public static Task WaitUntilAsync(Func<bool> condition, string what, int seconds = 30) =>
        WaitUntilAsync(() => Task.FromResult(condition()), what, seconds);
}

// What the handlers saw, shared by a host's handlers and the test.
public sealed class Journal
{
    public ConcurrentQueue<(long Id, int Attempt, string Value)> Handled { get; } = new();

    public ConcurrentDictionary<string, int> Failures { get; } = new();

    public int Count => Handled.Count;

    public TaskCompletionSource Gate { get; set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private int _started;

    public int Started => Volatile.Read(ref _started);

    public void Start() => Interlocked.Increment(ref _started);
}

public sealed record Work(string Value);

public sealed record Other(int Number);

public sealed class RecordingHandler(Journal journal) : IJobHandler<Work>
{
    public Task HandleAsync(Work payload, JobContext context, CancellationToken cancellationToken)
    {
        journal.Handled.Enqueue((context.Id, context.Attempt, payload.Value));
        return Task.CompletedTask;
    }
}

// Fails the first N attempts of values "fail:N"; fails forever for "always".
public sealed class FlakyHandler(Journal journal) : IJobHandler<Work>
{
    public Task HandleAsync(Work payload, JobContext context, CancellationToken cancellationToken)
    {
        if (payload.Value == "always" || (payload.Value.StartsWith("fail:", StringComparison.Ordinal) && context.Attempt <= int.Parse(payload.Value[5..], System.Globalization.CultureInfo.InvariantCulture)))
        {
            journal.Failures.AddOrUpdate(payload.Value, 1, (_, n) => n + 1);
            throw new InvalidOperationException($"boom on attempt {context.Attempt}");
        }

        journal.Handled.Enqueue((context.Id, context.Attempt, payload.Value));
        return Task.CompletedTask;
    }
}

// Blocks until the journal's gate opens (or the token fires).
public sealed class GatedHandler(Journal journal) : IJobHandler<Work>
{
    public async Task HandleAsync(Work payload, JobContext context, CancellationToken cancellationToken)
    {
        journal.Start();
        await journal.Gate.Task.WaitAsync(cancellationToken);
        journal.Handled.Enqueue((context.Id, context.Attempt, payload.Value));
    }
}

public sealed class OtherHandler(Journal journal) : IJobHandler<Other>
{
    public Task HandleAsync(Other payload, JobContext context, CancellationToken cancellationToken)
    {
        journal.Handled.Enqueue((context.Id, context.Attempt, "other:" + payload.Number));
        return Task.CompletedTask;
    }
}
