using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using PgQueue;
using PgQueue.CrashWorker;

// A PgQueue worker process for the crash-safety tests (tests/PgQueue.Tests/CrashSafetyTests.cs): it runs until it is
// killed, which is the point, or until its standard input ends when asked to (so it never outlives the test process).
// Settings come from configuration: environment variables (CrashWorker__Mode=plain) or arguments (--CrashWorker:Mode=plain).
var builder = Host.CreateApplicationBuilder(args);
var settings = CrashWorkerSettings.Read(builder.Configuration);

builder.Logging.ClearProviders();
builder.Logging.AddSimpleConsole(o =>
{
    o.SingleLine = true;
    o.UseUtcTimestamp = true;
    o.TimestampFormat = "HH:mm:ss.fff ";
});

// Npgsql logs every command at Information; its warnings and errors are what matters here.
builder.Logging.AddFilter("Npgsql", LogLevel.Warning);
builder.Services.AddSingleton(settings);
builder.Services.AddNpgsqlDataSource(settings.ConnectionString);
builder.Services.AddPgFirst(o => o.SchemaName = settings.Schema);
var queue = builder.Services.AddPgQueue(o =>
{
    // Short leases, so a killed worker's jobs are rescued within seconds; heartbeats at an eighth of the lease, so a
    // live worker starved of CPU on a busy machine keeps its leases.
    o.LeaseDuration = settings.LeaseDuration;
    o.HeartbeatInterval = settings.LeaseDuration / 8;
    o.PollInterval = TimeSpan.FromMilliseconds(200);
    o.Retry = new JobRetryPolicy { BaseDelay = TimeSpan.FromMilliseconds(100), MaxDelay = TimeSpan.FromSeconds(1) };
    o.ShutdownGracePeriod = TimeSpan.FromSeconds(2);
    o.SucceededRetention = TimeSpan.FromHours(1); // the tests check every job ended in job_finished as succeeded
    o.WorkerName = CrashJob.WorkerName(Environment.ProcessId);
});
if (settings.Transactional)
{
    queue.AddHandler<CrashJob, TransactionalCrashJobHandler>(o => o.Kind = CrashJob.Kind);
}
else
{
    queue.AddHandler<CrashJob, PlainCrashJobHandler>(o => o.Kind = CrashJob.Kind);
}

using var host = builder.Build();
await host.StartAsync();
if (settings.StopWhenInputEnds)
{
    // A thread of its own: Console.In blocks even through its async methods, and a thread-pool thread blocked for
    // good on a 2-core machine starves the heartbeats until the pool grows, long enough for leases to expire.
    var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
    var watcher = new Thread(() =>
    {
        try
        {
            Console.In.ReadToEnd();
        }
        finally
        {
            lifetime.StopApplication();
        }
    })
    {
        IsBackground = true,
        Name = "stdin watcher",
    };
    watcher.Start();
}

await host.WaitForShutdownAsync();
