using Npgsql;
using PgQueue;

namespace WebApp;

public sealed record SendOrderConfirmation(long OrderId);

public sealed record RenderInvoice(long OrderId);

// The "load" button's jobs. One in every FlakyEvery fails its first try and, allowed a single attempt, goes straight to
// the dead jobs, where the dashboard's requeue button runs it again (and it succeeds, as a retried call would).
public sealed record LoadJob(int Number, bool Flaky);

public sealed class SendOrderConfirmationHandler(DemoShop shop) : IJobHandler<SendOrderConfirmation>
{
    public Task HandleAsync(SendOrderConfirmation payload, JobContext context, CancellationToken cancellationToken) =>
        shop.MarkAsync(OrderStep.Confirmed, payload.OrderId, context, cancellationToken);
}

public sealed class RenderInvoiceHandler(DemoShop shop) : IJobHandler<RenderInvoice>
{
    public Task HandleAsync(RenderInvoice payload, JobContext context, CancellationToken cancellationToken) =>
        shop.MarkAsync(OrderStep.Invoiced, payload.OrderId, context, cancellationToken);
}

public sealed class LoadJobHandler(DemoSettings settings) : IJobHandler<LoadJob>
{
    public async Task HandleAsync(LoadJob payload, JobContext context, CancellationToken cancellationToken)
    {
        if (payload.Flaky && context.Errors.Count == 0)
        {
            throw new InvalidOperationException($"Load job {payload.Number}: the warehouse API refused the first try (simulated).");
        }

        await Task.Delay(settings.LoadJobWork, cancellationToken);
    }
}

public sealed partial class OrderService(NpgsqlDataSource dataSource, DemoShop shop, Catalog catalog, IJobQueue queue, IJobQueueBackend store, LiveUpdates live, ILogger<OrderService> logger)
{
    public const int MaxLines = 20;
    public const int MaxQuantity = 99;

    public bool Transactional => store is PostgresJobQueueBackend;

    // Validates the lines against the catalog (prices come from it, never from the client), then inserts the order
    // and enqueues its confirmation and invoice jobs in one transaction on PostgreSQL: both or neither. On Redis the
    // jobs are enqueued after the commit, with no shared transaction: if Redis fails (or the process dies) in between,
    // the order stays without its jobs. That is logged, and the order is still placed, so a retry never orders twice.
    public async Task<(long OrderId, bool Transactional)> PlaceAsync(string userId, IReadOnlyList<CartLine> cart, CancellationToken cancellationToken)
    {
        if (cart.Count is 0 or > MaxLines)
        {
            throw new ArgumentException($"An order has 1 to {MaxLines} lines.", nameof(cart));
        }

        var lines = new List<OrderLine>(cart.Count);
        foreach (var line in cart)
        {
            if (line.Quantity is < 1 or > MaxQuantity)
            {
                throw new ArgumentException($"Quantities are 1 to {MaxQuantity}.", nameof(cart));
            }

            var product = await catalog.GetProductAsync(line.ProductId, cancellationToken);
            lines.Add(new OrderLine(product.Id, product.Name, line.Quantity, product.PriceCents));
        }

        await shop.EnsureCreatedAsync(cancellationToken);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var orderId = await shop.InsertOrderAsync(transaction, userId, lines, cancellationToken);
        var transactional = Transactional;
        if (transactional)
        {
            await queue.EnqueueAsync(transaction, new SendOrderConfirmation(orderId), cancellationToken: cancellationToken);
            await queue.EnqueueAsync(transaction, new RenderInvoice(orderId), cancellationToken: cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        if (!transactional)
        {
            try
            {
                await queue.EnqueueAsync(new SendOrderConfirmation(orderId), cancellationToken: CancellationToken.None);
                await queue.EnqueueAsync(new RenderInvoice(orderId), cancellationToken: CancellationToken.None);
            }
            catch (StackExchange.Redis.RedisException error)
            {
                LogJobsLost(logger, error, orderId);
            }
        }

        await live.ActivityAsync($"Order {orderId} placed by {userId} ({Product.FormatPrice(lines.Sum(l => (long)l.PriceCents * l.Quantity))})");
        return (orderId, transactional);
    }

    [LoggerMessage(EventId = 9001, Level = LogLevel.Error, Message = "Order {OrderId} is placed but its jobs could not be enqueued on Redis; it stays pending until they are enqueued by hand.")]
    private static partial void LogJobsLost(ILogger logger, Exception error, long orderId);
}
