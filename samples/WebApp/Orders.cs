using Npgsql;
using PgQueue;

namespace WebApp;

public sealed record SendOrderConfirmation(long OrderId);

public sealed record RenderInvoice(long OrderId);

// The handlers record their outcome on the order, and complete their job in the same transaction on PostgreSQL, so a
// confirmation is recorded exactly once even if a worker dies mid-job.
public sealed class SendOrderConfirmationHandler(NpgsqlDataSource dataSource, DemoOrders orders) : IJobHandler<SendOrderConfirmation>
{
    public Task HandleAsync(SendOrderConfirmation payload, JobContext context, CancellationToken cancellationToken) =>
        orders.MarkAsync(dataSource, "confirmed_at", payload.OrderId, context, cancellationToken);
}

public sealed class RenderInvoiceHandler(NpgsqlDataSource dataSource, DemoOrders orders) : IJobHandler<RenderInvoice>
{
    public Task HandleAsync(RenderInvoice payload, JobContext context, CancellationToken cancellationToken) =>
        orders.MarkAsync(dataSource, "invoiced_at", payload.OrderId, context, cancellationToken);
}

// The demo's own data: orders, in the PgFirst schema so that each test run keeps to its own. Created on first use,
// so the app starts (and reports unhealthy) while the database is down.
public sealed class DemoOrders(string schemaName) : IDisposable
{
    private readonly SemaphoreSlim _create = new(1, 1);
    private volatile bool _created;

    public string Table { get; } = $"\"{schemaName}\".demo_order";

    public async Task EnsureCreatedAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken = default)
    {
        if (_created)
        {
            return;
        }

        await _create.WaitAsync(cancellationToken);
        try
        {
            if (!_created)
            {
                await using var create = dataSource.CreateCommand(CreateSql);
                await create.ExecuteNonQueryAsync(cancellationToken);
                _created = true;
            }
        }
        finally
        {
            _create.Release();
        }
    }

    public void Dispose() => _create.Dispose();

    private string CreateSql => $"""
        CREATE SCHEMA IF NOT EXISTS "{schemaName}";
        CREATE TABLE IF NOT EXISTS {Table} (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            sku          text NOT NULL,
            quantity     integer NOT NULL,
            placed_at    timestamptz NOT NULL DEFAULT now(),
            confirmed_at timestamptz,
            invoiced_at  timestamptz
        );
        """;

    public async Task MarkAsync(NpgsqlDataSource dataSource, string column, long orderId, JobContext context, CancellationToken cancellationToken)
    {
        await EnsureCreatedAsync(dataSource, cancellationToken);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using var update = new NpgsqlCommand($"UPDATE {Table} SET {column} = now() WHERE id = $1", connection, transaction);
        update.Parameters.Add(new NpgsqlParameter<long> { TypedValue = orderId });
        await update.ExecuteNonQueryAsync(cancellationToken);
        try
        {
            await context.CompleteAsync(transaction, cancellationToken);
        }
        catch (NotSupportedException)
        {
            // The queue runs on Redis: the job completes when the handler returns (at least once).
        }

        await transaction.CommitAsync(cancellationToken);
    }
}
