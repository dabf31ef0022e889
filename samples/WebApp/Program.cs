using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using PgFirst.Core;
using PgQueue;
using WebApp;

var builder = WebApplication.CreateBuilder(args);

// One NpgsqlDataSource for the app and for PgFirst; ./pgfirst demo sets ConnectionStrings__Postgres.
var postgres = builder.Configuration.GetConnectionString("Postgres");
var printSchema = args.Contains("--print-schema");
if (string.IsNullOrWhiteSpace(postgres))
{
    if (!printSchema)
    {
        throw new InvalidOperationException(
            "ConnectionStrings:Postgres is not set. Run ./pgfirst demo (it starts PostgreSQL and sets it), or set " +
            "ConnectionStrings__Postgres to an Npgsql connection string.");
    }

    postgres = "Host=unused"; // --print-schema renders SQL and never connects.
}

builder.Services.AddNpgsqlDataSource(postgres);

// Backend per module comes from configuration: PgFirst__Backend=Redis, or PgFirst__CacheBackend=Redis, ...
var pgFirst = builder.Services.AddPgFirst(builder.Configuration.GetSection("PgFirst"));
var pgFirstOptions = builder.Configuration.GetSection("PgFirst").Get<PgFirstOptions>() ?? new PgFirstOptions();
builder.Services.AddPgCache(builder.Configuration.GetSection("PgCache"));
builder.Services.AddPgRateLimiting();
builder.Services.AddPgSessions(builder.Configuration.GetSection("PgSessions"));
builder.Services.AddSingleton(sp => new DemoOrders(sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<PgFirstOptions>>().Value.SchemaName));
builder.Services.AddPgQueue(builder.Configuration.GetSection("PgQueue"))
    .AddHandler<SendOrderConfirmation, SendOrderConfirmationHandler>()
    .AddHandler<RenderInvoice, RenderInvoiceHandler>(o => o.Queue = "invoices");

// The Data Protection key ring (it protects the session cookie) lives in PostgreSQL, so every instance reads every cookie.
builder.Services.AddDataProtection().PersistKeysToPgFirst();
var health = builder.Services.AddHealthChecks().AddPgFirstPostgres(tags: ["ready"]).AddPgCache(tags: ["ready"]).AddPgSessions(tags: ["ready"]).AddPgQueue(tags: ["ready"]);
if (pgFirstOptions.UsesRedis)
{
    var redis = builder.Configuration.GetConnectionString("Redis");
    pgFirst.AddRedis(o => o.Configuration = redis);
    health.AddPgFirstRedis(tags: ["ready"]);
}

var app = builder.Build();

if (printSchema)
{
    // ./pgfirst schema: the full, idempotent SQL for a DBA to review and apply by hand.
    Console.Out.Write(app.Services.GetRequiredService<PgSchemaInstaller>().GenerateScript());
    return;
}

app.UseSession();

app.MapGet("/session/visits", async (HttpContext context) =>
{
    await context.Session.LoadAsync();
    var visits = (context.Session.GetInt32("visits") ?? 0) + 1;
    context.Session.SetInt32("visits", visits);
    return Results.Json(new { sessionId = context.Session.Id, visits });
});

// Placing an order: the order row and its follow-up jobs commit together or not at all (PostgreSQL queue), or the
// jobs go to Redis after the order commits (Redis queue: no shared transaction).
app.MapPost("/orders", async (NpgsqlDataSource dataSource, DemoOrders orders, IJobQueue queue, IJobQueueBackend store, string sku, int quantity = 1) =>
{
    if (string.IsNullOrWhiteSpace(sku) || sku.Length > 64 || quantity is < 1 or > 100)
    {
        return Results.BadRequest(new { error = "sku must be 1 to 64 characters and quantity 1 to 100." });
    }

    await orders.EnsureCreatedAsync(dataSource);
    await using var connection = await dataSource.OpenConnectionAsync();
    await using var transaction = await connection.BeginTransactionAsync();
    await using var insert = new NpgsqlCommand($"INSERT INTO {orders.Table} (sku, quantity) VALUES ($1, $2) RETURNING id", connection, transaction);
    insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = sku });
    insert.Parameters.Add(new NpgsqlParameter<int> { TypedValue = quantity });
    var orderId = (long)(await insert.ExecuteScalarAsync())!;
    var transactional = store is PostgresJobQueueBackend;
    if (transactional)
    {
        await queue.EnqueueAsync(transaction, new SendOrderConfirmation(orderId));
        await queue.EnqueueAsync(transaction, new RenderInvoice(orderId));
    }

    await transaction.CommitAsync();
    if (!transactional)
    {
        await queue.EnqueueAsync(new SendOrderConfirmation(orderId));
        await queue.EnqueueAsync(new RenderInvoice(orderId));
    }

    return Results.Json(new { orderId, transactional });
});

app.MapGet("/orders/{id:long}", async (NpgsqlDataSource dataSource, DemoOrders orders, long id) =>
{
    await orders.EnsureCreatedAsync(dataSource);
    await using var command = dataSource.CreateCommand($"SELECT sku, quantity, confirmed_at IS NOT NULL, invoiced_at IS NOT NULL FROM {orders.Table} WHERE id = $1");
    command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = id });
    await using var reader = await command.ExecuteReaderAsync();
    return await reader.ReadAsync()
        ? Results.Json(new { id, sku = reader.GetString(0), quantity = reader.GetInt32(1), confirmed = reader.GetBoolean(2), invoiced = reader.GetBoolean(3) })
        : Results.NotFound();
});

app.MapGet("/jobs/stats", async (JobQueueManager manager) =>
    Results.Json(await manager.GetStatsAsync(["default", "invoices"])));

app.MapGet("/", (Microsoft.Extensions.Options.IOptions<PgFirstOptions> options) =>
{
    var o = options.Value;
    var rows = string.Concat(Enum.GetValues<PgFirstModule>().Select(m => $"<tr><td>{m}</td><td>{o.GetBackend(m)}</td></tr>"));
    return Results.Content(
        $"""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>PgFirst demo</title></head>
        <body>
        <h1>PgFirst demo</h1>
        <p>Schema <code>{o.SchemaName}</code>. Health: <a href="/health">/health</a>,
        <a href="/health/live">/health/live</a>, <a href="/health/ready">/health/ready</a>.</p>
        <table><thead><tr><th>Module</th><th>Backend</th></tr></thead><tbody>{rows}</tbody></table>
        </body></html>
        """,
        "text/html");
});

app.MapHealthChecks("/health", new HealthCheckOptions { ResponseWriter = WriteHealthJson });
app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false, ResponseWriter = WriteHealthJson });
app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = c => c.Tags.Contains("ready"), ResponseWriter = WriteHealthJson });

await app.RunAsync();

static Task WriteHealthJson(HttpContext context, HealthReport report)
{
    context.Response.ContentType = "application/json";
    return context.Response.WriteAsync(JsonSerializer.Serialize(new
    {
        status = report.Status.ToString(),
        checks = report.Entries.ToDictionary(e => e.Key, e => new { status = e.Value.Status.ToString(), description = e.Value.Description }),
    }));
}

/// <summary>The demo app's entry point, visible to the integration tests.</summary>
public partial class Program;
